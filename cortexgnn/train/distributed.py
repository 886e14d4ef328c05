"""Data-parallel training of ``CortexNet`` over several processes (``torch.distributed``).

Each process (replica) holds the whole model and ``B`` samples of every global batch of
``P * B``. DDP averages the gradients, but this model's state also moves outside autograd:
homeostasis (``activity_avg``) and the Hebbian rule (``edge_weight``) use per-column means
over ``(batch, features)``. With equal shard sizes the global mean is the average of the
shard means, so one all-reduce of the ``[N]`` mean vectors (:func:`all_reduce_mean`, the
model's ``sync_statistics`` hook) gives every replica the update of a single process on the
concatenated batch: replicas stay identical without DDP's per-step buffer broadcast.

Every process sees the same global batches and trains on its shard
(:func:`shard_batch`); a global batch that the process count does not divide (the last,
short batch of an epoch) is padded by repeating its first samples, so the shards stay equal
and never empty: at most ``P - 1`` samples of that batch count twice.

A training step is ``model.training_step(shard, forward=ddp)`` with ``ddp`` from
:func:`distribute`: the model's own step, run through DDP's forward for the gradient
all-reduce. Launch with ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). The library core never imports this module.
"""

from __future__ import annotations

import atexit
import functools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..nn.model import CortexNet

__all__ = [
    "DistributedContext",
    "checkpoint_after_restart",
    "launched_by_torchrun",
    "join_torchrun",
    "init_from_env",
    "all_reduce_mean",
    "broadcast_state_",
    "distribute",
    "shard_batch",
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


def checkpoint_after_restart(out_dir: str | None) -> str | None:
    """The checkpoint a run restarted by ``torchrun --max-restarts`` continues from.

    ``torchrun`` restarts every process of a job when one fails (a crash, a SIGKILL), with
    the same command line and ``TORCHELASTIC_RESTART_COUNT`` raised; such a restart resumes
    from ``out_dir/checkpoint.pth`` when the failed attempt wrote one, so only the steps
    after that checkpoint are lost. ``None`` for a first attempt or without a checkpoint.
    """
    restarts = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if out_dir is None or not restarts.isdigit() or int(restarts) == 0:
        return None
    checkpoint = os.path.join(out_dir, "checkpoint.pth")
    return checkpoint if os.path.isfile(checkpoint) else None


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
        store, rank, world_size = next(dist.rendezvous("env://"))
        # torchrun keeps its store when it restarts a failed job: the restarted processes
        # must not read the previous attempt's keys (its peers' addresses, now dead)
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = dist.PrefixStore(f"attempt-{attempt}", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
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


def distribute(
    model: CortexNet,
    *,
    device_ids: list[int] | None = None,
    group: dist.ProcessGroup | None = None,
) -> DistributedDataParallel:
    """Wrap ``model`` for data-parallel training with synchronised plasticity statistics.

    Broadcasts rank 0's parameters and buffers (graph included), installs
    :func:`all_reduce_mean` as ``model.sync_statistics`` and returns
    ``DistributedDataParallel(model)``; train with ``model.training_step(shard,
    forward=ddp)``. The optimizer takes ``model.parameters()`` as usual. Save ``model``
    (not the wrapper) on rank 0.

    ``static_graph=True``: every step uses the same parameters, and in the article's
    attention mode the edge weights never reach the loss (only the Hebbian rule moves them);
    a static graph lets DDP learn that once instead of searching the autograd graph every
    step (``find_unused_parameters``). Buffers are not broadcast at each forward:
    ``sync_statistics`` keeps them equal, and a broadcast would only hide a missing sync.

    Args:
        model: a ``CortexNet`` already on this process's device.
        device_ids: ``[local_rank]`` for one GPU per process; ``None`` on CPU.
        group: process group; ``None`` is the default group.

    Returns:
        The DDP wrapper, whose forward is the model's (``return_states`` included).
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
    return DistributedDataParallel(
        model,
        device_ids=device_ids,
        process_group=group,
        broadcast_buffers=False,
        static_graph=True,
    )


def shard_batch(batch: tuple[Tensor, ...], context: DistributedContext) -> tuple[Tensor, ...]:
    """This process's contiguous, equal share of a global batch (tensors split along dim 0).

    A batch of ``n`` samples that ``P`` does not divide is first padded to the next multiple
    of ``P`` by repeating its first samples (as ``DistributedSampler`` pads), so every
    process gets ``ceil(n / P)`` samples, even when ``n < P``. Equal shards make the
    average of the shard means the mean of the (padded) global batch.

    Args:
        batch: tensors ``[n, ...]``, identical on every process.
        context: from :func:`init_from_env`.

    Returns:
        Rows ``[rank * B, (rank + 1) * B)`` of the padded batch, ``B = ceil(n / P)``.
    """
    size, parts = batch[0].size(0), context.world_size
    if size == 0:
        raise ValueError("cannot shard an empty batch")
    padded = -(-size // parts) * parts
    if padded != size:
        index = torch.arange(padded, device=batch[0].device) % size  # [padded]
        batch = tuple(t[index] for t in batch)
    return tuple(t.tensor_split(parts)[context.rank] for t in batch)
