"""Wire protocols: the protocol vocabulary, SSE framing, and one codec module per protocol."""
