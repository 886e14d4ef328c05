"""ColumnAttentionConv inside PyG's machinery: explainers, torch.compile, ``to_hetero``."""

from __future__ import annotations

import pytest
import torch
from random_graphs import simple_graph
from torch_geometric.data import HeteroData
from torch_geometric.explain import Explainer
from torch_geometric.explain.algorithm import AttentionExplainer
from torch_geometric.nn import to_hetero

from cortexgnn import ColumnAttentionConv


class TwoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = ColumnAttentionConv(4, 3, heads=2, add_self_loops=True)  # raw values
        self.conv2 = ColumnAttentionConv(8, 2, projection="value")

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


def test_attention_explainer_reads_the_weights():
    model = TwoLayer()
    x, edge_index = torch.randn(8, 4), simple_graph(8, 8, 20)
    explainer = Explainer(
        model,
        AttentionExplainer(reduce="max"),
        explanation_type="model",
        edge_mask_type="object",
        model_config=dict(mode="multiclass_classification", task_level="node", return_type="raw"),
    )
    explanation = explainer(x, edge_index, index=3)
    _, (_, alpha1) = model.conv1(x, edge_index, return_attention_weights=True)
    hidden = model.conv1(x, edge_index).relu()
    _, (_, alpha2) = model.conv2(hidden, edge_index, return_attention_weights=True)
    expected = torch.maximum(alpha1[:20].max(-1).values, alpha2.squeeze(-1))
    hops = explanation.edge_mask > 0  # only edges within two hops of node 3 are kept
    assert hops.any() and (explanation.edge_mask <= 1).all()
    torch.testing.assert_close(explanation.edge_mask[hops], expected[hops])


@pytest.mark.slow
@pytest.mark.parametrize(
    "num_nodes,projection", [(6, "none"), (None, "none"), (6, "value"), (None, "first")]
)
def test_compile_without_graph_breaks(num_nodes, projection):
    conv = ColumnAttentionConv(4, 3, heads=2, num_nodes=num_nodes, projection=projection)
    x, edge_index, weight = torch.randn(6, 2, 4), simple_graph(6, 6, 14), torch.rand(14)
    expected = conv(x, edge_index, weight)
    explanation = torch._dynamo.explain(conv)(x, edge_index, weight)
    assert explanation.graph_break_count == 0
    compiled = torch.compile(conv, fullgraph=True)
    torch.testing.assert_close(compiled(x, edge_index, weight), expected)


@pytest.mark.slow
def test_compile_fullgraph_with_self_loops():
    # Replacing self loops keeps a data-dependent subset of edges: torch._dynamo.explain
    # counts breaks there (as for GATConv's default), but a fullgraph compile succeeds.
    conv = ColumnAttentionConv(4, 3, heads=2, projection="first", add_self_loops=True, bias=True)
    x, edge_index = torch.randn(6, 4), torch.tensor([[0, 1, 1, 2, 5], [1, 1, 2, 3, 0]])
    compiled = torch.compile(conv, fullgraph=True)
    torch.testing.assert_close(compiled(x, edge_index), conv(x, edge_index))


class LazyEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = ColumnAttentionConv((-1, -1), 4, heads=2, projection="value", root_weight=True)

    def forward(self, x, edge_index):
        return self.conv(x, edge_index)


def test_to_hetero_sums_one_bipartite_layer_per_edge_type():
    data = HeteroData()
    data["paper"].x, data["author"].x = torch.randn(7, 5), torch.randn(4, 3)
    data["author", "writes", "paper"].edge_index = simple_graph(4, 7, 12)
    data["paper", "cites", "paper"].edge_index = simple_graph(7, 7, 15)
    data["paper", "rev_writes", "author"].edge_index = simple_graph(7, 4, 10)
    model = to_hetero(LazyEncoder(), data.metadata(), aggr="sum")
    out = model(data.x_dict, data.edge_index_dict)
    assert out["paper"].shape == (7, 8) and out["author"].shape == (4, 8)
    convs, x = model.conv, data.x_dict
    expected_paper = convs["author__writes__paper"](
        (x["author"], x["paper"]), data["writes"].edge_index
    ) + convs["paper__cites__paper"]((x["paper"], x["paper"]), data["cites"].edge_index)
    torch.testing.assert_close(out["paper"], expected_paper)
    out["author"].sum().backward()
    assert convs["paper__rev_writes__author"].value_weight.grad.abs().sum() > 0
