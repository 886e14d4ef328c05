"""Baselines that ask whether the column network's biology earns its parameters.

- :class:`MLP`: one hidden layer, ``in_dim -> hidden -> classes`` (ReLU, dropout); sized
  either small (``hidden=256``) or, with :func:`matched_hidden_size`, to the parameter count
  of a ``CortexNet``.
- :func:`single_column_config`: one cortical column (the same excitatory/inhibitory unit,
  LayerNorm, homeostasis and readout) that holds the whole network's parameter budget and
  has no graph.

Both train through the same ``training_step`` contract as :class:`~cortexgnn.CortexNet`.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig

__all__ = ["MLP", "cortexnet_num_parameters", "matched_hidden_size", "single_column_config"]


class MLP(nn.Module):
    """``in_dim -> hidden -> top_out`` with ReLU and dropout; no graph, no plasticity.

    Args:
        in_dim: input features.
        hidden: hidden units.
        top_out: classes.
        dropout: dropout probability after the hidden layer.

    Shapes:
        - **input:** ``[B, in_dim]`` (or ``[B, ...]`` with ``in_dim`` elements per sample).
        - **output:** logits ``[B, top_out]``.
    """

    def __init__(self, in_dim: int, hidden: int, top_out: int, dropout: float = 0.1) -> None:
        super().__init__()
        if min(in_dim, hidden, top_out) < 1:
            raise ValueError(
                f"in_dim, hidden and top_out must be >= 1, got {in_dim}, {hidden}, {top_out}"
            )
        self.hparams = {"in_dim": in_dim, "hidden": hidden, "top_out": top_out, "dropout": dropout}
        self.hidden = nn.Linear(in_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, top_out)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, top_out]``."""
        return self.out(self.dropout(F.relu(self.hidden(x.flatten(1)))))

    def training_step(self, batch: tuple[Tensor, Tensor], forward=None) -> Tensor:
        """Forward, cross-entropy, ``backward()``; returns the detached loss.

        ``forward`` replaces the model's own forward (a ``DistributedDataParallel`` wrapper).
        """
        x, y = batch
        loss = F.cross_entropy((forward or self)(x), y)
        loss.backward()
        return loss.detach()


def cortexnet_num_parameters(config: ModelConfig, num_edges: int) -> int:
    """Trainable parameters of a ``CortexNet`` built from ``config`` with ``num_edges`` edges.

    Columns (2 or 3 branches of ``D x in_dim``, LayerNorm), one ``D x D`` query/key pair per
    column when it attends (attention on, ``message_iters > 0``), the edge weights, and the
    readout (``D x D``, LayerNorm,
    ``top_out x D``, biases). With ``shared_weights`` one column and one query/key pair
    serve all columns, and each column adds its bias of ``D``. Topographic columns
    (``patch_size``) read ``patch_size**2`` inputs instead of ``in_dim``.
    """
    n, d, c = config.num_columns, config.col_out, config.top_out
    f = config.in_dim if config.patch_size is None else config.patch_size**2
    branches = 3 if f != d else 2
    modules = 1 if config.shared_weights else n
    columns = modules * (branches * d * f + 2 * d) + (n * d if config.shared_weights else 0)
    attention = 2 * modules * d * d if config.use_attention and config.message_iters > 0 else 0
    readout = d * d + d + 2 * d + c * d + c
    return columns + attention + num_edges + readout


def matched_hidden_size(num_params: int, in_dim: int, top_out: int) -> int:
    """The hidden size of an :class:`MLP` with about ``num_params`` parameters.

    Solves ``in_dim * h + h + h * top_out + top_out = num_params`` for ``h`` (rounded).
    """
    return max(1, round((num_params - top_out) / (in_dim + 1 + top_out)))


def single_column_config(config: ModelConfig, num_edges: int) -> ModelConfig:
    """One column holding the parameter budget of the network ``config`` describes.

    The column's width ``D`` solves ``params(single column, D) = params(network)``; message
    passing is off (one node has no neighbours), the column reads the whole input with the
    mean readout, everything else is ``config``'s.

    Args:
        config: the network to match.
        num_edges: its graph's edge count (its edge weights are parameters).
    """
    budget = cortexnet_num_parameters(config, num_edges)
    f, c = config.in_dim, config.top_out
    # One column, D != in_dim (3 branches): D^2 + (3 f + 2 + 1 + 2 + c) D + c = budget
    linear = 3 * f + 5 + c
    width = (-linear + math.sqrt(linear * linear + 4 * (budget - c))) / 2
    return config.replace(
        num_columns=1,
        col_out=max(1, round(width)),
        message_iters=0,
        graph_k=0,
        patch_size=None,
        patch_stride=None,
        graph="small-world",
        readout_column=None,
    )
