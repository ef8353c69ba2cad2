"""The Sunday email: a self-hosted weekly link digest."""

__version__ = "0.1.0"
