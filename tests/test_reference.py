"""DenseReference keeps the article's BrainNetwork state_dict layout and semantics."""

from __future__ import annotations

import pytest
import torch

from cortexgnn import DenseReference, edge_index_to_dense, small_world_graph


def article_keys(num_columns, use_attention=True, projection=True):
    keys = []
    for i in range(num_columns):
        keys += [f"columns.{i}.fc_exc.weight", f"columns.{i}.fc_inh.weight"]
        keys += [f"columns.{i}.norm.weight", f"columns.{i}.norm.bias"]
        if projection:
            keys.append(f"columns.{i}.projection.weight")
    if use_attention:
        for i in range(num_columns):
            keys += [f"attention_gates.{i}.query.weight", f"attention_gates.{i}.key.weight"]
    keys += ["adj_weight", "adj_struct", "activity_avg"]
    keys += ["intermediate.0.weight", "intermediate.0.bias"]
    keys += ["intermediate.3.weight", "intermediate.3.bias", "top_fc.weight", "top_fc.bias"]
    return sorted(keys)


def test_state_dict_keys_and_shapes_match_the_article():
    ref = DenseReference(num_columns=5, in_dim=12, col_out=6, graph_k=2)
    state = ref.state_dict()
    assert sorted(state) == article_keys(5)
    assert state["columns.0.fc_exc.weight"].shape == (6, 12)
    assert state["attention_gates.4.key.weight"].shape == (6, 6)
    assert state["adj_struct"].shape == state["adj_weight"].shape == (5, 5)
    plain = DenseReference(num_columns=3, in_dim=6, col_out=6, graph_k=2, use_attention=False)
    assert sorted(plain.state_dict()) == article_keys(3, use_attention=False, projection=False)


def test_adjacency_is_symmetric_binary_without_self_loops():
    adj = DenseReference(num_columns=20, in_dim=4, col_out=4, graph_k=4, graph_seed=1).adj_struct
    assert torch.equal(adj, adj.t())
    assert set(adj.unique().tolist()) == {0.0, 1.0}
    assert adj.diagonal().abs().sum() == 0


def test_attention_row_masks_non_neighbours():
    ref = DenseReference(num_columns=10, in_dim=4, col_out=4, graph_k=2, graph_seed=0)
    post = torch.randn(3, 10, 4)
    weights = ref.attention_gates[0](post[:, 0], post, ref.adj_struct[0])
    assert torch.all(weights[:, ref.adj_struct[0] == 0] < 1e-30)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))


def test_hebbian_update_only_touches_graph_entries_before_tanh():
    ref = DenseReference(num_columns=8, in_dim=4, col_out=4, graph_k=2, graph_seed=0)
    before = ref.adj_weight.detach().clone()
    ref._hebb_update(torch.randn(2, 8, 4), torch.randn(2, 8, 4))
    off_graph = ref.adj_struct == 0
    torch.testing.assert_close(ref.adj_weight[off_graph], torch.tanh(before[off_graph]))
    assert not torch.allclose(ref.adj_weight[~off_graph], torch.tanh(before[~off_graph]))


@pytest.mark.parametrize(
    "flag, value",
    [
        ("attention_uses_edge_weight", True),
        ("freeze_homeostasis_in_eval", True),
        ("homeostasis_min_divisor", 0.1),
        ("use_homeostasis", False),
        ("use_hebbian", False),
        ("check_finite_input", True),
    ],
)
def test_refuses_the_fix_flags(flag, value):
    with pytest.raises(ValueError, match=rf"none of the settings \{{'{flag}'.*build a CortexNet"):
        DenseReference(num_columns=5, in_dim=4, col_out=4, graph_k=2, **{flag: value})


def test_weights_round_trip_through_cortexnet():
    ref = DenseReference(num_columns=8, in_dim=6, col_out=4, graph_k=4, graph_seed=3, dropout=0.0)
    with torch.no_grad():
        ref.activity_avg.uniform_(0.5, 1.5)
    net = ref.to_cortexnet(freeze_homeostasis_in_eval=True)
    assert net.config.freeze_homeostasis_in_eval and net.config.num_columns == 8
    assert torch.equal(net.edge_index, ref.edge_index())
    back = DenseReference.from_cortexnet(net)
    assert torch.equal(back.adj_struct, ref.adj_struct)
    on_graph = ref.adj_struct.bool()
    assert torch.equal(back.adj_weight[on_graph], ref.adj_weight[on_graph])
    assert back.adj_weight[~on_graph].abs().max() == 0  # off-graph entries are dropped
    x = torch.rand(3, 6)
    torch.testing.assert_close(back.eval()(x), ref.eval()(x), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="same hyper-parameters, with homeostasis"):
        ref.to_cortexnet(use_homeostasis=False)


def test_edge_index_reads_adj_struct():
    ref = DenseReference(num_columns=6, in_dim=4, col_out=4, graph_k=2, graph_seed=0)
    edge_index = ref.edge_index()
    assert torch.equal(edge_index_to_dense(edge_index, 6), ref.adj_struct)
    assert torch.equal(edge_index, small_world_graph(6, 2, 0.15, seed=0))
