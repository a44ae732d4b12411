"""Upstream providers: one module per upstream kind, all behind the Provider protocol in base.py."""
