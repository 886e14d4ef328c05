"""The two collectives of the sharded model: the halo exchange and the sum over shards.

Both run on ``torch.distributed`` (gloo on CPU, NCCL on CUDA) and carry gradients:

- :func:`exchange_halo` sends the rows a :class:`~cortexgnn.parallel.plan.HaloPlan` names
  with one ``all_to_all_single`` (the functional collective with autograd that
  torchtitan's expert parallelism uses: its backward is the reverse all-to-all); the
  gradient of a state read by several processes is summed on its owner by the backward
  of the row gather.
- :func:`sum_over_shards` all-reduces a partial sum whose consumer runs identically on
  every process (the readout): each process then holds the whole loss, so its gradient
  with respect to its own share is the incoming gradient itself, and the backward is the
  identity (Megatron's "reduce from the model-parallel region").

:class:`HaloTraffic` counts the bytes and the seconds the exchanges take, forward and
backward, for the scaling benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
from torch import Tensor

from .plan import HaloPlan

__all__ = ["HaloTraffic", "exchange_halo", "sum_over_shards"]


@dataclass
class HaloTraffic:
    """Running totals of this process's halo exchanges.

    Attributes:
        sent_bytes: bytes this process sent in forward exchanges.
        received_bytes: bytes it received in forward exchanges.
        backward_bytes: bytes of halo gradients it sent back.
        seconds: wall time inside the all-to-alls (forward and backward), waiting for
            slower peers included.
        calls: forward exchanges.
    """

    sent_bytes: int = 0
    received_bytes: int = 0
    backward_bytes: int = 0
    seconds: float = 0.0
    calls: int = 0

    def reset(self) -> None:
        """Zero every total."""
        self.sent_bytes = self.received_bytes = self.backward_bytes = self.calls = 0
        self.seconds = 0.0


def exchange_halo(
    x: Tensor,
    plan: HaloPlan,
    group: dist.ProcessGroup | None = None,
    traffic: HaloTraffic | None = None,
) -> Tensor:
    """The halo states of ``plan``'s rank: rows of other processes' ``x``.

    Every process of the group must call it with its own plan, in the same order.

    Args:
        x: ``[n, *, D]`` this process's states (its columns, in order).
        plan: this process's halo plan.
        group: the column-sharding process group (``None``: the default group).
        traffic: optional counters to add this exchange to.

    Returns:
        ``[R, *, D]``: the rows of ``plan.halo_nodes``, in that order.
    """
    if x.size(0) != plan.num_local:
        raise ValueError(
            f"x has {x.size(0)} rows but rank {plan.rank} owns {plan.num_local} columns"
        )
    send = x.index_select(0, plan.send_index.to(x.device))  # [S, *, D]
    if plan.world_size == 1:
        return x.new_empty((0, *x.shape[1:]))
    group = dist.group.WORLD if group is None else group
    start = time.perf_counter()
    halo = funcol.wait_tensor(
        funcol.all_to_all_single_autograd(
            send, list(plan.recv_counts), list(plan.send_counts), group
        )
    )  # [R, *, D]
    if traffic is None:
        return halo
    traffic.seconds += time.perf_counter() - start
    traffic.calls += 1
    traffic.sent_bytes += send.numel() * send.element_size()
    traffic.received_bytes += halo.numel() * halo.element_size()
    if halo.requires_grad:  # time the reverse all-to-all: between these two hooks
        marks: list[float] = []

        def arrived(grad: Tensor) -> None:  # the halo's gradient, about to go back
            marks.append(time.perf_counter())
            traffic.backward_bytes += grad.numel() * grad.element_size()

        def returned(grad: Tensor) -> None:  # the gradient of what this process sent
            traffic.seconds += time.perf_counter() - marks.pop()

        halo.register_hook(arrived)
        send.register_hook(returned)
    return halo


class _SumOverShards(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, group: dist.ProcessGroup | None) -> Tensor:
        total = x.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


def sum_over_shards(x: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Sum of ``x`` over the processes of ``group``, for a consumer replicated on each.

    The backward passes the gradient through unchanged (see the module docstring): use it
    only where every process computes the same function of the sum.
    """
    if not dist.is_initialized() or dist.get_world_size(group) == 1:
        return x
    return _SumOverShards.apply(x, group)
