"""proxyd: an LLM API gateway daemon compatible with CLIProxyAPI configs and clients."""

__version__ = "0.1.0"
