"""Route tables, one module per API family, each wiring paths to a handler class."""
