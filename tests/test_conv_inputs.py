"""ColumnAttentionConv's inputs (``conv_inputs.py``): graph layouts and refused input.

Every graph layout PyG's attention convolutions accept must give the edge list's result,
and every input the layer cannot use must be refused with a message that names the fix.
"""

from __future__ import annotations

import pytest
import torch
from torch_geometric import EdgeIndex
from torch_geometric.typing import WITH_TORCH_SPARSE, SparseTensor
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor

from cortexgnn import ColumnAttentionConv, small_world_graph

FULL = dict(heads=2, project_value=True, root_weight=True, bias=True, add_self_loops=True)
# A sparse adjacency merges duplicate edges: these graphs have none (and no self loops).
GRAPH = small_world_graph(6, 2, 0.5, seed=1)  # [2, 12], with rewired edges
BIPARTITE = torch.tensor([[0, 1, 2, 3, 4, 0, 2, 4, 1], [0, 0, 1, 1, 2, 2, 0, 1, 2]])  # 5 -> 3


def test_graph_layouts_give_equal_results():
    conv = ColumnAttentionConv(4, 3, **FULL)
    x, edge_index = torch.randn(6, 2, 4), GRAPH
    expected = conv(x, edge_index)
    sorted_index = EdgeIndex(edge_index, sparse_size=(6, 6)).sort_by("col")[0]
    adj_t = to_torch_coo_tensor(edge_index.flip(0), size=(6, 6))  # [target, source]
    layouts = [sorted_index, adj_t, adj_t.to_sparse_csr(), to_torch_csr_tensor(edge_index.flip(0))]
    for graph in layouts:
        torch.testing.assert_close(conv(x, graph), expected)


@pytest.mark.skipif(not WITH_TORCH_SPARSE, reason="torch_sparse is not installed (optional)")
def test_sparse_tensor_layout_equals_the_edge_list():
    conv = ColumnAttentionConv(4, 3, **FULL)
    x = torch.randn(6, 2, 4)
    edge_index, weight = GRAPH, torch.rand(GRAPH.size(1))
    adj_t = SparseTensor.from_edge_index(edge_index.flip(0), sparse_sizes=(6, 6))  # 0/1
    torch.testing.assert_close(conv(x, adj_t), conv(x, edge_index))
    weighted = SparseTensor.from_edge_index(edge_index.flip(0), weight, sparse_sizes=(6, 6))
    out, (attended, alpha) = conv(x, weighted, return_attention_weights=True)
    torch.testing.assert_close(out, conv(x, edge_index, weight))  # values are edge weights
    assert attended.shape == (2, alpha.size(0))  # returned as an edge list
    # bipartite: 5 sources, 3 targets (adjacency transposed: [targets, sources])
    bipartite = ColumnAttentionConv((4, 2), 3, heads=2, project_value=True)
    x_src, x_dst = torch.randn(5, 4), torch.randn(3, 2)
    bi_adj = SparseTensor.from_edge_index(BIPARTITE.flip(0), sparse_sizes=(3, 5))
    torch.testing.assert_close(
        bipartite((x_src, x_dst), bi_adj), bipartite((x_src, x_dst), BIPARTITE)
    )


def test_sparse_adjacency_values_are_edge_weights():
    conv = ColumnAttentionConv(4, 4, heads=2)
    x = torch.randn(6, 4)
    edge_index, weight = GRAPH, torch.rand(GRAPH.size(1))
    adj_t = to_torch_coo_tensor(edge_index.flip(0), weight, size=(6, 6))
    torch.testing.assert_close(conv(x, adj_t), conv(x, edge_index, weight))
    with pytest.raises(ValueError, match="edge_weight must be None"):
        conv(x, adj_t, weight)


RING = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])


@pytest.mark.parametrize(
    "x, edge_index, edge_weight, match",
    [
        (
            torch.randn(4, 3, dtype=torch.float64),
            RING,
            None,
            r"x has dtype torch.float64, but the layer's weights are torch.float32; .*"
            r"x.to\(torch.float32\).*conv.to\(torch.float64\)",
        ),
        (
            torch.randint(0, 5, (4, 3)),
            RING,
            None,
            r"x must be a floating-point tensor, got dtype torch.int64; .*x.float\(\)",
        ),
        (
            torch.randn(4, 3),
            RING.to(torch.uint8),
            None,
            r"torch.long \(int64\) or torch.int32, got torch.uint8; .*edge_index.long\(\)",
        ),
        (
            torch.randn(4, 3),
            RING,
            torch.rand(4, dtype=torch.float64),
            r"edge_weight has dtype torch.float64, but x has torch.float32; .*"
            r"edge_weight.to\(torch.float32\)",
        ),
        (
            torch.randn(4, 3),
            RING,
            torch.ones(4, dtype=torch.long),
            r"edge_weight has dtype torch.int64",
        ),
    ],
)
def test_wrong_dtypes_are_refused_with_the_fix(x, edge_index, edge_weight, match):
    conv = ColumnAttentionConv(3, 2, heads=2, project_first=True, add_self_loops=True)
    with pytest.raises(ValueError, match=match):
        conv(x, edge_index, edge_weight)


def test_bipartite_dtype_error_names_the_side():
    conv = ColumnAttentionConv((3, 5), 2)
    with pytest.raises(ValueError, match=r"x_dst has dtype torch.float16"):
        conv((torch.randn(4, 3), torch.randn(4, 5).half()), RING)


def test_matching_dtypes_and_autocast_pass_the_checks():
    conv = ColumnAttentionConv(3, 2, heads=2, project_first=True).double()
    out = conv(torch.randn(4, 3, dtype=torch.float64), RING, torch.rand(4, dtype=torch.float64))
    assert out.dtype == torch.float64
    # Under autocast a layer's input may be lower precision than its weights.
    conv = ColumnAttentionConv(3, 2, heads=2, project_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(torch.randn(4, 3).bfloat16(), RING).dtype == torch.bfloat16


def test_edge_index_as_a_python_list_is_refused():
    with pytest.raises(TypeError, match=r"got list; convert a list with torch.tensor"):
        ColumnAttentionConv(3, 2)(torch.randn(4, 3), RING.tolist())
