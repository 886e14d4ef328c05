"""Unsupervised dynamics of the column graph: Hebbian edge plasticity and homeostasis."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..graph import check_edge_index

__all__ = ["hebbian_delta", "hebbian_update_", "Homeostasis", "SyncStatistics"]

#: Maps this process's per-node mean activity ``[N]`` to the mean over all processes
#: (e.g. :func:`cortexgnn.distributed.all_reduce_mean`); ``None`` means a single process.
SyncStatistics = Callable[[Tensor], Tensor]


def hebbian_delta(
    edge_index: Tensor,
    pre: Tensor,
    post: Tensor,
    sync_statistics: SyncStatistics | None = None,
) -> Tensor:
    r"""The article's Hebbian change for every edge ``j -> i``.

    With :math:`p = \widehat{\bar{pre}}` and :math:`q = \widehat{\bar{post}}` the
    L2-normalised per-node mean activities (means over batch and features),

    .. math::
        \Delta_{ij} = p_i q_j - 0.1\, q_i q_j

    which is the article's ``outer(p, q) - 0.1 * outer(q, q)`` read at the graph's entries
    ``adj[i, j]``: only ``O(E)`` work, no ``[N, N]`` matrix. A zero activity vector gives a
    zero change (``F.normalize`` clamps the norm), never NaN.

    Several processes that each hold ``B`` samples of one global batch agree on the update
    when ``sync_statistics`` averages the per-node means across them before normalising:
    with equal ``B`` the mean of the process means is the mean over the whole batch.

    Args:
        edge_index: ``[2, E]`` (source ``j``, target ``i``), checked by
            :func:`cortexgnn.graph.check_edge_index`.
        pre: ``[N, B, D]`` column outputs before message passing.
        post: ``[N, B, D]`` states after message passing and homeostasis.
        sync_statistics: optional reduction of the ``[N]`` means over processes.

    Returns:
        ``[E]``.
    """
    edge_index = check_edge_index(edge_index, pre.size(0))
    if post.size(0) != pre.size(0):
        raise ValueError(f"pre and post must have the same N, got {pre.size(0)} and {post.size(0)}")
    pre_mean, post_mean = pre.mean(dim=(1, 2)), post.mean(dim=(1, 2))  # [N], [N]
    if sync_statistics is not None:
        pre_mean, post_mean = sync_statistics(torch.stack([pre_mean, post_mean]))  # [2, N]
    p = F.normalize(pre_mean, dim=0)  # [N]
    q = F.normalize(post_mean, dim=0)  # [N]
    source, target = edge_index
    return (p[target] - 0.1 * q[target]) * q[source]  # [E]


@torch.no_grad()
def hebbian_update_(
    edge_weight: Tensor,
    edge_index: Tensor,
    pre: Tensor,
    post: Tensor,
    lr: float,
    sync_statistics: SyncStatistics | None = None,
) -> Tensor:
    r"""Apply :math:`w \leftarrow \tanh(w + \eta\, \Delta)` in place (the article's rule).

    Args:
        edge_weight: ``[E]`` raw edge weights (before the sigmoid), updated in place.
        edge_index: ``[2, E]``.
        pre: ``[N, B, D]``.
        post: ``[N, B, D]``.
        lr: plasticity rate :math:`\eta`.
        sync_statistics: optional reduction of per-node means over processes (see
            :func:`hebbian_delta`).

    Returns:
        ``edge_weight``.
    """
    edge_weight.add_(hebbian_delta(edge_index, pre, post, sync_statistics), alpha=lr)
    return edge_weight.tanh_()


class Homeostasis(nn.Module):
    r"""Homeostatic scaling: divide each column by its running mean activity.

    .. math::
        a \leftarrow (1 - r)\, a + r\, \bar{h}, \qquad h \leftarrow h / (a + \epsilon)

    with :math:`\bar h` the per-column mean of ``h`` over batch and features, rate
    :math:`r = 0.01` and :math:`\epsilon = 10^{-6}`; the scale carries no gradient. As in the
    article the running mean moves on *every* call, evaluation included, unless
    ``freeze_in_eval=True``, which keeps it fixed while the module is in eval mode.

    The article's divisor :math:`a + \epsilon` can be near zero or negative (``h`` mixes
    relu states with LayerNorm outputs), which blows the states up or flips their sign.
    ``min_divisor=m`` opts in to dividing by :math:`\max(a, m)` instead; the default
    ``None`` keeps the article's arithmetic.

    Args:
        num_nodes: ``N``.
        rate: update rate :math:`r` of the running mean.
        eps: :math:`\epsilon` added to the divisor.
        freeze_in_eval: stop updating the statistics in eval mode (an improvement over the
            article; off by default).
        min_divisor: if given (``> 0``), divide by ``activity_avg.clamp(min=min_divisor)``
            instead of ``activity_avg + eps``.

    Shapes:
        - **input:** ``[N, B, D]``.
        - **output:** ``[N, B, D]``.
    """

    def __init__(
        self,
        num_nodes: int,
        *,
        rate: float = 0.01,
        eps: float = 1e-6,
        freeze_in_eval: bool = False,
        min_divisor: float | None = None,
    ) -> None:
        super().__init__()
        if min_divisor is not None and not min_divisor > 0.0:
            raise ValueError(f"min_divisor must be > 0 or None (off), got {min_divisor}")
        self.rate = rate
        self.eps = eps
        self.freeze_in_eval = freeze_in_eval
        self.min_divisor = min_divisor
        self.register_buffer("activity_avg", torch.ones(num_nodes))

    def reset_parameters(self) -> None:
        """Reset the running mean to ones."""
        self.activity_avg.fill_(1.0)

    def forward(self, h: Tensor, sync_statistics: SyncStatistics | None = None) -> Tensor:
        """Update the running mean (unless frozen) and rescale ``h [N, B, D]``.

        ``sync_statistics`` (applied in training mode only, where every process takes the
        same steps) averages the current per-node activity over processes, so that all
        replicas keep identical running means.
        """
        if self.training or not self.freeze_in_eval:
            with torch.no_grad():
                current = h.mean(dim=(1, 2))  # [N]
                if self.training and sync_statistics is not None:
                    current = sync_statistics(current)  # [N]
                self.activity_avg.mul_(1.0 - self.rate).add_(current, alpha=self.rate)
        if self.min_divisor is None:
            scale = 1.0 / (self.activity_avg + self.eps)  # [N]
        else:
            scale = 1.0 / self.activity_avg.clamp(min=self.min_divisor)  # [N]
        return h * scale.view(-1, 1, 1)

    def extra_repr(self) -> str:
        extra = "" if self.min_divisor is None else f", min_divisor={self.min_divisor}"
        return f"rate={self.rate}, eps={self.eps}, freeze_in_eval={self.freeze_in_eval}{extra}"
