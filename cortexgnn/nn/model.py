"""``CortexNet``: columns -> attention message passing -> homeostasis -> readout."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..graph import check_edge_index, sort_by_target
from .columns import CorticalColumns
from .config import ModelConfig
from .conv import ColumnAttentionConv
from .plasticity import Homeostasis, SyncStatistics, hebbian_update_
from .topography import Patches, column_graph, grid_shape, image_shape, patch_stride

__all__ = ["CortexNet", "weighted_neighbour_sum"]

MESSAGE_GAIN = 0.2  # new_i = relu(h_i + 0.2 * m_i)
DECAY = 0.9  # h = 0.9 * h + 0.1 * pre after every iteration


def weighted_neighbour_sum(x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
    r"""Plain (non-attention) message :math:`m_i = \sum_{j \to i} w_{ji} x_j`.

    Args:
        x: ``[N, B, D]`` node states.
        edge_index: ``[2, E]``, checked by :func:`cortexgnn.graph.check_edge_index`.
        edge_weight: ``[E]``.

    Returns:
        ``[N, B, D]``.
    """
    edge_index = check_edge_index(edge_index, x.size(0))
    if edge_weight.shape != (edge_index.size(1),):
        raise ValueError(
            f"edge_weight must have shape [E] = ({edge_index.size(1)},), one weight per edge, "
            f"got {tuple(edge_weight.shape)}"
        )
    return _neighbour_sum(x, edge_index, edge_weight)


def settle(post: Tensor, message: Tensor, pre: Tensor) -> Tensor:
    """One synchronous update of the states ``post [N, B, D]`` by their ``message``.

    The article's ``h <- relu(h + 0.2 m)`` then ``h <- 0.9 h + 0.1 pre``: the one place the
    update is written (the sharded model calls it too).
    """
    return DECAY * F.relu(post + MESSAGE_GAIN * message) + (1.0 - DECAY) * pre  # [N, B, D]


def _neighbour_sum(x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
    """:func:`weighted_neighbour_sum` on a graph already checked (the model's loop).

    The messages of ``N`` edges at a time: the sum never holds more than one ``[N, B, D]``
    block of them (a graph of degree ``k`` would need ``k`` such blocks at once). A
    backward that builds a graph (``create_graph=True``) takes the differentiable form.
    """
    weight = edge_weight.to(x.dtype)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _ChunkedNeighbourSum.apply(x, edge_index, weight)
    return _sum_in_chunks(x, edge_index, weight)


def _chunks(num_edges: int, num_nodes: int) -> range:
    return range(0, num_edges, max(num_nodes, 1))


def _sum_in_chunks(x: Tensor, edge_index: Tensor, weight: Tensor) -> Tensor:
    """``out_i = sum_{j -> i} w_ji x_j``, ``N`` edges at a time (differentiable)."""
    out = torch.zeros_like(x)  # [N, B, D]
    for start in _chunks(edge_index.size(1), x.size(0)):
        source, target = edge_index[:, start : start + x.size(0)]  # [c] each
        w = weight[start : start + x.size(0)].view(-1, 1, 1)  # [c, 1, 1]
        out.index_add_(0, target, x.index_select(0, source) * w)  # [N, B, D]
    return out


class _ChunkedNeighbourSum(torch.autograd.Function):
    """The weighted sum with a backward that also works ``N`` edges at a time.

    ``grad_x_j = sum_{j -> i} w_ji grad_i`` and ``grad_w_ji = <grad_i, x_j>``; a backward
    with ``create_graph=True`` differentiates :func:`_sum_in_chunks` instead (its
    ``index_add`` chain is differentiable twice).
    """

    @staticmethod
    def forward(ctx, x, edge_index, weight):
        ctx.save_for_backward(x, edge_index, weight)
        with torch.no_grad():
            return _sum_in_chunks(x, edge_index, weight)

    @staticmethod
    def backward(ctx, grad_out):
        x, edge_index, weight = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward
            want_x, _, want_w = ctx.needs_input_grad
            inputs = [t for t, want in ((x, want_x), (weight, want_w)) if want]
            with torch.enable_grad():
                out = _sum_in_chunks(x, edge_index, weight)
                grads = list(torch.autograd.grad(out, inputs, grad_out, create_graph=True))
            return grads.pop(0) if want_x else None, None, grads.pop(0) if want_w else None
        want_x, _, want_w = ctx.needs_input_grad
        grad_x = torch.zeros_like(x) if want_x else None  # [N, B, D]
        grad_w = torch.empty_like(weight) if want_w else None  # [E]
        for start in _chunks(edge_index.size(1), x.size(0)):
            stop = start + x.size(0)
            source, target = edge_index[:, start:stop]  # [c] each
            grad_t = grad_out.index_select(0, target)  # [c, B, D]
            if want_w:
                grad_w[start:stop] = (grad_t * x.index_select(0, source)).sum((1, 2))  # [c]
            if want_x:
                grad_x.index_add_(0, source, grad_t * weight[start:stop].view(-1, 1, 1))
        return grad_x, None, grad_w


class CortexNet(nn.Module):
    r"""The article's ``BrainNetwork`` as a graph neural network on one static graph.

    ``pre = columns(x)`` gives node states ``[N, B, D]`` (with ``shared_weights``,
    :math:`\mathit{pre}_i = \operatorname{dropout}(\mathrm{column}(x) + b_i)`: one column
    module for all nodes plus a learned per-column bias ``b`` ``[N, D]``); then
    ``message_iters`` times

    .. math::
        h_i \leftarrow \operatorname{relu}\bigl(h_i + 0.2\, m_i(h)\bigr), \qquad
        h \leftarrow 0.9\, h + 0.1\, \mathit{pre},

    with :math:`m_i` the attention message of the model's :class:`ColumnAttentionConv`
    (``self.conv``, one query/key pair per column, or one for all columns with
    ``shared_weights``) or, with ``use_attention=False``,
    :math:`\sum_j \sigma(w_{ji}) h_j`. Then homeostatic scaling, a mean over columns and
    the article's readout MLP. The edge weights ``w`` (``[E]``, the article's
    ``adj_weight`` restricted to the graph) learn by the Hebbian rule in
    :meth:`training_step`.

    Two flags trade compute or precision for memory, for large column counts:
    ``recompute_messages`` keeps only each iteration's input state for backward and
    recomputes the iteration there (non-reentrant :func:`torch.utils.checkpoint.checkpoint`;
    the same gradients, dropout masks included); ``bf16_autocast`` runs the forward under
    bfloat16 autocast with bfloat16 node states (half the activation memory), while the
    parameters, the Hebbian and homeostasis statistics and the mean over columns stay
    float32, and the logits are returned in float32.

    Topographic columns (``patch_size``): column ``c`` reads only its patch of the image,
    ``pre = columns(patches(x))`` with :class:`~cortexgnn.nn.topography.Patches`; the graph
    is the one ``config.graph`` names (:func:`~cortexgnn.nn.topography.column_graph`); and
    with ``readout_column`` the readout MLP reads that one column's state instead of the
    mean over columns.

    Every setting is a field of :class:`ModelConfig`; the defaults reproduce the article
    exactly, quirks included (attention ignores the edge weights; homeostasis statistics
    move in eval mode), and each fix is one flag there.

    Args:
        config: the model's settings (default: the article's).
        edge_index: a custom graph ``[2, E]`` over ``num_columns`` nodes instead of the
            small-world one.
        sync_statistics: in training mode, average the homeostasis activity and the
            Hebbian per-node means over processes with this callable (see
            :mod:`cortexgnn.train.distributed`), so every replica keeps identical edge
            weights and buffers. Not saved in the ``state_dict``; ``None`` for one process.
        **settings: :class:`ModelConfig` fields that override ``config`` (a convenience:
            ``CortexNet(num_columns=16)``).

    Shapes:
        - **input:** ``[B, in_dim]`` (or ``[B, ...]`` with ``in_dim`` trailing elements).
        - **output:** logits ``[B, top_out]``; with ``return_states=True`` also the column
          outputs ``pre`` and the settled states ``post``, both ``[N, B, D]``.
    """

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        edge_index: Tensor | None = None,
        sync_statistics: SyncStatistics | None = None,
        **settings,
    ) -> None:
        super().__init__()
        if config is not None and not isinstance(config, ModelConfig):
            raise TypeError(
                f"config must be a ModelConfig, got {type(config).__name__}: pass settings "
                f"as keywords (CortexNet(num_columns=16)) or build ModelConfig(...)"
            )
        config = (config or ModelConfig()).replace(**settings)
        self.config = config
        num_nodes, dim = config.num_columns, config.col_out
        self.patches = None  # topographic columns: each reads its patch [N, B, P]
        if config.patch_size is not None:
            grid_shape(config)  # refuses a num_columns that does not fill the patch grid
            self.patches = Patches(image_shape(config), config.patch_size, patch_stride(config))
        if edge_index is None:
            edge_index = column_graph(config)
            if config.message_iters > 0 and edge_index.numel() == 0:
                what = f"graph_k={config.graph_k}"
                if config.graph != "small-world":
                    what = f"the {config.graph} graph of {num_nodes} columns ({what})"
                raise ValueError(
                    f"{what} gives a graph without edges, where no column has a neighbour to "
                    f"attend to: use graph_k >= 2 or more columns, or message_iters=0 for "
                    f"no message passing"
                )
        else:
            edge_index = sort_by_target(check_edge_index(edge_index, num_nodes), num_nodes)
            _check_graph_has_edges(edge_index, config)
        self.register_buffer("edge_index", edge_index)  # [2, E]
        self.sync_statistics = sync_statistics
        shared = config.shared_weights
        # Shared: one column for all nodes; dropout comes after the per-column bias, so
        # every column draws its own mask as a per-column model's columns do.
        self.columns = CorticalColumns(
            1 if shared else num_nodes,
            config.in_dim if config.patch_size is None else config.patch_size**2,
            dim,
            e_i_ratio=config.e_i_ratio,
            dropout=0.0 if shared else config.dropout,
        )
        self.column_bias = None
        if shared:  # what makes the columns differ: [N, D]
            self.column_bias = nn.Parameter(torch.randn(num_nodes, dim) * 0.1)
        self.conv = None  # built only where it runs: no parameters that nothing reads
        if config.use_attention and config.message_iters > 0:
            self.conv = ColumnAttentionConv(dim, dim, num_nodes=None if shared else num_nodes)
        self.edge_weight = nn.Parameter(torch.randn(edge_index.size(1)) * 0.1)  # [E]
        self.homeostasis = None
        if config.use_homeostasis:
            self.homeostasis = Homeostasis(
                num_nodes,
                freeze_in_eval=config.freeze_homeostasis_in_eval,
                min_divisor=config.homeostasis_min_divisor,
            )
        self.intermediate = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(config.dropout), nn.LayerNorm(dim)
        )
        self.top_fc = nn.Linear(dim, config.top_out)
        self.register_load_state_dict_pre_hook(_check_loaded_graph)

    @property
    def hparams(self) -> dict:
        """The article's ``hyperparams`` dict (the first eleven :class:`ModelConfig` fields)."""
        return self.config.article_hparams()

    @property
    def num_columns(self) -> int:
        """``N``, the number of columns (graph nodes)."""
        return self.config.num_columns

    def forward(
        self, x: Tensor, return_states: bool = False
    ) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Logits ``[B, top_out]``; with ``return_states`` also ``pre`` and ``post``."""
        x = self._checked_input(x)
        bf16 = self.config.bf16_autocast
        with torch.autocast(x.device.type, torch.bfloat16) if bf16 else contextlib.nullcontext():
            pre = self.column_states(x)  # [N, B, D]
            post = self.message_passing(pre)  # [N, B, D]
            if self.homeostasis is not None:
                post = self.homeostasis(post, self.sync_statistics)
            column = self.config.readout_column
            if column is not None:  # one column's state: only what reaches it is read
                pooled = post[column].float() if bf16 else post[column]  # [B, D]
            else:
                # A bfloat16 sum over ~1e6 columns would lose the mean's low bits: float32.
                pooled = post.mean(dim=0, dtype=torch.float32) if bf16 else post.mean(dim=0)
            logits = self.top_fc(self.intermediate(pooled))  # [B, top_out]
        logits = logits.float() if bf16 else logits
        return (logits, pre, post) if return_states else logits

    def column_states(self, x: Tensor) -> Tensor:
        """The column outputs ``pre [N, B, D]`` for the checked input ``x [B, in_dim]``.

        Per-column weights: the columns' own output. Shared weights: the one column's
        output ``[1, B, D]`` plus the per-column bias, then dropout. With ``bf16_autocast``
        the states are bfloat16 (the columns' LayerNorm runs in float32 under autocast).
        """
        if self.patches is not None:
            x = self.patches(x)  # [N, B, P]: column c reads only its patch x[c]
        pre = self.columns(x)  # [N, B, D], or [1, B, D] with shared whole-input weights
        dtype = torch.bfloat16 if self.config.bf16_autocast else pre.dtype
        pre = pre.to(dtype)
        if self.column_bias is not None:
            pre = pre + self.column_bias.to(dtype).unsqueeze(1)  # [N, B, D]
            pre = F.dropout(pre, p=self.config.dropout, training=self.training)
        return pre

    def message_passing(self, pre: Tensor) -> Tensor:
        """``message_iters`` synchronous updates of the states ``pre [N, B, D]``."""
        config, post = self.config, pre
        if config.message_iters == 0:
            return post
        weight = torch.sigmoid(self.edge_weight)  # [E]
        if self.conv is None:
            # the conv validates the graph on every call; without it, check it here once
            edge_index = check_edge_index(self.edge_index, config.num_columns)  # [2, E]
            step, weights = self._summed_iteration, (weight,)
        else:
            edge_index = self.edge_index
            gate = weight if config.attention_uses_edge_weight else None
            # [N, 1, D, D] (shared: [1, D, D]): the query/key weights, folded once per forward
            step, weights = self._attention_iteration, (self.conv.fold(), gate)
        recompute = config.recompute_messages and torch.is_grad_enabled()
        for _ in range(config.message_iters):
            if recompute:  # only post is kept per iteration; backward runs the step again
                post = checkpoint(step, post, pre, edge_index, *weights, use_reentrant=False)
            else:
                post = step(post, pre, edge_index, *weights)  # [N, B, D]
        return post

    def _attention_iteration(
        self, post: Tensor, pre: Tensor, edge_index: Tensor, fold: Tensor, gate: Tensor | None
    ) -> Tensor:
        """One update of the states ``post [N, B, D]`` with the attention message."""
        message = self.conv(post, edge_index, gate, fold=fold)  # [N, B, D]
        return settle(post, message, pre)

    @staticmethod
    def _summed_iteration(post: Tensor, pre: Tensor, edge_index: Tensor, weight: Tensor) -> Tensor:
        """One update of the states ``post [N, B, D]`` with the weighted-sum message."""
        message = _neighbour_sum(post, edge_index, weight)  # [N, B, D]
        return settle(post, message, pre)

    def _checked_input(self, x: Tensor) -> Tensor:
        """``x`` as ``[B, in_dim]`` of the weights' dtype, or a ``ValueError`` naming ``x``."""
        in_dim = self.config.in_dim
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor [B, {in_dim}], got {type(x).__name__}")
        if x.dim() > 2 and x[0].numel() == in_dim:
            x = x.flatten(1)
        if x.dim() != 2 or x.size(1) != in_dim:
            raise ValueError(
                f"x must be [B, in_dim={in_dim}] (or [B, ...] with {in_dim} elements per "
                f"sample), got shape {tuple(x.shape)}"
            )
        if x.size(0) == 0:
            raise ValueError("x is an empty batch (B=0): the homeostasis mean would be NaN")
        dtype = self.columns.weight.dtype
        if not x.is_floating_point():
            raise ValueError(
                f"x has dtype {x.dtype}: the model needs floating-point input of the weights' "
                f"dtype {dtype} (e.g. images as x.to({dtype}) / 255)"
            )
        if x.dtype != dtype:
            raise ValueError(
                f"x has dtype {x.dtype} but the model's weights are {dtype}: convert the input "
                f"(x.to({dtype})) or the model (model.to({x.dtype}))"
            )
        if self.config.check_finite_input and not bool(torch.isfinite(x).all()):
            raise ValueError(
                f"x contains {int((~torch.isfinite(x)).sum())} NaN/Inf values: clean the data"
            )
        return x

    def training_step(self, batch: tuple[Tensor, Tensor], forward=None) -> Tensor:
        """The article's contract: forward, cross-entropy, ``backward()``, Hebbian update.

        The caller steps the optimizer afterwards.

        Args:
            batch: ``(x [B, in_dim], y [B])``.
            forward: what runs the forward pass, called as ``forward(x, return_states=True)``;
                default the model itself. Data-parallel training passes the model's
                ``DistributedDataParallel`` wrapper, so DDP averages the gradients.

        Returns:
            The loss, detached.
        """
        x, y = batch
        x = self._checked_input(x)
        self._check_targets(y, x.size(0))
        logits, pre, post = (forward or self)(x, return_states=True)
        loss = F.cross_entropy(logits, y)
        if self.config.use_hebbian:
            # The rule reads per-column means only: reduce now, so the settled states need
            # not outlive the forward (at 10^6 columns each [N, B, D] state is 1-2 GB).
            # The mean of the [N, 1, 1] means is the mean itself, bit for bit.
            pre, post = (_column_means(t.detach()) for t in (pre, post))  # [N, 1, 1]
        loss.backward()
        if self.config.use_hebbian:
            self.hebbian_update(pre, post)
        return loss.detach()

    def _check_targets(self, y: Tensor, batch_size: int) -> None:
        num_classes = self.config.top_out
        if not isinstance(y, Tensor) or y.dtype != torch.long or y.dim() != 1:
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            dtype = y.dtype if isinstance(y, Tensor) else None
            raise ValueError(
                f"y must be class indices of shape [B] and dtype torch.long, got {shape} and "
                f"{dtype}: use y.long() (one-hot targets: y.argmax(-1))"
            )
        if y.numel() != batch_size:
            raise ValueError(f"y has {y.numel()} labels for a batch of {batch_size} inputs")
        if int(y.min()) < 0 or int(y.max()) >= num_classes:
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
            self.config.plasticity_lr,
            self.sync_statistics if self.training else None,
        )


def _column_means(states: Tensor) -> Tensor:
    """Mean of ``states [N, B, D]`` over batch and features, ``[N, 1, 1]``, float32 at least."""
    dtype = torch.promote_types(states.dtype, torch.float32)
    return states.mean(dim=(1, 2), keepdim=True, dtype=dtype)


def _check_loaded_graph(module: CortexNet, state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` pre-hook: what the constructor refuses is refused here too.

    A graph out of range, an empty graph while messages pass, non-finite edge weights.
    """
    edge_index = state_dict.get(prefix + "edge_index")
    if edge_index is not None:
        check_edge_index(edge_index, module.config.num_columns)
        _check_graph_has_edges(edge_index, module.config)
    weight = state_dict.get(prefix + "edge_weight")
    if isinstance(weight, Tensor) and weight.is_floating_point() and not weight.isfinite().all():
        raise ValueError(
            "edge_weight holds NaN or Inf: the Hebbian rule and the messages would spread it "
            "to every column; load weights from a run that stayed finite"
        )


def _check_graph_has_edges(edge_index: Tensor, config: ModelConfig) -> None:
    if config.message_iters > 0 and edge_index.numel() == 0:
        raise ValueError(
            f"the graph has no edges but message_iters={config.message_iters}: no column has "
            f"a neighbour to attend to; give a graph with edges, or message_iters=0"
        )
