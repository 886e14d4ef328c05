"""Inputs of ``ColumnAttentionConv``: node-feature pairs, graph layouts, validation.

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

from ..ops.tensor_cache import TensorCache

__all__ = [
    "as_edge_list",
    "check_arguments",
    "check_inputs",
    "split_node_features",
    "with_self_loops",
]


def check_arguments(
    in_channels: int | tuple[int, int],
    out_channels: int,
    heads: int,
    num_nodes: int | None,
    dropout: float,
    project_first: bool,
) -> tuple[int, int]:
    """Refuse constructor arguments the layer cannot use; returns ``(F_src, F_dst)``.

    Args:
        in_channels: ``F``, ``(F_src, F_dst)``, ``-1`` in either place for a lazy size.
        out_channels: ``C``, at least 1.
        heads: ``H``, at least 1.
        num_nodes: at least 1, or ``None`` for shared weights.
        dropout: in ``[0, 1)``.
        project_first: needs ``F_src == F_dst`` (one ``V`` projects both sides).
    """
    src_channels, dst_channels = (
        in_channels if isinstance(in_channels, tuple) else (in_channels, in_channels)
    )
    if min(src_channels, dst_channels) < -1 or 0 in (src_channels, dst_channels):
        raise ValueError(f"in_channels must be >= 1 or -1 (lazy), got {in_channels}")
    if out_channels < 1 or heads < 1:
        raise ValueError(
            f"in_channels, out_channels and heads must be >= 1, got {in_channels}, "
            f"{out_channels}, {heads}"
        )
    if num_nodes is not None and num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1 or None (shared weights), got {num_nodes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if project_first and src_channels != dst_channels:
        raise ValueError(
            f"project_first projects sources and targets with one V, so it needs equal "
            f"source and target features, got in_channels={in_channels}"
        )
    return src_channels, dst_channels


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

    Raises:
        TypeError: ``graph`` is not a tensor (a Python list, say).
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
        ``(edge_index [2, E'], edge_weight [E'] or None)``, loops appended last. Without
        edge weights the result is cached per ``edge_index`` tensor (one new tensor, the
        same on every call), so the attention kernel's CSR of it is cached too.
    """

    def build() -> tuple[Tensor, Tensor | None]:
        index, weight = remove_self_loops(edge_index, edge_weight)
        return add_self_loops(index, weight, fill_value=1.0, num_nodes=num_nodes)

    if edge_weight is not None or torch.compiler.is_compiling():
        return build()
    return _LOOPED.get(edge_index, num_nodes, build)


_LOOPED: TensorCache[tuple[Tensor, None]] = TensorCache()


def check_inputs(
    x_src: Tensor,
    x_dst: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor | None,
    *,
    features: tuple[int, int],
    in_channels: int | tuple[int, int],
    num_nodes: int | None,
    dtype: torch.dtype,
) -> None:
    """Refuse inputs the layer cannot use, with a ``ValueError`` naming the argument.

    Args:
        x_src: ``[N_src, *, F_src]`` (the same tensor as ``x_dst`` for a homogeneous graph).
        x_dst: ``[N_dst, *, F_dst]``.
        edge_index: ``[2, E]``.
        edge_weight: ``[E]`` or ``None``.
        features: the ``(F_src, F_dst)`` the layer's weights expect.
        in_channels: the layer's ``in_channels``, quoted in messages.
        num_nodes: the node count of per-node weights, or ``None``.
        dtype: the dtype of the layer's weights; features and edge weights must have it
            (under autocast only floating point is required of the features).

    Every check reads shapes and dtypes only, except the node-range check (one
    ``aminmax`` over ``edge_index``, skipped under ``torch.compile``).
    """
    autocast = torch.is_autocast_enabled(x_dst.device.type)
    homogeneous = x_src is x_dst
    for name, x, expected in (("x_src", x_src, features[0]), ("x_dst", x_dst, features[1])):
        name = "x" if homogeneous else name
        if x.dim() not in (2, 3):
            raise ValueError(
                f"{name} must be [N, F] or [N, B, F] (nodes first), got shape "
                f"{tuple(x.shape)}; a [B, N, F] batch needs x.transpose(0, 1)"
            )
        if x.size(-1) != expected:
            raise ValueError(
                f"{name} has {x.size(-1)} features in its last dim, but in_channels={in_channels}"
            )
        if not x.is_floating_point():
            raise ValueError(
                f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert it with "
                f"{name}.to({dtype}) ({name}.float() for float32)"
            )
        if x.dtype != dtype and not autocast:
            raise ValueError(
                f"{name} has dtype {x.dtype}, but the layer's weights are {dtype}; convert "
                f"the input ({name}.to({dtype})) or the layer (conv.to({x.dtype}))"
            )
    if num_nodes is not None and x_dst.size(0) != num_nodes:
        raise ValueError(
            f"this layer has per-node weights for num_nodes={num_nodes} nodes, got "
            f"x with {x_dst.size(0)} (target) nodes in dim 0 (nodes first); build it with "
            f"num_nodes=None to share weights across graphs of any size"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.long, torch.int32):
        raise ValueError(
            f"edge_index must be an integer tensor of dtype torch.long (int64) or torch.int32, "
            f"got {edge_index.dtype}; convert it with edge_index.long()"
        )
    if edge_weight is not None and edge_weight.shape != (edge_index.size(1),):
        raise ValueError(
            f"edge_weight must have shape [E] = [{edge_index.size(1)}], got "
            f"{tuple(edge_weight.shape)}"
        )
    if edge_weight is not None and edge_weight.dtype != x_src.dtype:
        raise ValueError(
            f"edge_weight has dtype {edge_weight.dtype}, but x has {x_src.dtype}; convert it "
            f"with edge_weight.to({x_src.dtype}) (for a sparse adjacency, adj.to(...))"
        )
    if torch.compiler.is_compiling() or edge_index.numel() == 0:
        return  # the range check reads values: keep it out of compiled graphs
    lows, highs = (bound.tolist() for bound in torch.aminmax(edge_index, dim=1))
    for low, high, x, name in zip(lows, highs, (x_src, x_dst), ("x_src", "x_dst"), strict=True):
        if low < 0 or high >= x.size(0):
            name = "x" if homogeneous else name
            raise ValueError(
                f"edge_index refers to nodes {low}..{high}, but {name} has {x.size(0)} nodes"
            )
