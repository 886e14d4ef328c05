"""``cortexgnn/graph.py``: small-world graphs, dense <-> sparse, the one graph validator."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch_geometric import EdgeIndex
from torch_geometric.utils import to_torch_coo_tensor

from cortexgnn import (
    check_edge_index,
    dense_to_edge_index,
    edge_index_to_dense,
    small_world_graph,
    sort_by_target,
)
from cortexgnn.graph import as_edge_list, as_plain_tensor


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
    "args, error, match",
    [
        ((6, 2.5, 0.1), TypeError, "k must be an int"),
        ((6, True, 0.1), TypeError, "k must be an int"),
        ((6.0, 2, 0.1), TypeError, "num_nodes must be an int"),
        ((6, 2, "0.1"), TypeError, r"p must be a float in \[0, 1\]"),
        ((0, 0, 0.1), ValueError, "num_nodes must be >= 1"),
        ((6, -2, 0.1), ValueError, "lower k or add columns"),
        ((6, 8, 0.1), ValueError, "k=8, num_nodes=6"),
        ((6, 2, float("nan")), ValueError, "rewiring probability"),
        ((6, 2, -0.1), ValueError, "rewiring probability"),
    ],
)
def test_small_world_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
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


def test_check_edge_index_converts_int32_and_keeps_the_rest():
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    assert check_edge_index(edge_index, 3) is edge_index
    converted = check_edge_index(edge_index.int(), 3)
    assert converted.dtype == torch.long and torch.equal(converted, edge_index)
    wrapped = EdgeIndex(edge_index, sparse_size=(3, 3))
    assert isinstance(check_edge_index(wrapped, 3), EdgeIndex)
    assert check_edge_index(torch.empty(2, 0, dtype=torch.long), 0).shape == (2, 0)
    assert torch.equal(check_edge_index(torch.tensor([[4], [1]]), (5, 2)), torch.tensor([[4], [1]]))


@pytest.mark.parametrize(
    "edge_index, num_nodes, error, match",
    [
        ([[0, 1], [1, 0]], 2, TypeError, r"got list: wrap it with torch.as_tensor"),
        (torch.tensor([0, 1]), 2, ValueError, r"shape \[2, E\].*got \(2,\)"),
        (torch.zeros(3, 2, dtype=torch.long), 3, ValueError, r"\[E, 2\] edge list needs .t\(\)"),
        (torch.zeros(2, 2), 2, ValueError, r"or torch.int32, got torch.float32"),
        (torch.tensor([[0, 1], [1, 5]]), 5, ValueError,
         r"refers to target nodes 1..5, but the graph has 5 target nodes \(valid: 0..4\)"),
        (torch.tensor([[-1, 1], [1, 0]]), 5, ValueError, r"source nodes -1..1"),
        (torch.tensor([[3], [1]]), (3, 2), ValueError, r"source nodes 3..3, but the graph has 3"),
        (torch.tensor([[0], [2]]), (3, 2), ValueError, r"target nodes 2..2, but the graph has 2"),
    ],
)  # fmt: skip
def test_check_edge_index_refuses_with_the_fix(edge_index, num_nodes, error, match):
    with pytest.raises(error, match=match):
        check_edge_index(edge_index, num_nodes)


def test_as_edge_list_reads_every_layout():
    edge_index = torch.tensor([[1, 2, 0], [0, 0, 2]])
    weight = torch.tensor([0.5, 2.0, 3.0])
    assert as_edge_list(edge_index, weight) == (edge_index, weight)
    adj_t = to_torch_coo_tensor(edge_index.flip(0), weight, size=(3, 3))  # [target, source]
    for graph in (adj_t, adj_t.to_sparse_csr(), adj_t.to_sparse_csc()):
        index, values = as_edge_list(graph, None)
        assert index.tolist() == [[1, 2, 0], [0, 0, 2]] and values.tolist() == weight.tolist()
    with pytest.raises(ValueError, match="edge_weight must be None"):
        as_edge_list(adj_t, weight)
    with pytest.raises(TypeError, match="got list; convert a list with torch.tensor"):
        as_edge_list(edge_index.tolist(), None)


def test_as_plain_tensor_unwraps_an_edge_index_only():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    plain = as_plain_tensor(EdgeIndex(edge_index))
    assert type(plain) is torch.Tensor and torch.equal(plain, edge_index)
    assert as_plain_tensor(edge_index) is edge_index
