"""prunebench: a reproducible benchmark of neural-network pruning methods."""

__version__ = "0.1.0"
