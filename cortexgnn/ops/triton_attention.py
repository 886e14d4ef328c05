r"""Folded CSR attention as Triton kernels, registered as a PyTorch custom op.

The same contract as the C++ kernel of :mod:`cortexgnn.ops.attention` (folded queries
``[N_dst, B, H, F]``, source states ``[N_src, B, HX, F]`` with ``HX`` 1 or ``H``, the CSR of an
:class:`~cortexgnn.ops.attention.AttentionGraph`, optional edge weights and dropout
multipliers in CSR order), for CUDA tensors in float32, bfloat16 or float16 (scores,
softmax and sums in float32):

- **forward**, one program per ``(target i, batch b, head h)``: an online softmax over
  ``i``'s in-edges in tiles of ``BLOCK_E`` edges (a running maximum rescales the running
  sum and output row, as in FlashAttention), so degrees from 0 to thousands take one loop;
  it saves the logsumexp :math:`L_i = \log \sum_e e^{s_e}` and, only when asked, the
  attention weights :math:`\alpha_e = e^{s_e - L_i}`;
- **backward**, two passes and no atomics: by target, recomputing :math:`\alpha_e` from
  :math:`L_i`, :math:`\partial L / \partial s_e = \alpha_e (c_e\, g_i \cdot x_j - g_i
  \cdot o_i)` (with :math:`c_e = w_e m_e`) and the query gradient; then by source over the
  transposed CSR, :math:`\partial L / \partial x_j = \sum_e (\alpha_e c_e\, g_i + \tau\,
  \partial L / \partial s_e\, q_i)`. The per-edge terms pass between the two through
  ``[E, B, H]`` float32 buffers; the edge-weight gradient is their sum over ``B, H``.

A node without in-edges gets a zero output. Second derivatives are refused. The op,
``cortexgnn::triton_csr_attention``, has a fake implementation and an autograd formula, so
``torch.compile`` traces through it without a graph break.

Without a GPU the kernels run on CPU tensors under Triton's interpreter: set
``TRITON_INTERPRET=1`` before the first call in the process (the kernels are built on
first use, and ``triton.jit`` reads the variable then). Slow (milliseconds per program);
the tests use it on tiny graphs.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # triton ships with PyTorch's Linux CUDA wheels, not everywhere
    triton = None

__all__ = ["triton_applies", "triton_attention", "triton_available"]

BLOCK_E = 32  # most edges per tile of the loop over a row: long rows take several tiles
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def triton_available() -> bool:
    """Whether triton imports here."""
    return triton is not None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_applies(*tensors: Tensor) -> bool:
    """Whether the kernels can run on these tensors: CUDA (or CPU under the interpreter)."""
    if triton is None:
        return False
    device = "cpu" if _interpreting() else "cuda"
    return all(t.device.type == device for t in tensors)


@functools.cache
def _kernels():
    """The three jitted kernels, built on first use.

    ``triton.jit`` reads the interpreter switch when it decorates, so building here rather
    than at import lets a process set ``TRITON_INTERPRET`` after importing this module.
    """

    @triton.jit
    def forward_kernel(
        q_ptr, x_ptr, ptr_ptr, col_ptr, w_ptr, m_ptr, out_ptr, lse_ptr, alpha_ptr,
        scale, B, H, HX, F,
        HAS_WEIGHT: tl.constexpr, HAS_MASK: tl.constexpr, STORE_ALPHA: tl.constexpr,
        BLOCK: tl.constexpr, BLOCK_F: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0).to(tl.int64)  # (i, b, h), head fastest: row of q and out
        bh = row % (B * H)
        i = row // (B * H)
        b = bh // H
        hx = (bh % H) % HX  # the value row: the head's own, or the one shared row
        f = tl.arange(0, BLOCK_F)
        f_ok = f < F
        q = tl.load(q_ptr + row * F + f, mask=f_ok, other=0.0).to(tl.float32)  # [F]
        e0 = tl.load(ptr_ptr + i)
        e1 = tl.load(ptr_ptr + i + 1)
        run_max = tl.full((), float("-inf"), tl.float32)
        run_sum = tl.zeros((), tl.float32)
        acc = tl.zeros((BLOCK_F,), tl.float32)  # [F]
        for start in range(e0, e1, BLOCK):
            e = start + tl.arange(0, BLOCK)
            e_ok = e < e1
            j = tl.load(col_ptr + e, mask=e_ok, other=0)
            x_row = ((j * B + b) * HX + hx) * F  # [BLOCK]
            x_j = tl.load(
                x_ptr + x_row[:, None] + f[None, :], mask=e_ok[:, None] & f_ok[None, :], other=0.0
            ).to(tl.float32)  # [BLOCK, F]
            s = tl.sum(x_j * q[None, :], axis=1) * scale  # [BLOCK]
            s = tl.where(e_ok, s, float("-inf"))
            new_max = tl.maximum(run_max, tl.max(s, axis=0))  # finite: the tile has an edge
            rescale = tl.exp(run_max - new_max)
            p = tl.exp(s - new_max)  # [BLOCK], 0 off the row
            coef = p
            if HAS_WEIGHT:
                coef = coef * tl.load(w_ptr + e, mask=e_ok, other=0.0).to(tl.float32)
            if HAS_MASK:
                coef = coef * tl.load(m_ptr + e * (B * H) + bh, mask=e_ok, other=0.0).to(tl.float32)
            run_sum = run_sum * rescale + tl.sum(p, axis=0)
            acc = acc * rescale + tl.sum(coef[:, None] * x_j, axis=0)
            run_max = new_max
        has_edge = run_sum > 0
        out = tl.where(has_edge, acc / tl.where(has_edge, run_sum, 1.0), 0.0)
        lse = tl.where(has_edge, run_max + tl.log(tl.where(has_edge, run_sum, 1.0)), 0.0)
        tl.store(out_ptr + row * F + f, out.to(out_ptr.dtype.element_ty), mask=f_ok)
        tl.store(lse_ptr + row, lse)
        if STORE_ALPHA:  # a second sweep with the final logsumexp
            for start in range(e0, e1, BLOCK):
                e = start + tl.arange(0, BLOCK)
                e_ok = e < e1
                j = tl.load(col_ptr + e, mask=e_ok, other=0)
                x_row = ((j * B + b) * HX + hx) * F
                x_j = tl.load(
                    x_ptr + x_row[:, None] + f[None, :],
                    mask=e_ok[:, None] & f_ok[None, :],
                    other=0.0,
                ).to(tl.float32)
                s = tl.sum(x_j * q[None, :], axis=1) * scale
                tl.store(alpha_ptr + e * (B * H) + bh, tl.exp(s - lse), mask=e_ok)

    @triton.jit
    def backward_target_kernel(
        g_ptr, q_ptr, x_ptr, out_ptr, lse_ptr, ptr_ptr, col_ptr, w_ptr, m_ptr,
        gq_ptr, ds_ptr, coef_ptr, gw_ptr,
        scale, B, H, HX, F,
        HAS_WEIGHT: tl.constexpr, HAS_MASK: tl.constexpr, GRAD_WEIGHT: tl.constexpr,
        BLOCK: tl.constexpr, BLOCK_F: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0).to(tl.int64)
        bh = row % (B * H)
        i = row // (B * H)
        b = bh // H
        hx = (bh % H) % HX
        f = tl.arange(0, BLOCK_F)
        f_ok = f < F
        q = tl.load(q_ptr + row * F + f, mask=f_ok, other=0.0).to(tl.float32)  # [F]
        g = tl.load(g_ptr + row * F + f, mask=f_ok, other=0.0).to(tl.float32)  # [F]
        o = tl.load(out_ptr + row * F + f, mask=f_ok, other=0.0).to(tl.float32)  # [F]
        delta = tl.sum(g * o, axis=0)  # g_i . o_i = sum_e alpha_e c_e g_i . x_j
        lse = tl.load(lse_ptr + row)
        e0 = tl.load(ptr_ptr + i)
        e1 = tl.load(ptr_ptr + i + 1)
        grad_q = tl.zeros((BLOCK_F,), tl.float32)
        for start in range(e0, e1, BLOCK):
            e = start + tl.arange(0, BLOCK)
            e_ok = e < e1
            j = tl.load(col_ptr + e, mask=e_ok, other=0)
            x_row = ((j * B + b) * HX + hx) * F
            x_j = tl.load(
                x_ptr + x_row[:, None] + f[None, :], mask=e_ok[:, None] & f_ok[None, :], other=0.0
            ).to(tl.float32)  # [BLOCK, F]
            s = tl.sum(x_j * q[None, :], axis=1) * scale
            alpha = tl.where(e_ok, tl.exp(s - lse), 0.0)  # recomputed, never stored
            gx = tl.sum(x_j * g[None, :], axis=1)  # g_i . x_j
            masked = alpha
            if HAS_MASK:
                masked = masked * tl.load(m_ptr + e * (B * H) + bh, mask=e_ok, other=0.0).to(
                    tl.float32
                )
            coef = masked
            if HAS_WEIGHT:
                coef = coef * tl.load(w_ptr + e, mask=e_ok, other=0.0).to(tl.float32)
            ds = coef * gx - alpha * delta  # dL/ds_e = alpha_e (c_e g.x_j - g.o_i)
            grad_q += tl.sum(ds[:, None] * x_j, axis=0) * scale
            tl.store(ds_ptr + e * (B * H) + bh, ds, mask=e_ok)
            tl.store(coef_ptr + e * (B * H) + bh, coef, mask=e_ok)
            if GRAD_WEIGHT:  # dL/dw_e = sum_{b,h} alpha m g.x_j, summed over (b, h) later
                tl.store(gw_ptr + e * (B * H) + bh, masked * gx, mask=e_ok)
        tl.store(gq_ptr + row * F + f, grad_q.to(gq_ptr.dtype.element_ty), mask=f_ok)

    @triton.jit
    def backward_source_kernel(
        g_ptr, q_ptr, tptr_ptr, tedge_ptr, tdst_ptr, ds_ptr, coef_ptr, gx_ptr,
        scale, B, H, HX, F,
        BLOCK: tl.constexpr, BLOCK_F: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0).to(tl.int64)  # (j, b, hx): row of x and its gradient
        j = row // (B * HX)
        b = (row % (B * HX)) // HX
        hx = row % HX
        f = tl.arange(0, BLOCK_F)
        f_ok = f < F
        t0 = tl.load(tptr_ptr + j)
        t1 = tl.load(tptr_ptr + j + 1)
        acc = tl.zeros((BLOCK_F,), tl.float32)
        for head in range(0, H // HX):  # every head reads a shared row; else its own
            h = hx + head
            for start in range(t0, t1, BLOCK):
                t = start + tl.arange(0, BLOCK)
                t_ok = t < t1
                e = tl.load(tedge_ptr + t, mask=t_ok, other=0)
                i = tl.load(tdst_ptr + t, mask=t_ok, other=0)
                slot = e * (B * H) + b * H + h
                coef = tl.load(coef_ptr + slot, mask=t_ok, other=0.0)
                ds = tl.load(ds_ptr + slot, mask=t_ok, other=0.0) * scale
                target = ((i * B + b) * H + h) * F  # [BLOCK]: rows of g and q
                both = t_ok[:, None] & f_ok[None, :]
                g_i = tl.load(g_ptr + target[:, None] + f[None, :], mask=both, other=0.0)
                q_i = tl.load(q_ptr + target[:, None] + f[None, :], mask=both, other=0.0)
                acc += tl.sum(
                    coef[:, None] * g_i.to(tl.float32) + ds[:, None] * q_i.to(tl.float32), axis=0
                )
        tl.store(gx_ptr + row * F + f, acc.to(gx_ptr.dtype.element_ty), mask=f_ok)

    return forward_kernel, backward_target_kernel, backward_source_kernel


def _block_f(features: int) -> int:
    return max(triton.next_power_of_2(features), 2)


def _block_e(num_edges: int, num_nodes: int) -> int:
    """Edges per tile: the mean degree rounded up to a power of two, 8 to ``BLOCK_E``.

    Shapes only (no device sync): a tile wider than most rows would idle its lanes.
    """
    mean_degree = -(-num_edges // max(num_nodes, 1))
    return min(BLOCK_E, max(8, triton.next_power_of_2(mean_degree)))


def _launch_forward(query, x, ptr, col, weight, mask, scale, need_weights):
    num_nodes, batch, heads, features = query.shape
    out = torch.empty_like(query)  # [N, B, H, F]: every row written
    lse = torch.empty(num_nodes, batch, heads, device=query.device)  # [N, B, H] float32
    alpha = torch.empty(col.numel() if need_weights else 0, batch, heads, device=query.device)
    if query.numel() == 0:
        return out, lse, alpha
    forward_kernel = _kernels()[0]
    forward_kernel[(num_nodes * batch * heads,)](
        query, x, ptr, col, weight if weight is not None else query,
        mask if mask is not None else query, out, lse, alpha,
        scale, batch, heads, x.size(2), features,
        HAS_WEIGHT=weight is not None, HAS_MASK=mask is not None, STORE_ALPHA=need_weights,
        BLOCK=_block_e(col.numel(), num_nodes), BLOCK_F=_block_f(features),
    )  # fmt: skip
    return out, lse, alpha


def _launch_backward(grad_out, query, x, out, lse, graph, weight, mask, scale, grad_weight):
    ptr, col, tptr, tedge, tdst = graph
    num_nodes, batch, heads, features = query.shape
    num_edges = col.numel()
    grad_q = torch.empty_like(query)
    grad_x = torch.empty_like(x)
    per_edge = dict(device=query.device, dtype=torch.float32)
    ds = torch.empty(num_edges, batch, heads, **per_edge)  # [E, B, H]
    coef = torch.empty(num_edges, batch, heads, **per_edge)  # [E, B, H]
    gw = torch.empty(num_edges if grad_weight else 0, batch, heads, **per_edge)
    if query.numel() == 0:
        return grad_q, grad_x.zero_(), gw.sum((1, 2))
    _, target_kernel, source_kernel = _kernels()
    block_e, block_f = _block_e(num_edges, num_nodes), _block_f(features)
    target_kernel[(num_nodes * batch * heads,)](
        grad_out, query, x, out, lse, ptr, col, weight if weight is not None else query,
        mask if mask is not None else query, grad_q, ds, coef, gw,
        scale, batch, heads, x.size(2), features,
        HAS_WEIGHT=weight is not None, HAS_MASK=mask is not None, GRAD_WEIGHT=grad_weight,
        BLOCK=block_e, BLOCK_F=block_f,
    )  # fmt: skip
    source_kernel[(x.size(0) * batch * x.size(2),)](  # every source row, N_src of them
        grad_out, query, tptr, tedge, tdst, ds, coef, grad_x,
        scale, batch, heads, x.size(2), features,
        BLOCK=block_e, BLOCK_F=block_f,
    )  # fmt: skip
    return grad_q, grad_x, gw.sum((1, 2))  # [N_dst, B, H, F], [N_src, B, HX, F], [E] or [0]


@torch.library.custom_op("cortexgnn::triton_csr_attention", mutates_args=())
def _csr_attention(
    query: Tensor,
    x: Tensor,
    ptr: Tensor,
    col: Tensor,
    tptr: Tensor,
    tedge: Tensor,
    tdst: Tensor,
    weight: Tensor | None,
    mask: Tensor | None,
    scale: float,
    need_weights: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(out [N, B, H, F], lse [N, B, H] float32, alpha [E, B, H] float32 or [0, B, H])``."""
    return _launch_forward(query, x, ptr, col, weight, mask, scale, need_weights)


@_csr_attention.register_fake
def _(query, x, ptr, col, tptr, tedge, tdst, weight, mask, scale, need_weights):
    rows = query.shape[:3]
    edges = col.shape[0] if need_weights else 0
    return (
        torch.empty_like(query),
        query.new_empty(rows, dtype=torch.float32),
        query.new_empty((edges, *rows[1:]), dtype=torch.float32),
    )


@torch.library.custom_op("cortexgnn::triton_csr_attention_backward", mutates_args=())
def _csr_attention_backward(
    grad_out: Tensor,
    query: Tensor,
    x: Tensor,
    out: Tensor,
    lse: Tensor,
    ptr: Tensor,
    col: Tensor,
    tptr: Tensor,
    tedge: Tensor,
    tdst: Tensor,
    weight: Tensor | None,
    mask: Tensor | None,
    scale: float,
    grad_weight: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(grad_query, grad_x, grad_weight [E] float32 or [0])``."""
    graph = (ptr, col, tptr, tedge, tdst)
    return _launch_backward(
        grad_out.contiguous(), query, x, out, lse, graph, weight, mask, scale, grad_weight
    )


@_csr_attention_backward.register_fake
def _(grad_out, query, x, out, lse, ptr, col, tptr, tedge, tdst, weight, mask, scale, grad_weight):
    edges = col.shape[0] if grad_weight else 0
    return torch.empty_like(query), torch.empty_like(x), query.new_empty(edges, dtype=torch.float32)


def _setup_context(ctx, inputs, output):
    query, x, ptr, col, tptr, tedge, tdst, weight, mask, scale, _ = inputs
    out, lse, _ = output
    ctx.save_for_backward(query, x, out, lse, ptr, col, tptr, tedge, tdst, weight, mask)
    ctx.scale = scale
    ctx.mark_non_differentiable(lse, output[2])


def _backward(ctx, grad_out, _grad_lse, _grad_alpha):
    query, x, out, lse, ptr, col, tptr, tedge, tdst, weight, mask = ctx.saved_tensors
    grad_weight = weight is not None and ctx.needs_input_grad[7]
    grad_q, grad_x, grad_w = _csr_attention_backward(
        grad_out, query, x, out, lse, ptr, col, tptr, tedge, tdst, weight, mask, ctx.scale,
        grad_weight,
    )  # fmt: skip
    grad_w = grad_w.to(weight.dtype) if grad_weight else None
    return grad_q, grad_x, None, None, None, None, None, grad_w, None, None, None


def _refuse_double_backward(ctx, *grads):
    raise RuntimeError(
        "the Triton attention kernel has no second derivatives: build the layer with "
        "fused=False (PyG's path), or call folded_attention with backend='torch'"
    )


def _no_context(ctx, inputs, output):
    pass


_csr_attention.register_autograd(_backward, setup_context=_setup_context)
_csr_attention_backward.register_autograd(_refuse_double_backward, setup_context=_no_context)


def triton_attention(
    query: Tensor,
    x: Tensor,
    graph,
    weight: Tensor | None,
    mask: Tensor | None,
    scale: float,
    *,
    need_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""The Triton kernel behind ``folded_attention(..., backend="triton")``.

    Args:
        query: ``[N_dst, B, H, F]`` folded queries (float32, bfloat16 or float16).
        x: ``[N_src, B, HX, F]`` keys and values, ``HX`` 1 (shared by the heads) or ``H``.
            Mixed dtypes (under autocast, say) compute in the promoted one.
        graph: an :class:`~cortexgnn.ops.attention.AttentionGraph` on the same device.
        weight: ``[E]`` edge weights in CSR order, or ``None``.
        mask: ``[E, B, H]`` dropout multipliers in CSR order, or ``None``.
        scale: score scale :math:`\tau`.
        need_weights: also return the softmax weights ``[E, B, H]`` (float32, CSR order,
            before dropout and edge weights).

    Returns:
        ``out [N_dst, B, H, F]``, or ``(out, alpha)`` with ``need_weights``.
    """
    if triton is None:
        raise RuntimeError("backend='triton' needs the triton package (pip install triton)")
    tensors = [t for t in (query, x, weight, mask) if t is not None]
    if not triton_applies(*tensors, graph.ptr):
        raise ValueError(
            "backend='triton' runs on CUDA tensors (or on CPU tensors with TRITON_INTERPRET=1 "
            f"set before the first call), got {', '.join(str(t.device) for t in tensors)}"
        )
    dtype = torch.promote_types(query.dtype, x.dtype)  # as the PyTorch path computes
    if dtype not in DTYPES:
        raise ValueError(
            f"backend='triton' computes in one of {DTYPES}, got query {query.dtype} and x {x.dtype}"
        )
    out, _, alpha = _csr_attention(
        query.to(dtype).contiguous(), x.to(dtype).contiguous(),
        graph.ptr, graph.col, graph.tptr, graph.tedge, graph.tdst,
        None if weight is None else weight.contiguous(),
        None if mask is None else mask.contiguous(), float(scale), need_weights,
    )  # fmt: skip
    return (out, alpha) if need_weights else out
