"""The halo plan, checked without processes: P ranks simulated in one process.

The simulated all-to-all hands each rank the rows its peers' plans send it; the plan is
right when every rank's local graph over ``[local, halo]`` reads exactly the global graph's
sources, every edge lives on exactly one rank, and nothing is sent twice.
"""

from __future__ import annotations

import pytest
import torch

from cortexgnn import small_world_graph, sort_by_target
from cortexgnn.parallel.plan import column_bounds, halo_plan


def simulate_exchange(plans, x_global: torch.Tensor) -> list[torch.Tensor]:
    """What ``all_to_all_single`` delivers to every rank: ``[R, *]`` per rank."""
    sent = []  # sent[q][r]: rows rank q sends to rank r
    for plan in plans:
        local = x_global[plan.start : plan.start + plan.num_local]
        sent.append(local[plan.send_index].split(list(plan.send_counts)))
    received = []
    for plan in plans:
        parts = [sent[q][plan.rank] for q in range(len(plans))]
        assert [p.size(0) for p in parts] == list(plan.recv_counts)
        received.append(torch.cat(parts))
    return received


GRAPHS = {
    "watts-strogatz": lambda: small_world_graph(37, 6, 0.3, seed=1),
    "random": lambda: sort_by_target(torch.randint(37, (2, 200)), 37),
    "complete": lambda: small_world_graph(10, 10, 0.0, seed=0),
}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_simulated_ranks_reproduce_the_whole_graph(graph, world_size):
    edge_index = GRAPHS[graph]()
    num_nodes = int(edge_index.max()) + 1
    plans = [halo_plan(edge_index, num_nodes, world_size, r) for r in range(world_size)]
    ids = torch.arange(num_nodes)
    halos = simulate_exchange(plans, ids)
    rebuilt = []
    for plan, halo in zip(plans, halos, strict=True):
        assert torch.equal(halo, plan.halo_nodes)  # the rows arrive in the promised order
        sources = torch.cat([ids[plan.start : plan.start + plan.num_local], halo])  # global ids
        source, target = plan.edge_index
        assert int(target.max()) < plan.num_local and int(source.max()) < sources.numel()
        rebuilt.append(torch.stack([sources[source], target + plan.start]))
        first, last = plan.edge_range
        assert torch.equal(rebuilt[-1], edge_index[:, first:last])
    assert torch.equal(torch.cat(rebuilt, dim=1), edge_index)  # every edge once, in order


@pytest.mark.parametrize("world_size", [2, 4])
def test_each_state_goes_once_to_each_rank_that_reads_it(world_size):
    edge_index = small_world_graph(64, 8, 0.15, seed=0)
    plans = [halo_plan(edge_index, 64, world_size, r) for r in range(world_size)]
    for plan in plans:
        for dest, rows in enumerate(plan.send_index.split(list(plan.send_counts))):
            needed = set()  # sources owned by plan.rank on edges into dest, counted by hand
            lo, hi = plan.bounds[dest], plan.bounds[dest + 1]
            for j, i in edge_index.t().tolist():
                if (
                    lo <= i < hi
                    and dest != plan.rank
                    and plan.start <= j < plan.start + plan.num_local
                ):
                    needed.add(j - plan.start)
            assert sorted(rows.tolist()) == sorted(needed)
            assert rows.unique().numel() == rows.numel()
    for plan in plans:  # what q sends to r is what r expects from q
        assert [p.send_counts[plan.rank] for p in plans] == list(plan.recv_counts)


def test_halo_bytes_counts_every_sent_row():
    edge_index = small_world_graph(64, 8, 0.15, seed=0)
    plan = halo_plan(edge_index, 64, 4, 1)
    assert plan.halo_bytes(batch_size=3, channels=5) == plan.send_index.numel() * 3 * 5 * 4
    assert plan.halo_bytes(3, 5, element_size=2) == plan.send_index.numel() * 3 * 5 * 2
    # a ring (no rewiring) over 4 ranks of 16: each rank needs k/2 = 4 states from each side
    ring = halo_plan(small_world_graph(64, 8, 0.0, seed=0), 64, 4, 1)
    assert ring.send_counts == (4, 0, 4, 0) and ring.recv_counts == (4, 0, 4, 0)


def test_column_bounds_follow_torch_chunk():
    for num_nodes, world_size in [(64, 4), (10, 3), (7, 2), (1024, 4)]:
        bounds = column_bounds(num_nodes, world_size)
        sizes = [c.numel() for c in torch.arange(num_nodes).chunk(world_size)]
        assert [b - a for a, b in zip(bounds, bounds[1:], strict=False)] == sizes


def test_bad_splits_and_graphs_are_refused():
    with pytest.raises(ValueError, match="without a column"):
        column_bounds(5, 4)  # chunks of 2 leave the fourth process empty
    with pytest.raises(ValueError, match="rank must lie"):
        halo_plan(small_world_graph(8, 2, 0.0, seed=0), 8, 2, 2)
    unsorted = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="sorted by target"):
        halo_plan(unsorted, 2, 2, 0)
