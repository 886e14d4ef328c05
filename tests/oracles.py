"""The one set of dense oracles the tests compare the attention code against.

Both are written from the equations, without PyG and without the layer's folding of the
key into the query: a Python loop over target nodes and their in-edges, every key
projected per edge. Slow and obvious on purpose; keep the graphs tiny.

- :func:`conv_oracle`: :class:`~cortexgnn.ColumnAttentionConv` (per-node or shared
  weights, heads with concat or mean, ``projection`` none/value/first, edge weights, self
  loops, root weight, bias, bipartite input, any batch dims).
- :func:`folded_attention_oracle`: :func:`cortexgnn.ops.attention.folded_attention`, the
  kernel level, which receives already folded queries.
- :func:`patch_columns_oracle`: the column states of a topographic ``CortexNet``, by a loop
  over grid positions that crops each column's patch out of the image.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def attended_edges(
    conv, edge_index: Tensor, edge_weight: Tensor | None, num_src: int, num_dst: int
) -> tuple[Tensor, Tensor | None]:
    """The edges the layer attends over: with ``add_self_loops``, existing loops removed
    and one loop per node ``0..min(N_src, N_dst) - 1`` (weight 1) appended last."""
    if not conv.add_self_loops:
        return edge_index, edge_weight
    keep = edge_index[0] != edge_index[1]
    loops = torch.arange(min(num_src, num_dst)).repeat(2, 1)
    edge_index = torch.cat([edge_index[:, keep], loops], dim=1)
    if edge_weight is not None:
        edge_weight = torch.cat([edge_weight[keep], edge_weight.new_ones(loops.size(1))])
    return edge_index, edge_weight


def conv_oracle(conv, x, edge_index: Tensor, edge_weight: Tensor | None = None):
    """``ColumnAttentionConv`` computed edge by edge from its docstring's equation.

    Args:
        conv: the layer whose weights and options to use.
        x: ``[N, *, F]`` or a bipartite pair ``([N_src, *, F_src], [N_dst, *, F_dst])``.
        edge_index: ``[2, E]`` plain edge list (sources in row 0).
        edge_weight: ``[E]`` or ``None``.

    Returns:
        ``(out [N_dst, *, out], alpha [E', *, H])`` with ``alpha`` over the attended edges
        (see :func:`attended_edges`), before dropout and edge weights.
    """
    x_src, x_dst = x if isinstance(x, (tuple, list)) else (x, x)
    batch_shape = x_src.shape[1:-1]
    x_src = x_src.reshape(x_src.size(0), -1, x_src.size(-1))  # [N_src, B, F_src]
    x_dst = x_dst.reshape(x_dst.size(0), -1, x_dst.size(-1))  # [N_dst, B, F_dst]
    num_src, num_dst, batch = x_src.size(0), x_dst.size(0), x_src.size(1)
    edge_index, edge_weight = attended_edges(conv, edge_index, edge_weight, num_src, num_dst)
    heads, channels = conv.heads, conv.out_channels

    def per_head(weight: Tensor, rows: Tensor) -> Tensor:  # [H*C, in] x [B, in] -> [B, H, C]
        return (rows @ weight.t()).unflatten(-1, (heads, -1))

    def query_key(i: int) -> tuple[Tensor, Tensor]:  # target i owns its pair when per node
        if conv.num_nodes is None:
            return conv.query_weight, conv.key_weight
        return conv.query_weight[i], conv.key_weight[i]

    def value(j: int) -> Tensor:  # [B, H, C_v]
        if conv.projection == "none":
            return x_src[j].unsqueeze(1).expand(batch, heads, x_src.size(-1))
        return per_head(conv.value_weight, x_src[j])

    out_heads = channels if conv.projection != "none" else x_src.size(-1)
    out = x_src.new_zeros(num_dst, batch, heads, out_heads)
    alpha = x_src.new_zeros(edge_index.size(1), batch, heads)
    for i in range(num_dst):
        incoming = [e for e in range(edge_index.size(1)) if int(edge_index[1, e]) == i]
        if not incoming:
            continue  # no in-edge: a zero message
        q_weight, k_weight = query_key(i)
        scores = []
        for e in incoming:
            j = int(edge_index[0, e])
            if conv.projection == "first":  # per-head C x C query/key on v = V x
                v_i, v_j = per_head(conv.value_weight, x_dst[i]), value(j)  # [B, H, C]
                q_heads = q_weight.unflatten(0, (heads, channels))  # [H, C, C]
                k_heads = k_weight.unflatten(0, (heads, channels))
                q = torch.einsum("hcd,bhd->bhc", q_heads, v_i)
                k = torch.einsum("hcd,bhd->bhc", k_heads, v_j)
            else:
                q, k = per_head(q_weight, x_dst[i]), per_head(k_weight, x_src[j])
            scores.append((q * k).sum(-1) / math.sqrt(channels))  # [B, H]
        weights = torch.stack(scores).softmax(dim=0)  # [deg, B, H]: over i's in-edges
        for slot, e in enumerate(incoming):
            alpha[e] = weights[slot]
            gate = 1.0 if edge_weight is None else edge_weight[e]
            out[i] += gate * weights[slot].unsqueeze(-1) * value(int(edge_index[0, e]))
    out = out.flatten(-2) if conv.concat else out.mean(-2)  # [N_dst, B, out]
    if conv.lin_root_weight is not None:
        out = out + x_dst @ conv.lin_root_weight.t()
    if conv.bias is not None:
        out = out + conv.bias
    out = out.reshape(num_dst, *batch_shape, out.size(-1))
    return out, alpha.reshape(alpha.size(0), *batch_shape, heads)


def folded_attention_oracle(
    query: Tensor, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None, scale=1.0
) -> Tensor:
    """``folded_attention`` by a loop over targets and their in-edges.

    Args:
        query: ``[N, B, H, F]`` folded queries.
        x: ``[N, B, F]`` (one key/value row for all heads) or ``[N, B, H, F]``.
        edge_index: ``[2, E]``; parallel edges count separately.
        edge_weight: ``[E]`` or ``None``.
        scale: score scale.

    Returns:
        ``[N, B, H, F]``.
    """
    num_nodes, _, heads, _ = query.shape
    if x.dim() == 3:
        x = x.unsqueeze(2).expand(-1, -1, heads, -1)
    out = torch.zeros_like(query)
    source, target = edge_index
    for i in range(num_nodes):
        edges = (target == i).nonzero().flatten()
        if edges.numel() == 0:
            continue
        x_j = x[source[edges]]  # [k, B, H, F]
        alpha = (torch.einsum("bhf,kbhf->kbh", query[i], x_j) * scale).softmax(dim=0)
        if edge_weight is not None:
            alpha = alpha * edge_weight[edges].view(-1, 1, 1)
        out[i] = torch.einsum("kbh,kbhf->bhf", alpha, x_j)
    return out


def patch_columns_oracle(
    model, x: Tensor, image_shape: tuple[int, int], patch_size: int, stride: int
) -> Tensor:
    """The states ``pre [N, B, D]`` of a topographic ``CortexNet`` in eval mode.

    Column ``r * cols + c`` crops rows ``r * stride ..`` and columns ``c * stride ..`` of
    each image and applies its own weights (or the one shared column's, plus its bias):
    ``LN(relu(W_e p) * (1 - rho sigmoid(W_i p)) + W_p p)`` with a per-column LayerNorm.
    """
    height, width = image_shape
    images = x.reshape(x.size(0), height, width)  # [B, H, W]
    rows = (height - patch_size) // stride + 1
    cols = (width - patch_size) // stride + 1
    layer = model.columns
    out = []
    for r in range(rows):
        for c in range(cols):
            node = r * cols + c
            top, left = r * stride, c * stride
            patch = images[:, top : top + patch_size, left : left + patch_size].reshape(
                x.size(0), -1
            )  # [B, P]
            own = 0 if layer.num_columns == 1 else node
            w = layer.weight[:, own]  # [S, D, P]
            h = torch.relu(patch @ w[0].T) * (1 - layer.e_i_ratio * torch.sigmoid(patch @ w[1].T))
            if w.size(0) == 3:
                h = h + patch @ w[2].T
            mean = h.mean(-1, keepdim=True)
            var = ((h - mean) ** 2).mean(-1, keepdim=True)
            h = (h - mean) / torch.sqrt(var + 1e-5) * layer.norm_weight[own] + layer.norm_bias[own]
            if model.column_bias is not None:
                h = h + model.column_bias[node]
            out.append(h)
    return torch.stack(out)  # [N, B, D]
