"""``CorticalColumns``: every excitatory/inhibitory column of the model as one batched op."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CorticalColumns"]

EXCITATORY, INHIBITORY, PROJECTION = 0, 1, 2


class CorticalColumns(nn.Module):
    r"""``N`` cortical columns with their own weights, evaluated as one GEMM.

    Column :math:`c` maps the shared input :math:`x` to

    .. math::
        y_c = \operatorname{LN}_c\!\left(\operatorname{relu}(W^{exc}_c x)
              \odot \bigl(1 - \rho\, \sigma(W^{inh}_c x)\bigr) + W^{proj}_c x\right),

    with :math:`\rho` = ``e_i_ratio`` (the excitatory share of the article's balance), the
    projection term only when ``in_channels != out_channels``, a per-column LayerNorm
    :math:`\operatorname{LN}_c` and dropout. All branch weights of all columns live in one
    tensor, so the whole layer is a single ``[B, F] x [F, S*N*D]`` matrix product
    (``S`` = 2 or 3 branches) instead of ``N`` small ones.

    Initialisation follows the article: :math:`W^{exc}` Kaiming-normal (relu gain),
    :math:`W^{inh}` Xavier-uniform, :math:`W^{proj}` as ``nn.Linear``; no biases.

    Args:
        num_columns: ``N``.
        in_channels: input size ``F``.
        out_channels: column output size ``D``.
        e_i_ratio: strength :math:`\rho` of inhibition, usually in ``[0, 1]``.
        dropout: dropout probability after the LayerNorm.

    Shapes:
        - **input:** ``[B, F]``, or ``[N, B, F]`` with one input per column (a patch of
          the image each, see :mod:`cortexgnn.nn.topography`).
        - **output:** ``[N, B, D]`` (nodes first, ready for message passing).
    """

    def __init__(
        self,
        num_columns: int,
        in_channels: int,
        out_channels: int,
        *,
        e_i_ratio: float = 0.8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if num_columns < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"num_columns, in_channels and out_channels must be >= 1, got "
                f"{num_columns}, {in_channels}, {out_channels}"
            )
        self.num_columns = num_columns
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.e_i_ratio = e_i_ratio
        self.dropout = dropout
        self.use_projection = in_channels != out_channels
        num_branches = 3 if self.use_projection else 2
        # [branch, column, out, in]: branch-major so weight.flatten(0, 2) is one GEMM operand.
        self.weight = nn.Parameter(
            torch.empty(num_branches, num_columns, out_channels, in_channels)
        )
        self.norm_weight = nn.Parameter(torch.empty(num_columns, out_channels))
        self.norm_bias = nn.Parameter(torch.empty(num_columns, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw weights with the article's per-column initialisers."""
        fan_in, fan_out = self.in_channels, self.out_channels
        with torch.no_grad():
            # Per-column fans: init on [N, D, F] as a whole would see fan_in = D * F.
            self.weight[EXCITATORY].normal_(0.0, math.sqrt(2.0 / fan_in))
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            self.weight[INHIBITORY].uniform_(-bound, bound)
            if self.use_projection:
                bound = 1.0 / math.sqrt(fan_in)
                self.weight[PROJECTION].uniform_(-bound, bound)
        nn.init.ones_(self.norm_weight)
        nn.init.zeros_(self.norm_bias)

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate all columns; returns ``[N, B, D]``.

        ``x [B, F]``: every column reads the same input. ``x [N, B, F]`` (topographic
        columns): column ``c`` reads only ``x[c]``, one batched GEMM per branch; a layer of
        one column (shared weights) reads each of the ``N`` inputs, as one GEMM.
        """
        per_column = x.dim() == 3  # one input per column, nodes first
        fits = x.dim() == 2 or (per_column and self.num_columns in (1, x.size(0)))
        if not (fits and x.size(-1) == self.in_channels):
            raise ValueError(
                f"x must have shape [B, {self.in_channels}] or [{self.num_columns}, B, "
                f"{self.in_channels}] (one input per column), got {tuple(x.shape)}"
            )
        if not per_column:
            branches = x @ self.weight.flatten(0, 2).t()  # [B, S*N*D]
            branches = branches.unflatten(1, self.weight.shape[:3])  # [B, S, N, D]
            branches = branches.permute(1, 2, 0, 3)  # [S, N, B, D]
        else:  # per column: [N, B, F] x [N, F, D] (bmm); one column: [N*B, F] x [F, D]
            weight = self.weight if self.num_columns > 1 else self.weight[:, 0]
            branches = [x @ w.transpose(-1, -2) for w in weight]  # S x [N, B, D]
        out = F.relu(branches[EXCITATORY]) * (
            1.0 - self.e_i_ratio * torch.sigmoid(branches[INHIBITORY])
        )  # [N, B, D]
        if self.use_projection:
            out = out + branches[PROJECTION]
        out = F.layer_norm(out, (self.out_channels,))  # [N, B, D]
        out = out * self.norm_weight.unsqueeze(1) + self.norm_bias.unsqueeze(1)
        return F.dropout(out, p=self.dropout, training=self.training)

    def extra_repr(self) -> str:
        return (
            f"num_columns={self.num_columns}, in_channels={self.in_channels}, "
            f"out_channels={self.out_channels}, e_i_ratio={self.e_i_ratio}, "
            f"dropout={self.dropout}"
        )
