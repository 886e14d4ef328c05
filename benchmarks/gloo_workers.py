"""Training steps timed on ``P`` gloo processes of one machine (the sharding benchmarks).

:func:`spawn` starts ``P`` processes that each call ``worker(rank, world_size, port, *args,
out)`` and write ``out/rank<r>.pt``, and returns those files' dicts in rank order. Inside a
worker, :func:`join` enters the process group (one thread per process) and
:func:`timed_steps` times AdamW training steps between barriers.
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["join", "sharded_model", "spawn", "timed_steps"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(worker: Callable, world_size: int, *args) -> list[dict]:
    """Run ``worker`` on ``world_size`` processes; their ``rank<r>.pt`` dicts, in rank order."""
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(worker, args=(world_size, _free_port(), *args, out),
                           nprocs=world_size, start_method="spawn")  # fmt: skip
        return [torch.load(f"{out}/rank{r}.pt", weights_only=True) for r in range(world_size)]


def join(rank: int, world_size: int, port: int) -> None:
    """Enter the gloo group of :func:`spawn`'s processes, one thread each."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )


def sharded_model(config, batch_size: int) -> tuple:
    """This process's ``ShardedCortexNet`` of ``config`` (seed 0) and a random batch ``(x, y)``."""
    from cortexgnn.parallel.model import ShardedCortexNet

    torch.manual_seed(0)
    model = ShardedCortexNet(config)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch_size, config.in_dim, generator=generator)  # [B, F]
    y = torch.randint(config.top_out, (batch_size,), generator=generator)  # [B]
    return model, (x, y)


def timed_steps(
    model, batch: tuple, warmup: int, steps: int, after: Callable[[], None] | None = None,
    before: Callable[[], None] | None = None,
) -> list[float]:  # fmt: skip
    """Seconds of each of ``steps`` AdamW steps after ``warmup``, each between barriers.

    ``before`` runs ahead of every step, ``after`` after every timed one (counters).
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    seconds = []
    for step in range(warmup + steps):
        if before is not None:
            before()
        dist.barrier()
        start = time.perf_counter()
        optimizer.zero_grad()
        model.training_step(batch)
        optimizer.step()
        dist.barrier()
        if step >= warmup:
            seconds.append(time.perf_counter() - start)
            if after is not None:
                after()
    return seconds
