"""Server-side cross-cutting concerns, one module each."""
