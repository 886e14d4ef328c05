"""The package version, at the bottom: the command line reads it without the package root."""

__version__ = "0.1.0"
