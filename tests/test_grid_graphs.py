"""Graphs over grid positions and their hop statistics, against networkx and a plain BFS."""

from __future__ import annotations

from collections import deque

import networkx as nx
import pytest
import torch

from cortexgnn.graph import (
    complete_graph,
    graph_stats,
    hop_distances,
    hops_to,
    lattice_graph,
    random_graph,
    rewired_lattice_graph,
    small_world_graph,
    sort_by_target,
)


def undirected(edge_index):
    pairs = {tuple(sorted(e)) for e in edge_index.t().tolist()}
    assert len(pairs) * 2 == edge_index.size(1)  # both directions, no duplicates
    assert all(u != v for u, v in pairs)  # no self loops
    return pairs


def to_nx(edge_index, num_nodes):
    graph = nx.Graph()
    graph.add_nodes_from(range(num_nodes))
    graph.add_edges_from(edge_index.t().tolist())
    return graph


def bfs_oracle(edge_index, num_nodes):
    """Hop counts s -> t by a plain queue per source, following edges source -> target."""
    out = {s: [] for s in range(num_nodes)}
    for s, t in edge_index.t().tolist():
        out[s].append(t)
    dist = [[-1] * num_nodes for _ in range(num_nodes)]
    for s in range(num_nodes):
        dist[s][s], queue = 0, deque([s])
        while queue:
            u = queue.popleft()
            for v in out[u]:
                if dist[s][v] < 0:
                    dist[s][v] = dist[s][u] + 1
                    queue.append(v)
    return torch.tensor(dist)


def test_lattice_is_networkxs_grid_in_row_major_order():
    edge_index = lattice_graph(3, 5)
    grid = nx.convert_node_labels_to_integers(nx.grid_2d_graph(3, 5), ordering="sorted")
    assert undirected(edge_index) == {tuple(sorted(e)) for e in grid.edges()}
    assert edge_index.size(1) == 2 * (3 * 4 + 2 * 5)
    assert torch.equal(edge_index, sort_by_target(edge_index, 15))
    assert lattice_graph(1, 1).shape == (2, 0)
    with pytest.raises(ValueError, match="rows must be >= 1"):
        lattice_graph(0, 3)


def test_rewiring_keeps_the_edge_count_and_p_zero_is_the_lattice():
    base = lattice_graph(6, 6)
    assert torch.equal(rewired_lattice_graph(6, 6, 0.0, seed=1), base)
    some = rewired_lattice_graph(6, 6, 0.15, seed=1)
    assert torch.equal(some, rewired_lattice_graph(6, 6, 0.15, seed=1))  # seeded
    assert not torch.equal(some, rewired_lattice_graph(6, 6, 0.15, seed=2))
    for p in (0.15, 0.5, 1.0):
        graph = rewired_lattice_graph(6, 6, p, seed=0)
        assert len(undirected(graph)) == len(undirected(base))
    moved = undirected(rewired_lattice_graph(6, 6, 1.0, seed=0)) - undirected(base)
    assert len(moved) > len(undirected(base)) // 2  # most edges rewired at p = 1
    with pytest.raises(ValueError, match="rewiring probability"):
        rewired_lattice_graph(3, 3, 1.5)


def test_random_and_complete_graphs():
    graph = random_graph(12, 20, seed=0)
    assert len(undirected(graph)) == 20
    assert torch.equal(graph, random_graph(12, 20, seed=0))
    assert not torch.equal(graph, random_graph(12, 20, seed=1))
    assert len(undirected(random_graph(5, 10, seed=0))) == 10  # every pair
    with pytest.raises(ValueError, match="num_edges must be <= 10"):
        random_graph(5, 11)
    full = complete_graph(7)
    assert undirected(full) == {tuple(sorted(e)) for e in nx.complete_graph(7).edges()}


@pytest.mark.parametrize(
    "build",
    [
        lambda: (lattice_graph(5, 7), 35),
        lambda: (rewired_lattice_graph(5, 7, 0.15, seed=3), 35),
        lambda: (small_world_graph(30, 4, 0.2, seed=0), 30),
        lambda: (complete_graph(6), 6),
    ],
)
def test_diameter_and_mean_hops_match_networkx(build):
    edge_index, num_nodes = build()
    stats = graph_stats(edge_index, num_nodes)
    graph = to_nx(edge_index, num_nodes)
    assert stats["connected"] == nx.is_connected(graph)
    if stats["connected"]:
        assert stats["diameter"] == nx.diameter(graph)
        assert stats["mean_hops"] == pytest.approx(nx.average_shortest_path_length(graph))
    assert stats["num_edges"] == edge_index.size(1)


def test_the_lattices_hop_statistics_in_closed_form_and_shortcuts_shorten_them():
    stats = graph_stats(lattice_graph(7, 7), 49)
    assert stats["diameter"] == 12  # corner to corner: 6 + 6
    rewired = graph_stats(rewired_lattice_graph(7, 7, 0.5, seed=0), 49)
    assert rewired["connected"] and rewired["mean_hops"] < stats["mean_hops"]
    assert graph_stats(complete_graph(5), 5)["diameter"] == 1


def test_hop_distances_follow_edge_direction_like_a_plain_bfs():
    generator = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, 15, (2, 30), generator=generator)  # directed, loops allowed
    dist = hop_distances(edge_index, 15)
    assert torch.equal(dist, bfs_oracle(edge_index, 15))
    # a path 0 -> 1 -> 2: two hops forwards, unreachable backwards
    path = torch.tensor([[0, 1], [1, 2]])
    assert hop_distances(path, 3).tolist() == [[0, 1, 2], [-1, 0, 1], [-1, -1, 0]]
    disconnected = graph_stats(torch.tensor([[0, 1], [1, 0]]), 3)
    assert not disconnected["connected"] and disconnected["diameter"] is None


def test_hops_to_the_readout_column_on_the_two_item_grid():
    # the 7 x 7 grid of the preregistered task: items over rows/cols 0-3 and 3-6, readout at
    # the top-right corner (row 0, col 6)
    first = [r * 7 + c for r in range(4) for c in range(4)]
    second = [r * 7 + c for r in range(3, 7) for c in range(3, 7)]
    lattice = lattice_graph(7, 7)
    assert hops_to(lattice, 49, first, 6) == 3 and hops_to(lattice, 49, second, 6) == 3
    assert hops_to(complete_graph(49), 49, first, 6) == 1
    assert hops_to(torch.tensor([[0], [1]]), 3, [0], 2) is None
    oracle = bfs_oracle(lattice, 49)
    assert hops_to(lattice, 49, first, 6) == int(oracle[first, 6].min())


def test_a_draw_over_the_nodes_apart_is_the_draw_over_their_list():
    import random

    from cortexgnn.graph import _NodesApart

    rng = random.Random(5)
    for _ in range(50):
        n = rng.randint(1, 40)
        excluded = set(rng.sample(range(n), rng.randint(0, n)))
        listed = [w for w in range(n) if w not in excluded]
        apart = _NodesApart(n, excluded)
        assert len(apart) == len(listed) and list(apart) == listed
        if listed:  # random.choice picks the same node from either
            assert random.Random(1).choice(apart) == random.Random(1).choice(listed)


@pytest.mark.parametrize("num_nodes", [3_000, 6_000])
def test_large_random_and_rewired_graphs_are_simple_and_keep_their_edge_count(num_nodes):
    # 6,000 nodes: 1.8e7 node pairs, past the permutation's limit; the draw drops repeats
    graph = random_graph(num_nodes, 4 * num_nodes, seed=1)
    pairs = graph.t()
    assert graph.size(1) == 8 * num_nodes and bool((graph[0] != graph[1]).all())
    assert torch.unique(pairs, dim=0).size(0) == pairs.size(0)  # no repeated edge
    key = lambda e: set(map(tuple, e.tolist()))  # noqa: E731
    assert key(pairs) == key(pairs.flip(1))  # both directions
    assert torch.equal(graph, random_graph(num_nodes, 4 * num_nodes, seed=1))
    side = int(num_nodes**0.5)
    rewired = rewired_lattice_graph(side, side, 0.15, seed=1)
    assert rewired.size(1) == lattice_graph(side, side).size(1)
