r"""Key folded into the query: the per-target algebra of ``ColumnAttentionConv``.

A score :math:`(Q x_i)^\top (K y_j) = (K^\top Q x_i)^\top y_j` needs no key per edge once
each target carries its folded query :math:`K^\top Q x_i`; with per-node weights
(:math:`K_i` belongs to the target) that is the only way to avoid projecting every source
once per target, as the article's loop does.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["fold_on_values", "fold_query"]


def fold_query(x: Tensor, query_weight: Tensor, key_weight: Tensor, heads: int) -> Tensor:
    r"""Folded queries :math:`\tilde q_i^h = K_i^{h\top} Q_i^h x_i` of raw features.

    Args:
        x: ``[N, *, F_dst]`` target features (``*`` is empty or one batch dim).
        query_weight: ``[H*C, F_dst]`` shared or ``[N, H*C, F_dst]`` per node.
        key_weight: ``[H*C, F_src]`` or ``[N, H*C, F_src]``, like ``query_weight``.
        heads: ``H``.

    Returns:
        ``[N, *, H, F_src]``.
    """
    channels = query_weight.size(-2) // heads
    if query_weight.dim() == 2:
        q = x @ query_weight.t()  # [N, *, H*C]
        key = key_weight.unflatten(0, (heads, channels))  # [H, C, F]
        return torch.einsum("...hc,hcf->...hf", q.unflatten(-1, (heads, channels)), key)
    h = x if x.dim() == 3 else x.unsqueeze(1)  # [N, B, F]
    q = torch.bmm(h, query_weight.transpose(1, 2))  # [N, B, H*C]
    if heads == 1:
        folded = torch.bmm(q, key_weight).unsqueeze(2)  # [N, B, 1, F]
    else:
        key = key_weight.unflatten(1, (heads, channels))  # [N, H, C, F]
        folded = torch.einsum("nbhc,nhcf->nbhf", q.unflatten(-1, (heads, channels)), key)
    return folded if x.dim() == 3 else folded.squeeze(1)  # [N, *, H, F]


def fold_on_values(
    value: Tensor, query_weight: Tensor, key_weight: Tensor, scale: float = 1.0
) -> Tensor:
    r"""Scaled folded queries :math:`s\,K^{h\top} Q^h v_i^h` of projected features.

    Args:
        value: ``[N, *, H, C]`` projected target features.
        query_weight: ``[H*C, C]`` shared or ``[N, H*C, C]`` per node: head ``h`` owns
            rows ``h*C .. (h+1)*C - 1``.
        key_weight: like ``query_weight``.
        scale: factor :math:`s` folded into the ``C x C`` matrices (the score's
            :math:`1/\sqrt{C}`), so no per-edge division is left to do.

    Returns:
        ``[N, *, H, C]``.
    """
    heads, channels = value.shape[-2:]
    if query_weight.dim() == 2:
        query = query_weight.unflatten(0, (heads, channels))  # [H, C, C]
        key = key_weight.unflatten(0, (heads, channels))  # [H, C, C]
        fold = torch.bmm(key.transpose(1, 2) * scale, query)  # s K^T Q per head: [H, C, C]
        # One [H*C, H*C] block-diagonal GEMM (measured faster here than H small ones); the
        # blocks are placed by one product with the identity (a single autograd node, where
        # torch.block_diag(*fold.unbind(0)) makes 2 H of them).
        eye = torch.eye(heads, dtype=fold.dtype, device=fold.device)  # [H, H]
        block = (fold.unsqueeze(2) * eye[:, None, :, None]).reshape(heads * channels, -1)
        folded = value.flatten(-2) @ block.t()  # [N, *, H*C]
        return folded.unflatten(-1, (heads, channels))
    query = query_weight.unflatten(1, (heads, channels))  # [N, H, C, C]
    key = key_weight.unflatten(1, (heads, channels))  # [N, H, C, C]
    fold = torch.einsum("nhce,nhcd->nhed", key * scale, query)  # [N, H, C, C]
    return torch.einsum("nhed,n...hd->n...he", fold, value)
