"""Attention kernels as plain functions on tensors, below the layer."""

from .. import _import_pyg

_import_pyg()
