"""The column network's layers and model."""
