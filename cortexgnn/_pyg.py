"""The PyG import, at the bottom of the package.

Every module that needs PyG calls :func:`import_pyg` before ``import torch_geometric``.
"""

from __future__ import annotations

import warnings

__all__ = ["import_pyg"]


def import_pyg() -> None:
    """Import PyG once, without its import-time deprecation warning."""
    with warnings.catch_warnings():
        # PyG 2.8 calls torch.jit.script at import time, which torch 2.14 deprecates; scoped
        # so that users' own warning filters stay untouched.
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
        import torch_geometric  # noqa: F401
