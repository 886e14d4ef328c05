"""Input normalisation for ``ColumnAttentionConv``: node-feature pairs and graph layouts.

The layer accepts what PyG's attention convolutions accept (one feature tensor or a
bipartite ``(x_src, x_dst)`` pair; a graph as ``edge_index``, ``EdgeIndex``, a
``torch.sparse`` adjacency or a ``torch_sparse.SparseTensor``) and turns it into the one
form its message passing uses: source/target features and an ``[2, E]`` edge list with
optional ``[E]`` edge weights.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import add_self_loops, is_torch_sparse_tensor, remove_self_loops

__all__ = ["as_edge_list", "split_node_features", "with_self_loops"]


def split_node_features(x: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, bool]:
    """Source and target features of a homogeneous or bipartite input.

    Args:
        x: ``[N, *, F]`` features, or a pair ``(x_src [N_src, *, F_src], x_dst [N_dst, *,
            F_dst])`` for a bipartite graph (both with the same batch dims ``*``).

    Returns:
        ``(x_src, x_dst, bipartite)``; for a single tensor both are ``x``.
    """
    if isinstance(x, (tuple, list)):
        if len(x) != 2 or not all(isinstance(part, Tensor) for part in x):
            raise ValueError("a bipartite x must be a pair of tensors (x_src, x_dst)")
        x_src, x_dst = x
        if x_src.shape[1:-1] != x_dst.shape[1:-1]:
            raise ValueError(
                f"x_src and x_dst must share their batch dims, got shapes "
                f"{tuple(x_src.shape)} and {tuple(x_dst.shape)}"
            )
        return x_src, x_dst, True
    return x, x, False


def as_edge_list(graph: Tensor, edge_weight: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """An ``[2, E]`` edge list (row 0 source, row 1 target) and its weights.

    ``edge_index`` and ``EdgeIndex`` pass through unchanged (an ``EdgeIndex`` sorted by
    target keeps its CSR pointer, which PyG's softmax then uses). A sparse adjacency is read
    PyG's way, as the transposed adjacency ``adj_t[target, source]``; its values become the
    edge weights, so a 0/1 adjacency equals the plain edge list.

    Args:
        graph: ``edge_index [2, E]``, ``EdgeIndex``, ``torch.sparse`` COO/CSR/CSC
            ``[N_dst, N_src]`` or ``SparseTensor``.
        edge_weight: ``[E]`` or ``None``; must be ``None`` for a sparse adjacency.

    Returns:
        ``(edge_index [2, E], edge_weight [E] or None)``.
    """
    is_sparse_tensor = isinstance(graph, SparseTensor)
    if not (is_sparse_tensor or is_torch_sparse_tensor(graph)):
        return graph, edge_weight
    if edge_weight is not None:
        raise ValueError(
            "edge_weight must be None when the graph is a sparse adjacency: its values are "
            "the edge weights"
        )
    if is_sparse_tensor:
        target, source, values = graph.coo()
    else:
        if graph.layout == torch.sparse_coo:
            graph = graph.coalesce()
            target, source = graph.indices()
        else:
            coo = graph.to_sparse_coo().coalesce()
            target, source = coo.indices()
            graph = coo
        values = graph.values()
    if values is not None and values.dim() != 1:
        raise ValueError(f"a sparse adjacency must hold scalar values, got {values.dim()}-d")
    return torch.stack([source, target]), values


def with_self_loops(
    edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int
) -> tuple[Tensor, Tensor | None]:
    """Replace any self loops by exactly one loop per node (weight 1), as GATConv does.

    Args:
        edge_index: ``[2, E]``.
        edge_weight: ``[E]`` or ``None``.
        num_nodes: nodes that get a loop (``min(N_src, N_dst)`` for a bipartite graph).

    Returns:
        ``(edge_index [2, E'], edge_weight [E'] or None)``, loops appended last.
    """
    edge_index, edge_weight = remove_self_loops(edge_index, edge_weight)
    return add_self_loops(edge_index, edge_weight, fill_value=1.0, num_nodes=num_nodes)
