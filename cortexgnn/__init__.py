"""cortexgnn: cortical-column graph networks on PyTorch Geometric.

The article's ``BrainNetwork`` (columns wired by a small-world graph, per-column attention,
Hebbian edge plasticity, homeostasis) as batched sparse message passing, beside a faithful
dense reference of the original loop.

The public names below load on first use (PEP 562), so ``import cortexgnn`` and the
command line's ``--help`` do not pay for importing torch and PyG.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._pyg import import_pyg as _import_pyg  # the benchmarks' spelling
from ._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "ColumnAttentionConv": ".nn.conv",
    "CorticalColumns": ".nn.columns",
    "CortexNet": ".nn.model",
    "DenseReference": ".reference",
    "Homeostasis": ".nn.plasticity",
    "ModelConfig": ".nn.config",
    "atomic_save": ".checkpoint",
    "attention_graph": ".ops.attention",
    "check_edge_index": ".graph",
    "dense_to_edge_index": ".graph",
    "edge_index_to_dense": ".graph",
    "folded_attention": ".ops.attention",
    "hebbian_delta": ".nn.plasticity",
    "hebbian_update_": ".nn.plasticity",
    "load_article_checkpoint": ".checkpoint",
    "save_article_checkpoint": ".checkpoint",
    "small_world_graph": ".graph",
    "sort_by_target": ".graph",
    "weighted_neighbour_sum": ".nn.model",
}

__all__ = [
    "ColumnAttentionConv",
    "CortexNet",
    "CorticalColumns",
    "DenseReference",
    "Homeostasis",
    "ModelConfig",
    "atomic_save",
    "attention_graph",
    "check_edge_index",
    "dense_to_edge_index",
    "edge_index_to_dense",
    "folded_attention",
    "hebbian_delta",
    "hebbian_update_",
    "load_article_checkpoint",
    "save_article_checkpoint",
    "small_world_graph",
    "sort_by_target",
    "weighted_neighbour_sum",
    "__version__",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cortexgnn' has no attribute {name!r}")
    _import_pyg()
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from .checkpoint import atomic_save, load_article_checkpoint, save_article_checkpoint
    from .graph import (
        check_edge_index,
        dense_to_edge_index,
        edge_index_to_dense,
        small_world_graph,
        sort_by_target,
    )
    from .nn.columns import CorticalColumns
    from .nn.config import ModelConfig
    from .nn.conv import ColumnAttentionConv
    from .nn.model import CortexNet, weighted_neighbour_sum
    from .nn.plasticity import Homeostasis, hebbian_delta, hebbian_update_
    from .ops.attention import attention_graph, folded_attention
    from .reference import DenseReference
