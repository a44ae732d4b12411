"""Conformance replay: the reference's recorded end-to-end scenarios run against proxyd (docs/conformance.md)."""
