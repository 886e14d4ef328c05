r"""Fast paths for graph attention with folded queries: dense, compiled CSR, and PyTorch.

Given folded per-node queries :math:`\tilde q_i` (``[N, B, H, F]``, e.g.
:math:`K_i^\top Q_i x_i`), keys-and-values :math:`x` (``[N, B, F]`` shared by the heads,
or ``[N, B, H, F]`` one per head; nodes first) and a graph,

.. math::
    \alpha_{e} = \operatorname{softmax}_{e \in \mathrm{in}(i)}
        \bigl(\tau\, \tilde q_i^{\,h} \cdot x_{j}^{h}\bigr), \qquad
    o_i^{h} = \sum_{e = (j \to i)} w_e\, m_e^{h}\, \alpha_e^{h}\, x_j^{h}

with :math:`\tau` the score scale, :math:`w_e` optional edge weights and :math:`m_e^h`
attention dropout (0 with probability :math:`p`, else :math:`1/(1-p)`; 1 without
dropout). A node without in-edges gets :math:`o_i = 0`. Sources and targets may be two
node sets (a bipartite graph, built with ``attention_graph(edge_index, (N_src, N_dst))``):
queries and output then have ``N_dst`` rows, keys/values ``N_src``; one node set is the
case ``N_src = N_dst = N``. Three interchangeable implementations:

- ``"dense"``: masked ``[B, H, N, N]`` scores and two batched GEMMs; ``N / k`` times the
  sparse FLOPs, but GEMM-fast: the best choice without the compiled kernel up to a few
  hundred nodes (on a GPU, say). No attention dropout.
- ``"cpp"``: a C++/OpenMP kernel over the graph in CSR by destination (per node: scores,
  softmax, weighted sum while the source rows are in cache; backward through the
  transposed CSR): never materialises an ``[E, B, F]`` tensor.
  CPU only; computes in float32 (bfloat16/float16 inputs are widened for the kernel and
  its output rounded back to their dtype); built on first use (see
  :mod:`cortexgnn.ops.kernel`).
- ``"torch"``: message passing by hand: gather the edge rows, :func:`attention_messages`
  (the per-edge maths ``ColumnAttentionConv.message`` runs too), ``index_add_``; any device
  and dtype, the fallback, and the oracle the others are tested against.
- ``"triton"``: the C++ kernel's maths as Triton kernels for CUDA (float32, bfloat16,
  float16; see :mod:`cortexgnn.ops.triton_attention`), a ``torch.library`` custom op.
  Opt-in: tested under Triton's CPU interpreter, not yet measured on a GPU.

``backend="auto"`` never picks Triton: it picks the compiled C++ kernel where it applies and
builds (measured faster than dense even at the article's 64 columns and batch 128 on a
CPU), else dense for ``N <= DENSE_MAX_NODES`` without dropout, else the PyTorch path. The
dropout multipliers are drawn in CSR edge order before the backend is chosen, so one seed
gives one mask on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._pyg import import_pyg

import_pyg()  # PyG's import-time deprecation warning, silenced once

from torch_geometric.utils import softmax

from ..graph import as_plain_tensor, check_edge_index
from .kernel import load_kernel
from .tensor_cache import TensorCache

__all__ = [
    "DENSE_MAX_NODES",
    "AttentionGraph",
    "attention_graph",
    "attention_messages",
    "folded_attention",
]

DENSE_MAX_NODES = 256  # without the kernel, dense [N, N] scores beat scatter up to here
BACKENDS = ("auto", "dense", "cpp", "torch", "triton")


@dataclass(frozen=True)
class AttentionGraph:
    """A graph prepared for attention: CSR by destination and its transpose.

    Attributes:
        num_nodes: ``N_dst``, the targets (``N`` for one node set).
        ptr: ``[N_dst + 1]`` CSR row pointer over destinations.
        col: ``[E]`` source of each edge, in CSR order.
        dst: ``[E]`` destination of each edge, in CSR order (non-decreasing).
        order: ``[E]`` index into the caller's ``edge_index`` of each CSR edge.
        tptr: ``[N_src + 1]`` row pointer of the transposed graph (edges grouped by source).
        tedge: ``[E]`` CSR position of each edge in transposed order.
        tdst: ``[E]`` destination of each edge in transposed order.
        count: ``[N_dst, N_src]`` float multiplicity ``count[i, j]`` of edge ``j -> i``,
            only for ``N_src, N_dst <= DENSE_MAX_NODES`` (else ``None``).
        has_isolated: whether some target has no in-edge.
        num_src_nodes: ``N_src``, the sources; ``None`` (the default) means ``num_nodes``.
    """

    num_nodes: int
    ptr: Tensor
    col: Tensor
    dst: Tensor
    order: Tensor
    tptr: Tensor
    tedge: Tensor
    tdst: Tensor
    count: Tensor | None
    has_isolated: bool
    num_src_nodes: int | None = None

    @classmethod
    def from_edge_index(
        cls, edge_index: Tensor, num_nodes: int | tuple[int, int]
    ) -> AttentionGraph:
        """Build the CSR, its transpose and (for small ``N``) the dense multiplicity.

        Args:
            edge_index: ``[2, E]`` integer edges ``(source j, target i)``, any order; checked
                by :func:`cortexgnn.graph.check_edge_index` (``ValueError`` out of range).
            num_nodes: ``N``, or ``(N_src, N_dst)`` for a bipartite graph.
        """
        num_src, num_dst = _node_counts(num_nodes)
        edge_index = as_plain_tensor(check_edge_index(edge_index, num_nodes))
        source, target = edge_index  # [E], [E]
        order = torch.sort(target * num_src + source).indices  # [E] CSR order
        col, dst = source[order], target[order]  # [E], [E]
        degree = _count(dst, num_dst)  # [N_dst]
        ptr = torch.cat([degree.new_zeros(1), degree.cumsum(0)])  # [N_dst + 1]
        tedge = torch.sort(col * num_dst + dst).indices  # [E] CSR positions by source
        out_degree = _count(col, num_src)  # [N_src]
        tptr = torch.cat([out_degree.new_zeros(1), out_degree.cumsum(0)])  # [N_src + 1]
        count = None
        if max(num_src, num_dst) <= DENSE_MAX_NODES:
            count = torch.zeros(num_dst, num_src, device=edge_index.device)  # [N_dst, N_src]
            count.index_put_((dst, col), torch.ones_like(dst, dtype=count.dtype), accumulate=True)
        return cls(
            num_nodes=num_dst,
            num_src_nodes=num_src,
            ptr=ptr,
            col=col,
            dst=dst,
            order=order,
            tptr=tptr,
            tedge=tedge,
            tdst=dst[tedge],
            count=count,
            # unknown while torch.compile traces (a data-dependent branch): assume some
            has_isolated=torch.compiler.is_compiling() or bool((degree == 0).any()),
        )

    def __post_init__(self) -> None:
        if self.num_src_nodes is None:  # one node set
            object.__setattr__(self, "num_src_nodes", self.num_nodes)
        # a graph traced by torch.compile comes from a checked edge_index (data-dependent
        # checks would break the graph); one built by hand is checked here
        if not torch.compiler.is_compiling():
            _check_graph(self)


def _check_num_nodes(num_nodes) -> None:
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f"num_nodes must be an int >= 1, got {num_nodes!r}")


def _node_counts(num_nodes) -> tuple[int, int]:
    """``(N_src, N_dst)`` from ``N`` or a pair, each checked to be an int >= 1."""
    if not isinstance(num_nodes, tuple):
        _check_num_nodes(num_nodes)
        return num_nodes, num_nodes
    if len(num_nodes) != 2:
        raise ValueError(f"num_nodes must be N or a pair (N_src, N_dst), got {num_nodes!r}")
    for count in num_nodes:
        _check_num_nodes(count)
    return num_nodes


def _check_graph(graph: AttentionGraph) -> None:
    """Refuse an :class:`AttentionGraph` whose indices could reach outside its tensors.

    The C++ kernel trusts ``ptr``, ``col``, ``tptr``, ``tedge`` and ``tdst``, so a graph
    built by hand (not by :meth:`AttentionGraph.from_edge_index`) is checked here once.
    """
    _check_num_nodes(graph.num_nodes)
    _check_num_nodes(graph.num_src_nodes)
    num_nodes, fields = graph.num_nodes, ("ptr", "col", "dst", "order", "tptr", "tedge", "tdst")
    num_src = graph.num_src_nodes
    for name in fields:
        value = getattr(graph, name)
        if not isinstance(value, Tensor) or value.dim() != 1 or value.dtype != torch.long:
            raise ValueError(f"AttentionGraph.{name} must be a 1-D int64 tensor, got {value!r:.80}")
    num_edges = graph.col.numel()
    for name in fields:
        expected = {"ptr": num_nodes + 1, "tptr": num_src + 1}.get(name, num_edges)
        if getattr(graph, name).numel() != expected:
            raise ValueError(
                f"AttentionGraph.{name} must have {expected} entries, got "
                f"{getattr(graph, name).numel()}: build it with attention_graph(edge_index, N)"
            )
    for name in ("ptr", "tptr"):
        ptr = getattr(graph, name)
        if ptr[0] != 0 or ptr[-1] != num_edges or bool((ptr.diff() < 0).any()):
            raise ValueError(
                f"AttentionGraph.{name} must rise from 0 to E={num_edges}: build the graph "
                f"with attention_graph(edge_index, N)"
            )
    if num_edges:
        check_edge_index(torch.stack([graph.col, graph.dst]), (num_src, num_nodes))
        check_edge_index(torch.stack([graph.tdst, graph.tdst]), num_nodes)
        check_edge_index(torch.stack([graph.order, graph.tedge]), num_edges)
    degree = graph.ptr.diff()  # [N]
    in_csr = torch.repeat_interleave(torch.arange(num_nodes, device=degree.device), degree)
    if not torch.equal(graph.dst, in_csr) or not torch.equal(graph.tdst, graph.dst[graph.tedge]):
        raise ValueError(
            "AttentionGraph.dst/tdst disagree with ptr/tedge: build the graph with "
            "attention_graph(edge_index, N)"
        )


def _count(index: Tensor, num_nodes: int) -> Tensor:
    """``bincount(index, minlength=num_nodes)`` for ``index < num_nodes``.

    Its output shape is known before it runs, so ``torch.compile`` traces it.
    """
    return torch.zeros(num_nodes, dtype=torch.long, device=index.device).index_add_(
        0, index, torch.ones_like(index)
    )  # [N]


_GRAPH_CACHE: TensorCache[AttentionGraph] = TensorCache()


def attention_graph(edge_index: Tensor, num_nodes: int | tuple[int, int]) -> AttentionGraph:
    """:meth:`AttentionGraph.from_edge_index`, cached on the content of ``edge_index``.

    ``num_nodes`` is ``N``, or ``(N_src, N_dst)`` for a bipartite graph.

    A model calls its layer with the same ``edge_index`` every iteration and every step, so
    the sort and transpose run once; an edited graph is rebuilt (see
    :class:`~cortexgnn.ops.tensor_cache.TensorCache`). A graph is checked by
    :func:`cortexgnn.graph.check_edge_index` when it is built.
    """
    if not isinstance(edge_index, Tensor):
        check_edge_index(edge_index, num_nodes)  # raises the validator's TypeError
    edge_index = as_plain_tensor(edge_index)
    if torch.compiler.is_compiling():  # traced into the graph: the cache is Python state
        return AttentionGraph.from_edge_index(edge_index, num_nodes)
    return _GRAPH_CACHE.get(
        edge_index, num_nodes, lambda: AttentionGraph.from_edge_index(edge_index, num_nodes)
    )


def _dense(query: Tensor, x: Tensor, graph: AttentionGraph, weight: Tensor | None, scale: float):
    count = graph.count
    if count is None:
        shape = (graph.num_nodes, graph.num_src_nodes)
        count = torch.zeros(shape, device=x.device)  # [N_dst, N_src]
        count.index_put_((graph.dst, graph.col), count.new_ones(graph.col.numel()), accumulate=True)
    has_edge = count > 0  # [N, N]
    has_in_edge = has_edge.any(-1, keepdim=True)  # [N, 1]
    # log multiplicity on edges, -inf elsewhere; rows without in-edges get 0 (a uniform
    # softmax, zeroed below), so no row is all -inf and nothing turns NaN in any dtype.
    bias = torch.where(has_edge, count.log(), float("-inf"))  # [N, N]
    bias = torch.where(has_in_edge, bias, 0.0).to(x.dtype)
    q = query.permute(1, 2, 0, 3)  # [B, H, N, F]
    v = x.permute(1, 2, 0, 3)  # [B, H or 1, N, F]
    scores = torch.matmul(q, v.transpose(-1, -2)).mul_(scale).add_(bias)  # [B, H, N, N]
    alpha = torch.softmax(scores, dim=-1)  # [B, H, N, N]
    if weight is not None:
        # Dense sum of the weights of parallel edges, divided by their multiplicity.
        summed = torch.zeros_like(count, dtype=weight.dtype).index_put(
            (graph.dst, graph.col), weight, accumulate=True
        )  # [N, N]
        alpha = alpha * (summed / count.clamp(min=1)).to(alpha.dtype)
    elif graph.has_isolated:
        alpha = alpha * has_in_edge.to(alpha.dtype)  # zero rows without in-edges
    return torch.matmul(alpha, v).permute(2, 0, 1, 3)  # [N, B, H, F]


def attention_messages(
    query_i: Tensor,
    key_j: Tensor,
    value_j: Tensor,
    index: Tensor,
    ptr: Tensor | None,
    num_targets: int | None,
    *,
    edge_weight: Tensor | None = None,
    mask: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""The attention's per-edge maths: the one PyTorch-level statement of it.

    ``ColumnAttentionConv.message`` is this function (PyG gathers the edge rows and sums
    the messages), and so is the ``"torch"`` backend below (gather, this, ``index_add_``);
    the compiled kernels state the same maths in C++ and Triton.

    Args:
        query_i: ``[E, *, H, D]`` folded, scaled queries of each edge's target.
        key_j: ``[E, *, H or 1, D]`` keys of each edge's source.
        value_j: ``[E, *, H or 1, C_v]`` values of each edge's source.
        index: ``[E]`` target of each edge.
        ptr: CSR pointer over the targets, or ``None`` (the scatter form, which also has a
            double backward).
        num_targets: number of target nodes.
        edge_weight: ``[E]`` weights multiplying the coefficients, or ``None``.
        mask: ``[E, *, H]`` attention-dropout multipliers drawn by the caller, or ``None``.
        dropout: without ``mask``, the probability of PyTorch's dropout on the
            coefficients when ``training``.
        training: whether ``dropout`` applies.

    Returns:
        ``(messages [E, *, H, C_v], alpha [E, *, H])``: the weighted values, and the
        softmax coefficients before dropout and edge weights.
    """
    # (Q_i x_i).(K_i x_j) / sqrt(C) = (tau K_i^T Q_i x_i).x_j: one dot per edge and head
    score = torch.linalg.vecdot(query_i, key_j)  # [E, *, H]
    alpha = softmax(score, index, ptr, num_targets, dim=0)  # [E, *, H]
    coefficient = alpha
    if mask is not None:
        coefficient = coefficient * mask
    elif dropout > 0:
        coefficient = torch.nn.functional.dropout(coefficient, p=dropout, training=training)
    if edge_weight is not None:
        coefficient = coefficient * edge_weight.view([-1] + [1] * (alpha.dim() - 1))
    return coefficient.unsqueeze(-1) * value_j, alpha  # [E, *, H, C_v], [E, *, H]


def _message_passing(
    query: Tensor, x: Tensor, graph: AttentionGraph, weight: Tensor | None, mask, scale
) -> Tensor:
    """The ``"torch"`` backend: message passing by hand over the CSR edge order."""
    x_j = x.index_select(0, graph.col)  # [E, B, H or 1, F]
    query = query if scale == 1.0 else query * scale  # scaled per node, not per edge
    query_i = query.index_select(0, graph.dst)  # [E, B, H, F]
    weight = None if weight is None else weight.to(query.dtype)
    # by index, not by CSR pointer: the segment reduce behind the pointer form has no double
    # backward, the scatter form has (and measured no slower on a CPU)
    messages, _ = attention_messages(
        query_i, x_j, x_j, graph.dst, None, graph.num_nodes, edge_weight=weight, mask=mask
    )  # [E, B, H, F]
    return query.new_zeros(query.shape).index_add_(0, graph.dst, messages)  # [N, B, H, F]


class _CSRAttention(torch.autograd.Function):
    """Autograd wrapper of the compiled kernel.

    The kernel's backward is not itself differentiable. A backward that builds a graph
    (``create_graph=True``: Hessian terms, gradient penalties) therefore recomputes the
    same attention on the PyTorch path from the saved inputs and differentiates that, so
    second derivatives are exact (at the PyTorch path's speed); a plain backward runs the
    kernel's.

    The kernel computes in float32. Narrower inputs (bfloat16, float16) are widened one
    batch slice at a time and each slice's output rounded back, so the float32 copies
    cost ``1/B`` of a full-width one; backward keeps the inputs and output in their own
    precision and widens them slice by slice again.
    """

    @staticmethod
    def forward(ctx, query, x, weight, mask, graph, scale):
        kernel = load_kernel()
        w = weight.float().contiguous() if weight is not None else query.new_empty(0).float()
        m = mask.float().contiguous() if mask is not None else query.new_empty(0).float()
        if query.dtype == torch.float32 and x.dtype == torch.float32:
            out, alpha = kernel.forward(
                query.contiguous(), x.contiguous(), graph.ptr, graph.col, w, m, scale
            )
        else:
            out = torch.empty_like(query)  # [N, B, H, F]
            alpha = query.new_empty(graph.col.numel(), *query.shape[1:3], dtype=torch.float32)
            for b in _batch_slices(query):
                out_b, alpha[:, b] = kernel.forward(
                    query[:, b].float(), x[:, b].float(), graph.ptr, graph.col, w,
                    _slice(m, b), scale,
                )  # fmt: skip
                out[:, b] = out_b
        # the inputs, not contiguous copies: a create_graph backward differentiates them
        ctx.save_for_backward(query, x, w, m, out, alpha)
        ctx.graph, ctx.scale = graph, scale
        ctx.weight_dtype = None if weight is None else weight.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, x, w, m, out, alpha = ctx.saved_tensors
        g = ctx.graph
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            return _differentiable_backward(ctx, grad_out, query, x, w, m)
        kernel = load_kernel()

        def run(b):
            return kernel.backward(
                grad_out[:, b].float().contiguous(), query[:, b].float().contiguous(),
                x[:, b].float().contiguous(), out[:, b].float().contiguous(),
                alpha[:, b].contiguous(), g.ptr, g.col, w, _slice(m, b), g.tptr, g.tedge,
                g.tdst, ctx.scale,
            )  # fmt: skip

        if query.dtype == torch.float32 and x.dtype == torch.float32:
            grad_q, grad_x, grad_w = run(slice(None))
        else:
            grad_q, grad_x, grad_w = torch.empty_like(query), torch.empty_like(x), 0.0
            for b in _batch_slices(query):
                grad_q[:, b], grad_x[:, b], grad_w_b = run(b)
                grad_w = grad_w + grad_w_b  # [E]
        grad_w = grad_w.to(ctx.weight_dtype) if ctx.needs_input_grad[2] else None
        return grad_q, grad_x, grad_w, None, None, None


def _differentiable_backward(ctx, grad_out, query, x, w, m):
    """The kernel's backward as a graph: the PyTorch path's vector-Jacobian product."""
    weight = w if w.numel() else None
    mask = m if m.numel() else None
    inputs = (query, x, weight)
    wanted = [i for i, t in enumerate(inputs) if ctx.needs_input_grad[i] and t is not None]
    with torch.enable_grad():
        out = _message_passing(query, x, ctx.graph, weight, mask, ctx.scale)  # [N, B, H, F]
        grads = torch.autograd.grad(
            out, [inputs[i] for i in wanted], grad_out, create_graph=True, allow_unused=True
        )
    result = [None, None, None, None, None, None]
    for i, grad in zip(wanted, grads, strict=True):
        result[i] = grad if grad is not None else torch.zeros_like(inputs[i])
    return tuple(result)


def _batch_slices(query: Tensor) -> list[slice]:
    """One slice per batch entry: the unit in which narrow inputs are widened."""
    return [slice(b, b + 1) for b in range(query.size(1))]


def _slice(mask: Tensor, b: slice) -> Tensor:
    """The dropout multipliers ``[E, B, H]`` of the batch slice ``b`` (empty: no dropout)."""
    return mask[:, b].contiguous() if mask.numel() else mask


#: Dtypes the C++ kernel takes: it computes in float32, widening the two narrower ones.
CPP_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _cpp_applies(query: Tensor, x: Tensor, weight: Tensor | None) -> bool:
    tensors = (query, x) if weight is None else (query, x, weight)
    return all(t.device.type == "cpu" and t.dtype in CPP_DTYPES for t in tensors)


def folded_attention(
    query: Tensor,
    x: Tensor,
    graph: AttentionGraph,
    edge_weight: Tensor | None = None,
    *,
    scale: float,
    dropout: float = 0.0,
    backend: str = "auto",
) -> Tensor:
    r"""Attention of every node over its in-neighbours, given folded queries.

    See the module docstring for the maths. Differentiable in ``query``, ``x`` and
    ``edge_weight`` on every backend, twice included (``create_graph=True``): the C++
    kernel's backward then recomputes on the PyTorch path (see :class:`_CSRAttention`).

    Raises:
        ValueError: bad shapes, a ``graph`` not built over ``x``'s and ``query``'s nodes, an
            ``edge_weight`` that is not ``[E]``.

    Args:
        query: ``[N_dst, B, H, F]`` folded queries :math:`\tilde q` of the targets.
        x: ``[N_src, B, F]`` source features (keys and values) shared by the heads, or
            ``[N_src, B, H, F]`` one row per head (``N_src = N_dst`` for one node set).
        graph: the edges ``(source j, target i)`` prepared by :func:`attention_graph`;
            parallel edges count separately in the softmax, as in a sparse implementation.
        edge_weight: ``[E]`` weights, in the order of the ``edge_index`` the graph was
            built from, :math:`w_e` multiplying the coefficients, or ``None``.
        scale: score scale :math:`\tau` (``1 / sqrt(channels)`` for scaled dot products).
        dropout: attention dropout probability :math:`p` (pass 0 outside training).
        backend: ``"auto"``, ``"dense"``, ``"cpp"``, ``"torch"`` or ``"triton"`` (see the
            module docstring); ``"cpp"`` and ``"triton"`` raise if their kernel does not
            apply or cannot run.

    Returns:
        ``[N_dst, B, H, F]``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if x.dim() == 3:
        x = x.unsqueeze(2)  # [N, B, 1, F]: one value row for every head
    if (
        query.dim() != 4
        or x.dim() != 4
        or query.size(1) != x.size(1)
        or x.size(2) not in (1, query.size(2))
    ):
        raise ValueError(
            f"query must be [N_dst, B, H, F] and x [N_src, B, F] or [N_src, B, H, F] with "
            f"matching B and H, got {tuple(query.shape)} and {tuple(x.shape)}"
        )
    if query.size(-1) != x.size(-1):
        raise ValueError(f"query has {query.size(-1)} features but x has {x.size(-1)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if backend == "dense" and dropout > 0:
        raise ValueError("backend='dense' has no attention dropout: use 'cpp' or 'torch'")
    num_src, num_dst = x.size(0), query.size(0)
    sizes = (graph.num_src_nodes, graph.num_nodes) if isinstance(graph, AttentionGraph) else None
    if sizes != (num_src, num_dst):
        nodes, size = f"the {num_src} nodes of x", "num_nodes"
        if num_src != num_dst:
            nodes = f"the {num_src} source nodes of x and {num_dst} target nodes of query"
            size = "(num_src, num_dst)"
        raise ValueError(
            f"graph must be an AttentionGraph over {nodes} (build it with "
            f"attention_graph(edge_index, {size})), got {graph!r:.80}"
        )
    if edge_weight is not None and edge_weight.shape != graph.order.shape:
        raise ValueError(
            f"edge_weight must have shape [E] = {tuple(graph.order.shape)} (one weight per "
            f"edge of the graph), got {tuple(edge_weight.shape)}"
        )
    weight = None if edge_weight is None else edge_weight[graph.order]  # [E] in CSR order
    mask = None
    if dropout > 0:  # [E, B, H] in CSR order: 0 or 1 / (1 - p)
        # uniform draws compared with p: measured 3x faster than bernoulli_ on a CPU
        uniform = torch.rand(graph.col.numel(), *query.shape[1:3], device=query.device)
        mask = uniform.ge_(dropout).mul_(1.0 / (1.0 - dropout)).to(query.dtype)
    if backend == "auto":
        if _cpp_applies(query, x, edge_weight) and load_kernel() is not None:
            backend = "cpp"
        elif max(num_src, num_dst) <= DENSE_MAX_NODES and mask is None:
            backend = "dense"
        else:
            backend = "torch"
    if backend == "dense":
        return _dense(query, x, graph, weight, scale)
    if backend == "torch":
        return _message_passing(query, x, graph, weight, mask, scale)
    if backend == "triton":
        from .triton_attention import triton_attention  # imports triton: only when asked

        return triton_attention(query, x, graph, weight, mask, scale)
    if not _cpp_applies(query, x, edge_weight):
        raise ValueError(f"backend='cpp' needs CPU tensors of a dtype in {CPP_DTYPES}")
    if load_kernel() is None:
        raise RuntimeError("the C++ attention kernel could not be built here (compiler? ninja?)")
    return _CSRAttention.apply(query, x, weight, mask, graph, scale)
