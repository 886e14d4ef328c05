"""The column network's layers and model."""

from .. import _import_pyg

_import_pyg()
