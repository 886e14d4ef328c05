"""``DenseReference``: the article's ``BrainNetwork``, loop for loop, as the baseline.

This module keeps the original computation on purpose: one module per column, a Python
loop over columns inside every message-passing iteration, a dense ``[C, C]`` adjacency and
a ``-1e9`` mask. It is the oracle that :class:`cortexgnn.CortexNet` is tested against and
the baseline the benchmarks time. Its ``state_dict`` keys and shapes match the article's
model, so an article checkpoint loads into it with ``strict=True``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .graph import edge_index_to_dense, small_world_graph

__all__ = ["DenseReference"]


class _Column(nn.Module):
    """One excitatory/inhibitory column (article's ``Column``); ``[B, F] -> [B, D]``."""

    def __init__(self, in_feat: int, out_feat: int, e_i_ratio: float, dropout: float) -> None:
        super().__init__()
        self.fc_exc = nn.Linear(in_feat, out_feat, bias=False)
        self.fc_inh = nn.Linear(in_feat, out_feat, bias=False)
        self.norm = nn.LayerNorm(out_feat)
        self.dropout = nn.Dropout(dropout)
        self.e_i_ratio = e_i_ratio
        nn.init.kaiming_normal_(self.fc_exc.weight, nonlinearity="relu")
        nn.init.xavier_uniform_(self.fc_inh.weight)
        self.use_projection = in_feat != out_feat
        if self.use_projection:
            self.projection = nn.Linear(in_feat, out_feat, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        drive = F.relu(self.fc_exc(x)) * (1.0 - self.e_i_ratio * torch.sigmoid(self.fc_inh(x)))
        if self.use_projection:
            drive = drive + self.projection(x)
        return self.dropout(self.norm(drive))


class _AttentionGate(nn.Module):
    """One column's query/key pair (article's ``AttentionGate``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.scale = math.sqrt(dim)

    def forward(self, center: Tensor, everyone: Tensor, row_mask: Tensor) -> Tensor:
        """Attention of ``center [B, D]`` over ``everyone [B, C, D]``; returns ``[B, C]``."""
        q = self.query(center).unsqueeze(1)  # [B, 1, D]
        k = self.key(everyone)  # [B, C, D]: every column projected, for every gate
        scores = torch.bmm(q, k.transpose(1, 2)).squeeze(1) / self.scale  # [B, C]
        scores = scores.masked_fill(row_mask.unsqueeze(0) == 0, -1e9)
        return F.softmax(scores, dim=-1)


class DenseReference(nn.Module):
    """The article's model as written: per-column modules and loops, dense adjacency.

    Args:
        num_columns: number of columns ``C``.
        in_dim: input size.
        col_out: column output size ``D``.
        top_out: number of classes.
        graph_k: Watts-Strogatz ring degree.
        graph_p: Watts-Strogatz rewiring probability.
        message_iters: message-passing iterations.
        plasticity_lr: Hebbian rate.
        use_attention: attention (True) or adjacency-weighted (False) messages.
        e_i_ratio: inhibition strength in each column.
        dropout: dropout probability.
        graph_seed: seed of the small-world graph (``None``: unseeded, as in the article).

    Shapes:
        - **input:** ``[B, in_dim]``.
        - **output:** logits ``[B, top_out]``.
    """

    def __init__(
        self,
        num_columns: int = 64,
        in_dim: int = 784,
        col_out: int = 128,
        top_out: int = 10,
        graph_k: int = 8,
        graph_p: float = 0.15,
        message_iters: int = 4,
        plasticity_lr: float = 5e-5,
        use_attention: bool = True,
        e_i_ratio: float = 0.8,
        dropout: float = 0.1,
        graph_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.hparams = dict(
            num_columns=num_columns, in_dim=in_dim, col_out=col_out, top_out=top_out,
            graph_k=graph_k, graph_p=graph_p, message_iters=message_iters,
            plasticity_lr=plasticity_lr, use_attention=use_attention, e_i_ratio=e_i_ratio,
            dropout=dropout,
        )  # fmt: skip
        self.num_columns = num_columns
        self.message_iters = message_iters
        self.plasticity_lr = plasticity_lr
        self.use_attention = use_attention
        self.homeostatic_rate = 0.01
        self.columns = nn.ModuleList(
            _Column(in_dim, col_out, e_i_ratio, dropout) for _ in range(num_columns)
        )
        if use_attention:
            self.attention_gates = nn.ModuleList(
                _AttentionGate(col_out) for _ in range(num_columns)
            )
        edge_index = small_world_graph(num_columns, graph_k, graph_p, seed=graph_seed)
        self.register_buffer("adj_struct", edge_index_to_dense(edge_index, num_columns))
        self.adj_weight = nn.Parameter(torch.randn(num_columns, num_columns) * 0.1)
        self.register_buffer("activity_avg", torch.ones(num_columns))
        self.intermediate = nn.Sequential(
            nn.Linear(col_out, col_out), nn.ReLU(), nn.Dropout(dropout), nn.LayerNorm(col_out)
        )
        self.top_fc = nn.Linear(col_out, top_out)

    def _homeostatic_scaling(self, h: Tensor) -> Tensor:
        with torch.no_grad():
            current = h.mean(dim=(0, 2))  # [C]
            rate = self.homeostatic_rate
            self.activity_avg = (1 - rate) * self.activity_avg + rate * current
        scale = 1.0 / (self.activity_avg.view(1, -1, 1) + 1e-6)
        return h * scale.detach()

    def _column_activations(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pre = torch.stack([column(x) for column in self.columns], dim=1)  # [B, C, D]
        adj = self.adj_struct * torch.sigmoid(self.adj_weight)  # [C, C]
        post = pre.clone()
        for _ in range(self.message_iters):
            if self.use_attention:
                updated = []
                for c in range(self.num_columns):
                    weights = self.attention_gates[c](post[:, c, :], post, adj[c])  # [B, C]
                    message = torch.einsum("bc,bcd->bd", weights, post)  # [B, D]
                    updated.append(F.relu(post[:, c, :] + 0.2 * message))
                post = torch.stack(updated, dim=1)  # [B, C, D]
            else:
                post = F.relu(post + 0.2 * torch.einsum("ij,bjd->bid", adj, post))
            post = 0.9 * post + 0.1 * pre
        return pre, self._homeostatic_scaling(post)

    def _readout(self, post: Tensor) -> Tensor:
        return self.top_fc(self.intermediate(post.mean(dim=1)))

    @torch.no_grad()
    def _hebb_update(self, pre: Tensor, post: Tensor) -> None:
        p = F.normalize(pre.mean(dim=(0, 2)), dim=0)  # [C]
        q = F.normalize(post.mean(dim=(0, 2)), dim=0)  # [C]
        delta = (torch.outer(p, q) - 0.1 * torch.outer(q, q)) * self.adj_struct
        self.adj_weight += self.plasticity_lr * delta
        self.adj_weight.copy_(torch.tanh(self.adj_weight))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, top_out]`` for ``x [B, in_dim]``."""
        return self._readout(self._column_activations(x)[1])

    def training_step(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Forward, cross-entropy, ``backward()``, Hebbian update; returns the loss."""
        x, y = batch
        pre, post = self._column_activations(x)
        loss = F.cross_entropy(self._readout(post), y)
        loss.backward()
        self._hebb_update(pre.detach(), post.detach())
        return loss
