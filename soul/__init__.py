"""soul: one memory for every AI assistant a person runs, on every machine they own."""

__version__ = "0.1.0"
