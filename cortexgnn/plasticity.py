"""Unsupervised dynamics of the column graph: Hebbian edge plasticity and homeostasis."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["hebbian_delta", "hebbian_update_", "Homeostasis"]


def hebbian_delta(edge_index: Tensor, pre: Tensor, post: Tensor) -> Tensor:
    r"""The article's Hebbian change for every edge ``j -> i``.

    With :math:`p = \widehat{\bar{pre}}` and :math:`q = \widehat{\bar{post}}` the
    L2-normalised per-node mean activities (means over batch and features),

    .. math::
        \Delta_{ij} = p_i q_j - 0.1\, q_i q_j

    which is the article's ``outer(p, q) - 0.1 * outer(q, q)`` read at the graph's entries
    ``adj[i, j]``: only ``O(E)`` work, no ``[N, N]`` matrix. A zero activity vector gives a
    zero change (``F.normalize`` clamps the norm), never NaN.

    Args:
        edge_index: ``[2, E]`` (source ``j``, target ``i``).
        pre: ``[N, B, D]`` column outputs before message passing.
        post: ``[N, B, D]`` states after message passing and homeostasis.

    Returns:
        ``[E]``.
    """
    p = F.normalize(pre.mean(dim=(1, 2)), dim=0)  # [N]
    q = F.normalize(post.mean(dim=(1, 2)), dim=0)  # [N]
    source, target = edge_index
    return (p[target] - 0.1 * q[target]) * q[source]  # [E]


@torch.no_grad()
def hebbian_update_(
    edge_weight: Tensor, edge_index: Tensor, pre: Tensor, post: Tensor, lr: float
) -> Tensor:
    r"""Apply :math:`w \leftarrow \tanh(w + \eta\, \Delta)` in place (the article's rule).

    Args:
        edge_weight: ``[E]`` raw edge weights (before the sigmoid), updated in place.
        edge_index: ``[2, E]``.
        pre: ``[N, B, D]``.
        post: ``[N, B, D]``.
        lr: plasticity rate :math:`\eta`.

    Returns:
        ``edge_weight``.
    """
    edge_weight.add_(hebbian_delta(edge_index, pre, post), alpha=lr)
    return edge_weight.tanh_()


class Homeostasis(nn.Module):
    r"""Homeostatic scaling: divide each column by its running mean activity.

    .. math::
        a \leftarrow (1 - r)\, a + r\, \bar{h}, \qquad h \leftarrow h / (a + \epsilon)

    with :math:`\bar h` the per-column mean of ``h`` over batch and features, rate
    :math:`r = 0.01` and :math:`\epsilon = 10^{-6}`; the scale carries no gradient. As in the
    article the running mean moves on *every* call, evaluation included, unless
    ``freeze_in_eval=True``, which keeps it fixed while the module is in eval mode.

    Args:
        num_nodes: ``N``.
        rate: update rate :math:`r` of the running mean.
        eps: :math:`\epsilon` added to the divisor.
        freeze_in_eval: stop updating the statistics in eval mode (an improvement over the
            article; off by default).

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
    ) -> None:
        super().__init__()
        self.rate = rate
        self.eps = eps
        self.freeze_in_eval = freeze_in_eval
        self.register_buffer("activity_avg", torch.ones(num_nodes))

    def reset_parameters(self) -> None:
        """Reset the running mean to ones."""
        self.activity_avg.fill_(1.0)

    def forward(self, h: Tensor) -> Tensor:
        """Update the running mean (unless frozen) and rescale ``h [N, B, D]``."""
        if self.training or not self.freeze_in_eval:
            with torch.no_grad():
                current = h.mean(dim=(1, 2))  # [N]
                self.activity_avg.mul_(1.0 - self.rate).add_(current, alpha=self.rate)
        scale = 1.0 / (self.activity_avg + self.eps)  # [N]
        return h * scale.view(-1, 1, 1)

    def extra_repr(self) -> str:
        return f"rate={self.rate}, eps={self.eps}, freeze_in_eval={self.freeze_in_eval}"
