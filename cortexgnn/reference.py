"""``DenseReference``: the article's ``BrainNetwork``, loop for loop, and weight transfer.

This module keeps the original computation on purpose: one module per column, a Python
loop over columns inside every message-passing iteration, a dense ``[C, C]`` adjacency and
a ``-1e9`` mask. It is the oracle that :class:`cortexgnn.CortexNet` is tested against and
the baseline the benchmarks time. Its ``state_dict`` keys and shapes match the article's
model, so an article checkpoint loads into it with ``strict=True``.

Weights move between the two layouts through one table, :func:`_shared_tensors`: the
article keeps one module per column and a dense ``[C, C]`` adjacency; ``CortexNet`` stacks
column weights into ``[branch, C, D, F]``, query/key into ``[C, D, D]`` and keeps edge
weights as ``[E]`` (the dense ``adj_weight`` read at ``adj[target, source]``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .graph import dense_to_edge_index, edge_index_to_dense, small_world_graph
from .nn.columns import EXCITATORY, INHIBITORY, PROJECTION
from .nn.config import ARTICLE_FIELDS, ModelConfig
from .nn.model import CortexNet

__all__ = [
    "DenseReference",
    "article_attention",
    "article_gate",
    "copy_cortexnet_weights",
    "copy_reference_weights",
]


def article_gate(
    center: Tensor, everyone: Tensor, query_weight: Tensor, key_weight: Tensor, row_mask: Tensor
) -> Tensor:
    """The article's ``AttentionGate``: one column's attention over *all* columns.

    The query projects the column, the key projects every column (the article's cost:
    ``C`` key projections per gate), non-neighbours are masked with ``-1e9``.

    Args:
        center: ``[B, D]`` the column's state.
        everyone: ``[B, C, D]`` every column's state.
        query_weight: ``[D, D]`` query (``nn.Linear`` layout, ``[out, in]``).
        key_weight: ``[D, D]`` key.
        row_mask: ``[C]`` the column's row of the adjacency (0: not a neighbour).

    Returns:
        ``[B, C]`` softmax weights.
    """
    q = F.linear(center, query_weight).unsqueeze(1)  # [B, 1, D]
    k = F.linear(everyone, key_weight)  # [B, C, D]: every column projected, for every gate
    scores = torch.bmm(q, k.transpose(1, 2)).squeeze(1) / math.sqrt(center.size(-1))  # [B, C]
    scores = scores.masked_fill(row_mask.unsqueeze(0) == 0, -1e9)
    return F.softmax(scores, dim=-1)


def article_attention(
    post: Tensor, query_weights: list[Tensor], key_weights: list[Tensor], adj: Tensor
) -> Tensor:
    """The article's attention messages, column by column in a Python loop.

    What one message-passing iteration of :class:`DenseReference` sums for each column
    (it then adds ``0.2 *`` this message and applies ReLU); the benchmarks time it as the
    article's loop.

    Args:
        post: ``[B, C, D]`` column states.
        query_weights: ``C`` query weights ``[D, D]``, one per column (pass one tensor
            ``C`` times for weights shared by all columns).
        key_weights: ``C`` key weights ``[D, D]``.
        adj: ``[C, C]`` adjacency; row ``c`` masks what column ``c`` attends over.

    Returns:
        ``[B, C, D]``: for every column, its attention-weighted sum of all columns.
    """
    messages = []
    for c in range(post.size(1)):
        weights = article_gate(post[:, c], post, query_weights[c], key_weights[c], adj[c])
        messages.append(torch.einsum("bc,bcd->bd", weights, post))  # [B, D]
    return torch.stack(messages, dim=1)  # [B, C, D]


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

    def forward(self, center: Tensor, everyone: Tensor, row_mask: Tensor) -> Tensor:
        """Attention of ``center [B, D]`` over ``everyone [B, C, D]``; returns ``[B, C]``."""
        return article_gate(center, everyone, self.query.weight, self.key.weight, row_mask)


class DenseReference(nn.Module):
    """The article's model as written: per-column modules and loops, dense adjacency.

    Args:
        config: the article's hyper-parameters (the first eleven :class:`ModelConfig`
            fields) and ``graph_seed``; the fix flags belong to ``CortexNet`` only.
        **settings: :class:`ModelConfig` fields that override ``config``.

    Shapes:
        - **input:** ``[B, in_dim]``.
        - **output:** logits ``[B, top_out]``.
    """

    def __init__(self, config: ModelConfig | None = None, **settings) -> None:
        super().__init__()
        config = (config or ModelConfig()).replace(**settings)
        extras = {
            name: value
            for name, value in config.to_dict().items()
            if name not in (*ARTICLE_FIELDS, "graph_seed") and value != getattr(ModelConfig, name)
        }
        if extras:
            raise ValueError(
                f"DenseReference runs the article's model as written and has none of the "
                f"settings {extras}: build a CortexNet for them"
            )
        self.config = config
        num_columns, in_dim, col_out = config.num_columns, config.in_dim, config.col_out
        message_iters, plasticity_lr = config.message_iters, config.plasticity_lr
        use_attention, e_i_ratio, dropout = config.use_attention, config.e_i_ratio, config.dropout
        graph_k, graph_p, top_out = config.graph_k, config.graph_p, config.top_out
        graph_seed = config.graph_seed
        self.hparams = config.article_hparams()
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

    def to_cortexnet(self, **settings) -> CortexNet:
        """A ``CortexNet`` with the same weights, graph and buffers.

        ``settings`` override fields of this model's config (e.g. a fix flag). Entries of
        the dense ``adj_weight`` outside the graph are dropped: they never influence an
        output.
        """
        config = self.config.replace(**settings)
        if config.shared_weights:
            raise ValueError(
                "the article's model has weights per column, which shared_weights=True has not: "
                "build CortexNet(shared_weights=True) and train it instead of converting"
            )
        model = CortexNet(config, edge_index=self.edge_index())
        copy_reference_weights(self, model.to(self.adj_weight.device))
        return model.train(self.training)

    @classmethod
    def from_cortexnet(cls, model: CortexNet) -> DenseReference:
        """A ``DenseReference`` with the weights, graph and buffers of ``model``.

        Off-graph ``adj_weight`` entries are 0. The reference runs the article's model: the
        config's fix flags do not carry over (``graph_seed`` is irrelevant: the graph is
        copied).
        """
        if model.config.shared_weights:
            raise ValueError(
                "a shared_weights CortexNet has one column where the article's model has one per "
                "column: it has no DenseReference form"
            )
        ref = cls(**model.config.article_hparams()).to(model.edge_weight.device)
        copy_cortexnet_weights(model, ref)
        return ref.train(model.training)

    def edge_index(self) -> Tensor:
        """The graph as ``edge_index [2, E]`` (sorted by target), read from ``adj_struct``."""
        return dense_to_edge_index(self.adj_struct)[0]

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
                gates = self.attention_gates
                messages = article_attention(
                    post, [g.query.weight for g in gates], [g.key.weight for g in gates], adj
                )  # [B, C, D]
                post = F.relu(post + 0.2 * messages)
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


def _shared_tensors(ref: DenseReference, model: CortexNet):
    """The weight table: ``(article tensor, CortexNet tensor)`` pairs of equal shape.

    The right-hand sides are views into ``CortexNet``'s stacked weights, so copying into
    either side writes the real parameter. Edge weights and the homeostasis buffer differ
    in layout (dense vs. per edge) and are handled by the two copy functions.
    """
    columns = model.columns
    for c, column in enumerate(ref.columns):
        yield column.fc_exc.weight, columns.weight[EXCITATORY, c]
        yield column.fc_inh.weight, columns.weight[INHIBITORY, c]
        if column.use_projection:
            yield column.projection.weight, columns.weight[PROJECTION, c]
        yield column.norm.weight, columns.norm_weight[c]
        yield column.norm.bias, columns.norm_bias[c]
    if model.conv is not None:
        for c, gate in enumerate(ref.attention_gates):
            yield gate.query.weight, model.conv.query_weight[c]
            yield gate.key.weight, model.conv.key_weight[c]
    for head in ("intermediate", "top_fc"):
        yield from zip(
            getattr(ref, head).state_dict().values(),
            getattr(model, head).state_dict().values(),
            strict=True,
        )


def _check_pair(ref: DenseReference, model: CortexNet) -> None:
    if model.homeostasis is None or ref.hparams != model.hparams:
        raise ValueError(
            "weights move only between a DenseReference and a CortexNet of the same "
            "hyper-parameters, with homeostasis (the reference always has it)"
        )


@torch.no_grad()
def copy_reference_weights(ref: DenseReference, model: CortexNet) -> None:
    """Copy every weight and buffer of ``ref`` into ``model`` (same graph), in place.

    Entries of ``ref.adj_weight`` outside the graph are dropped: they never influence an
    output.
    """
    _check_pair(ref, model)
    for article, ours in _shared_tensors(ref, model):
        ours.copy_(article)
    source, target = model.edge_index
    model.edge_weight.copy_(ref.adj_weight[target, source])
    model.homeostasis.activity_avg.copy_(ref.activity_avg)


@torch.no_grad()
def copy_cortexnet_weights(model: CortexNet, ref: DenseReference) -> None:
    """Copy every weight and buffer of ``model`` into ``ref``; off-graph ``adj_weight`` is 0."""
    _check_pair(ref, model)
    for article, ours in _shared_tensors(ref, model):
        article.copy_(ours)
    num_nodes = model.num_columns
    ref.adj_struct.copy_(edge_index_to_dense(model.edge_index, num_nodes))
    ref.adj_weight.copy_(edge_index_to_dense(model.edge_index, num_nodes, model.edge_weight))
    ref.activity_avg = model.homeostasis.activity_avg.clone()
