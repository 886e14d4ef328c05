"""cortexgnn: cortical-column graph networks on PyTorch Geometric.

The article's ``BrainNetwork`` (columns wired by a small-world graph, per-column attention,
Hebbian edge plasticity, homeostasis) as batched sparse message passing, beside a faithful
dense reference of the original loop.
"""

import warnings

with warnings.catch_warnings():
    # PyG 2.8 calls torch.jit.script at import time, which torch 2.14 deprecates; scoped so
    # that users' own warning filters stay untouched.
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
    import torch_geometric  # noqa: F401

from .checkpoint import atomic_save, load_article_checkpoint, save_article_checkpoint
from .graph import (
    dense_to_edge_index,
    edge_index_to_dense,
    small_world_graph,
    sort_by_target,
)
from .nn.columns import CorticalColumns
from .nn.conv import ColumnAttentionConv
from .nn.model import CortexNet, weighted_neighbour_sum
from .nn.plasticity import Homeostasis, hebbian_delta, hebbian_update_
from .ops.attention import folded_attention
from .reference import DenseReference

__version__ = "0.1.0"

__all__ = [
    "ColumnAttentionConv",
    "CorticalColumns",
    "CortexNet",
    "DenseReference",
    "Homeostasis",
    "atomic_save",
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
