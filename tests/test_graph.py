"""Small-world graph construction and dense <-> sparse conversions."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from cortexgnn import (
    dense_to_edge_index,
    edge_index_to_dense,
    small_world_graph,
    sort_by_target,
)


def test_small_world_matches_networkx_and_holds_both_directions():
    edge_index = small_world_graph(64, k=8, p=0.15, seed=3)
    graph = nx.watts_strogatz_graph(64, 8, 0.15, seed=3)
    assert edge_index.dtype == torch.long and edge_index.shape == (2, 2 * graph.number_of_edges())
    pairs = set(map(tuple, edge_index.t().tolist()))
    expected = {(u, v) for u, v in graph.edges()} | {(v, u) for u, v in graph.edges()}
    assert pairs == expected
    assert not (edge_index[0] == edge_index[1]).any()


def test_small_world_is_sorted_by_target_then_source():
    edge_index = small_world_graph(50, k=6, p=0.3, seed=1)
    key = edge_index[1] * 50 + edge_index[0]
    assert torch.equal(key, key.sort().values)


def test_seed_controls_the_graph():
    assert torch.equal(small_world_graph(40, 4, 0.5, seed=7), small_world_graph(40, 4, 0.5, seed=7))
    assert not torch.equal(
        small_world_graph(40, 4, 0.5, seed=7), small_world_graph(40, 4, 0.5, seed=8)
    )


def test_p_zero_is_the_ring_lattice():
    edge_index = small_world_graph(10, k=4, p=0.0)
    offsets = ((edge_index[0] - edge_index[1]) % 10).unique().tolist()
    assert offsets == [1, 2, 8, 9]


@pytest.mark.parametrize(
    "args,match",
    [((0, 2, 0.1), "num_nodes"), ((8, 9, 0.1), "k must satisfy"), ((8, 4, 1.5), "p is a")],
)
def test_small_world_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        small_world_graph(*args)


def test_dense_round_trip_keeps_orientation():
    adj = torch.zeros(4, 4)
    adj[2, 0] = 0.5  # node 2 receives from node 0: edge 0 -> 2
    adj[1, 3] = 2.0
    edge_index, weight = dense_to_edge_index(adj)
    assert edge_index.tolist() == [[3, 0], [1, 2]]
    assert weight.tolist() == [2.0, 0.5]
    assert torch.equal(edge_index_to_dense(edge_index, 4, weight), adj)
    with pytest.raises(ValueError, match="square"):
        dense_to_edge_index(torch.zeros(2, 3))


def test_sort_by_target():
    edge_index = small_world_graph(30, 6, 0.2, seed=0)
    shuffled = edge_index[:, torch.randperm(edge_index.size(1))]
    assert torch.equal(sort_by_target(shuffled, 30), edge_index)
