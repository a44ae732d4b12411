"""The model registry: which credentials serve which client-visible model ids."""
