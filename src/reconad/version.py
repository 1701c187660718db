"""The package's version (a leaf module: what records it imports nothing else of reconad)."""

__version__ = "0.1.0"
