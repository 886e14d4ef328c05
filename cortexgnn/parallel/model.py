"""``ShardedCortexNet``: the per-column model with its columns split over processes.

Each process owns a contiguous range of ``n`` of the ``N`` columns (see
:mod:`cortexgnn.parallel.plan`) and holds only what belongs to them: their column weights
(a :class:`~cortexgnn.CorticalColumns` of ``n`` columns), their query/key pairs (a
:class:`~cortexgnn.ColumnAttentionConv` with ``num_nodes=n``), their homeostasis
statistics, and the Hebbian weights of the edges into them; an optimizer built on
``parameters()`` holds only their moments. The readout (``intermediate``, ``top_fc``) is
small and replicated. Every process gets the whole batch.

One forward pass, per process:

- ``pre = columns(x)``: the ``n`` local states ``[n, B, D]``;
- every message iteration receives the halo ``[R, B, D]`` with one ``all_to_all_single``
  and attends over ``[local, halo]`` with the local graph (targets local, so the softmax
  is too): the layer is the conv itself, called bipartite;
- homeostasis on the local columns (its per-column statistics are local);
- the mean over columns is an all-reduce of the local sums; the readout runs on every
  process on the same input, so every process holds the same logits and loss.

The Hebbian rule needs the L2 norms of the ``[N]`` mean activities (one all-reduce of two
sums of squares) and the post-synaptic means of the halo sources (a halo exchange of
``[n]`` numbers); the result equals one process's to rounding.

Training-mode dropout inside the columns draws, with more than one process, from a
per-process stream (seeded from the shared one), so its masks differ from a single
process's; the readout's dropout draws the same mask on every process.

With ``shared_weights`` the one column module and the one query/key pair are replicated
and only the per-column bias is split; each process's backward then holds the gradient of
its own columns' use of the shared weights, and :meth:`ShardedCortexNet.sync_gradients`
(called by ``training_step``) sums it over the processes in one all-reduce. Topographic
columns (``patch_size``) read their own patches; ``readout_column`` reads one column's
state, which its owner contributes to a sum over processes (zeros elsewhere), so every
process runs the same graph of operations.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
from dataclasses import fields

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..nn.columns import CorticalColumns
from ..nn.config import ARTICLE_FIELDS, ModelConfig
from ..nn.conv import ColumnAttentionConv
from ..nn.model import CortexNet, settle, weighted_neighbour_sum
from ..nn.plasticity import Homeostasis
from .collectives import HaloTraffic, exchange_halo, sum_over_shards
from .plan import HaloPlan, halo_plan

__all__ = [
    "SHARDED_FIELDS",
    "SHARD_DIMS",
    "SHARED_SHARD_DIMS",
    "ShardedCortexNet",
    "check_shardable",
    "consolidate",
    "shard_dims",
]

#: The dimension over columns of each column-sharded entry of the state dict. The edge
#: weights are sharded by edges (each process's slice of the target-sorted list); the
#: readout is replicated.
SHARD_DIMS = {
    "columns.weight": 1,
    "columns.norm_weight": 0,
    "columns.norm_bias": 0,
    "conv.query_weight": 0,
    "conv.key_weight": 0,
    "homeostasis.activity_avg": 0,
    "edge_weight": 0,
}

#: With ``shared_weights`` only the per-column entries are sharded; the one column module
#: and the one query/key pair are replicated.
SHARED_SHARD_DIMS = {"column_bias": 0, "homeostasis.activity_avg": 0, "edge_weight": 0}

#: The ModelConfig fields the sharded model implements (all of today's); any other field
#: (an option added later) must keep its default.
SHARDED_FIELDS = frozenset(ARTICLE_FIELDS) | {
    "graph_seed",
    "attention_uses_edge_weight",
    "freeze_homeostasis_in_eval",
    "homeostasis_min_divisor",
    "use_homeostasis",
    "use_hebbian",
    "check_finite_input",
    "shared_weights",
    "patch_size",
    "patch_stride",
    "image_height",
    "graph",
    "readout_column",
    "recompute_messages",
    "bf16_autocast",
}


def shard_dims(shared_weights: bool) -> dict[str, int]:
    """The column dimension of each sharded state-dict entry (others are replicated)."""
    return SHARED_SHARD_DIMS if shared_weights else SHARD_DIMS


def check_shardable(config: ModelConfig) -> None:
    """Refuse model settings the column-sharded model does not implement.

    Raises:
        ValueError: naming the settings, for any field outside :data:`SHARDED_FIELDS` that
            is not at its default (every field of today's ``ModelConfig`` is implemented;
            an option added later is refused until the sharded model implements it).
    """
    unsupported = [
        f.name
        for f in fields(ModelConfig)
        if f.name not in SHARDED_FIELDS and getattr(config, f.name) != f.default
    ]
    if unsupported:
        raise ValueError(
            f"column sharding does not support the settings {unsupported} yet: drop them, or "
            f"train without --column-shards"
        )


def _shard_context(group: dist.ProcessGroup | None) -> tuple[int, int]:
    if not dist.is_initialized():
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


class ShardedCortexNet(nn.Module):
    r"""The per-column :class:`~cortexgnn.CortexNet`, one contiguous range of columns here.

    The maths is :class:`~cortexgnn.CortexNet`'s (see the module docstring for how it is
    split); with the same seed the sharded model starts from the same parameters, and its
    outputs and updates equal one process's to float rounding.

    Build it on every process of ``group`` (after ``torch.distributed.init_process_group``;
    without one it is a single shard) with the same global RNG state: it builds the whole
    :class:`~cortexgnn.CortexNet` once, keeps its own columns' slices and frees the rest (the
    transient cost is the full model's weights, not its optimizer state). Or slice an
    existing model with :meth:`from_model`.

    Args:
        config: the model's settings (:func:`check_shardable` must accept them).
        edge_index: a custom graph ``[2, E]``, identical on every process.
        group: the column-sharding process group; ``None`` is the default group.

    Shapes:
        - **input:** ``[B, in_dim]``, the whole batch, identical on every process.
        - **output:** logits ``[B, top_out]`` (identical on every process); with
          ``return_states=True`` also the local ``pre`` and ``post``, ``[n, B, D]``.
    """

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        edge_index: Tensor | None = None,
        group: dist.ProcessGroup | None = None,
    ) -> None:
        config = config or ModelConfig()
        check_shardable(config)
        full = CortexNet(config, edge_index=edge_index)
        super().__init__()
        self._take_shard(full, group)

    @classmethod
    def from_model(
        cls, model: CortexNet, group: dist.ProcessGroup | None = None
    ) -> ShardedCortexNet:
        """This process's shard of ``model`` (copied; ``model`` is left as it is)."""
        check_shardable(model.config)
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self._take_shard(model, group)
        return self

    @torch.no_grad()
    def _take_shard(self, full: CortexNet, group: dist.ProcessGroup | None) -> None:
        rank, world_size = _shard_context(group)
        config = self.config = full.config
        self.group = group
        self.plan: HaloPlan = halo_plan(full.edge_index, config.num_columns, world_size, rank)
        #: the whole graph ``[2, E]`` (what a consolidated checkpoint stores)
        self.global_edge_index = full.edge_index.clone()
        self.traffic = HaloTraffic()
        _check_same_graph(self.global_edge_index, group, world_size)
        n, dim, shared = self.plan.num_local, config.col_out, config.shared_weights
        self.shard_dims = shard_dims(shared)
        self.patches = copy.deepcopy(full.patches)  # topographic columns: no parameters
        reads = config.in_dim if config.patch_size is None else config.patch_size**2
        # Layers of n columns (shared: the one column), in a forked RNG so that building
        # them leaves the shared stream where CortexNet leaves it; their values come from
        # full's slices below.
        with torch.random.fork_rng(devices=[]):
            self.columns = CorticalColumns(
                1 if shared else n, reads, dim, e_i_ratio=config.e_i_ratio,
                dropout=0.0 if shared else config.dropout,
            )  # fmt: skip
            self.conv = None
            if full.conv is not None:
                self.conv = ColumnAttentionConv(dim, dim, num_nodes=None if shared else n)
        self.column_bias = nn.Parameter(torch.empty(n, dim)) if shared else None  # [n, D]
        self.edge_weight = nn.Parameter(torch.empty(self.edge_index_size()))  # [E_local]
        self.homeostasis = None
        if full.homeostasis is not None:
            self.homeostasis = Homeostasis(
                n,
                freeze_in_eval=config.freeze_homeostasis_in_eval,
                min_divisor=config.homeostasis_min_divisor,
            )
        self.intermediate = copy.deepcopy(full.intermediate)
        self.top_fc = copy.deepcopy(full.top_fc)
        self.to(full.edge_weight)  # the full model's dtype and device
        # the rows to send, where the states are (no host-to-device copy per exchange)
        self.plan = dataclasses.replace(
            self.plan, send_index=self.plan.send_index.to(full.edge_weight.device)
        )
        # the local graph derives from the plan, so it is not saved: checkpoints hold the whole
        self.register_buffer("edge_index", self.plan.edge_index.to(full.edge_index.device),
                             persistent=False)  # fmt: skip
        self.load_state_dict(self.shard_of(full.state_dict()))

    def edge_index_size(self) -> int:
        """``E_local``: the edges into this process's columns."""
        first, last = self.plan.edge_range
        return last - first

    def shard_of(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """This process's slices of a whole :class:`~cortexgnn.CortexNet` state dict."""
        lo, hi = self.plan.start, self.plan.start + self.plan.num_local
        first, last = self.plan.edge_range
        local = {}
        for name in self.state_dict():
            value, dim = state[name], self.shard_dims.get(name)
            if name == "edge_weight":
                value = value[first:last]
            elif dim is not None:
                value = value.narrow(dim, lo, hi - lo)
            local[name] = value
        return local

    @property
    def num_columns(self) -> int:
        """``N``, all columns (of every process)."""
        return self.config.num_columns

    def forward(
        self, x: Tensor, return_states: bool = False
    ) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Logits ``[B, top_out]``; with ``return_states`` also the local ``pre``/``post``."""
        x = self._checked_input(x)
        bf16 = self.config.bf16_autocast
        with torch.autocast(x.device.type, torch.bfloat16) if bf16 else contextlib.nullcontext():
            pre = self.column_states(x)  # [n, B, D]
            post = self.message_passing(pre)  # [n, B, D]; bf16: the halo travels in bf16
            if self.homeostasis is not None:
                post = self.homeostasis(post)  # per-column statistics: all local
            # float32 sums of bfloat16 states, as CortexNet's float32 mean
            states = post.float() if bf16 else post  # [n, B, D]
            column = self.config.readout_column
            if column is None:
                pooled = sum_over_shards(states.sum(dim=0), self.group) / self.num_columns
            else:  # the owner's row, zeros elsewhere: one graph of operations everywhere
                owner = torch.zeros(post.size(0), dtype=states.dtype, device=post.device)
                if 0 <= column - self.plan.start < post.size(0):
                    owner[column - self.plan.start] = 1.0  # [n]
                pooled = sum_over_shards(torch.einsum("n,nbd->bd", owner, states), self.group)
            logits = self.top_fc(self.intermediate(pooled))  # [B, top_out]
        logits = logits.float() if bf16 else logits
        return (logits, pre, post) if return_states else logits

    def column_states(self, x: Tensor) -> Tensor:
        """The local columns' outputs ``pre [n, B, D]`` for the checked input ``x [B, F]``.

        :meth:`CortexNet.column_states <cortexgnn.CortexNet.column_states>` on this
        process's columns; with several processes their dropout draws its own stream.
        """
        with self._own_dropout_stream(x):
            if self.patches is not None:  # every column's patch, then this process's
                lo = self.plan.start
                x = self.patches(x)[lo : lo + self.plan.num_local]  # [n, B, P]
            pre = self.columns(x)  # [n, B, D], or [1, B, D] shared on the whole input
            pre = pre.to(torch.bfloat16) if self.config.bf16_autocast else pre
            if self.column_bias is not None:
                pre = pre + self.column_bias.to(pre.dtype).unsqueeze(1)  # [n, B, D]
                pre = F.dropout(pre, p=self.config.dropout, training=self.training)
            return pre

    def _own_dropout_stream(self, x: Tensor):
        """A per-process RNG stream for the columns' dropout (with several processes)."""
        if not (self.training and self.config.dropout > 0 and self.plan.world_size > 1):
            return contextlib.nullcontext()
        seed = int(torch.randint(2**62, ()))  # one draw of the shared stream, equal everywhere
        devices = [x.device] if x.device.type == "cuda" else []

        @contextlib.contextmanager
        def forked():
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed + self.plan.rank)
                yield

        return forked()

    def replicated_in_columns(self) -> list[nn.Parameter]:
        """The replicated parameters that each process uses on its own columns only.

        With ``shared_weights``: the one column module and the one query/key pair; each
        process's backward holds its columns' part of their gradient. (The readout is
        replicated too, but every process computes the whole of it.)
        """
        if not self.config.shared_weights:
            return []
        modules = [self.columns] + ([self.conv] if self.conv is not None else [])
        return [p for module in modules for p in module.parameters()]

    @torch.no_grad()
    def sync_gradients(self) -> None:
        """Sum the gradients of :meth:`replicated_in_columns` over the processes.

        ``training_step`` calls it after ``backward()``; a training loop of one's own must
        call it between ``backward()`` and the optimizer step (with shared weights).
        """
        params = [p for p in self.replicated_in_columns() if p.grad is not None]
        if not params or self.plan.world_size == 1:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])  # one all-reduce
        dist.all_reduce(flat, group=self.group)
        for p, grad in zip(params, flat.split([p.numel() for p in params]), strict=True):
            p.grad.copy_(grad.view_as(p.grad))

    def message_passing(self, pre: Tensor) -> Tensor:
        """``message_iters`` synchronous updates of the local states ``pre [n, B, D]``."""
        config, post = self.config, pre
        if config.message_iters == 0:
            return post
        weight = torch.sigmoid(self.edge_weight)  # [E_local]
        fold = self.conv.fold() if self.conv is not None else None  # [n, 1, D, D]
        gate = weight if config.attention_uses_edge_weight else None
        recompute = config.recompute_messages and torch.is_grad_enabled()
        for _ in range(config.message_iters):
            if recompute:  # only post is kept; backward exchanges the halo again and reruns
                post = checkpoint(self._iteration, post, pre, weight, fold, gate,
                                  use_reentrant=False)  # fmt: skip
            else:
                post = self._iteration(post, pre, weight, fold, gate)  # [n, B, D]
        return post

    def _iteration(
        self, post: Tensor, pre: Tensor, weight: Tensor, fold: Tensor | None, gate: Tensor | None
    ) -> Tensor:
        """One update of the local states: receive the halo, attend (or sum), settle."""
        halo = exchange_halo(post, self.plan, self.group, self.traffic)  # [R, B, D]
        sources = torch.cat([post, halo])  # [n + R, B, D]
        if self.conv is None:
            message = weighted_neighbour_sum(sources, self.edge_index, weight)[: post.size(0)]
        else:
            message = self.conv((sources, post), self.edge_index, gate, fold=fold)
        return settle(post, message, pre)  # [n, B, D]

    def _checked_input(self, x: Tensor) -> Tensor:
        """``x`` as ``[B, in_dim]``, checked as :class:`~cortexgnn.CortexNet` checks it."""
        return CortexNet._checked_input(self, x)  # reads only config and the column weights

    def training_step(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """:meth:`CortexNet.training_step <cortexgnn.CortexNet.training_step>`, sharded.

        Forward on the whole batch, cross-entropy, ``backward()``, Hebbian update of the
        local edges; the caller steps the optimizer. Returns the loss (detached), the same
        on every process.
        """
        x, y = batch
        x = self._checked_input(x)
        CortexNet._check_targets(self, y, x.size(0))
        logits, pre, post = self(x, return_states=True)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        self.sync_gradients()  # shared weights: every process's columns' part
        if self.config.use_hebbian:
            self.hebbian_update(pre.detach(), post.detach())
        return loss.detach()

    @torch.no_grad()
    def hebbian_update(self, pre: Tensor, post: Tensor) -> None:
        r"""The rule of :func:`~cortexgnn.hebbian_update_` on the local edges.

        :math:`\Delta_{ji} = (p_i - 0.1 q_i) q_j` with :math:`p, q` the ``[N]`` mean
        activities normalised over *all* columns: the norms come from an all-reduce of
        the local sums of squares, :math:`q_j` of remote sources from a halo exchange.
        """
        # float32 at least: bfloat16 states keep their statistics in float32
        dtype = torch.promote_types(pre.dtype, torch.float32)
        means = torch.stack([pre.mean(dim=(1, 2), dtype=dtype), post.mean(dim=(1, 2), dtype=dtype)])
        squares = sum_over_shards(means.square().sum(dim=1), self.group)  # [2]
        p, q = means / squares.sqrt().clamp_min(1e-12).unsqueeze(1)  # F.normalize's eps
        q_halo = exchange_halo(q.unsqueeze(1), self.plan, self.group).squeeze(1)  # [R]
        source, target = self.edge_index
        delta = (p[target] - 0.1 * q[target]) * torch.cat([q, q_halo])[source]  # [E_local]
        self.edge_weight.add_(delta, alpha=self.config.plasticity_lr).tanh_()

    def extra_repr(self) -> str:
        plan = self.plan
        return (
            f"rank={plan.rank}/{plan.world_size}, columns={plan.start}.."
            f"{plan.start + plan.num_local - 1} of {self.num_columns}, halo={plan.num_halo}"
        )


def _check_same_graph(edge_index: Tensor, group, world_size: int) -> None:
    """Refuse processes that built different graphs (a clear error instead of a hang)."""
    if world_size == 1:
        return
    signature = hashlib.sha256(edge_index.cpu().numpy().tobytes()).hexdigest()
    signatures: list = [None] * world_size
    dist.all_gather_object(signatures, signature, group=group)
    if any(other != signature for other in signatures):
        raise ValueError(
            "the processes built different column graphs: build the model with the same "
            "graph_seed (and the same custom edge_index, if any) on every process"
        )


def consolidate(
    states: list[dict[str, Tensor]], edge_index: Tensor, shared_weights: bool | None = None
) -> dict[str, Tensor]:
    """One :class:`~cortexgnn.CortexNet` state dict from every shard's, in rank order.

    Args:
        states: ``ShardedCortexNet.state_dict()`` of ranks ``0..P-1``.
        edge_index: the whole graph ``[2, E]`` (``global_edge_index`` of any shard).
        shared_weights: whether the model shares its column weights (only the per-column
            bias is split then); ``None``: whether the states hold ``column_bias``.

    Returns:
        What ``CortexNet(config).load_state_dict`` takes.
    """
    if shared_weights is None:
        shared_weights = "column_bias" in states[0]
    dims = shard_dims(shared_weights)  # shared weights: only the bias and the rest split
    full = {}
    for name, value in states[0].items():
        dim = dims.get(name)
        full[name] = value if dim is None else torch.cat([s[name] for s in states], dim=dim)
    full["edge_index"] = edge_index
    return full
