"""Graphs that wire the cortical columns, as PyG ``edge_index`` tensors.

Conventions (PyG's): ``edge_index[0]`` is the source ``j``, ``edge_index[1]`` the target
``i``; a message flows ``j -> i``. The dense adjacency used by the article's model,
``adj[i, j]``, is what column ``i`` receives from column ``j``, so edge ``(j, i)`` maps to
``adj[i, j]``. Every function here returns edges sorted by target (then source), which is
the CSR order a destination-major kernel wants.
"""

from __future__ import annotations

import numbers

import networkx as nx
import torch
from torch import Tensor

from . import _import_pyg

_import_pyg()

from torch_geometric import EdgeIndex
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor

__all__ = [
    "as_edge_list",
    "as_plain_tensor",
    "check_edge_index",
    "dense_to_edge_index",
    "edge_index_to_dense",
    "small_world_graph",
    "sort_by_target",
]


def _check_small_world_args(num_nodes: int, k: int, p: float) -> None:
    for name, value in (("num_nodes", num_nodes), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a float in [0, 1], got {p!r} ({type(p).__name__})")
    if num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {num_nodes}: a graph needs a node")
    if k < 0 or k > num_nodes:
        raise ValueError(
            f"k must satisfy 0 <= k <= num_nodes (each node joins k/2 neighbours on each "
            f"side of a ring of num_nodes), got k={k}, num_nodes={num_nodes}: lower k or "
            f"add columns"
        )
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p is a rewiring probability and must lie in [0, 1], got {p}")


def small_world_graph(
    num_nodes: int, k: int = 8, p: float = 0.15, seed: int | None = None
) -> Tensor:
    """Watts-Strogatz small-world graph as a symmetric ``edge_index``.

    Built with :func:`networkx.watts_strogatz_graph` (a ring where each node joins its
    ``k // 2`` nearest neighbours on each side, each edge rewired with probability ``p``),
    exactly as the article does, then returned with both directions of every undirected
    edge.

    Args:
        num_nodes: number of nodes ``N`` (the article's columns).
        k: ring degree before rewiring; ``0 <= k <= num_nodes`` (``k == num_nodes`` gives the
            complete graph). Odd ``k`` acts as ``k - 1`` (networkx's rule).
        p: rewiring probability in ``[0, 1]``.
        seed: seed for networkx's generator; ``None`` draws a fresh graph (the article's
            behaviour).

    Returns:
        ``edge_index`` of shape ``[2, E]`` (``torch.long``), ``E = 2 * num_undirected``,
        sorted by target then source, without self loops or duplicates.
    """
    _check_small_world_args(num_nodes, k, p)
    graph = nx.watts_strogatz_graph(num_nodes, k, p, seed=seed)
    if graph.number_of_edges() == 0:
        return torch.empty(2, 0, dtype=torch.long)
    undirected = torch.tensor(list(graph.edges()), dtype=torch.long).t()  # [2, E/2]
    both = torch.cat([undirected, undirected.flip(0)], dim=1)  # [2, E]
    return sort_by_target(both, num_nodes)


def sort_by_target(edge_index: Tensor, num_nodes: int | None = None) -> Tensor:
    """Sort edges by target, then source (CSR order by destination).

    Args:
        edge_index: ``[2, E]`` integer tensor.
        num_nodes: number of nodes; defaults to ``edge_index.max() + 1``.

    Returns:
        ``[2, E]``, the same edges reordered (int64).

    Raises:
        ValueError: from :func:`check_edge_index` (negative or out-of-range indices ...).
    """
    if isinstance(edge_index, Tensor) and edge_index.numel() == 0:
        return check_edge_index(edge_index, 0 if num_nodes is None else num_nodes)
    if num_nodes is None and isinstance(edge_index, Tensor) and not edge_index.is_floating_point():
        num_nodes = int(edge_index.max()) + 1
    edge_index = check_edge_index(edge_index, num_nodes)
    key = edge_index[1] * num_nodes + edge_index[0]  # [E]
    return edge_index[:, key.argsort()]


def dense_to_edge_index(adj: Tensor) -> tuple[Tensor, Tensor]:
    """Convert a dense adjacency ``adj[i, j]`` (``i`` receives from ``j``) to edges.

    Args:
        adj: ``[N, N]`` tensor; every nonzero entry becomes an edge ``j -> i``.

    Returns:
        ``(edge_index [2, E], edge_attr [E])`` sorted by target then source, where
        ``edge_attr[e] = adj[edge_index[1, e], edge_index[0, e]]``.
    """
    if adj.dim() != 2 or adj.size(0) != adj.size(1):
        raise ValueError(f"adj must be a square [N, N] matrix, got shape {tuple(adj.shape)}")
    target, source = adj.nonzero(as_tuple=True)  # row-major: already sorted by target
    edge_index = torch.stack([source, target])  # [2, E]
    return edge_index, adj[target, source]


def edge_index_to_dense(
    edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None
) -> Tensor:
    """Dense adjacency from edges: ``adj[i, j] = weight of edge j -> i``.

    Args:
        edge_index: ``[2, E]`` integer tensor.
        num_nodes: ``N``.
        edge_weight: optional ``[E]`` weights (default: ones). Duplicate edges add up.

    Returns:
        ``[N, N]`` tensor (dtype of ``edge_weight``, float32 without it).

    Raises:
        ValueError: from :func:`check_edge_index`, or ``edge_weight`` not ``[E]``.
    """
    edge_index = as_plain_tensor(check_edge_index(edge_index, num_nodes))
    if edge_weight is not None and edge_weight.shape != (edge_index.size(1),):
        raise ValueError(
            f"edge_weight must have shape [E] = ({edge_index.size(1)},), got "
            f"{tuple(edge_weight.shape)}"
        )
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), device=edge_index.device)
    adj = edge_weight.new_zeros(num_nodes, num_nodes)  # [N, N]
    adj.index_put_((edge_index[1], edge_index[0]), edge_weight, accumulate=True)
    return adj


def check_edge_index(edge_index: Tensor, num_nodes: int | tuple[int, int]) -> Tensor:
    """The one graph validator: refuse an edge list a layer or model cannot use.

    Every graph that enters cortexgnn passes here: the layer's ``forward``, the model's
    constructor, ``forward`` and ``load_state_dict``. Errors are ``TypeError`` /
    ``ValueError`` naming the problem and the fix.

    Args:
        edge_index: ``[2, E]`` integer tensor (int64 or int32) or an ``EdgeIndex``; row 0
            sources, row 1 targets.
        num_nodes: ``N``, or ``(N_src, N_dst)`` for a bipartite graph.

    Returns:
        ``edge_index`` as int64 (an int32 input is converted; an ``EdgeIndex`` stays one).
    """
    if not isinstance(edge_index, Tensor):
        raise TypeError(
            f"edge_index must be a torch.Tensor [2, E], got {type(edge_index).__name__}: "
            f"wrap it with torch.as_tensor(..., dtype=torch.long)"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"edge_index must have shape [2, E] (row 0 sources, row 1 targets), got "
            f"{tuple(edge_index.shape)}; an [E, 2] edge list needs .t()"
        )
    if edge_index.dtype not in (torch.long, torch.int32):
        raise ValueError(
            f"edge_index must be an integer tensor of dtype torch.long (int64) or torch.int32, "
            f"got {edge_index.dtype}; convert it with edge_index.long()"
        )
    if edge_index.dtype != torch.long:
        edge_index = edge_index.long()
    if torch.compiler.is_compiling() or edge_index.numel() == 0:
        return edge_index  # the range check reads values: keep it out of compiled graphs
    num_src, num_dst = num_nodes if isinstance(num_nodes, tuple) else (num_nodes, num_nodes)
    lows, highs = (bound.tolist() for bound in torch.aminmax(as_plain_tensor(edge_index), dim=1))
    for low, high, count, side in zip(
        lows, highs, (num_src, num_dst), ("source", "target"), strict=True
    ):
        if low < 0 or high >= count:
            raise ValueError(
                f"edge_index refers to {side} nodes {low}..{high}, but the graph has {count} "
                f"{side} nodes (valid: 0..{count - 1}): relabel the graph, or give every node "
                f"features (x has one row per node, nodes first)"
            )
    return edge_index


def as_plain_tensor(edge_index: Tensor) -> Tensor:
    """The index data of an ``EdgeIndex`` as a plain tensor (other tensors pass through).

    Code below the layer (the CSR builder, the C++ kernel, caches keyed on storage) reads
    raw memory, which an ``EdgeIndex`` wrapper does not own.
    """
    return edge_index.as_tensor() if isinstance(edge_index, EdgeIndex) else edge_index


def as_edge_list(graph: Tensor, edge_weight: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """An ``[2, E]`` edge list (row 0 source, row 1 target) and its weights, from any layout.

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
    if not (is_sparse_tensor or isinstance(graph, Tensor)):
        raise TypeError(
            f"edge_index must be a tensor [2, E], an EdgeIndex or a sparse adjacency, got "
            f"{type(graph).__name__}; convert a list with torch.tensor(edge_index)"
        )
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
        coo = graph.coalesce() if graph.layout == torch.sparse_coo else graph.to_sparse_coo()
        coo = coo.coalesce()
        target, source = coo.indices()
        values = coo.values()
    if values is not None and values.dim() != 1:
        raise ValueError(f"a sparse adjacency must hold scalar values, got {values.dim()}-d")
    return torch.stack([source, target]), values
