"""Graphs that wire the cortical columns, as PyG ``edge_index`` tensors.

Conventions (PyG's): ``edge_index[0]`` is the source ``j``, ``edge_index[1]`` the target
``i``; a message flows ``j -> i``. The dense adjacency used by the article's model,
``adj[i, j]``, is what column ``i`` receives from column ``j``, so edge ``(j, i)`` maps to
``adj[i, j]``. Every function here returns edges sorted by target (then source), which is
the CSR order a destination-major kernel wants.
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Sequence

import networkx as nx
import torch
from torch import Tensor

from ._pyg import import_pyg

import_pyg()

from torch_geometric import EdgeIndex
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor

__all__ = [
    "as_edge_list",
    "as_plain_tensor",
    "check_edge_index",
    "complete_graph",
    "dense_to_edge_index",
    "edge_index_to_dense",
    "graph_stats",
    "hop_distances",
    "hops_to",
    "lattice_graph",
    "random_graph",
    "rewired_lattice_graph",
    "small_world_graph",
    "sort_by_target",
]


#: ``random_graph`` permutes every node pair up to this many pairs (about 5,800 nodes);
#: above, it draws pair indices and drops repeats (another draw for the same seed)
RANDOM_GRAPH_PERMUTATION_MAX = 2**24


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


def _check_count(name: str, value: int, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _symmetric(pairs: list[tuple[int, int]] | Tensor, num_nodes: int) -> Tensor:
    """Both directions of undirected ``pairs`` (a list or ``[E/2, 2]``), sorted by target."""
    if len(pairs) == 0:
        return torch.empty(2, 0, dtype=torch.long)
    undirected = torch.as_tensor(pairs, dtype=torch.long).t()  # [2, E/2]
    return sort_by_target(torch.cat([undirected, undirected.flip(0)], dim=1), num_nodes)


def _lattice_pairs(rows: int, cols: int) -> list[tuple[int, int]]:
    """Undirected edges of the 4-neighbour grid, nodes numbered row-major."""
    pairs = []
    for r in range(rows):
        for c in range(cols):
            node = r * cols + c
            if c + 1 < cols:
                pairs.append((node, node + 1))
            if r + 1 < rows:
                pairs.append((node, node + cols))
    return pairs


def lattice_graph(rows: int, cols: int) -> Tensor:
    """The 2-D lattice: each node joins its 4 grid neighbours (no wrap-around).

    Node ``r * cols + c`` sits at row ``r``, column ``c`` (row-major), the order of the
    patches of an image read left to right, top to bottom.

    Returns:
        symmetric ``edge_index [2, E]`` with ``E = 2 (rows (cols - 1) + (rows - 1) cols)``,
        sorted by target then source.
    """
    _check_count("rows", rows)
    _check_count("cols", cols)
    return _symmetric(_lattice_pairs(rows, cols), rows * cols)


class _NodesApart(Sequence):
    """The nodes ``0 .. n-1`` but ``excluded``, ascending, without listing them.

    ``random.choice`` over it draws what it would draw from the list, in
    ``O(|excluded| log |excluded|)`` instead of ``O(n)`` per draw.
    """

    def __init__(self, num_nodes: int, excluded: set[int]) -> None:
        self.excluded = sorted(excluded)
        self.size = num_nodes - len(self.excluded)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(index)
        node = index  # the index-th kept node: step over every excluded node up to it
        for skipped in self.excluded:
            if skipped > node:
                break
            node += 1
        return node


def rewired_lattice_graph(rows: int, cols: int, p: float, seed: int | None = None) -> Tensor:
    """The 2-D lattice with Watts-Strogatz-style rewiring: shortcuts across the grid.

    Every lattice edge ``(u, v)`` (``u < v``, in row-major order) is, with probability
    ``p``, replaced by ``(u, w)`` with ``w`` drawn uniformly from the nodes that are neither
    ``u`` nor already joined to ``u`` (networkx's Watts-Strogatz rule, applied to the grid).
    The number of edges is kept; ``p = 0`` is :func:`lattice_graph`.

    Args:
        rows: grid rows.
        cols: grid columns.
        p: rewiring probability in ``[0, 1]``.
        seed: seed of the draws; ``None`` draws a fresh graph.
    """
    _check_count("rows", rows)
    _check_count("cols", cols)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p is a rewiring probability and must lie in [0, 1], got {p!r}")
    num_nodes = rows * cols
    rng = random.Random(seed)
    pairs = _lattice_pairs(rows, cols)
    neighbours = {n: set() for n in range(num_nodes)}
    for u, v in pairs:
        neighbours[u].add(v)
        neighbours[v].add(u)
    for u, v in pairs:
        if rng.random() >= p:
            continue
        candidates = _NodesApart(num_nodes, neighbours[u] | {u})
        if not len(candidates) or v not in neighbours[u]:  # u joins everyone, or (u, v) is gone
            continue
        w = rng.choice(candidates)
        neighbours[u].discard(v)
        neighbours[v].discard(u)
        neighbours[u].add(w)
        neighbours[w].add(u)
    kept = sorted((u, v) for u in neighbours for v in neighbours[u] if u < v)
    return _symmetric(kept, num_nodes)


def random_graph(num_nodes: int, num_edges: int, seed: int | None = None) -> Tensor:
    """A uniformly random simple graph with ``num_edges`` undirected edges (G(n, m)).

    Used with the edge count of another graph, it asks what that graph's structure adds.

    Raises:
        ValueError: more edges than node pairs.
    """
    _check_count("num_nodes", num_nodes)
    _check_count("num_edges", num_edges, low=0)
    total = num_nodes * (num_nodes - 1) // 2
    if num_edges > total:
        raise ValueError(
            f"num_edges must be <= {total} (every pair of {num_nodes} nodes), got {num_edges}"
        )
    generator = torch.Generator()
    if seed is None:
        generator.seed()  # a fresh graph
    else:
        generator.manual_seed(seed)
    if total <= RANDOM_GRAPH_PERMUTATION_MAX:
        # the first num_edges of a permutation of every pair index
        chosen = torch.randperm(total, generator=generator)[:num_edges]
    else:  # too many pairs to permute: draw indices until num_edges differ, keep a random
        # num_edges of them (the distinct values of uniform draws are a uniform subset)
        chosen = torch.empty(0, dtype=torch.long)
        while chosen.numel() < num_edges:
            more = torch.randint(total, (num_edges + num_edges // 8 + 16,), generator=generator)
            chosen = torch.cat([chosen, more]).unique()
        chosen = chosen[torch.randperm(chosen.numel(), generator=generator)[:num_edges]]
    # pair index -> (u, v), u < v, in the order (0, 1), (0, 2), ..., (1, 2), ...; row u
    # of that order starts at starts[u]
    rows = torch.arange(num_nodes - 1)
    starts = rows * (num_nodes - 1) - rows * (rows - 1) // 2  # [n - 1]
    u = torch.searchsorted(starts, chosen, right=True) - 1
    v = u + 1 + chosen - starts[u]
    return _symmetric(torch.stack([u, v], dim=1), num_nodes)


def complete_graph(num_nodes: int) -> Tensor:
    """Every node joined to every other (no self loops), as a sorted ``edge_index``."""
    _check_count("num_nodes", num_nodes)
    pairs = [(u, v) for u in range(num_nodes) for v in range(u + 1, num_nodes)]
    return _symmetric(pairs, num_nodes)


def hop_distances(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Shortest path lengths in hops: ``dist[s, t]`` from ``s`` to ``t`` along the edges.

    Edges are followed from source to target, the way a message travels, so after ``h``
    message-passing iterations node ``t`` can hold information from ``s`` only if
    ``dist[s, t] <= h``. Breadth-first from every node at once, one boolean product per hop.

    Returns:
        ``[N, N]`` int64; ``0`` on the diagonal, ``-1`` where ``t`` is unreachable from ``s``.
    """
    edge_index = check_edge_index(as_plain_tensor(edge_index), num_nodes)
    step = torch.zeros(num_nodes, num_nodes, dtype=torch.float32)  # [N, N]: s -> t
    step[edge_index[0], edge_index[1]] = 1.0
    dist = torch.full((num_nodes, num_nodes), -1, dtype=torch.long)  # [N, N]
    reached = torch.eye(num_nodes, dtype=torch.bool)  # [N, N]
    dist[reached] = 0
    frontier = reached.float()
    for hops in range(1, num_nodes):
        frontier = ((frontier @ step) > 0) & ~reached  # [N, N] first reached at `hops`
        if not frontier.any():
            break
        dist[frontier] = hops
        reached |= frontier
        frontier = frontier.float()
    return dist


def hops_to(edge_index: Tensor, num_nodes: int, sources, target: int) -> int | None:
    """Fewest hops from any of ``sources`` to ``target``; ``None`` if none reaches it.

    With ``sources`` the columns whose patches show an item and ``target`` the readout
    column, this is how many iterations the item needs to be read.
    """
    dist = hop_distances(edge_index, num_nodes)[list(sources), target]  # [S]
    reachable = dist[dist >= 0]
    return int(reachable.min()) if reachable.numel() else None


def graph_stats(edge_index: Tensor, num_nodes: int) -> dict:
    """Diameter and mean hop count over ordered pairs of distinct nodes.

    Returns:
        ``{"num_edges", "connected", "diameter", "mean_hops"}``; ``diameter`` and
        ``mean_hops`` are ``None`` unless every node reaches every other.
    """
    dist = hop_distances(edge_index, num_nodes)
    off_diagonal = ~torch.eye(num_nodes, dtype=torch.bool)
    pairs = dist[off_diagonal]
    connected = bool((pairs >= 0).all())
    return {
        "num_edges": int(edge_index.size(1)),
        "connected": connected,
        "diameter": int(pairs.max()) if connected and pairs.numel() else (0 if connected else None),
        "mean_hops": float(pairs.float().mean()) if connected and pairs.numel() else None,
    }


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
