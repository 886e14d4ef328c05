"""Data-parallel training of ``CortexNet`` over several processes (``torch.distributed``).

Each process (replica) holds the whole model and ``B`` samples of every global batch of
``P * B``. DDP averages the gradients, but this model's state also moves outside autograd:
homeostasis (``activity_avg``) and the Hebbian rule (``edge_weight``) use per-column means
over ``(batch, features)``. With equal shard sizes the global mean is the average of the
shard means, so one all-reduce of the ``[N]`` mean vectors (:func:`all_reduce_mean`, the
model's ``sync_statistics`` hook) gives every replica the update of a single process on the
concatenated batch: replicas stay identical without DDP's per-step buffer broadcast.

Launch with ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). The library core never imports this module.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..nn.model import CortexNet

__all__ = [
    "DistributedContext",
    "launched_by_torchrun",
    "join_torchrun",
    "init_from_env",
    "all_reduce_mean",
    "broadcast_state_",
    "distribute",
    "distributed_training_step",
    "shard_batch",
    "sharded_training_step",
    "sharded_step_function",
]

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job.

    Attributes:
        rank: global rank in ``0..world_size-1``.
        world_size: number of processes ``P``.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process computes on.
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the process that logs and writes checkpoints)."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun`` (``WORLD_SIZE > 1``)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def join_torchrun(device: torch.device) -> DistributedContext | None:
    """Join ``torchrun``'s process group if this process is one of several, else ``None``.

    The backend follows ``device`` (NCCL for CUDA, gloo for CPU); the group is destroyed
    when the process exits.
    """
    if not launched_by_torchrun():
        return None
    context = init_from_env("nccl" if device.type == "cuda" else "gloo")
    atexit.register(dist.destroy_process_group)
    return context


def init_from_env(backend: str | None = None) -> DistributedContext:
    """Join the process group described by ``torchrun``'s environment variables.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default ``"nccl"`` when CUDA is available, else
            ``"gloo"``. With NCCL each process uses ``cuda:LOCAL_RANK``.

    Returns:
        The :class:`DistributedContext` of this process. Calling it again in an initialised
        process returns the context without re-initialising.

    Raises:
        RuntimeError: if a ``torchrun`` variable is missing (the process was not launched
            by ``torchrun`` or an equivalent launcher).
    """
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"environment variables {missing} are not set: launch with "
            f"`torchrun --nproc_per_node P -m cortexgnn train ...` (or set RANK, WORLD_SIZE, "
            f"LOCAL_RANK, MASTER_ADDR and MASTER_PORT yourself)"
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' (CPU) or 'nccl' (CUDA), got {backend!r}")
    local_rank = int(os.environ["LOCAL_RANK"])
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://")
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=device,
        backend=dist.get_backend(),
    )


def all_reduce_mean(tensor: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    r"""Average of ``tensor`` over the processes of ``group``: :math:`\frac1P \sum_r t_r`.

    Every process must call it, in the same order, with a tensor of the same shape. The
    input is left unchanged.

    Args:
        tensor: any shape, on the backend's device.
        group: process group; ``None`` is the default (world) group.

    Returns:
        A new tensor of the same shape, identical on every process.
    """
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)  # AVG exists for NCCL only
    return total.div_(dist.get_world_size(group))


@torch.no_grad()
def broadcast_state_(
    module: nn.Module, src: int = 0, group: dist.ProcessGroup | None = None
) -> nn.Module:
    """Copy every parameter and buffer of ``module`` from rank ``src`` to all processes.

    Shapes are compared first, so replicas built differently (e.g. other hyper-parameters,
    or a custom graph with another edge count) get a clear error instead of a hang.

    Args:
        module: the model, built on every process.
        src: the rank whose values win.
        group: process group; ``None`` is the default group.

    Returns:
        ``module``, updated in place.

    Raises:
        ValueError: if the replicas' parameter/buffer names or shapes differ.
    """
    tensors = dict(module.named_parameters())
    tensors.update(module.named_buffers())
    layout = sorted((name, tuple(t.shape), str(t.dtype)) for name, t in tensors.items())
    layouts: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(layouts, layout, group=group)
    if any(other != layout for other in layouts):
        raise ValueError(
            "the replicas hold models of different shapes: build the model from the same "
            "hyper-parameters on every process (and the same custom edge_index, if any)"
        )
    for name in sorted(tensors):
        dist.broadcast(tensors[name].data, src=src, group=group)
    return module


class _TrainingForward(nn.Module):
    """Runs ``CortexNet`` through DDP and also returns the Hebbian inputs ``pre``/``post``."""

    def __init__(self, model: CortexNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pre, post = self.model.column_activations(x)  # [N, B, D] each
        return self.model.readout(post), pre.detach(), post.detach()


def _edge_weight_has_gradient(model: CortexNet) -> bool:
    # In the article's attention mode the edge weights never reach the output: only the
    # Hebbian rule moves them, so DDP must not wait for their gradient.
    return not model.use_attention or model.attention_uses_edge_weight


def distribute(
    model: CortexNet,
    *,
    device_ids: list[int] | None = None,
    group: dist.ProcessGroup | None = None,
) -> DistributedDataParallel:
    """Wrap ``model`` for data-parallel training with synchronised plasticity statistics.

    Broadcasts rank 0's parameters and buffers (graph included), installs
    :func:`all_reduce_mean` as ``model.sync_statistics`` and returns a
    :class:`~torch.nn.parallel.DistributedDataParallel` whose forward returns
    ``(logits, pre, post)``; use it with :func:`distributed_training_step`. The optimizer
    takes ``model.parameters()`` as usual. Save ``model`` (not the wrapper) on rank 0.

    Args:
        model: a ``CortexNet`` already on this process's device.
        device_ids: ``[local_rank]`` for one GPU per process; ``None`` on CPU.
        group: process group; ``None`` is the default group.

    Returns:
        The DDP wrapper.
    """
    if not isinstance(model, CortexNet):
        raise TypeError(
            f"distributed training supports CortexNet, got {type(model).__name__}: the dense "
            f"reference (--model reference) runs in one process"
        )
    broadcast_state_(model, group=group)
    model.sync_statistics = (
        all_reduce_mean if group is None else functools.partial(all_reduce_mean, group=group)
    )
    wrapper = _TrainingForward(model)
    if not _edge_weight_has_gradient(model):
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            wrapper, ["model.edge_weight"]
        )
    # Buffers are kept equal by sync_statistics; DDP's per-forward broadcast from rank 0
    # would only mask a missing synchronisation. Its name changed in recent PyTorch.
    parameters = inspect.signature(DistributedDataParallel).parameters
    no_buffer_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in parameters
        else {"broadcast_buffers": False}
    )
    return DistributedDataParallel(
        wrapper, device_ids=device_ids, process_group=group, **no_buffer_sync
    )


def distributed_training_step(
    ddp_model: DistributedDataParallel, batch: tuple[Tensor, Tensor]
) -> Tensor:
    """:meth:`CortexNet.training_step` for one replica: forward, loss, backward, Hebbian.

    Gradients are averaged by DDP during ``backward()``; the homeostasis and Hebbian
    statistics by ``sync_statistics``. The caller steps the optimizer afterwards. Every
    process must pass a batch of the same size for the result to equal a single process
    on the concatenated batch (``DistributedSampler`` pads the shards to equal length).

    Args:
        ddp_model: the wrapper returned by :func:`distribute`.
        batch: ``(x [B, in_dim], y [B])``, this process's shard.

    Returns:
        This process's loss (detached).
    """
    x, y = batch
    logits, pre, post = ddp_model(x)  # [B, top_out], [N, B, D], [N, B, D]
    loss = F.cross_entropy(logits, y)
    loss.backward()
    ddp_model.module.model.hebbian_update(pre, post)
    return loss.detach()


def shard_batch(batch: tuple[Tensor, ...], context: DistributedContext) -> tuple[Tensor, ...]:
    """This process's contiguous share of a global batch (every tensor split along dim 0).

    Shares differ by at most one sample when ``P`` does not divide the batch size; only equal
    shares reproduce a single process exactly (see :func:`distributed_training_step`).

    Args:
        batch: tensors ``[P * B, ...]``, identical on every process.
        context: from :func:`init_from_env`.

    Returns:
        The tensors' rows ``[rank * B, (rank + 1) * B)``.
    """
    return tuple(t.tensor_split(context.world_size)[context.rank] for t in batch)


def sharded_training_step(
    ddp_model: DistributedDataParallel,
    batch: tuple[Tensor, Tensor],
    context: DistributedContext,
) -> Tensor:
    """A training step on the *global* batch: train on this shard, return the global loss.

    Every process passes the same global batch (same data order on every rank, e.g. one
    shuffling generator seeded alike); each trains on :func:`shard_batch` of it.

    Args:
        ddp_model: the wrapper returned by :func:`distribute`.
        batch: ``(x [P * B, in_dim], y [P * B])``, identical on every process.
        context: from :func:`init_from_env`.

    Returns:
        The mean of the shard losses (the global batch's loss for equal shards), the same
        on every process.
    """
    loss = distributed_training_step(ddp_model, shard_batch(batch, context))
    return all_reduce_mean(loss)


def sharded_step_function(
    model: CortexNet, context: DistributedContext
) -> Callable[[tuple[Tensor, Tensor]], Tensor]:
    """Wrap ``model`` (:func:`distribute`) and return ``step(global_batch) -> global loss``.

    A drop-in for ``model.training_step`` in a training loop that feeds every process the
    same global batches; see :func:`sharded_training_step`.
    """
    device_ids = [context.local_rank] if context.backend == "nccl" else None
    ddp_model = distribute(model, device_ids=device_ids)
    return functools.partial(sharded_training_step, ddp_model, context=context)
