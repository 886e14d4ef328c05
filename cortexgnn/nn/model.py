"""``CortexNet``: columns -> attention message passing -> homeostasis -> readout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..conversion import copy_cortexnet_weights, copy_reference_weights
from ..graph import dense_to_edge_index, small_world_graph, sort_by_target
from ..ops.attention import folded_attention
from ..reference import DenseReference
from .columns import CorticalColumns
from .conv import ColumnAttentionConv
from .plasticity import Homeostasis, SyncStatistics, hebbian_update_

__all__ = ["CortexNet", "weighted_neighbour_sum"]

MESSAGE_GAIN = 0.2  # new_i = relu(h_i + 0.2 * m_i)
DECAY = 0.9  # h = 0.9 * h + 0.1 * pre after every iteration


def weighted_neighbour_sum(x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
    r"""Plain (non-attention) message :math:`m_i = \sum_{j \to i} w_{ji} x_j`.

    Args:
        x: ``[N, B, D]`` node states.
        edge_index: ``[2, E]``.
        edge_weight: ``[E]``.

    Returns:
        ``[N, B, D]``.
    """
    source, target = edge_index
    messages = x.index_select(0, source) * edge_weight.view(-1, 1, 1)  # [E, B, D]
    return torch.zeros_like(x).index_add_(0, target, messages)


class CortexNet(nn.Module):
    r"""The article's ``BrainNetwork`` as a graph neural network on one static graph.

    ``pre = columns(x)`` gives node states ``[N, B, D]``; then ``message_iters`` times

    .. math::
        h_i \leftarrow \operatorname{relu}\bigl(h_i + 0.2\, m_i(h)\bigr), \qquad
        h \leftarrow 0.9\, h + 0.1\, \mathit{pre},

    with :math:`m_i` the attention message of :class:`ColumnAttentionConv` (per-column
    query/key) or, with ``use_attention=False``, :math:`\sum_j \sigma(w_{ji}) h_j`. Then
    homeostatic scaling, a mean over columns and the article's readout MLP. The edge weights
    ``w`` (``[E]``, the article's ``adj_weight`` restricted to the graph) learn by the Hebbian
    rule in :meth:`training_step`.

    The defaults reproduce the article exactly, quirks included (attention ignores the edge
    weights; homeostasis statistics move in eval mode). The keyword-only flags opt in to
    fixes.

    Args:
        num_columns, in_dim, col_out, top_out, graph_k, graph_p, message_iters,
        plasticity_lr, use_attention, e_i_ratio, dropout: as in the article (see
            :class:`DenseReference`).
        graph_seed: seed of the Watts-Strogatz graph (``None``: unseeded, as the article).
        edge_index: a custom graph ``[2, E]`` over ``num_columns`` nodes instead of the
            small-world one.
        attention_uses_edge_weight: gate attention coefficients by
            :math:`\sigma(w_{ji})`, so the Hebbian weights matter in attention mode.
        freeze_homeostasis_in_eval: keep homeostasis statistics fixed in eval mode.
        homeostasis_min_divisor: divide by ``max(activity_avg, m)`` instead of the article's
            ``activity_avg + 1e-6`` (see :class:`Homeostasis`); ``None`` keeps the article's.
        check_finite_input: raise ``ValueError`` on NaN/Inf in ``x`` (costs one reduction
            and, on a GPU, a device sync per call; off by default).
        sync_statistics: in training mode, average the homeostasis activity and the
            Hebbian per-node means over processes with this callable (see
            :mod:`cortexgnn.distributed`), so every replica keeps identical edge weights and
            buffers. Not saved in the ``state_dict``; ``None`` for one process.

    Shapes:
        - **input:** ``[B, in_dim]`` (or ``[B, ...]`` with ``in_dim`` trailing elements).
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
        *,
        graph_seed: int | None = None,
        edge_index: Tensor | None = None,
        attention_uses_edge_weight: bool = False,
        freeze_homeostasis_in_eval: bool = False,
        homeostasis_min_divisor: float | None = None,
        check_finite_input: bool = False,
        sync_statistics: SyncStatistics | None = None,
    ) -> None:
        super().__init__()
        self.hparams = dict(
            num_columns=num_columns, in_dim=in_dim, col_out=col_out, top_out=top_out,
            graph_k=graph_k, graph_p=graph_p, message_iters=message_iters,
            plasticity_lr=plasticity_lr, use_attention=use_attention, e_i_ratio=e_i_ratio,
            dropout=dropout,
        )  # fmt: skip
        if message_iters < 0:
            raise ValueError(f"message_iters must be >= 0, got {message_iters}")
        self.num_columns = num_columns
        self.in_dim = in_dim
        self.message_iters = message_iters
        self.plasticity_lr = plasticity_lr
        self.use_attention = use_attention
        self.attention_uses_edge_weight = attention_uses_edge_weight
        self.check_finite_input = check_finite_input
        self.sync_statistics = sync_statistics
        if edge_index is None:
            edge_index = small_world_graph(num_columns, graph_k, graph_p, seed=graph_seed)
        else:
            edge_index = self._checked_graph(edge_index, num_columns)
        self.register_buffer("edge_index", edge_index)  # [2, E]
        self.columns = CorticalColumns(
            num_columns, in_dim, col_out, e_i_ratio=e_i_ratio, dropout=dropout
        )
        self.conv = (
            ColumnAttentionConv(col_out, col_out, num_nodes=num_columns) if use_attention else None
        )
        self.edge_weight = nn.Parameter(torch.randn(edge_index.size(1)) * 0.1)  # [E]
        self.homeostasis = Homeostasis(
            num_columns,
            freeze_in_eval=freeze_homeostasis_in_eval,
            min_divisor=homeostasis_min_divisor,
        )
        self.intermediate = nn.Sequential(
            nn.Linear(col_out, col_out), nn.ReLU(), nn.Dropout(dropout), nn.LayerNorm(col_out)
        )
        self.top_fc = nn.Linear(col_out, top_out)

    @staticmethod
    def _checked_graph(edge_index: Tensor, num_nodes: int) -> Tensor:
        if not isinstance(edge_index, Tensor):
            raise TypeError(
                f"edge_index must be a torch.Tensor [2, E], got {type(edge_index).__name__}: "
                f"wrap it with torch.as_tensor(..., dtype=torch.long)"
            )
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(
                f"edge_index must have shape [2, E] (row 0 sources, row 1 targets), got "
                f"{tuple(edge_index.shape)}; an [E, 2] edge list needs .t()"
            )
        if edge_index.dtype != torch.long:
            raise ValueError(
                f"edge_index must be torch.long, got {edge_index.dtype}: use edge_index.long()"
            )
        if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
            raise ValueError(
                f"edge_index refers to nodes {int(edge_index.min())}..{int(edge_index.max())}"
                f" but the model has num_columns={num_nodes} (valid: 0..{num_nodes - 1}): "
                f"set num_columns to the graph's node count or relabel the graph"
            )
        return sort_by_target(edge_index, num_nodes)

    def _flatten_input(self, x: Tensor) -> Tensor:
        if x.dim() > 2 and x[0].numel() == self.in_dim:
            x = x.flatten(1)
        if x.dim() != 2 or x.size(1) != self.in_dim:
            raise ValueError(
                f"x must be [B, in_dim={self.in_dim}] (or [B, ...] with {self.in_dim} "
                f"elements per sample), got shape {tuple(x.shape)}"
            )
        if x.size(0) == 0:
            raise ValueError("x is an empty batch (B=0): the homeostasis mean would be NaN")
        weight = self.columns.weight
        if not x.is_floating_point():
            raise ValueError(
                f"x has dtype {x.dtype}: the model needs floating-point input of the weights' "
                f"dtype {weight.dtype} (e.g. images as x.to({weight.dtype}) / 255)"
            )
        if x.dtype != weight.dtype:
            raise ValueError(
                f"x has dtype {x.dtype} but the model's weights are {weight.dtype}: convert "
                f"the input (x.to({weight.dtype})) or the model (model.to({x.dtype}))"
            )
        if self.check_finite_input and not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"x contains {int((~torch.isfinite(x)).sum())} NaN/Inf values: clean the data"
            )
        return x

    def message(self, h: Tensor, fold: Tensor | None = None) -> Tensor:
        """Neighbour message ``m(h)`` for states ``h [N, B, D]``; returns ``[N, B, D]``.

        ``fold`` (``[N, D, D]``, from :meth:`folded_attention_weight`) takes the fast path:
        folded queries ``h_i Q_i^T K_i`` and :func:`folded_attention`, the same maths.
        """
        if self.conv is None:
            return weighted_neighbour_sum(h, self.edge_index, torch.sigmoid(self.edge_weight))
        gate = torch.sigmoid(self.edge_weight) if self.attention_uses_edge_weight else None
        if fold is None:
            return self.conv(h, self.edge_index, gate)
        query = torch.bmm(h, fold).unsqueeze(2)  # [N, B, 1, D]: K_i^T Q_i h_i as rows
        scale = self.conv.out_channels**-0.5
        return folded_attention(query, h, self.edge_index, gate, scale=scale).squeeze(2)

    def folded_attention_weight(self) -> Tensor | None:
        """``Q_i^T K_i`` for every column (``[N, D, D]``), or ``None`` off the fast path.

        Folded once per forward instead of two projections per message iteration; the fast
        path needs one head and no attention dropout (both the model's defaults).
        """
        conv = self.conv
        if conv is None or conv.heads != 1 or conv.num_nodes is None:
            return None
        if conv.dropout > 0 and self.training:
            return None
        return torch.bmm(conv.query_weight.transpose(1, 2), conv.key_weight)  # [N, D, D]

    def column_activations(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Column outputs and settled states: ``(pre, post)``, both ``[N, B, D]``."""
        pre = self.columns(self._flatten_input(x))  # [N, B, D]
        post = pre
        fold = self.folded_attention_weight() if self.message_iters else None  # [N, D, D]
        for _ in range(self.message_iters):
            post = F.relu(post + MESSAGE_GAIN * self.message(post, fold))  # synchronous update
            post = DECAY * post + (1.0 - DECAY) * pre
        return pre, self.homeostasis(post, self.sync_statistics)

    def readout(self, post: Tensor) -> Tensor:
        """Logits ``[B, top_out]`` from states ``[N, B, D]``."""
        return self.top_fc(self.intermediate(post.mean(dim=0)))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, top_out]``."""
        return self.readout(self.column_activations(x)[1])

    def training_step(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """The article's contract: forward, cross-entropy, ``backward()``, Hebbian update.

        The caller steps the optimizer afterwards. Returns the (detached-graph) loss.
        """
        x, y = batch
        self._check_targets(y, x.size(0) if x.dim() else 0)
        pre, post = self.column_activations(x)
        loss = F.cross_entropy(self.readout(post), y)
        loss.backward()
        self.hebbian_update(pre.detach(), post.detach())
        return loss

    def _check_targets(self, y: Tensor, batch_size: int) -> None:
        num_classes = self.top_fc.out_features
        if y.dtype != torch.long or y.dim() != 1:
            raise ValueError(
                f"y must be class indices of shape [B] and dtype torch.long, got shape "
                f"{tuple(y.shape)} and {y.dtype}: use y.long() (one-hot targets: y.argmax(-1))"
            )
        if y.numel() != batch_size:
            raise ValueError(f"y has {y.numel()} labels for a batch of {batch_size} inputs")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(
                f"y holds labels {int(y.min())}..{int(y.max())} but the model has "
                f"top_out={num_classes} classes (valid: 0..{num_classes - 1}): raise top_out"
            )

    def hebbian_update(self, pre: Tensor, post: Tensor) -> None:
        """Apply the Hebbian rule to ``edge_weight`` from ``pre``/``post`` ``[N, B, D]``."""
        hebbian_update_(
            self.edge_weight.data,
            self.edge_index,
            pre,
            post,
            self.plasticity_lr,
            self.sync_statistics if self.training else None,
        )

    @classmethod
    def from_reference(cls, ref: DenseReference, **flags) -> CortexNet:
        """A ``CortexNet`` with the same weights, graph and buffers as ``ref``.

        ``flags`` are this class's keyword-only options (e.g. ``freeze_homeostasis_in_eval``).
        Entries of the reference's dense ``adj_weight`` outside the graph are dropped: they
        never influence an output.
        """
        edge_index, _ = dense_to_edge_index(ref.adj_struct)
        model = cls(**ref.hparams, edge_index=edge_index, **flags).to(ref.adj_weight.device)
        copy_reference_weights(ref, model)
        return model.train(ref.training)

    def to_reference(self) -> DenseReference:
        """A ``DenseReference`` with the same weights, graph and buffers (off-graph weights 0)."""
        ref = DenseReference(**self.hparams).to(self.edge_weight.device)
        copy_cortexnet_weights(self, ref)
        return ref.train(self.training)
