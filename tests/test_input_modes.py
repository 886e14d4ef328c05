"""Every documented input works in every documented mode (issue 11, item 3).

Each test here failed on a3fbd8b: inference and no-grad modes (and training after an
inference call on the same graph), low-precision dtypes, extreme magnitudes, a graph edited
in place, a graph arriving through ``load_state_dict``, the blame for a bad ``x``.
Graph layouts (``EdgeIndex``, ``int32``) are in ``test_conv_inputs.py``; ``graph_k < 2`` in
``test_config.py``.
"""

from __future__ import annotations

import pytest
import torch
from oracles import conv_oracle

from cortexgnn import ColumnAttentionConv, CortexNet, small_world_graph

TINY = dict(num_columns=6, in_dim=10, col_out=4, top_out=3, graph_k=2, graph_seed=0)


def isolated_graph(num_nodes: int = 8) -> torch.Tensor:
    """A small-world graph whose node 0 has no in-edge."""
    edge_index = small_world_graph(num_nodes, 4, 0.3, seed=3)
    return edge_index[:, edge_index[1] != 0]


def test_inference_and_no_grad_mode_on_the_layer_and_the_model():
    x, edge_index = torch.randn(8, 2, 5), small_world_graph(8, 4, 0.3, seed=4)
    net = CortexNet(**TINY, freeze_homeostasis_in_eval=True).eval()
    x_net = torch.rand(3, 10)
    logits = net(x_net)
    for mode in (torch.inference_mode, torch.no_grad):
        for add_self_loops in (False, True):
            conv = ColumnAttentionConv(5, 3, heads=2, num_nodes=8, add_self_loops=add_self_loops)
            with mode():
                out = conv(x, edge_index)
                unfused, _ = conv(x, edge_index, return_attention_weights=True)
            expected = conv_oracle(conv, x, edge_index)[0]
            torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(unfused, expected, atol=1e-5, rtol=1e-5)
            assert not out.requires_grad
        with mode():
            torch.testing.assert_close(net(x_net), logits)


def test_training_after_an_inference_mode_call_on_the_same_graph():
    x, edge_index = torch.randn(8, 2, 5), small_world_graph(8, 4, 0.3, seed=5)
    for add_self_loops in (False, True):
        conv = ColumnAttentionConv(5, 3, add_self_loops=add_self_loops)
        with torch.inference_mode():
            conv(x, edge_index)  # caches the graph's CSR (and self loops) in inference mode
        conv(x, edge_index).square().sum().backward()
        assert conv.query_weight.grad.abs().sum() > 0
    net = CortexNet(**TINY)
    with torch.inference_mode():
        net(torch.rand(3, 10))
    loss = net.training_step((torch.rand(3, 10), torch.tensor([0, 1, 2])))
    assert torch.isfinite(loss) and net.conv.query_weight.grad.abs().sum() > 0


TOLERANCE = {torch.float16: 5e-3, torch.bfloat16: 3e-2, torch.float32: 1e-5, torch.float64: 1e-5}


@pytest.mark.parametrize("weighted", [False, True])
def test_float_dtypes_equal_float32_and_an_isolated_node_gets_zero(weighted):
    conv = ColumnAttentionConv(5, 3, heads=2, num_nodes=8, projection="first", bias=True)
    with torch.no_grad():
        conv.bias.normal_()
    edge_index = isolated_graph()
    x, weight = torch.randn(8, 2, 5), torch.rand(edge_index.size(1)) if weighted else None
    expected = conv(x, edge_index, weight)
    for dtype, tolerance in TOLERANCE.items():
        low = ColumnAttentionConv(5, 3, heads=2, num_nodes=8, projection="first", bias=True)
        low.load_state_dict(conv.state_dict())
        low.to(dtype)
        cast_weight = None if weight is None else weight.to(dtype)
        for fused in (True, False):
            low.fused = fused
            out = low(x.to(dtype), edge_index, cast_weight)
            assert out.dtype == dtype and not out.isnan().any(), (dtype, fused)
            torch.testing.assert_close(out.float(), expected, atol=tolerance, rtol=tolerance)
            torch.testing.assert_close(out[0], low.bias.expand(2, 6).detach())  # no message


def test_bfloat16_model_with_gated_attention():
    net = CortexNet(**TINY, attention_uses_edge_weight=True).to(torch.bfloat16)
    logits = net(torch.rand(3, 10, dtype=torch.bfloat16))
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


def test_huge_float64_features_attend_only_to_neighbours():
    conv = ColumnAttentionConv(4, 4, num_nodes=8).double()
    edge_index = isolated_graph()
    x = torch.randn(8, 3, 4, dtype=torch.float64) * 1e16  # scores around 1e32
    x[x.abs() < 1e16] = 1e16
    fused = conv(x, edge_index)
    conv.fused = False
    unfused = conv(x, edge_index)
    expected = conv_oracle(conv, x, edge_index)[0]
    torch.testing.assert_close(fused, expected, atol=0, rtol=1e-9)
    torch.testing.assert_close(unfused, expected, atol=0, rtol=1e-9)
    neighbours = {i: set(edge_index[0, edge_index[1] == i].tolist()) for i in range(8)}
    for i in range(1, 8):  # every output row is one neighbour's row (a saturated softmax)
        for b in range(3):
            assert any(torch.equal(fused[i, b], x[j, b]) for j in neighbours[i]), (i, b)


def test_out_of_range_edge_index_through_load_state_dict_is_refused():
    net = CortexNet(**TINY)
    state = net.state_dict()
    state["edge_index"] = state["edge_index"].clone()
    state["edge_index"][1, -1] = 6
    with pytest.raises(ValueError, match=r"target nodes .*6, but the graph has 6 target nodes"):
        net.load_state_dict(state)
    assert int(net.edge_index.max()) == 5  # the model keeps its graph


@pytest.mark.parametrize("through", ["numpy", "data"])
def test_a_graph_edited_in_place_is_never_served_stale(through):
    x = torch.randn(8, 2, 5)
    for add_self_loops in (False, True):
        conv = ColumnAttentionConv(5, 3, heads=2, add_self_loops=add_self_loops)
        edge_index = small_world_graph(8, 4, 0.0)
        before = conv(x, edge_index)  # caches the graph
        rewired = (edge_index[0] + 3) % 8
        if through == "numpy":
            edge_index.numpy()[0] = rewired.numpy()
        else:
            edge_index.data[0] = rewired
        after = conv(x, edge_index)
        conv.fused = False
        torch.testing.assert_close(after, conv(x, edge_index), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(after, before)


def test_training_step_with_a_bad_x_blames_x_not_y():
    net = CortexNet(**TINY)
    y = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"^x must be \[B, in_dim=10\].*got shape \(10,\)"):
        net.training_step((torch.rand(10), y))
    with pytest.raises(ValueError, match=r"^x has dtype torch.float64"):
        net.training_step((torch.rand(3, 10, dtype=torch.float64), y))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_other_float_dtypes_work_end_to_end(dtype):
    torch.manual_seed(0)
    reference = CortexNet(**TINY, dropout=0.0)
    model = CortexNet(**TINY, dropout=0.0).to(dtype)
    model.load_state_dict(reference.state_dict())
    x, y = torch.rand(4, 10), torch.tensor([0, 1, 2, 0])
    loss = model.training_step((x.to(dtype), y))
    assert loss.dtype == dtype and torch.isfinite(loss)
    assert all(p.grad.dtype == dtype for p in model.parameters() if p.grad is not None)
    tolerance = {torch.float64: 1e-5, torch.bfloat16: 0.1, torch.float16: 0.02}[dtype]
    torch.testing.assert_close(
        loss.double(), reference.training_step((x, y)).double(), atol=tolerance, rtol=0
    )
