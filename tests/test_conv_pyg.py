"""ColumnAttentionConv as a PyG layer: the conventions of PyG's own conv tests.

The dense oracle here covers the options beyond the article's message (shared weights,
value projection, root weight, bias, self loops, bipartite input); the per-node oracle and
gradcheck live in ``test_conv.py``, graph layouts and refused input in
``test_conv_inputs.py``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from random_graphs import simple_graph
from torch_geometric.utils import scatter

from cortexgnn import ColumnAttentionConv

FULL = dict(heads=2, project_value=True, root_weight=True, bias=True, add_self_loops=True)


def dense_oracle(conv, x_src, x_dst, edge_index, edge_weight=None):
    """The layer's equation on dense ``[N_dst, N_src]`` masks, shared weights only."""
    heads, channels = conv.heads, conv.out_channels
    num_src, num_dst = x_src.size(0), x_dst.size(0)
    mask = torch.zeros(num_dst, num_src, dtype=torch.bool)
    gate = torch.zeros(num_dst, num_src)
    weight = torch.ones(edge_index.size(1)) if edge_weight is None else edge_weight
    for (j, i), w in zip(edge_index.t().tolist(), weight.tolist(), strict=True):
        if conv.add_self_loops and i == j:
            continue
        mask[i, j], gate[i, j] = True, w
    if conv.add_self_loops:
        for i in range(min(num_src, num_dst)):
            mask[i, i], gate[i, i] = True, 1.0
    if conv.project_first:  # per-head C x C query/key on the projected features
        v_src = (x_src @ conv.value_weight.t()).unflatten(-1, (heads, channels))
        v_dst = (x_dst @ conv.value_weight.t()).unflatten(-1, (heads, channels))
        q = torch.einsum("...hd,hcd->...hc", v_dst, conv.query_weight.unflatten(0, (heads, -1)))
        k = torch.einsum("...hd,hcd->...hc", v_src, conv.key_weight.unflatten(0, (heads, -1)))
    else:
        q = (x_dst @ conv.query_weight.t()).unflatten(-1, (heads, channels))  # [Nd, *, H, C]
        k = (x_src @ conv.key_weight.t()).unflatten(-1, (heads, channels))  # [Ns, *, H, C]
    score = torch.einsum("i...hc,j...hc->...hij", q, k) / math.sqrt(channels)
    score = score.masked_fill(~mask, float("-inf"))
    alpha = torch.softmax(score, dim=-1).nan_to_num()  # rows without edges -> 0
    if conv.value_weight is None:
        value = x_src.unsqueeze(-2).expand(*x_src.shape[:-1], heads, x_src.size(-1))
    else:
        value = (x_src @ conv.value_weight.t()).unflatten(-1, (heads, channels))
    out = torch.einsum("...hij,ij,j...hc->i...hc", alpha, gate, value)
    out = out.flatten(-2) if conv.concat else out.mean(-2)
    if conv.lin_root_weight is not None:
        out = out + x_dst @ conv.lin_root_weight.t()
    if conv.bias is not None:
        out = out + conv.bias
    return out


def randomise_bias(conv):
    with torch.no_grad():
        if conv.bias is not None:
            conv.bias.normal_()


@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("projection", ["none", "value", "first"])
def test_shapes_and_dense_oracle(batch, concat, projection):
    conv = ColumnAttentionConv(
        5,
        4,
        heads=2,
        concat=concat,
        project_value=projection == "value",
        project_first=projection == "first",
        root_weight=True,
        bias=True,
    )
    randomise_bias(conv)
    x = torch.randn(6, *batch, 5)
    edge_index = simple_graph(6, 6, 14)
    weight = torch.rand(14)
    out = conv(x, edge_index, weight)
    per_head = 5 if projection == "none" else 4
    assert out.shape == (6, *batch, 2 * per_head if concat else per_head)
    torch.testing.assert_close(out, dense_oracle(conv, x, x, edge_index, weight))


def test_self_loops_replace_existing_loops():
    conv = ColumnAttentionConv(4, 3, **FULL)
    x = torch.randn(5, 4)
    edge_index = torch.tensor([[0, 1, 1, 3, 2], [1, 1, 2, 3, 0]])  # two self loops
    out, (attended, alpha) = conv(x, edge_index, return_attention_weights=True)
    assert attended.size(1) == 3 + 5 and alpha.shape == (8, 2)
    torch.testing.assert_close(out, dense_oracle(conv, x, x, edge_index))


@pytest.mark.parametrize("batch", [(), (2,)])
def test_bipartite(batch):
    conv = ColumnAttentionConv((5, 3), 4, **FULL)
    randomise_bias(conv)
    x_src, x_dst = torch.randn(7, *batch, 5), torch.randn(4, *batch, 3)
    edge_index = simple_graph(7, 4, 12)
    out = conv((x_src, x_dst), edge_index)
    assert out.shape == (4, *batch, 8)
    torch.testing.assert_close(out, dense_oracle(conv, x_src, x_dst, edge_index))
    with pytest.raises(ValueError, match="edge_index refers to nodes"):
        conv((x_src, x_dst), edge_index.flip(0))


def test_bipartite_per_node_weights_belong_to_targets():
    conv = ColumnAttentionConv((5, 3), 4, num_nodes=4, heads=2)
    x_src, x_dst = torch.randn(7, 5), torch.randn(4, 3)
    edge_index = simple_graph(7, 4, 12)
    out, (_, alpha) = conv((x_src, x_dst), edge_index, return_attention_weights=True)
    src, dst = edge_index
    # Score of edge j -> i: (Q_i x_i) . (K_i x_j) / sqrt(C), per head.
    q = torch.einsum("ief,if->ie", conv.query_weight[dst], x_dst[dst]).unflatten(-1, (2, 4))
    k = torch.einsum("ief,if->ie", conv.key_weight[dst], x_src[src]).unflatten(-1, (2, 4))
    score = (q * k).sum(-1) / 2.0
    expected = torch.exp(score) / scatter(torch.exp(score), dst, 0, 4, reduce="sum")[dst]
    torch.testing.assert_close(alpha, expected)
    assert out.shape == (4, 10)


def test_project_first_per_node_weights():
    conv = ColumnAttentionConv(5, 3, heads=2, num_nodes=4, project_first=True)
    x_src, x_dst = torch.randn(6, 2, 5), torch.randn(4, 2, 5)
    edge_index = simple_graph(6, 4, 12)
    out, (_, alpha) = conv((x_src, x_dst), edge_index, return_attention_weights=True)
    src, dst = edge_index
    v_src = (x_src @ conv.value_weight.t()).unflatten(-1, (2, 3))  # [6, 2, H, C]
    v_dst = (x_dst @ conv.value_weight.t()).unflatten(-1, (2, 3))
    query = conv.query_weight.unflatten(1, (2, 3))[dst]  # [E, H, C, C], owned by the target
    key = conv.key_weight.unflatten(1, (2, 3))[dst]
    q = torch.einsum("ehcd,ebhd->ebhc", query, v_dst[dst])
    k = torch.einsum("ehcd,ebhd->ebhc", key, v_src[src])
    score = (q * k).sum(-1) / math.sqrt(3)  # [E, B, H]
    expected = torch.exp(score) / scatter(torch.exp(score), dst, 0, 4, reduce="sum")[dst]
    torch.testing.assert_close(alpha, expected)
    expected_out = scatter(expected.unsqueeze(-1) * v_src[src], dst, 0, 4, reduce="sum")
    torch.testing.assert_close(out, expected_out.flatten(-2))
    with pytest.raises(ValueError, match="project_first"):
        ColumnAttentionConv((5, 3), 3, project_first=True)


@pytest.mark.parametrize("batch", [(), (3,)])
def test_attention_weights_are_a_distribution_per_target(batch):
    conv = ColumnAttentionConv(4, 3, heads=3, add_self_loops=True, dropout=0.5)
    x = torch.randn(6, *batch, 4)
    edge_index = simple_graph(6, 6, 12)
    out, (attended, alpha) = conv(x, edge_index, torch.rand(12), return_attention_weights=True)
    assert alpha.shape == (attended.size(1), *batch, 3)
    assert alpha.min() >= 0 and alpha.max() <= 1
    sums = scatter(alpha, attended[1], dim=0, dim_size=6, reduce="sum")
    torch.testing.assert_close(sums, torch.ones_like(sums))
    assert out.shape == (6, *batch, 12)


def test_empty_graph():
    conv = ColumnAttentionConv(4, 3, heads=2, project_value=True, bias=True)
    randomise_bias(conv)
    x = torch.randn(5, 2, 4)
    empty = torch.empty(2, 0, dtype=torch.long)
    out, (_, alpha) = conv(x, empty, return_attention_weights=True)
    torch.testing.assert_close(out, conv.bias.expand(5, 2, 6))
    assert alpha.shape == (0, 2, 2)
    # With self loops every node attends only to itself: the output is its own value.
    looped = ColumnAttentionConv(4, 3, heads=2, project_value=True, add_self_loops=True)
    torch.testing.assert_close(looped(x, empty), x @ looped.value_weight.t())


def test_edge_permutation_invariance_with_all_options():
    conv = ColumnAttentionConv(4, 3, **FULL)
    x = torch.randn(6, 2, 4)
    edge_index, weight = simple_graph(6, 6, 14), torch.rand(14)
    perm = torch.randperm(14)
    out, (_, alpha) = conv(x, edge_index, weight, return_attention_weights=True)
    out_p, (_, alpha_p) = conv(x, edge_index[:, perm], weight[perm], return_attention_weights=True)
    torch.testing.assert_close(out_p, out)
    torch.testing.assert_close(alpha_p[:14], alpha[:14][perm])  # loops are appended last


def test_static_graph_batch_equals_loop_over_batch():
    conv = ColumnAttentionConv((5, 3), 4, **FULL)
    randomise_bias(conv)
    x_src, x_dst = torch.randn(6, 4, 5), torch.randn(5, 4, 3)
    edge_index = simple_graph(6, 5, 13)
    out = conv((x_src, x_dst), edge_index)
    for b in range(4):
        torch.testing.assert_close(out[:, b], conv((x_src[:, b], x_dst[:, b]), edge_index))


def test_lazy_in_channels_match_an_eager_layer():
    lazy = ColumnAttentionConv(-1, 3, **FULL)
    eager = ColumnAttentionConv(5, 3, **FULL)
    x, edge_index = torch.randn(6, 5), simple_graph(6, 6, 10)
    lazy(x, edge_index)
    assert lazy.in_channels == 5 and repr(lazy).startswith("ColumnAttentionConv(5, 3")
    eager.load_state_dict(lazy.state_dict())
    torch.testing.assert_close(lazy(x, edge_index), eager(x, edge_index))
    bipartite = ColumnAttentionConv((-1, -1), 3, heads=2, root_weight=True)
    assert bipartite((torch.randn(4, 6), torch.randn(3, 2)), simple_graph(4, 3, 5)).shape == (3, 12)


def test_reset_parameters_and_gradients_cover_every_parameter():
    conv = ColumnAttentionConv((5, 3), 4, **FULL)
    randomise_bias(conv)
    x = (torch.randn(6, 2, 5), torch.randn(4, 2, 3))
    conv(x, simple_graph(6, 4, 10)).square().sum().backward()
    names = {name for name, _ in conv.named_parameters()}
    assert names == {"query_weight", "key_weight", "value_weight", "lin_root_weight", "bias"}
    for name, param in conv.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    before = {name: p.detach().clone() for name, p in conv.named_parameters()}
    conv.reset_parameters()
    for name, param in conv.named_parameters():
        assert not torch.equal(before[name], param), name


def test_dropout_only_in_training():
    conv = ColumnAttentionConv(4, 4, heads=2, dropout=0.5)
    x, edge_index = torch.randn(6, 4), simple_graph(6, 6, 20)
    conv.eval()
    torch.testing.assert_close(conv(x, edge_index), conv(x, edge_index))
    conv.train()
    assert not torch.allclose(conv(x, edge_index), conv(x, edge_index))


def test_constructor_errors_and_repr():
    with pytest.raises(ValueError, match="in_channels must be >= 1 or -1"):
        ColumnAttentionConv(0, 4)
    with pytest.raises(ValueError, match="x_dst has 2 features"):
        ColumnAttentionConv((5, 3), 4)(
            (torch.randn(4, 5), torch.randn(4, 2)), simple_graph(4, 4, 3)
        )
    with pytest.raises(ValueError, match="batch dims"):
        ColumnAttentionConv((5, 3), 4)(
            (torch.randn(4, 2, 5), torch.randn(4, 3)), simple_graph(4, 4, 3)
        )
    assert repr(ColumnAttentionConv((5, 3), 4, **FULL, concat=False)) == (
        "ColumnAttentionConv((5, 3), 4, heads=2, shared, project_value=True, root_weight=True, "
        "add_self_loops=True, bias=True, concat=False)"
    )


def test_docs_layer_snippets_run():
    text = (Path(__file__).resolve().parents[1] / "docs" / "layer.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/layer.md", "exec"), namespace)
    assert namespace["logits"].shape == (100, 5)
