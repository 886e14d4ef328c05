"""``HaloPlan``: which column states each process sends and receives, computed once.

Columns ``0..N-1`` are split over ``P`` processes in contiguous ranges with the chunking
of :func:`torch.chunk` (and of DTensor's ``Shard``): ``ceil(N / P)`` columns per process,
the last one taking the rest, so a sharded parameter is a DTensor shard and
``torch.distributed.checkpoint`` can reshard it. Every edge ``j -> i`` lives with the owner
of its target ``i``, so the attention softmax over ``i``'s in-edges never leaves its
process. Before each message iteration a process needs the states of the sources of its
edges that other processes own: its *halo*. A state goes to a destination once, however
many of that destination's edges read it.

From the whole ``edge_index`` (every process holds it; sorted by target, as
:class:`~cortexgnn.CortexNet` keeps it) each process derives the same plan for itself:

- ``send_index [S]``: local rows to send, grouped by destination rank (ascending), with
  ``send_counts [P]`` rows for each (zero for itself);
- ``recv_counts [P]``: rows received from each rank, which arrive grouped by source rank;
  ``halo_nodes [R]`` are their global ids, in arrival order;
- ``edge_index [2, E_local]`` over ``[local columns, then the halo]``: targets in
  ``[0, n)``, sources in ``[0, n + R)``, in the global order of the edges (which are a
  contiguous slice ``edge_range`` of the sorted global list).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..graph import check_edge_index

__all__ = ["HaloPlan", "column_bounds", "halo_plan"]


def column_bounds(num_nodes: int, world_size: int) -> list[int]:
    """``P + 1`` offsets: rank ``r`` owns columns ``bounds[r]..bounds[r+1]-1``.

    Ranges follow :func:`torch.chunk`: ``ceil(N / P)`` columns each, the last rank the
    rest. Every rank must own at least one column.

    Raises:
        ValueError: if some rank would own no column.
    """
    if world_size < 1:
        raise ValueError(f"the number of column shards must be >= 1, got {world_size}")
    size = math.ceil(num_nodes / world_size)
    bounds = [min(rank * size, num_nodes) for rank in range(world_size + 1)]
    if any(hi <= lo for lo, hi in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(
            f"{num_nodes} columns in chunks of ceil({num_nodes}/{world_size}) = {size} leave "
            f"some of the {world_size} processes without a column: use fewer processes "
            f"(at most {math.ceil(num_nodes / size) if size else 1}) or more columns"
        )
    return bounds


@dataclass(frozen=True)
class HaloPlan:
    """One process's share of the graph and its halo exchange (see the module docstring).

    Attributes:
        rank: this process.
        world_size: ``P``.
        num_nodes: ``N``, all columns.
        bounds: :func:`column_bounds` (``P + 1`` offsets).
        edge_range: ``(start, stop)`` of this rank's edges in the global sorted list.
        edge_index: ``[2, E_local]`` local graph over ``[local columns, halo]``.
        send_index: ``[S]`` local rows sent, grouped by destination rank.
        send_counts: rows sent to each rank (``P`` ints).
        recv_counts: rows received from each rank (``P`` ints).
        halo_nodes: ``[R]`` global ids of the received rows, in arrival order.
    """

    rank: int
    world_size: int
    num_nodes: int
    bounds: tuple[int, ...]
    edge_range: tuple[int, int]
    edge_index: Tensor
    send_index: Tensor
    send_counts: tuple[int, ...]
    recv_counts: tuple[int, ...]
    halo_nodes: Tensor

    @property
    def start(self) -> int:
        """First global column of this rank."""
        return self.bounds[self.rank]

    @property
    def num_local(self) -> int:
        """``n``: columns this rank owns."""
        return self.bounds[self.rank + 1] - self.bounds[self.rank]

    @property
    def num_halo(self) -> int:
        """``R``: states received per message iteration."""
        return int(self.halo_nodes.numel())

    def halo_bytes(self, batch_size: int, channels: int, element_size: int = 4) -> int:
        """Bytes this rank sends per message iteration (forward) for states ``[n, B, D]``.

        The backward pass returns the same number of bytes the other way.
        """
        return sum(self.send_counts) * batch_size * channels * element_size


def halo_plan(edge_index: Tensor, num_nodes: int, world_size: int, rank: int) -> HaloPlan:
    """The :class:`HaloPlan` of ``rank`` for a graph sorted by target.

    Args:
        edge_index: ``[2, E]`` over ``num_nodes`` columns, sorted by target (as
            :func:`~cortexgnn.sort_by_target` returns it; the model's buffer is).
        num_nodes: ``N``.
        world_size: ``P``.
        rank: the process whose plan to build, ``0 <= rank < P``.

    Raises:
        ValueError: a bad graph, rank, or split (see :func:`column_bounds`).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    edge_index = check_edge_index(edge_index, num_nodes).to("cpu", torch.long)
    source, target = edge_index
    if target.numel() > 1 and bool((target[1:] < target[:-1]).any()):
        raise ValueError("edge_index must be sorted by target: pass it through sort_by_target")
    bounds = column_bounds(num_nodes, world_size)
    boundary = torch.tensor(bounds)
    owner = torch.bucketize(source, boundary, right=True) - 1  # [E]: rank owning each source
    lo, hi = bounds[rank], bounds[rank + 1]
    first, last = (int(i) for i in torch.searchsorted(target, torch.tensor([lo, hi])))
    local_source, local_target = source[first:last], target[first:last] - lo  # [E_local]
    remote = owner[first:last] != rank  # [E_local]
    halo_nodes = torch.unique(local_source[remote])  # sorted, so grouped by owner rank
    recv_counts = torch.bincount(
        torch.bucketize(halo_nodes, boundary, right=True) - 1, minlength=world_size
    )  # [P]
    # sources as rows of [local columns, halo]: local ones by offset, remote ones by rank
    rows = local_source - lo  # [E_local]
    rows[remote] = (hi - lo) + torch.searchsorted(halo_nodes, local_source[remote])
    # what the other ranks read from this one: for each destination, the unique sources
    # owned here among the edges into that destination's range
    mine = owner == rank  # [E]
    send, send_counts = [], []
    for dest in range(world_size):
        if dest == rank:
            send_counts.append(0)
            continue
        d_first, d_last = (
            int(i) for i in torch.searchsorted(target, torch.tensor(bounds[dest : dest + 2]))
        )
        needed = torch.unique(source[d_first:d_last][mine[d_first:d_last]]) - lo  # sorted
        send.append(needed)
        send_counts.append(int(needed.numel()))
    send_index = torch.cat(send) if send else torch.zeros(0, dtype=torch.long)  # [S]
    return HaloPlan(
        rank=rank,
        world_size=world_size,
        num_nodes=num_nodes,
        bounds=tuple(bounds),
        edge_range=(first, last),
        edge_index=torch.stack([rows, local_target]),  # [2, E_local]
        send_index=send_index,
        send_counts=tuple(send_counts),
        recv_counts=tuple(int(c) for c in recv_counts),
        halo_nodes=halo_nodes,
    )
