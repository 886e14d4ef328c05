"""ColumnAttentionConv against a dense oracle written without PyG."""

from __future__ import annotations

import math

import pytest
import torch

from cortexgnn import ColumnAttentionConv


def dense_oracle(conv: ColumnAttentionConv, x, edge_index, edge_weight=None):
    """Loop over targets and their in-edges; project keys per edge, no folding.

    x: [N, B, F]. Returns (out [N, B, H*F or F], alpha [E, B, H]).
    """
    num_nodes, batch, _ = x.shape
    heads, channels = conv.heads, conv.out_channels
    alpha = torch.zeros(edge_index.size(1), batch, heads, dtype=x.dtype)
    out = torch.zeros(num_nodes, batch, heads, x.size(-1), dtype=x.dtype)
    for i in range(num_nodes):
        q_weight = conv.query_weight[i] if conv.num_nodes else conv.query_weight
        k_weight = conv.key_weight[i] if conv.num_nodes else conv.key_weight
        incoming = (edge_index[1] == i).nonzero().flatten().tolist()
        if not incoming:
            continue  # isolated target: zero message
        q = (x[i] @ q_weight.t()).view(batch, heads, channels)  # [B, H, C]
        scores = torch.stack(
            [
                (q * (x[edge_index[0, e]] @ k_weight.t()).view(batch, heads, channels)).sum(-1)
                for e in incoming
            ]
        ) / math.sqrt(channels)  # [deg, B, H]
        weights = scores.softmax(dim=0)
        alpha[incoming] = weights
        for slot, e in enumerate(incoming):
            gate = 1.0 if edge_weight is None else edge_weight[e]
            out[i] += gate * weights[slot].unsqueeze(-1) * x[edge_index[0, e]].unsqueeze(1)
    out = out.flatten(-2) if conv.concat else out.mean(-2)
    return out, alpha


def random_graph(num_nodes, num_edges, isolated=()):
    edge_index = torch.randint(0, num_nodes, (2, num_edges))
    keep = ~torch.isin(edge_index[1], torch.tensor(list(isolated), dtype=torch.long))
    return edge_index[:, keep]


@pytest.mark.parametrize("per_node", [True, False])
@pytest.mark.parametrize("heads,concat", [(1, True), (2, True), (3, False)])
def test_matches_dense_oracle_batched(per_node, heads, concat):
    num_nodes, batch, features = 7, 3, 5
    conv = ColumnAttentionConv(
        features, 4, heads=heads, concat=concat, num_nodes=num_nodes if per_node else None
    )
    edge_index = random_graph(num_nodes, 20, isolated=(2, 5))  # nodes 2 and 5 receive nothing
    x = torch.randn(num_nodes, batch, features)
    out, (returned_index, alpha) = conv(x, edge_index, return_attention_weights=True)
    expected, expected_alpha = dense_oracle(conv, x, edge_index)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alpha, expected_alpha, atol=1e-6, rtol=1e-5)
    assert returned_index is edge_index
    assert out[2].abs().max() == 0 and out[5].abs().max() == 0


def test_two_dim_input_equals_batch_of_one():
    conv = ColumnAttentionConv(6, 6, num_nodes=5)
    edge_index = random_graph(5, 12)
    x = torch.randn(5, 6)
    out, (_, alpha) = conv(x, edge_index, return_attention_weights=True)
    expected, expected_alpha = dense_oracle(conv, x.unsqueeze(1), edge_index)
    assert out.shape == (5, 6) and alpha.shape == (12, 1)
    torch.testing.assert_close(out, expected.squeeze(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alpha, expected_alpha.squeeze(1))


def test_edge_weight_gates_the_messages():
    conv = ColumnAttentionConv(4, 4, num_nodes=6)
    edge_index = random_graph(6, 15)
    weight = torch.rand(edge_index.size(1))
    x = torch.randn(6, 2, 4)
    expected, _ = dense_oracle(conv, x, edge_index, weight)
    torch.testing.assert_close(conv(x, edge_index, weight), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(conv(x, edge_index), expected)


def test_batch_equals_loop_over_batch():
    conv = ColumnAttentionConv(5, 3, heads=2, num_nodes=6)
    edge_index = random_graph(6, 14)
    x = torch.randn(6, 4, 5)
    looped = torch.stack([conv(x[:, b], edge_index) for b in range(4)], dim=1)
    torch.testing.assert_close(conv(x, edge_index), looped, atol=1e-6, rtol=1e-5)


def test_edge_order_invariance():
    conv = ColumnAttentionConv(5, 5)
    edge_index = random_graph(8, 25)
    x = torch.randn(8, 2, 5)
    perm = torch.randperm(edge_index.size(1))
    torch.testing.assert_close(conv(x, edge_index), conv(x, edge_index[:, perm]))


def test_relabelling_moves_outputs_and_per_node_weights():
    num_nodes = 7
    conv = ColumnAttentionConv(4, 4, num_nodes=num_nodes)
    edge_index = random_graph(num_nodes, 20)
    x = torch.randn(num_nodes, 3, 4)
    perm = torch.randperm(num_nodes)  # new node k is old node perm[k]
    inverse = perm.argsort()
    moved = ColumnAttentionConv(4, 4, num_nodes=num_nodes)
    with torch.no_grad():
        moved.query_weight.copy_(conv.query_weight[perm])
        moved.key_weight.copy_(conv.key_weight[perm])
    out = moved(x[perm], inverse[edge_index])
    torch.testing.assert_close(out, conv(x, edge_index)[perm], atol=1e-6, rtol=1e-5)


def test_gradcheck_float64():
    conv = ColumnAttentionConv(3, 2, heads=2, num_nodes=4).double()
    edge_index = torch.tensor([[0, 1, 2, 3, 1, 0], [1, 0, 1, 2, 3, 3]])
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, q, k: conv(x, edge_index, w),
        (x, weight, conv.query_weight, conv.key_weight),
    )


def test_gradients_reach_every_parameter():
    conv = ColumnAttentionConv(4, 4, heads=2, num_nodes=5)
    edge_index = random_graph(5, 15)
    conv(torch.randn(5, 2, 4), edge_index).square().sum().backward()
    for name, param in conv.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_reset_parameters_touches_every_parameter():
    conv = ColumnAttentionConv(4, 4, num_nodes=3)
    before = {name: p.detach().clone() for name, p in conv.named_parameters()}
    conv.reset_parameters()
    for name, param in conv.named_parameters():
        assert not torch.equal(before[name], param), name
        assert param.abs().max() <= 1 / math.sqrt(4)


@pytest.mark.parametrize(
    "x_shape,edge_index,match",
    [
        ((5, 2, 3, 4), torch.zeros(2, 1, dtype=torch.long), r"\[N, F\] or \[N, B, F\]"),
        ((5, 2, 3), torch.zeros(2, 1, dtype=torch.long), "in_channels=4"),
        ((6, 4), torch.zeros(2, 1, dtype=torch.long), "num_nodes=5"),
        ((5, 4), torch.zeros(3, 1, dtype=torch.long), r"\[2, E\]"),
        ((5, 4), torch.zeros(2, 1), "integer tensor"),
        ((5, 4), torch.tensor([[0], [5]]), "x has 5 nodes"),
        ((5, 4), torch.tensor([[-1], [0]]), "x has 5 nodes"),
    ],
)
def test_bad_input_is_refused(x_shape, edge_index, match):
    conv = ColumnAttentionConv(4, 4, num_nodes=5)
    with pytest.raises(ValueError, match=match):
        conv(torch.randn(x_shape), edge_index)


def test_bad_edge_weight_and_constructor_args():
    conv = ColumnAttentionConv(4, 4)
    with pytest.raises(ValueError, match="edge_weight must have shape"):
        conv(torch.randn(3, 4), torch.tensor([[0, 1], [1, 2]]), torch.ones(3))
    with pytest.raises(ValueError, match="dropout"):
        ColumnAttentionConv(4, 4, dropout=1.0)
    with pytest.raises(ValueError, match="num_nodes"):
        ColumnAttentionConv(4, 4, num_nodes=0)


def test_repr():
    assert repr(ColumnAttentionConv(8, 4, heads=2)) == "ColumnAttentionConv(8, 4, heads=2, shared)"
    assert (
        repr(ColumnAttentionConv(8, 8, num_nodes=3))
        == "ColumnAttentionConv(8, 8, heads=1, num_nodes=3)"
    )
