"""Upstream credentials: what they are, where they come from, and how one is picked."""
