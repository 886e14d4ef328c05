"""ColumnAttentionConv (``cortexgnn/nn/conv.py``): the maths against the dense oracle, and
the conventions of PyG's own conv tests.

Graph layouts and refused input live in ``test_conv_inputs.py``; explainers, compile and
``to_hetero`` in ``test_conv_integration.py``.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from fused_calls import count_fused_calls
from oracles import conv_oracle
from random_graphs import random_graph, simple_graph
from torch_geometric.utils import scatter

from cortexgnn import ColumnAttentionConv, small_world_graph
from cortexgnn.nn.conv import PROJECTIONS

FULL = dict(heads=2, projection="value", root_weight=True, bias=True, add_self_loops=True)


def randomise_bias(conv: ColumnAttentionConv) -> ColumnAttentionConv:
    with torch.no_grad():
        if conv.bias is not None:
            conv.bias.normal_()
    return conv


def refuse_fused(monkeypatch):
    """Make the fused kernel raise, so a test can prove which path a call took."""

    def refuse(*args, **kwargs):
        raise AssertionError("the fused kernel ran")

    monkeypatch.setattr("cortexgnn.nn.conv.folded_attention", refuse)


# --- the maths --------------------------------------------------------------------------


@pytest.mark.parametrize("projection", PROJECTIONS)
@pytest.mark.parametrize("per_node", [True, False])
@pytest.mark.parametrize("heads,concat,batch", [(1, True, (3,)), (2, False, ()), (3, True, (2,))])
def test_matches_the_oracle(projection, per_node, heads, concat, batch):
    conv = ColumnAttentionConv(
        5, 4, heads=heads, concat=concat, num_nodes=7 if per_node else None, projection=projection
    )
    edge_index = random_graph(7, 20, isolated=(2, 5))  # repeats, loops, two isolated targets
    x, weight = torch.randn(7, *batch, 5), torch.rand(edge_index.size(1))
    expected, expected_alpha = conv_oracle(conv, x, edge_index, weight)
    out, (returned, alpha) = conv(x, edge_index, weight, return_attention_weights=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alpha, expected_alpha, atol=1e-6, rtol=1e-5)
    assert returned is edge_index
    torch.testing.assert_close(conv(x, edge_index, weight), expected, atol=1e-5, rtol=1e-5)
    assert out[2].abs().max() == 0 and out[5].abs().max() == 0


@pytest.mark.parametrize("per_node", [True, False])
@pytest.mark.parametrize("projection", PROJECTIONS)
def test_root_weight_bias_and_self_loops_match_the_oracle(per_node, projection):
    conv = ColumnAttentionConv(
        4, 3, heads=2, num_nodes=6 if per_node else None, projection=projection,
        root_weight=True, bias=True, add_self_loops=True,
    )  # fmt: skip
    randomise_bias(conv)
    x, edge_index = torch.randn(6, 2, 4), torch.tensor([[0, 1, 1, 3, 2, 4], [1, 1, 2, 3, 0, 1]])
    weight = torch.rand(6)
    out, (attended, alpha) = conv(x, edge_index, weight, return_attention_weights=True)
    expected, expected_alpha = conv_oracle(conv, x, edge_index, weight)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alpha, expected_alpha, atol=1e-6, rtol=1e-5)
    # existing loops (1 -> 1, 3 -> 3) replaced by one loop per node, appended last
    assert attended.tolist() == [[0, 1, 2, 4, 0, 1, 2, 3, 4, 5], [1, 2, 0, 1, 0, 1, 2, 3, 4, 5]]
    torch.testing.assert_close(conv(x, edge_index, weight), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("per_node", [True, False])
def test_bipartite_matches_the_oracle(batch, per_node):
    conv = ColumnAttentionConv((5, 3), 4, num_nodes=4 if per_node else None, **FULL)
    randomise_bias(conv)
    x_src, x_dst = torch.randn(7, *batch, 5), torch.randn(4, *batch, 3)
    edge_index = simple_graph(7, 4, 12)
    out = conv((x_src, x_dst), edge_index)
    assert out.shape == (4, *batch, 8)
    torch.testing.assert_close(out, conv_oracle(conv, (x_src, x_dst), edge_index)[0])
    with pytest.raises(ValueError, match="edge_index refers to source nodes"):
        conv((x_dst, x_src), edge_index)


def test_two_dim_input_equals_a_batch_of_one():
    conv = ColumnAttentionConv(6, 6, num_nodes=5)
    edge_index, x = random_graph(5, 12), torch.randn(5, 6)
    out, (_, alpha) = conv(x, edge_index, return_attention_weights=True)
    assert out.shape == (5, 6) and alpha.shape == (12, 1)
    torch.testing.assert_close(out, conv(x.unsqueeze(1), edge_index).squeeze(1))
    torch.testing.assert_close(out, conv_oracle(conv, x, edge_index)[0], atol=1e-5, rtol=1e-5)


def test_fold_is_the_scaled_key_times_query_per_head_and_node():
    conv = ColumnAttentionConv(5, 3, heads=2, num_nodes=4)
    fold = conv.fold()
    q = conv.query_weight.unflatten(1, (2, 3))  # [N, H, C, F]
    k = conv.key_weight.unflatten(1, (2, 3))
    torch.testing.assert_close(fold, k.transpose(-1, -2) @ q / math.sqrt(3))
    x, edge_index = torch.randn(4, 2, 5), random_graph(4, 10)
    torch.testing.assert_close(conv(x, edge_index, fold=fold), conv(x, edge_index))
    shared = ColumnAttentionConv(5, 3, heads=2)
    assert shared.fold().shape == (2, 5, 5)
    torch.testing.assert_close(shared(x, edge_index, fold=shared.fold()), shared(x, edge_index))


def test_attention_weights_are_a_distribution_per_target():
    conv = ColumnAttentionConv(4, 3, heads=3, add_self_loops=True, dropout=0.5)
    x, edge_index = torch.randn(6, 3, 4), simple_graph(6, 6, 12)
    out, (attended, alpha) = conv(x, edge_index, torch.rand(12), return_attention_weights=True)
    assert alpha.shape == (attended.size(1), 3, 3) and alpha.min() >= 0
    sums = scatter(alpha, attended[1], dim=0, dim_size=6, reduce="sum")
    torch.testing.assert_close(sums, torch.ones_like(sums))  # before dropout and weights
    assert out.shape == (6, 3, 12)


def test_empty_graph():
    conv = randomise_bias(ColumnAttentionConv(4, 3, heads=2, projection="value", bias=True))
    x, empty = torch.randn(5, 2, 4), torch.empty(2, 0, dtype=torch.long)
    out, (_, alpha) = conv(x, empty, return_attention_weights=True)
    torch.testing.assert_close(out, conv.bias.expand(5, 2, 6))
    assert alpha.shape == (0, 2, 2)
    # With self loops every node attends only to itself: the output is its own value.
    looped = ColumnAttentionConv(4, 3, heads=2, projection="value", add_self_loops=True)
    torch.testing.assert_close(looped(x, empty), x @ looped.value_weight.t())


# --- PyG conventions: batch, edge order, relabelling ------------------------------------


@pytest.mark.parametrize("bipartite", [False, True])
def test_batch_equals_a_loop_over_the_batch(bipartite):
    if bipartite:
        conv = randomise_bias(ColumnAttentionConv((5, 3), 4, **FULL))
        x = (torch.randn(6, 4, 5), torch.randn(5, 4, 3))
        edge_index = simple_graph(6, 5, 13)
    else:
        conv = ColumnAttentionConv(5, 3, heads=2, num_nodes=6, projection="first")
        x, edge_index = torch.randn(6, 4, 5), random_graph(6, 14)
    out = conv(x, edge_index)
    for b in range(4):
        sample = tuple(part[:, b] for part in x) if bipartite else x[:, b]
        torch.testing.assert_close(out[:, b], conv(sample, edge_index), atol=1e-6, rtol=1e-5)


def test_edge_order_invariance_with_all_options():
    conv = randomise_bias(ColumnAttentionConv(4, 3, **FULL))
    x, edge_index, weight = torch.randn(6, 2, 4), simple_graph(6, 6, 14), torch.rand(14)
    perm = torch.randperm(14)
    out, (_, alpha) = conv(x, edge_index, weight, return_attention_weights=True)
    out_p, (_, alpha_p) = conv(x, edge_index[:, perm], weight[perm], return_attention_weights=True)
    torch.testing.assert_close(out_p, out)
    torch.testing.assert_close(alpha_p[:14], alpha[:14][perm])  # loops are appended last
    torch.testing.assert_close(conv(x, edge_index[:, perm], weight[perm]), out)  # fused


def test_relabelling_moves_outputs_and_per_node_weights():
    conv = ColumnAttentionConv(4, 4, num_nodes=7, heads=2)
    edge_index, x = random_graph(7, 20), torch.randn(7, 3, 4)
    perm = torch.randperm(7)  # new node k is old node perm[k]
    moved = ColumnAttentionConv(4, 4, num_nodes=7, heads=2)
    with torch.no_grad():
        moved.query_weight.copy_(conv.query_weight[perm])
        moved.key_weight.copy_(conv.key_weight[perm])
    out = moved(x[perm], perm.argsort()[edge_index])
    torch.testing.assert_close(out, conv(x, edge_index)[perm], atol=1e-6, rtol=1e-5)


# --- gradients and parameters -----------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck_float64(fused):
    conv = ColumnAttentionConv(
        3, 2, heads=2, num_nodes=4, projection="first", root_weight=True, bias=True, fused=fused
    ).double()
    edge_index = torch.tensor([[0, 1, 2, 3, 1, 0], [1, 0, 1, 2, 3, 3]])
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(6, dtype=torch.float64, requires_grad=True)
    params = tuple(conv.parameters())

    def run(x, w, *_):
        return conv(x, edge_index, w)

    assert torch.autograd.gradcheck(run, (x, weight, *params))


def test_second_derivatives_of_the_fused_layer_equal_the_unfused_ones():
    fused = ColumnAttentionConv(8, 8)
    unfused = ColumnAttentionConv(8, 8, fused=False)
    unfused.load_state_dict(fused.state_dict())
    x = torch.randn(5, 8)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 1], [1, 2, 3, 4, 0, 0]])
    terms = []
    for conv in (fused, unfused):
        params = list(conv.parameters())
        grads = torch.autograd.grad(conv(x, edge_index).pow(2).sum(), params, create_graph=True)
        penalty = sum(g.pow(2).sum() for g in grads)
        terms.append(torch.autograd.grad(penalty, params))
    for got, want in zip(*terms, strict=True):
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("fused", [True, False])
def test_gradgradcheck(fused, dtype):
    conv = ColumnAttentionConv(3, 2, heads=2, num_nodes=4, fused=fused).to(dtype)
    edge_index = torch.tensor([[0, 1, 2, 3, 1, 0], [1, 0, 1, 2, 3, 3]])
    x = torch.randn(4, 2, 3, dtype=dtype, requires_grad=True)
    weight = torch.rand(6, dtype=dtype, requires_grad=True)
    loose = {} if dtype == torch.float64 else {"eps": 1e-3, "atol": 2e-2, "rtol": 2e-2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gradcheck's "not double precision"
        assert torch.autograd.gradgradcheck(
            lambda x, w, *_: conv(x, edge_index, w), (x, weight, *conv.parameters()), **loose
        )


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_gradients_reach_and_reset_parameters_redraws_every_parameter(projection):
    bipartite = projection != "first"
    conv = ColumnAttentionConv(
        (5, 3) if bipartite else 5, 4, heads=2, projection=projection, root_weight=True,
        bias=True, add_self_loops=True,
    )  # fmt: skip
    randomise_bias(conv)
    x = (torch.randn(6, 2, 5), torch.randn(4, 2, 3)) if bipartite else torch.randn(6, 2, 5)
    conv(x, simple_graph(6, 4 if bipartite else 6, 10)).square().sum().backward()
    names = {"query_weight", "key_weight", "lin_root_weight", "bias"}
    names |= {"value_weight"} if projection != "none" else set()
    assert {name for name, _ in conv.named_parameters()} == names
    for name, param in conv.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    before = {name: p.detach().clone() for name, p in conv.named_parameters()}
    conv.reset_parameters()
    for name, param in conv.named_parameters():
        assert not torch.equal(before[name], param), name
        if name != "bias":
            assert param.abs().max() <= 1 / math.sqrt(param.size(-1)), name
    assert conv.bias.abs().max() == 0


def test_lazy_in_channels_match_an_eager_layer():
    lazy = ColumnAttentionConv(-1, 3, **FULL)
    eager = ColumnAttentionConv(5, 3, **FULL)
    x, edge_index = torch.randn(6, 5), simple_graph(6, 6, 10)
    lazy(x, edge_index)
    assert lazy.in_channels == 5 and repr(lazy).startswith("ColumnAttentionConv(5, 3")
    eager.load_state_dict(lazy.state_dict())
    torch.testing.assert_close(lazy(x, edge_index), eager(x, edge_index))
    bipartite = ColumnAttentionConv((-1, -1), 3, heads=2, root_weight=True)
    out = bipartite((torch.randn(4, 6), torch.randn(3, 2)), simple_graph(4, 3, 5))
    assert out.shape == (3, 12) and bipartite.in_channels == (6, 2)


# --- the two execution paths ------------------------------------------------------------


@pytest.mark.parametrize("num_nodes", [20, 300])  # 300: past the dense backend's limit
@pytest.mark.parametrize("projection", ["none", "first"])
@pytest.mark.parametrize("per_node", [False, True])
def test_fused_equals_propagate_with_gradients(num_nodes, projection, per_node):
    kwargs = dict(heads=2, num_nodes=num_nodes if per_node else None, projection=projection)
    conv = ColumnAttentionConv(6, 4, add_self_loops=projection == "first", bias=True, **kwargs)
    edge_index = small_world_graph(num_nodes, 4, 0.2, seed=0)
    x = torch.randn(num_nodes, 3, 6, requires_grad=True)
    weight = torch.rand(edge_index.size(1), requires_grad=True)
    fused = conv(x, edge_index, weight)
    conv.fused = False
    slow = conv(x, edge_index, weight)
    torch.testing.assert_close(fused, slow, atol=1e-5, rtol=1e-5)
    leaves = (x, weight, *conv.parameters())
    grad_out = torch.randn_like(fused)
    grads = [torch.autograd.grad((out * grad_out).sum(), leaves) for out in (fused, slow)]
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("projection", ["none", "first"])
@pytest.mark.parametrize("per_node", [False, True])
@pytest.mark.parametrize("halo", [False, True], ids=["disjoint", "halo"])
def test_bipartite_fused_equals_propagate_and_the_oracle(monkeypatch, projection, per_node, halo):
    """Keys/values from ``x_src``, queries from ``x_dst``: fused, up to second derivatives.

    ``halo``: the sharded model's call, sources = [the targets' own states, received halo].
    """
    num_src, num_dst, batch = 9, 5, 2
    dst_channels = 6 if projection == "first" or halo else 4  # "first" needs F_src = F_dst
    conv = ColumnAttentionConv(
        (6, dst_channels), 3, heads=2, projection=projection,
        num_nodes=num_dst if per_node else None, root_weight=True, bias=True,
    )  # fmt: skip
    randomise_bias(conv)
    x_dst = torch.randn(num_dst, batch, dst_channels)
    x_src = torch.randn(num_src, batch, 6)  # [N_src, B, F_src]
    if halo:
        x_src = torch.cat([x_dst, x_src[num_dst:]])  # [N_src, B, F]
    edge_index = random_graph(num_src, 30)
    edge_index = edge_index[:, (edge_index[1] < num_dst) & (edge_index[1] != 1)]  # 1: none in
    weight = torch.rand(edge_index.size(1))
    leaves = [t.clone().requires_grad_() for t in (x_src, x_dst, weight)]
    calls = count_fused_calls(monkeypatch.setattr)
    results = {}
    for fused in (True, False):
        conv.fused = fused
        params = list(conv.parameters())
        out = conv(tuple(leaves[:2]), edge_index, leaves[2])
        grads = torch.autograd.grad(out.pow(2).sum(), leaves + params, create_graph=True)
        penalty = sum(g.pow(2).sum() for g in grads)  # the fused path recomputes on PyTorch
        results[fused] = (out, grads, torch.autograd.grad(penalty, leaves + params))
    assert calls == [(num_dst, num_src)]  # the fused call ran the kernel, the other did not
    expected = conv_oracle(conv, (x_src, x_dst), edge_index, weight)[0]
    torch.testing.assert_close(results[True][0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results[True][0], results[False][0], atol=1e-5, rtol=1e-5)
    for got, want in zip(results[True][1] + results[True][2], results[False][1] + results[False][2],
                         strict=True):  # fmt: skip
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_fused_false_always_takes_propagate(monkeypatch):
    conv = ColumnAttentionConv(6, 4, heads=2, projection="first", add_self_loops=True)
    x, edge_index = torch.randn(30, 3, 6), small_world_graph(30, 4, 0.2, seed=2)
    fused = conv(x, edge_index)
    refuse_fused(monkeypatch)
    with pytest.raises(AssertionError, match="the fused kernel ran"):
        conv(x, edge_index)  # the default call is fused
    conv.fused = False
    assert repr(conv).endswith(", fused=False)")
    torch.testing.assert_close(conv(x, edge_index), fused, atol=1e-5, rtol=1e-5)
    conv.train(), setattr(conv, "dropout", 0.5)
    assert conv(x, edge_index).shape == fused.shape  # dropout in training: still propagate


def test_what_needs_propagate_never_reaches_the_fused_kernel(monkeypatch):
    x, edge_index = torch.randn(8, 2, 5), small_world_graph(8, 4, 0.0)
    refuse_fused(monkeypatch)
    value = ColumnAttentionConv(5, 5, projection="value")  # key x, value V x: two tensors
    assert value(x, edge_index).shape == (8, 2, 5)
    assert value((x, x.clone()), edge_index).shape == (8, 2, 5)  # bipartite, too
    plain = ColumnAttentionConv(5, 5)
    assert plain(x, edge_index, return_attention_weights=True)[1][1].shape == (32, 2, 1)
    plain.register_message_forward_hook(lambda *args: None)
    assert plain(x, edge_index).shape == (8, 2, 5)


def test_dropout_only_in_training_on_both_paths():
    x, edge_index = torch.randn(6, 4), simple_graph(6, 6, 20)
    for fused in (True, False):
        conv = ColumnAttentionConv(4, 4, heads=2, dropout=0.5, fused=fused).eval()
        torch.testing.assert_close(conv(x, edge_index), conv(x, edge_index))
        conv.train()
        assert not torch.allclose(conv(x, edge_index), conv(x, edge_index)), fused


# --- errors and repr --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 4), {}, r"in_channels must be >= 1 or -1 \(lazy\), got 0"),
        (((5, -2), 4), {}, r"in_channels must be >= 1 or -1"),
        ((4, 0), {}, r"out_channels and heads must be >= 1"),
        ((4, 4), dict(heads=0), r"out_channels and heads must be >= 1"),
        ((4, 4), dict(num_nodes=0), r"num_nodes must be >= 1 or None"),
        ((4, 4), dict(dropout=1.0), r"dropout must lie in \[0, 1\), got 1.0"),
        ((4, 4), dict(projection="key"), r"projection must be one of .*got 'key'"),
        (((5, 3), 4), dict(projection="first"), r"projection='first' .* equal source and target"),
        ((4, 4), dict(num_nodes=5.5), r"num_nodes must be an int, got 5.5 \(float\)"),
        ((4, 4), dict(heads=2.0), r"heads must be an int, got 2.0"),
        ((4, 4.0), {}, r"out_channels must be an int"),
        (((4, True), 4), {}, r"in_channels must be an int, got True"),
    ],
)
def test_constructor_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColumnAttentionConv(*args, **kwargs)


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.randn(5, 2, 3, 4), r"x must be \[N, F\] or \[N, B, F\].*transpose\(0, 1\)"),
        (torch.randn(5, 2, 3), r"x has 3 features in its last dim, but in_channels=4"),
        (torch.randn(6, 4), r"num_nodes=5 nodes, got x with 6 .*num_nodes=None"),
        ((torch.randn(5, 4), torch.randn(5, 2)), r"x_dst has 2 features"),
        ((torch.randn(5, 2, 4), torch.randn(5, 4)), r"x_src and x_dst must share their batch"),
        ((torch.randn(5, 4),), r"a bipartite x must be a pair of tensors"),
    ],
)
def test_forward_errors(x, match):
    conv = ColumnAttentionConv(4, 4, num_nodes=5)
    with pytest.raises(ValueError, match=match):
        conv(x, torch.tensor([[0, 1], [1, 0]]))


def test_x_of_another_type_is_a_type_error():
    with pytest.raises(TypeError, match="x must be a tensor or a pair of tensors, got float"):
        ColumnAttentionConv(4, 4)(3.0, torch.tensor([[0, 1], [1, 0]]))


def test_repr():
    assert repr(ColumnAttentionConv(8, 4, heads=2)) == "ColumnAttentionConv(8, 4, heads=2, shared)"
    assert (
        repr(ColumnAttentionConv(8, 8, num_nodes=3))
        == "ColumnAttentionConv(8, 8, heads=1, num_nodes=3)"
    )
    assert repr(ColumnAttentionConv((5, 3), 4, **FULL, concat=False, fused=False)) == (
        "ColumnAttentionConv((5, 3), 4, heads=2, shared, projection='value', root_weight=True, "
        "add_self_loops=True, bias=True, concat=False, fused=False)"
    )
    assert "projection='first'" in repr(ColumnAttentionConv(4, 4, projection="first"))
