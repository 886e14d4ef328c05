"""``ColumnAttentionConv``: scaled dot-product attention of each node over its in-neighbours.

The layer file holds the layer and what only it uses: its argument and input checks, the
folding of the key into the query, and the choice between its two execution paths (PyG's
``propagate``, or one fused kernel of :mod:`cortexgnn.ops.attention`).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor
from torch.nn.parameter import UninitializedParameter, is_lazy

from .._pyg import import_pyg

import_pyg()  # PyG's import-time deprecation warning, silenced once

from torch_geometric.nn import MessagePassing
from torch_geometric.utils import add_self_loops, remove_self_loops

from ..graph import as_edge_list, as_plain_tensor, check_edge_index
from ..ops.attention import attention_graph, attention_messages, folded_attention
from ..ops.tensor_cache import TensorCache

__all__ = ["PROJECTIONS", "ColumnAttentionConv"]

#: What ``projection`` may be: raw values, a value projection, or everything projected first.
PROJECTIONS = ("none", "value", "first")


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
    edge weight (1 without it) and the root term :math:`W_r x_i` and bias :math:`b` only when
    switched on. The values :math:`v_j` follow ``projection``: the raw :math:`x_j`
    (``"none"``, the article's message), :math:`V^h x_j` (``"value"``), or ``"first"``,
    where every node is projected once, :math:`v = V x`, and the per-head ``C x C``
    query/key act on that: :math:`s_{ij}^h = (Q^h v_i^h)^\top (K^h v_j^h) / \sqrt{C}` (one
    ``F``-wide projection instead of three, as in GATConv).

    With per-node weights (``num_nodes`` given) target :math:`i` owns :math:`Q_i, K_i`, as
    each cortical column does in the article. The key is folded into the query,
    :math:`s_{ij} = (K_i^\top Q_i x_i)^\top x_j / \sqrt{C}`, so an edge costs one dot
    product and no key is projected per edge; :meth:`fold` computes the :math:`K^\top Q`
    products once, and a caller that attends several times with unchanged weights (as
    :class:`~cortexgnn.CortexNet` does every message iteration) hands them back in through
    ``fold``. Shared weights (any graph size) project :math:`Q x_i` and fold per node.

    A node with no incoming edge receives a zero message. (The article masks scores with
    ``-1e9`` instead, so such a column would attend uniformly over *all* columns;
    Watts-Strogatz graphs with ``k >= 2`` never contain one, so both agree there.)

    Where it applies (keys equal to values: ``projection`` ``"none"`` or ``"first"``, one
    node set or bipartite; no per-edge ``alpha`` requested, no explainer, hook or
    ``torch.compile`` tracing unless the Triton kernel runs), the layer runs the fused
    attention of :func:`cortexgnn.ops.attention.folded_attention` instead of
    ``propagate``: the same maths in one pass per target node. ``fused=False`` always
    takes ``propagate``.

    Args:
        in_channels: node feature size ``F``; a pair ``(F_src, F_dst)`` for bipartite
            input; ``-1`` (in either place) infers it on the first call.
        out_channels: query/key size ``C`` per head, and the value size per head when
            values are projected.
        heads: number of attention heads ``H``.
        concat: concatenate heads (output ``H * C_v``) or average them (output ``C_v``),
            where ``C_v`` is ``out_channels`` with a projection and ``F_src`` without.
        num_nodes: give it to learn one query/key pair per target node (the graph then
            has exactly ``num_nodes`` targets); ``None`` shares one pair across all nodes
            (any graph size).
        dropout: dropout probability on the attention coefficients in training mode.
        projection: ``"none"`` (raw values), ``"value"`` (a shared :math:`V` projects the
            values, ``H * C`` outputs) or ``"first"`` (:math:`V` projects every node before
            attending; needs ``F_src == F_dst``).
        root_weight: add the root term :math:`W_r x_i` (shared weights).
        bias: add a learnable bias to the output.
        add_self_loops: replace self loops by one loop per node (weight 1) before attending.
        fused: run the fused kernel wherever it applies; ``False`` always takes PyG's
            ``propagate`` (equal results to float tolerance, other dropout masks).
        fused_backend: ``"auto"`` (the C++ kernel on a CPU, elsewhere dense or PyTorch
            attention) or ``"triton"``: the Triton kernel of
            :mod:`cortexgnn.ops.triton_attention` on CUDA inputs (``"auto"`` elsewhere, and
            where triton is not installed).
            Opt-in because it is tested (under Triton's CPU interpreter) but not yet
            measured on a GPU; it has no second derivatives.

    Shapes:
        - **input:** node features ``x`` ``[N, F]``, or ``[N, B, F]`` for a batch of ``B``
          feature sets on one static graph (nodes first), or a bipartite pair
          ``([N_src, *, F_src], [N_dst, *, F_dst])``; the graph as ``edge_index [2, E]``
          (int64 or int32), ``EdgeIndex``, a ``torch.sparse`` or ``SparseTensor`` transposed
          adjacency ``[N_dst, N_src]`` (its values act as ``edge_weight``); ``edge_weight
          [E]``; ``fold`` as returned by :meth:`fold`.
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
        projection: str = "none",
        root_weight: bool = False,
        bias: bool = False,
        add_self_loops: bool = False,
        fused: bool = True,
        fused_backend: str = "auto",
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        src_channels, dst_channels = _check_arguments(
            in_channels, out_channels, heads, num_nodes, dropout, projection
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.num_nodes = num_nodes
        self.dropout = dropout
        self.projection = projection
        self.root_weight = root_weight
        self.add_self_loops = add_self_loops
        self.fused = fused
        if fused_backend not in ("auto", "triton"):
            raise ValueError(f"fused_backend must be 'auto' or 'triton', got {fused_backend!r}")
        self.fused_backend = fused_backend
        out_size = self._output_channels(src_channels)  # -1 while a lazy F_src is unknown
        # Weights are stored like nn.Linear's, [out, in], with a leading node dim when per-node.
        lead = () if num_nodes is None else (num_nodes,)
        # projection="first": query/key act per head on the C projected features, [*, H*C, C].
        first = projection == "first"
        qk_src, qk_dst = (out_channels,) * 2 if first else (src_channels, dst_channels)
        self.query_weight = _weight(*lead, heads * out_channels, qk_dst)
        self.key_weight = _weight(*lead, heads * out_channels, qk_src)
        self.value_weight = (
            _weight(heads * out_channels, src_channels) if projection != "none" else None
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
        per_head = self.out_channels if self.projection != "none" else src_channels
        if per_head == -1:
            return -1
        return self.heads * per_head if self.concat else per_head

    def _materialize(self, src_channels: int, dst_channels: int) -> None:
        """Give lazy (``-1``) weights their shapes from the first input, then initialise them."""
        lead = () if self.num_nodes is None else (self.num_nodes,)
        rows = self.heads * self.out_channels
        if is_lazy(self.query_weight):  # never lazy with projection="first"
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

    def fold(self) -> Tensor:
        r"""The key folded into the query, :math:`\tau K^{h\top} Q^h`, per head (and node).

        :math:`\tau` is the score's :math:`1/\sqrt{C}`, so a folded query
        :math:`\tilde q_i = \tau K_i^\top Q_i x_i` needs one dot product per edge and no
        division. Compute it once and pass it to :meth:`forward` as ``fold`` while the
        weights do not change (within one model forward, say).

        Returns:
            ``[*, H, F_k, F_q]``: ``*`` is ``N`` with per-node weights and empty with shared
            ones; ``F_k``/``F_q`` are the key's/query's input size (``C`` with
            ``projection="first"``, else ``F_src``/``F_dst``).
        """
        if self._is_lazy:
            raise ValueError("fold() needs materialized weights: call the layer once first")
        heads, channels = self.heads, self.out_channels
        query = self.query_weight.unflatten(-2, (heads, channels))  # [*, H, C, F_q]
        key = self.key_weight.unflatten(-2, (heads, channels))  # [*, H, C, F_k]
        # K^T Q per head: (Q x_i).(K x_j) = (tau K^T Q x_i).x_j / tau
        return torch.matmul(key.transpose(-1, -2) * channels**-0.5, query)  # [*, H, F_k, F_q]

    def _folded_query(self, x_dst: Tensor, fold: Tensor | None) -> Tensor:
        r"""Folded, scaled queries :math:`\tau K_i^{h\top} Q_i^h x_i`: ``[N, *, H, F_k]``.

        ``x_dst`` is ``[N, *, F_q]``, or ``[N, *, H, C]`` (one row per head) with
        ``projection="first"``. Shared weights fold into one GEMM unless two thin products
        (``Q x``, then ``K^T``) cost less, as when ``F`` is much larger than ``C``.
        """
        if self.projection == "first":
            fold = self.fold() if fold is None else fold  # [*, H, C, C]
            if self.num_nodes is not None:
                return torch.einsum("nhkq,n...hq->n...hk", fold, x_dst)
            # One [H*C, H*C] block-diagonal GEMM (measured faster than H small ones); the
            # blocks are placed by one product with the identity, a single autograd node.
            heads, channels = fold.shape[0], fold.shape[-1]
            eye = torch.eye(heads, dtype=fold.dtype, device=fold.device)  # [H, H]
            block = fold.transpose(1, 2).unsqueeze(2) * eye[:, None, :, None]  # [H, Cq, H, Ck]
            folded = x_dst.flatten(-2) @ block.reshape(heads * channels, heads * channels)
            return folded.unflatten(-1, (heads, channels))  # [N, *, H, C]
        if self.num_nodes is None:
            heads, channels = self.heads, self.out_channels
            f_q, f_k = self.query_weight.size(-1), self.key_weight.size(-1)
            if fold is None and f_q * f_k > channels * (f_q + f_k):  # two thin GEMMs are cheaper
                q = (x_dst @ self.query_weight.t()).unflatten(-1, (heads, channels))  # [N, *, H, C]
                key = self.key_weight.unflatten(0, (heads, channels)) * channels**-0.5  # [H, C, F]
                return torch.einsum("n...hc,hck->n...hk", q, key)
            fold = self.fold() if fold is None else fold  # [H, F_k, F_q]
            folded = x_dst @ fold.permute(2, 0, 1).flatten(1)  # [N, *, H*F_k]: one GEMM
            return folded.unflatten(-1, (heads, f_k))
        fold = self.fold() if fold is None else fold  # [N, H, F_k, F_q]
        if x_dst.dim() == 3 and self.heads == 1:  # the model's case: one batched GEMM
            return torch.bmm(x_dst, fold.squeeze(1).transpose(1, 2)).unsqueeze(2)
        return torch.einsum("nhkq,n...q->n...hk", fold, x_dst)

    def _attention_inputs(
        self, x_src: Tensor, x_dst: Tensor, fold: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """Queries, keys and values, node-wise: the only projections of the layer.

        Returns:
            ``query [N_dst, *, H, D]`` (already scaled by ``1/sqrt(C)``), ``key [N_src, *,
            H, D]`` or ``None`` when the key is the value, and ``value [N_src, *, H or 1,
            C_v]``. ``D`` is the dot-product width: ``F_src`` with the key folded into the
            query, ``C`` with ``projection="first"``.
        """
        heads, channels = self.heads, self.out_channels
        if self.projection == "none":
            return self._folded_query(x_dst, fold), None, x_src.unsqueeze(-2)
        value = (x_src @ self.value_weight.t()).unflatten(-1, (heads, channels))  # [N, *, H, C]
        if self.projection == "first":
            target = value
            if x_dst is not x_src:
                target = (x_dst @ self.value_weight.t()).unflatten(-1, (heads, channels))
            return self._folded_query(target, fold), None, value
        return self._folded_query(x_dst, fold), x_src.unsqueeze(-2), value  # "value"

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor,
        edge_weight: Tensor | None = None,
        return_attention_weights: bool = False,
        *,
        fold: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend over incoming edges; see the class docstring for shapes.

        ``fold`` (from :meth:`fold`) skips re-folding the query/key weights; it must come
        from this layer's current weights.
        """
        x_src, x_dst = _split_node_features(x)
        edge_index, edge_weight = as_edge_list(edge_index, edge_weight)
        size = (x_src.size(0), x_dst.size(0))
        edge_index = check_edge_index(edge_index, size)
        if self._is_lazy:
            self._materialize(x_src.size(-1), x_dst.size(-1))
        self._check_inputs(x_src, x_dst, edge_index, edge_weight)
        if self.add_self_loops:
            edge_index, edge_weight = _with_self_loops(edge_index, edge_weight, min(size))
        if self._fuses(x_src, x_dst, return_attention_weights):
            out = self._attend_fused(x_src, x_dst, edge_index, edge_weight, fold)
        else:
            query, key, value = self._attention_inputs(x_src, x_dst, fold)
            out = self.propagate(
                edge_index, query=query, key=key, value=value, edge_weight=edge_weight, size=size
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

    def _fuses(self, x_src: Tensor, x_dst: Tensor, return_attention_weights: bool) -> bool:
        """Whether this call runs the fused kernel: the one place that decides.

        It needs sources whose rows are both keys and values (no separate value projection;
        one node set or a bipartite pair, whose targets give the queries), and nothing that
        must see PyG's per-edge ``alpha``: a request for the weights, an explainer, a hook
        on ``message``/``propagate``, or ``torch.compile`` tracing ``propagate`` (the C++
        kernel is opaque to it; the Triton one is a custom op with a fake implementation,
        so compiled code keeps it).
        """
        return (
            self.fused
            and self.projection != "value"
            and not return_attention_weights
            and not self.explain
            and not (
                self._message_forward_hooks
                or self._propagate_forward_pre_hooks
                or self._propagate_forward_hooks
            )
            and (not torch.compiler.is_compiling() or self._runs_triton(x_src))
        )

    def _runs_triton(self, x: Tensor) -> bool:
        """Whether the fused path takes the Triton kernel (a custom op ``torch.compile`` sees)."""
        if self.fused_backend != "triton":
            return False
        from ..ops.triton_attention import triton_applies  # imports triton: only when asked

        return triton_applies(x)  # CUDA tensors (or the CPU under TRITON_INTERPRET=1)

    def _attend_fused(
        self,
        x_src: Tensor,
        x_dst: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor | None,
        fold: Tensor | None,
    ) -> Tensor:
        """The attention through :func:`~cortexgnn.ops.attention.folded_attention`.

        Keys and values are the sources' rows, queries come from the targets' (the same
        tensor for one node set). Attention dropout draws its mask there, so in training
        the two paths see other random masks for one seed. Returns ``[N_dst, *, H, F or C]``.
        """
        one_set, single = x_src is x_dst, x_src.dim() == 2
        if single:
            x_src = x_src.unsqueeze(1)  # [N_src, 1, F]
            x_dst = x_src if one_set else x_dst.unsqueeze(1)  # [N_dst, 1, F]
        # [N_dst, B, H, D], [N_src, B, H or 1, D]
        query, _, value = self._attention_inputs(x_src, x_dst, fold)
        dropout = self.dropout if self.training else 0.0
        size = x_src.size(0) if one_set else (x_src.size(0), x_dst.size(0))
        graph = attention_graph(as_plain_tensor(edge_index), size)
        backend = "triton" if self._runs_triton(x_src) else "auto"
        out = folded_attention(
            query, value, graph, edge_weight, scale=1.0, dropout=dropout, backend=backend
        )
        return out.squeeze(1) if single else out  # [N, *, H, F or C]

    def message(
        self,
        query_i: Tensor,
        key_j: Tensor | None,
        value_j: Tensor,
        edge_weight: Tensor | None,
        index: Tensor,
        ptr: Tensor | None,
        size_i: int | None,
    ) -> Tensor:
        """Per-edge weighted values.

        Args:
            query_i: ``[E, *, H, D]`` scaled, folded queries of the targets.
            key_j: ``[E, *, 1, D]`` raw source features; ``None`` when the key is the value.
            value_j: ``[E, *, H or 1, C_v]`` values of the sources.
            edge_weight: ``[E]`` or ``None``.
            index: ``[E]`` target of each edge (filled in by PyG).
            ptr: CSR pointer of the targets when PyG has one, else ``None``.
            size_i: number of target nodes.

        Returns:
            ``[E, *, H, C_v]``; the softmax weights ``[E, *, H]`` are left in ``self._alpha``
            (where ``forward`` and PyG's ``AttentionExplainer`` read them).
        """
        key_j = value_j if key_j is None else key_j
        messages, self._alpha = attention_messages(
            query_i, key_j, value_j, index, ptr, size_i, edge_weight=edge_weight,
            dropout=self.dropout, training=self.training,
        )  # fmt: skip
        return messages  # [E, *, H, C_v]

    def _check_inputs(
        self, x_src: Tensor, x_dst: Tensor, edge_index: Tensor, edge_weight: Tensor | None
    ) -> None:
        """Refuse features and edge weights the layer cannot use, naming the argument.

        Features must be ``[N, F]`` or ``[N, B, F]`` floating point of the weights' dtype
        (under autocast only floating point is required), with ``num_nodes`` targets for
        per-node weights; edge weights ``[E]`` of the features' dtype.
        """
        if self.projection == "first":
            features = (self.value_weight.size(-1),) * 2
        else:
            features = (self.key_weight.size(-1), self.query_weight.size(-1))
        dtype = self.query_weight.dtype
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
                    f"{name} has {x.size(-1)} features in its last dim, but "
                    f"in_channels={self.in_channels}"
                )
            if not x.is_floating_point():
                raise ValueError(
                    f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert it "
                    f"with {name}.to({dtype}) ({name}.float() for float32)"
                )
            if x.dtype != dtype and not autocast:
                raise ValueError(
                    f"{name} has dtype {x.dtype}, but the layer's weights are {dtype}; convert "
                    f"the input ({name}.to({dtype})) or the layer (conv.to({x.dtype}))"
                )
        if self.num_nodes is not None and x_dst.size(0) != self.num_nodes:
            raise ValueError(
                f"this layer has per-node weights for num_nodes={self.num_nodes} nodes, got "
                f"x with {x_dst.size(0)} (target) nodes in dim 0 (nodes first); build it "
                f"with num_nodes=None to share weights across graphs of any size"
            )
        if edge_weight is not None and edge_weight.shape != (edge_index.size(1),):
            raise ValueError(
                f"edge_weight must have shape [E] = [{edge_index.size(1)}], got "
                f"{tuple(edge_weight.shape)}"
            )
        if edge_weight is not None and edge_weight.dtype != x_src.dtype and not autocast:
            raise ValueError(
                f"edge_weight has dtype {edge_weight.dtype}, but x has {x_src.dtype}; convert "
                f"it with edge_weight.to({x_src.dtype}) (for a sparse adjacency, adj.to(...))"
            )

    def __repr__(self) -> str:
        weights = "shared" if self.num_nodes is None else f"num_nodes={self.num_nodes}"
        extras = "" if self.projection == "none" else f", projection={self.projection!r}"
        extras += "".join(
            f", {name}=True" for name in ("root_weight", "add_self_loops") if getattr(self, name)
        )
        extras += ", bias=True" if self.bias is not None else ""
        extras += "" if self.concat else ", concat=False"
        extras += "" if self.fused else ", fused=False"
        extras += "" if self.fused_backend == "auto" else f", fused_backend={self.fused_backend!r}"
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"heads={self.heads}, {weights}{extras})"
        )


def _weight(*shape: int) -> torch.nn.Parameter:
    """An empty ``[*, out, in]`` parameter, or a lazy one when ``in`` (or ``out``) is -1."""
    if -1 in shape:
        return UninitializedParameter()
    return torch.nn.Parameter(torch.empty(*shape))


def _check_arguments(
    in_channels: int | tuple[int, int],
    out_channels: int,
    heads: int,
    num_nodes: int | None,
    dropout: float,
    projection: str,
) -> tuple[int, int]:
    """Refuse constructor arguments the layer cannot use; returns ``(F_src, F_dst)``."""
    sides = in_channels if isinstance(in_channels, tuple) else (in_channels,)
    counts = [("in_channels", c) for c in sides] + [("out_channels", out_channels)]
    counts += [("heads", heads)] + ([("num_nodes", num_nodes)] if num_nodes is not None else [])
    for name, value in counts:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
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
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    if projection == "first" and src_channels != dst_channels:
        raise ValueError(
            f"projection='first' projects sources and targets with one V, so it needs equal "
            f"source and target features, got in_channels={in_channels}"
        )
    return src_channels, dst_channels


def _split_node_features(x: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Source and target features of a homogeneous (one tensor) or bipartite (pair) input."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2 or not all(isinstance(part, Tensor) for part in x):
            raise ValueError("a bipartite x must be a pair of tensors (x_src, x_dst)")
        x_src, x_dst = x
        if x_src.shape[1:-1] != x_dst.shape[1:-1]:
            raise ValueError(
                f"x_src and x_dst must share their batch dims, got shapes "
                f"{tuple(x_src.shape)} and {tuple(x_dst.shape)}"
            )
        return x_src, x_dst
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor or a pair of tensors, got {type(x).__name__}")
    return x, x


_LOOPED: TensorCache[tuple[Tensor, None]] = TensorCache()


def _with_self_loops(
    edge_index: Tensor, edge_weight: Tensor | None, num_nodes: int
) -> tuple[Tensor, Tensor | None]:
    """Replace any self loops by exactly one loop per node (weight 1), as GATConv does.

    Without edge weights the result is cached on the content of ``edge_index`` (the same
    tensor on every call), so the attention kernel's CSR of it is cached too.
    """

    def build() -> tuple[Tensor, Tensor | None]:
        index, weight = remove_self_loops(edge_index, edge_weight)
        return add_self_loops(index, weight, fill_value=1.0, num_nodes=num_nodes)

    if edge_weight is not None or torch.compiler.is_compiling():
        return build()
    edge_index = as_plain_tensor(edge_index)
    return _LOOPED.get(edge_index, num_nodes, build)
