"""``ColumnAttentionConv``: scaled dot-product attention of each node over its in-neighbours."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parameter import UninitializedParameter, is_lazy
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from ..ops.attention import conv_fast_path
from .conv_folding import fold_on_values, fold_query
from .conv_inputs import (
    as_edge_list,
    check_arguments,
    check_inputs,
    split_node_features,
    with_self_loops,
)

__all__ = ["ColumnAttentionConv"]


class ColumnAttentionConv(MessagePassing):
    r"""Dot-product attention over incoming edges, with per-node or shared query/key.

    For every target node :math:`i`, head :math:`h` and in-neighbour :math:`j \in
    \mathcal{N}(i)` (edge :math:`j \to i`):

    .. math::
        s_{ij}^{h} = \frac{(Q_i^{h} x_i)^\top (K_i^{h} x_j)}{\sqrt{C}},\qquad
        \alpha_{ij}^{h} = \operatorname{softmax}_{j \in \mathcal{N}(i)} s_{ij}^{h},

    .. math::
        x_i' = \big\Vert_{h} \sum_{j \in \mathcal{N}(i)} w_{ji}\, \alpha_{ij}^{h}\, v_j^{h}
               \;+\; W_r x_i + b,

    with :math:`\Vert` concatenation (or the mean) over heads, :math:`w_{ji}` the optional
    edge weight (1 without it), values :math:`v_j^h = V^h x_j` with ``project_value`` or the
    raw :math:`x_j` without, and the root term :math:`W_r x_i` and bias :math:`b` only when
    switched on. With per-node weights (``num_nodes`` given) target :math:`i` owns
    :math:`Q_i, K_i`, as each cortical column does in the article; the key is then folded
    into the query, :math:`s_{ij} = (K_i^\top Q_i x_i)^\top x_j / \sqrt{C}`, so an edge
    costs one dot product and no key is projected per edge. Shared weights (any graph size)
    project :math:`q_i = Q x_i` and :math:`k_j = K x_j` once per node.

    The defaults are the article's message: raw values, no root, bias or self loops. A
    node with no incoming edge receives a zero message. (The article masks scores with
    ``-1e9`` instead, so such a column would attend uniformly over *all* columns;
    Watts-Strogatz graphs with ``k >= 2`` never contain one, so both agree there.)

    Args:
        in_channels: node feature size ``F``; a pair ``(F_src, F_dst)`` for bipartite
            input; ``-1`` (in either place) infers it on the first call.
        out_channels: query/key size ``C`` per head, and the value size per head when
            ``project_value`` is on.
        heads: number of attention heads ``H``.
        concat: concatenate heads (output ``H * C_v``) or average them (output ``C_v``),
            where ``C_v`` is ``out_channels`` with ``project_value`` and ``F_src`` without.
        num_nodes: give it to learn one query/key pair per target node; ``None`` shares
            one pair across all nodes (any graph size).
        dropout: dropout probability on the attention coefficients in training mode.
        project_value: project values with a shared :math:`V` (``H * C`` outputs).
        root_weight: add the root term :math:`W_r x_i` (shared weights).
        bias: add a learnable bias to the output.
        add_self_loops: replace self loops by one loop per node (weight 1) before attending.
        project_first: project every node once, :math:`v = V x`, and attend on that with
            per-head ``C x C`` query/key: :math:`s_{ij}^h = (Q^h v_i^h)^\top (K^h v_j^h) /
            \sqrt{C}`. One ``F``-wide projection instead of three, as in GATConv (implies
            ``project_value``; needs ``F_src == F_dst``).
        fused: run the attention through :mod:`cortexgnn.fused_attention` (one fused pass
            per target node on a CPU) wherever it applies; ``False`` always takes PyG's
            ``propagate`` (equal results to float tolerance, other dropout masks).

    Shapes:
        - **input:** node features ``x`` ``[N, F]``, or ``[N, B, F]`` for a batch of ``B``
          feature sets on one static graph (nodes first), or a bipartite pair
          ``([N_src, *, F_src], [N_dst, *, F_dst])``; the graph as ``edge_index [2, E]``,
          ``EdgeIndex``, a ``torch.sparse`` or ``SparseTensor`` transposed adjacency
          ``[N_dst, N_src]`` (its values act as ``edge_weight``); ``edge_weight [E]``.
        - **output:** ``[N_dst, *, H * C_v]`` (``[N_dst, *, C_v]`` if ``concat=False``);
          with ``return_attention_weights=True`` also ``(edge_index [2, E'], alpha [E', *,
          H])``: the edges attended over (self loops included; an edge list for every graph
          layout) and the softmax weights before dropout and edge weights.
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        *,
        heads: int = 1,
        concat: bool = True,
        num_nodes: int | None = None,
        dropout: float = 0.0,
        project_value: bool = False,
        root_weight: bool = False,
        bias: bool = False,
        add_self_loops: bool = False,
        project_first: bool = False,
        fused: bool = True,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        src_channels, dst_channels = check_arguments(
            in_channels, out_channels, heads, num_nodes, dropout, project_first
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.num_nodes = num_nodes
        self.dropout = dropout
        self.project_first = project_first
        self.project_value = project_value or project_first
        self.root_weight = root_weight
        self.add_self_loops = add_self_loops
        self.fused = fused
        out_size = self._output_channels(src_channels)  # -1 while a lazy F_src is unknown
        # Weights are stored like nn.Linear's, [out, in], with a leading node dim when per-node.
        lead = () if num_nodes is None else (num_nodes,)
        # project_first: query/key act per head on the C projected features, [*, H*C, C].
        qk_src, qk_dst = (out_channels,) * 2 if project_first else (src_channels, dst_channels)
        self.query_weight = _weight(*lead, heads * out_channels, qk_dst)
        self.key_weight = _weight(*lead, heads * out_channels, qk_src)
        self.value_weight = (
            _weight(heads * out_channels, src_channels) if self.project_value else None
        )
        self.lin_root_weight = _weight(out_size, dst_channels) if root_weight else None
        self.bias = _weight(out_size) if bias else None
        self._is_lazy = any(is_lazy(p) for p in self.parameters())  # a bool compiles away
        self._alpha: Tensor | None = None  # set by message(), read back in forward()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw weights like ``nn.Linear``, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; zero bias."""
        super().reset_parameters()
        for weight in (self.query_weight, self.key_weight, self.value_weight, self.lin_root_weight):
            if weight is not None and not is_lazy(weight):
                bound = 1.0 / math.sqrt(weight.size(-1))
                torch.nn.init.uniform_(weight, -bound, bound)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def _output_channels(self, src_channels: int) -> int:
        per_head = self.out_channels if self.project_value else src_channels
        if per_head == -1:
            return -1
        return self.heads * per_head if self.concat else per_head

    def _materialize(self, src_channels: int, dst_channels: int) -> None:
        """Give lazy (``-1``) weights their shapes from the first input, then initialise them."""
        lead = () if self.num_nodes is None else (self.num_nodes,)
        rows = self.heads * self.out_channels
        if is_lazy(self.query_weight):  # never lazy with project_first
            self.query_weight.materialize((*lead, rows, dst_channels))
        if is_lazy(self.key_weight):
            self.key_weight.materialize((*lead, rows, src_channels))
        if self.value_weight is not None and is_lazy(self.value_weight):
            self.value_weight.materialize((rows, src_channels))
        out_size = self._output_channels(src_channels)
        if self.lin_root_weight is not None and is_lazy(self.lin_root_weight):
            self.lin_root_weight.materialize((out_size, dst_channels))
        if self.bias is not None and is_lazy(self.bias):
            self.bias.materialize((out_size,))
        self.in_channels = (
            src_channels if src_channels == dst_channels else (src_channels, dst_channels)
        )
        self._is_lazy = False
        self.reset_parameters()

    def folded_query(self, x: Tensor) -> Tensor:
        r"""Folded queries :math:`K_i^{h\top} Q_i^h x_i`: ``[N, *, F_dst] -> [N, *, H, F_src]``."""
        return fold_query(x, self.query_weight, self.key_weight, self.heads)

    def attention_inputs(self, x_src: Tensor, x_dst: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values, node-wise: the only projections of the layer.

        Args:
            x_src: ``[N_src, *, F_src]``.
            x_dst: ``[N_dst, *, F_dst]``.

        Returns:
            ``query [N_dst, *, H, D]``, ``key [N_src, *, H or 1, D]`` and ``value [N_src, *,
            H or 1, C_v]``, with ``D`` the dot-product width: ``C`` for shared weights or
            ``project_first``, ``F_src`` for per-node weights (folded query, raw key). With
            ``project_first`` the query already carries the score's ``1/sqrt(C)`` (folded
            into the ``C x C`` query/key product, cheaper than dividing every edge's score).
        """
        heads, channels = self.heads, self.out_channels
        value = x_src.unsqueeze(-2)  # [N, *, 1, F_src], shared by the heads
        if self.value_weight is not None:
            value = (x_src @ self.value_weight.t()).unflatten(-1, (heads, channels))  # [N, *, H, C]
        if self.project_first:
            target = value
            if x_dst is not x_src:
                target = (x_dst @ self.value_weight.t()).unflatten(-1, (heads, channels))
            query = fold_on_values(target, self.query_weight, self.key_weight, channels**-0.5)
            return query, value, value  # [N, *, H, C] each
        if self.num_nodes is None:
            query = (x_dst @ self.query_weight.t()).unflatten(-1, (heads, channels))  # [N, *, H, C]
            key = (x_src @ self.key_weight.t()).unflatten(-1, (heads, channels))  # [N, *, H, C]
            return query, key, value
        key = value if self.value_weight is None else x_src.unsqueeze(-2)  # [N, *, 1, F_src]
        return self.folded_query(x_dst), key, value

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor,
        edge_weight: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend over incoming edges; see the class docstring for shapes."""
        x_src, x_dst, _ = split_node_features(x)
        edge_index, edge_weight = as_edge_list(edge_index, edge_weight)
        if self._is_lazy:
            self._materialize(x_src.size(-1), x_dst.size(-1))
        src_weight, dst_weight = self.key_weight, self.query_weight  # [*, out, F_src / F_dst]
        if self.project_first:  # one V projects both sides
            src_weight = dst_weight = self.value_weight
        check_inputs(
            x_src, x_dst, edge_index, edge_weight, in_channels=self.in_channels,
            features=(src_weight.size(-1), dst_weight.size(-1)), num_nodes=self.num_nodes,
            dtype=self.query_weight.dtype,
        )  # fmt: skip
        size = (x_src.size(0), x_dst.size(0))
        if self.add_self_loops:
            edge_index, edge_weight = with_self_loops(edge_index, edge_weight, min(size))
        # cortexgnn.fused_attention's kernels when no per-edge alpha is needed (else None).
        # Explainers hook message(); torch.compile traces propagate, not the C++ kernel.
        fast = self.fused and not (
            return_attention_weights or self._message_forward_hooks or torch.compiler.is_compiling()
        )
        out = conv_fast_path(self, x_src, x_dst, edge_index, edge_weight) if fast else None
        if out is None:
            query, key, value = self.attention_inputs(x_src, x_dst)
            # A key that is the value (raw features, or project_first) is gathered once per edge.
            out = self.propagate(
                edge_index,
                score_divisor=1.0 if self.project_first else math.sqrt(self.out_channels),
                query=query,
                key=None if key is value else key,
                value=value,
                edge_weight=edge_weight,
                size=size,
            )  # [N, *, H, C_v]
        alpha, self._alpha = self._alpha, None
        if self.concat:
            out = out.flatten(-2)  # [N, *, H*C_v]
        else:  # one head: the mean is that head, without a reduction and its backward
            out = out.squeeze(-2) if self.heads == 1 else out.mean(dim=-2)  # [N, *, C_v]
        if self.lin_root_weight is not None:
            out = out + x_dst @ self.lin_root_weight.t()
        if self.bias is not None:
            out = out + self.bias
        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    def message(
        self,
        query_i: Tensor,
        key_j: Tensor | None,
        value_j: Tensor,
        edge_weight: Tensor | None,
        index: Tensor,
        ptr: Tensor | None,
        size_i: int | None,
        score_divisor: float,
    ) -> Tensor:
        """Per-edge weighted values.

        Args:
            query_i: ``[E, *, H, D]`` queries of the targets.
            key_j: ``[E, *, H or 1, D]`` keys of the sources; ``None`` when the key is the value.
            value_j: ``[E, *, H or 1, C_v]`` values of the sources.
            edge_weight: ``[E]`` or ``None``.
            index: ``[E]`` target of each edge (filled in by PyG).
            ptr: CSR pointer of the targets when PyG has one, else ``None``.
            size_i: number of target nodes.
            score_divisor: ``sqrt(C)``, or 1 when the query already carries the scale.

        Returns:
            ``[E, *, H, C_v]``; the softmax weights ``[E, *, H]`` are left in ``self._alpha``
            (where ``forward`` and PyG's ``AttentionExplainer`` read them).
        """
        key_j = value_j if key_j is None else key_j
        # Per-node weights: (Q_i x_i).(K_i x_j) = (K_i^T Q_i x_i).x_j, one dot per edge and head.
        score = torch.linalg.vecdot(query_i, key_j)  # [E, *, H]
        if score_divisor != 1.0:
            score = score / score_divisor
        alpha = softmax(score, index, ptr, size_i, dim=0)  # [E, *, H]
        self._alpha = alpha
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        if edge_weight is not None:
            alpha = alpha * edge_weight.view([-1] + [1] * (alpha.dim() - 1))
        return alpha.unsqueeze(-1) * value_j  # [E, *, H, C_v]

    def __repr__(self) -> str:
        weights = "shared" if self.num_nodes is None else f"num_nodes={self.num_nodes}"
        switches = ("project_first", "root_weight", "add_self_loops")
        if not self.project_first:
            switches = ("project_value", *switches)
        extras = "".join(f", {name}=True" for name in switches if getattr(self, name))
        extras += ", bias=True" if self.bias is not None else ""
        extras += "" if self.concat else ", concat=False"
        extras += "" if self.fused else ", fused=False"
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"heads={self.heads}, {weights}{extras})"
        )


def _weight(*shape: int) -> torch.nn.Parameter:
    """An empty ``[*, out, in]`` parameter, or a lazy one when ``in`` (or ``out``) is -1."""
    if -1 in shape:
        return UninitializedParameter()
    return torch.nn.Parameter(torch.empty(*shape))
