"""Property tests (hypothesis) on random graphs: duplicates, self loops, isolated nodes.

The layer is compared with the shared edge-by-edge oracle (``tests/oracles.py``); the model
with a copy of itself whose columns are relabelled.
"""

from __future__ import annotations

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oracles import conv_oracle

from cortexgnn import ColumnAttentionConv, CortexNet
from cortexgnn.nn.conv import PROJECTIONS

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True)


@st.composite
def graphs(draw, min_nodes: int = 1, max_nodes: int = 7, max_edges: int = 24):
    """``(num_nodes, edge_index)``: any edges, repeats and self loops allowed."""
    num_nodes = draw(st.integers(min_nodes, max_nodes))
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, num_nodes - 1), st.integers(0, num_nodes - 1)),
            max_size=max_edges,
        )
    )
    edge_index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).t().contiguous()
    return num_nodes, edge_index


@st.composite
def layer_cases(draw):
    num_nodes, edge_index = draw(graphs())
    return dict(
        num_nodes=num_nodes,
        edge_index=edge_index,
        batch=draw(st.integers(1, 3)),
        in_channels=draw(st.integers(1, 5)),
        out_channels=draw(st.integers(1, 4)),
        heads=draw(st.integers(1, 2)),
        concat=draw(st.booleans()),
        per_node=draw(st.booleans()),
        projection=draw(st.sampled_from(PROJECTIONS)),
        weighted=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def build(case: dict) -> tuple[ColumnAttentionConv, torch.Tensor, torch.Tensor | None]:
    torch.manual_seed(case["seed"])
    conv = ColumnAttentionConv(
        case["in_channels"],
        case["out_channels"],
        heads=case["heads"],
        concat=case["concat"],
        num_nodes=case["num_nodes"] if case["per_node"] else None,
        projection=case["projection"],
    )
    x = torch.randn(case["num_nodes"], case["batch"], case["in_channels"])  # [N, B, F]
    weight = torch.rand(case["edge_index"].size(1)) if case["weighted"] else None
    return conv, x, weight


@SETTINGS
@given(layer_cases())
def test_sparse_layer_equals_dense_oracle(case):
    conv, x, weight = build(case)
    expected = conv_oracle(conv, x, case["edge_index"], weight)[0]
    torch.testing.assert_close(conv(x, case["edge_index"], weight), expected, atol=1e-5, rtol=1e-4)
    conv.fused = False
    torch.testing.assert_close(conv(x, case["edge_index"], weight), expected, atol=1e-5, rtol=1e-4)
    # a single feature set [N, F] is the batch of one
    torch.testing.assert_close(conv(x[:, 0], case["edge_index"], weight), expected[:, 0])


@SETTINGS
@given(layer_cases(), st.data())
def test_relabelling_nodes_permutes_outputs_and_weights_move_with_nodes(case, data):
    conv, x, weight = build(case)
    num_nodes, edge_index = case["num_nodes"], case["edge_index"]
    perm = torch.tensor(data.draw(st.permutations(range(num_nodes))), dtype=torch.long)
    edge_order = torch.tensor(data.draw(st.permutations(range(edge_index.size(1)))))
    edge_order = edge_order.long()
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(num_nodes)  # new label of old node perm[a] is a
    relabelled_edges = inverse[edge_index[:, edge_order]]
    relabelled_weight = None if weight is None else weight[edge_order]
    moved = ColumnAttentionConv(
        conv.in_channels, conv.out_channels, heads=conv.heads, concat=conv.concat,
        num_nodes=conv.num_nodes, projection=conv.projection,
    )  # fmt: skip
    moved.load_state_dict(conv.state_dict())  # shared weights (and the value projection)
    with torch.no_grad():
        for name in ("query_weight", "key_weight"):
            tensor = getattr(conv, name)
            getattr(moved, name).copy_(tensor[perm] if conv.num_nodes else tensor)
    out = conv(x, edge_index, weight)
    out_relabelled = moved(x[perm], relabelled_edges, relabelled_weight)
    torch.testing.assert_close(out_relabelled, out[perm], atol=1e-5, rtol=1e-4)


def relabelled_model(model: CortexNet, perm: torch.Tensor) -> CortexNet:
    """``model`` with node ``a`` of the copy being node ``perm[a]`` of the original."""
    num_nodes = perm.numel()
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(num_nodes)
    edge_index = inverse[model.edge_index]
    copy = CortexNet(model.config, edge_index=edge_index)  # sorts its edges by target
    old_position = {(int(s), int(t)): e for e, (s, t) in enumerate(model.edge_index.t().tolist())}
    original_pairs = perm[copy.edge_index].t().tolist()  # original labels of the copy's edges
    order = torch.tensor([old_position[(s, t)] for s, t in original_pairs], dtype=torch.long)
    state = dict(model.state_dict())
    state["edge_index"] = copy.edge_index
    state["edge_weight"] = model.edge_weight.detach()[order]
    state["columns.weight"] = state["columns.weight"][:, perm]  # [branch, column, out, in]
    for name in ("columns.norm_weight", "columns.norm_bias", "conv.query_weight",
                 "conv.key_weight", "homeostasis.activity_avg"):  # fmt: skip
        state[name] = state[name][perm]
    copy.load_state_dict(state)
    return copy


@settings(max_examples=10, deadline=None, derandomize=True)
@given(graphs(min_nodes=2, max_nodes=6, max_edges=14), st.data())
def test_cortexnet_relabelled_columns_give_same_logits_and_plasticity(graph, data):
    num_nodes, edge_index = graph
    edge_index = torch.unique(edge_index, dim=1)  # CortexNet's edge weights are per pair
    assume(edge_index.size(1) > 0)  # a model that passes messages refuses an empty graph
    perm = torch.tensor(data.draw(st.permutations(range(num_nodes))), dtype=torch.long)
    model = CortexNet(num_columns=num_nodes, in_dim=5, col_out=3, top_out=2, graph_k=2,
                      message_iters=2, plasticity_lr=0.3, dropout=0.0,
                      edge_index=edge_index)  # fmt: skip
    with torch.no_grad():  # make every per-column quantity distinct, so a mix-up shows
        model.columns.norm_bias.normal_()
        model.homeostasis.activity_avg.uniform_(0.5, 1.5)
    copy = relabelled_model(model, perm)
    x, y = torch.rand(4, 5), torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(copy(x), model(x), atol=1e-5, rtol=1e-4)
    model.training_step((x, y))
    copy.training_step((x, y))
    torch.testing.assert_close(copy.homeostasis.activity_avg, model.homeostasis.activity_avg[perm])
    expected = relabelled_model(model, perm).edge_weight
    torch.testing.assert_close(copy.edge_weight, expected, atol=1e-6, rtol=1e-5)
    grads = copy.columns.weight.grad, model.columns.weight.grad[:, perm]
    torch.testing.assert_close(*grads, atol=1e-5, rtol=1e-4)
