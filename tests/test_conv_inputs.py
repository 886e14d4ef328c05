"""ColumnAttentionConv's inputs: every graph layout gives the edge list's result, and input
the layer cannot use is refused with a message that names the fix.

The layout tests with ``EdgeIndex`` and ``int32`` failed on a3fbd8b (issue 11, item 3).
"""

from __future__ import annotations

import pytest
import torch
from oracles import conv_oracle
from torch_geometric import EdgeIndex
from torch_geometric.typing import WITH_TORCH_SPARSE, SparseTensor
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor

from cortexgnn import ColumnAttentionConv, small_world_graph

FULL = dict(heads=2, projection="value", root_weight=True, bias=True, add_self_loops=True)
# A sparse adjacency merges duplicate edges: these graphs have none (and no self loops).
GRAPH = small_world_graph(6, 2, 0.5, seed=1)  # [2, 12], with rewired edges
UNSORTED = GRAPH[:, torch.randperm(GRAPH.size(1), generator=torch.Generator().manual_seed(0))]
BIPARTITE = torch.tensor([[0, 1, 2, 3, 4, 0, 2, 4, 1], [0, 0, 1, 1, 2, 2, 0, 1, 2]])  # 5 -> 3
RING = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])


def edge_index_layouts():
    """``EdgeIndex`` sorted by row, by column, unsorted; with and without ``sparse_size``."""
    for sparse_size in ((6, 6), (None, None)):
        yield EdgeIndex(UNSORTED, sparse_size=sparse_size)
        yield EdgeIndex(UNSORTED, sparse_size=sparse_size).sort_by("row")[0]
        yield EdgeIndex(UNSORTED, sparse_size=sparse_size).sort_by("col")[0]


@pytest.mark.parametrize("projection", ["none", "first"])
@pytest.mark.parametrize("add_self_loops", [False, True])
def test_edge_index_graphs_on_the_fused_layer_and_with_weights(projection, add_self_loops):
    conv = ColumnAttentionConv(4, 3, heads=2, projection=projection, add_self_loops=add_self_loops)
    x, weight = torch.randn(6, 2, 4), torch.rand(UNSORTED.size(1))
    expected, expected_alpha = conv_oracle(conv, x, UNSORTED)
    for graph in edge_index_layouts():
        order = [UNSORTED.t().tolist().index(pair) for pair in graph.as_tensor().t().tolist()]
        torch.testing.assert_close(conv(x, graph), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            conv(x, graph, weight[order]), conv(x, UNSORTED, weight), atol=1e-5, rtol=1e-5
        )
        out, (attended, alpha) = conv(x, graph, return_attention_weights=True)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        num_edges = UNSORTED.size(1)
        torch.testing.assert_close(alpha[:num_edges], expected_alpha[order], atol=1e-6, rtol=1e-5)
        assert attended.shape == (2, alpha.size(0))


def test_int32_and_int64_indices_on_propagate_with_attention_weights():
    x = torch.randn(6, 2, 4)
    for options in (dict(num_nodes=6), FULL):
        conv = ColumnAttentionConv(4, 3, fused=False, **options)
        expected, expected_alpha = conv_oracle(conv, x, UNSORTED)
        for dtype in (torch.int32, torch.int64):
            out, (attended, alpha) = conv(x, UNSORTED.to(dtype), return_attention_weights=True)
            torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(alpha, expected_alpha, atol=1e-6, rtol=1e-5)
            assert attended.dtype == torch.long
    fused = ColumnAttentionConv(4, 3, heads=2, num_nodes=6)
    torch.testing.assert_close(fused(x, UNSORTED.int()), fused(x, UNSORTED))


def test_torch_sparse_layouts_give_the_edge_list_result():
    conv = ColumnAttentionConv(4, 3, **FULL)
    x = torch.randn(6, 2, 4)
    expected = conv(x, GRAPH)
    adj_t = to_torch_coo_tensor(GRAPH.flip(0), size=(6, 6))  # [target, source]
    layouts = [
        adj_t,
        adj_t.to_sparse_csr(),
        adj_t.to_sparse_csc(),
        to_torch_csr_tensor(GRAPH.flip(0)),
    ]
    for graph in layouts:
        torch.testing.assert_close(conv(x, graph), expected)
        out, (attended, alpha) = conv(x, graph, return_attention_weights=True)
        torch.testing.assert_close(out, expected)
        assert attended.shape == (2, alpha.size(0))  # returned as an edge list


def test_sparse_adjacency_values_are_edge_weights():
    conv = ColumnAttentionConv(4, 4, heads=2)
    x, weight = torch.randn(6, 4), torch.rand(GRAPH.size(1))
    adj_t = to_torch_coo_tensor(GRAPH.flip(0), weight, size=(6, 6))
    torch.testing.assert_close(conv(x, adj_t), conv(x, GRAPH, weight))
    with pytest.raises(ValueError, match="edge_weight must be None"):
        conv(x, adj_t, weight)


@pytest.mark.skipif(not WITH_TORCH_SPARSE, reason="torch_sparse is not installed (optional)")
def test_sparse_tensor_layout_equals_the_edge_list():
    conv = ColumnAttentionConv(4, 3, **FULL)
    x, weight = torch.randn(6, 2, 4), torch.rand(GRAPH.size(1))
    adj_t = SparseTensor.from_edge_index(GRAPH.flip(0), sparse_sizes=(6, 6))  # 0/1
    torch.testing.assert_close(conv(x, adj_t), conv(x, GRAPH))
    weighted = SparseTensor.from_edge_index(GRAPH.flip(0), weight, sparse_sizes=(6, 6))
    out, (attended, alpha) = conv(x, weighted, return_attention_weights=True)
    torch.testing.assert_close(out, conv(x, GRAPH, weight))  # values are edge weights
    assert attended.shape == (2, alpha.size(0))
    bipartite = ColumnAttentionConv((4, 2), 3, heads=2, projection="value")
    x_src, x_dst = torch.randn(5, 4), torch.randn(3, 2)
    bi_adj = SparseTensor.from_edge_index(BIPARTITE.flip(0), sparse_sizes=(3, 5))
    torch.testing.assert_close(
        bipartite((x_src, x_dst), bi_adj), bipartite((x_src, x_dst), BIPARTITE)
    )


# --- refused input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, edge_index, edge_weight, match",
    [
        (torch.randn(4, 3, dtype=torch.float64), RING, None,
         r"x has dtype torch.float64, but the layer's weights are torch.float32; .*"
         r"x.to\(torch.float32\).*conv.to\(torch.float64\)"),
        (torch.randint(0, 5, (4, 3)), RING, None,
         r"x must be a floating-point tensor, got dtype torch.int64; .*x.float\(\)"),
        (torch.randn(4, 3), RING.to(torch.uint8), None,
         r"torch.long \(int64\) or torch.int32, got torch.uint8; .*edge_index.long\(\)"),
        (torch.randn(4, 3), RING, torch.rand(4, dtype=torch.float64),
         r"edge_weight has dtype torch.float64, but x has torch.float32; .*"
         r"edge_weight.to\(torch.float32\)"),
        (torch.randn(4, 3), RING, torch.ones(4).long(), r"edge_weight has dtype torch.int64"),
        (torch.randn(4, 3), RING, torch.ones(4, 1), r"edge_weight must have shape \[E\] = \[4\]"),
        (torch.randn(4, 3), torch.tensor([[0, 1, 2]]), None, r"shape \[2, E\]"),
        (torch.randn(4, 3), torch.tensor([[0, 3], [1, 4]]), None,
         r"edge_index refers to target nodes 1..4, but the graph has 4 target nodes"),
        (torch.randn(4, 3), torch.tensor([[0, -1], [1, 0]]), None, r"source nodes -1..0"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_the_fix(x, edge_index, edge_weight, match):
    conv = ColumnAttentionConv(3, 2, heads=2, projection="first", add_self_loops=True)
    with pytest.raises(ValueError, match=match):
        conv(x, edge_index, edge_weight)


def test_out_of_range_target_names_the_count():
    conv = ColumnAttentionConv(4, 4)
    with pytest.raises(
        ValueError, match=r"refers to target nodes 5..5, but the graph has 5 target"
    ):
        conv(torch.randn(5, 4), torch.tensor([[0], [5]]))


def test_bipartite_dtype_error_names_the_side():
    conv = ColumnAttentionConv((3, 5), 2)
    with pytest.raises(ValueError, match=r"x_dst has dtype torch.float16"):
        conv((torch.randn(4, 3), torch.randn(4, 5).half()), RING)


def test_matching_dtypes_and_autocast_pass_the_checks():
    conv = ColumnAttentionConv(3, 2, heads=2, projection="first").double()
    out = conv(torch.randn(4, 3, dtype=torch.float64), RING, torch.rand(4, dtype=torch.float64))
    assert out.dtype == torch.float64
    # Under autocast a layer's input may be lower precision than its weights.
    conv = ColumnAttentionConv(3, 2, heads=2, projection="first")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(torch.randn(4, 3).bfloat16(), RING).dtype == torch.bfloat16


def test_edge_index_as_a_python_list_is_refused():
    with pytest.raises(TypeError, match=r"got list; convert a list with torch.tensor"):
        ColumnAttentionConv(3, 2)(torch.randn(4, 3), RING.tolist())
