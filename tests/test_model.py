"""CortexNet (``cortexgnn/nn/model.py``): equivalence with DenseReference, how it calls its
layer, what each flag changes, refused input."""

from __future__ import annotations

import pytest
import torch

from cortexgnn import ColumnAttentionConv, CortexNet, DenseReference

TINY = dict(num_columns=6, in_dim=10, col_out=4, top_out=3, graph_k=2, graph_seed=0)


def make_pair(num_columns, use_attention, graph_seed, in_dim=20, col_out=16, **flags):
    ref = DenseReference(
        num_columns=num_columns, in_dim=in_dim, col_out=col_out,
        graph_k=4 if num_columns < 16 else 8, use_attention=use_attention, dropout=0.0,
        graph_seed=graph_seed,
    )  # fmt: skip
    return ref, ref.to_cortexnet(**flags)


def train(model, steps, seed=0, batch=8, in_dim=20):
    """``steps`` article training steps with AdamW on fixed random data."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    for _ in range(steps):
        x = torch.rand(batch, in_dim, generator=generator)
        y = torch.randint(0, model.config.top_out, (batch,), generator=generator)
        optimizer.zero_grad()
        model.training_step((x, y))
        optimizer.step()
    return model


# --- equivalence with the article's loop -----------------------------------------------------


@pytest.mark.parametrize("use_attention", [True, False])
@pytest.mark.parametrize("num_columns", [8, 64])
@pytest.mark.parametrize("graph_seed", [0, 1, 2])
def test_eval_logits_match_the_reference(use_attention, num_columns, graph_seed):
    ref, net = make_pair(num_columns, use_attention, graph_seed)
    ref.eval(), net.eval()
    x = torch.rand(6, 20)
    for _ in range(2):  # the second call sees homeostasis statistics moved by the first
        torch.testing.assert_close(net(x), ref(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(net.homeostasis.activity_avg, ref.activity_avg)


def test_no_projection_branch_when_dims_agree():
    ref, net = make_pair(8, True, 0, in_dim=16, col_out=16)
    assert net.columns.weight.shape[0] == 2
    x = torch.rand(3, 16)
    torch.testing.assert_close(net.eval()(x), ref.eval()(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_attention", [True, False])
def test_three_training_steps_match_the_reference(use_attention):
    ref, net = make_pair(12, use_attention, 5)
    with torch.no_grad():  # let edge weights and homeostasis start away from their init
        ref.adj_weight.normal_(0.0, 0.5)
        ref.activity_avg.uniform_(0.5, 1.5)
    net = ref.to_cortexnet()
    train(ref, 3), train(net, 3)
    src, dst = net.edge_index
    torch.testing.assert_close(net.edge_weight, ref.adj_weight[dst, src], atol=1e-4, rtol=0)
    torch.testing.assert_close(net.homeostasis.activity_avg, ref.activity_avg, atol=1e-4, rtol=0)
    x = torch.rand(5, 20)
    torch.testing.assert_close(net.eval()(x), ref.eval()(x), atol=1e-4, rtol=0)


# --- the model is built from its layer -------------------------------------------------------


def test_one_conv_call_per_iteration_and_one_fold_per_forward(monkeypatch):
    net = CortexNet(**TINY, message_iters=3)
    folds, calls = [], []
    original_fold = ColumnAttentionConv.fold

    def spy_fold(conv):
        folds.append(original_fold(conv))
        return folds[-1]

    monkeypatch.setattr(ColumnAttentionConv, "fold", spy_fold)
    net.conv.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs["fold"]), with_kwargs=True
    )
    logits = net(torch.rand(4, 10))
    assert len(calls) == 3 and len(folds) == 1
    assert all(fold is folds[0] for fold in calls)  # the one fold handed to every call
    net(torch.rand(4, 10))
    assert len(calls) == 6 and len(folds) == 2  # once per forward, not once per model
    assert logits.shape == (4, 3)


def test_no_message_passing_without_iterations_or_attention():
    net = CortexNet(**TINY, message_iters=0)
    assert net.conv is None  # no parameters that nothing reads
    pre = net.columns.eval()(torch.rand(2, 10))
    assert net.message_passing(pre) is pre
    assert CortexNet(**TINY, use_attention=False).conv is None


# --- what each flag changes -------------------------------------------------------------------


def test_attention_mode_edge_weights_get_no_gradient_but_hebbian_moves_them():
    _, net = make_pair(10, True, 0)
    before = net.edge_weight.detach().clone()
    net.training_step((torch.rand(4, 20), torch.randint(0, 10, (4,))))
    assert net.edge_weight.grad is None
    assert not torch.equal(net.edge_weight.detach(), before)


def hebbian_twins(**flags):
    """Two identically seeded models trained alike, one without the Hebbian rule."""
    models = []
    for use_hebbian in (True, False):
        torch.manual_seed(0)
        model = CortexNet(num_columns=8, in_dim=20, col_out=8, graph_k=4, graph_seed=0,
                          plasticity_lr=0.05, use_hebbian=use_hebbian, **flags)  # fmt: skip
        models.append(train(model, 4))
    return models


def test_hebbian_rule_has_no_effect_on_outputs_in_the_article_attention_mode():
    hebbian, without = hebbian_twins()
    assert not torch.equal(hebbian.edge_weight, without.edge_weight)  # the rule did move them
    x = torch.rand(5, 20)
    assert torch.equal(hebbian.eval()(x), without.eval()(x))  # bit for bit: weights unused


def test_hebbian_rule_changes_outputs_when_attention_is_gated():
    hebbian, without = hebbian_twins(attention_uses_edge_weight=True)
    x = torch.rand(5, 20)
    assert not torch.allclose(hebbian.eval()(x), without.eval()(x))


def test_use_hebbian_false_leaves_edge_weights_to_the_optimizer():
    net = CortexNet(**TINY, use_hebbian=False)
    before = net.edge_weight.detach().clone()
    net.training_step((torch.rand(4, 10), torch.tensor([0, 1, 2, 0])))
    assert torch.equal(net.edge_weight.detach(), before)  # attention mode: no gradient either
    plain = CortexNet(**TINY, use_hebbian=False, use_attention=False)
    before = plain.edge_weight.detach().clone()
    train(plain, 1, in_dim=10)
    assert plain.edge_weight.grad.abs().sum() > 0 and not torch.equal(plain.edge_weight, before)


def test_use_homeostasis_false_removes_the_scaling():
    net = CortexNet(**TINY, use_homeostasis=False).eval()
    assert net.homeostasis is None and "homeostasis.activity_avg" not in net.state_dict()
    x = torch.rand(3, 10)
    _, pre, post = net(x, return_states=True)
    torch.testing.assert_close(post, net.message_passing(pre))  # no division
    scaled = CortexNet(**TINY).eval()
    scaled.load_state_dict({**net.state_dict(), "homeostasis.activity_avg": torch.full((6,), 2.0)})
    torch.testing.assert_close(scaled(x, return_states=True)[2], post / 2.0, atol=1e-3, rtol=1e-2)


def test_attention_uses_edge_weight_makes_weights_matter():
    _, plain = make_pair(10, True, 0)
    _, gated = make_pair(10, True, 0, attention_uses_edge_weight=True)
    gated.load_state_dict(plain.state_dict())
    x = torch.rand(4, 20)
    assert not torch.allclose(plain.eval()(x), gated.eval()(x))
    gated.train().training_step((x, torch.randint(0, 10, (4,))))
    assert gated.edge_weight.grad is not None and gated.edge_weight.grad.abs().sum() > 0


def test_freeze_homeostasis_in_eval_keeps_eval_deterministic():
    _, net = make_pair(8, True, 0, freeze_homeostasis_in_eval=True)
    x = torch.rand(4, 20)
    assert torch.equal(net.eval()(x), net(x))
    _, faithful = make_pair(8, True, 0)
    assert not torch.equal(faithful.eval()(x), faithful(x))


# --- inputs and graphs ------------------------------------------------------------------------


def test_accepts_image_shaped_input():
    net = CortexNet(num_columns=8, in_dim=16, col_out=8, graph_k=4, graph_seed=0).eval()
    assert net(torch.rand(2, 1, 4, 4)).shape == (2, 10)


def test_custom_graph_is_sorted_by_target():
    edge_index = torch.tensor([[1, 0, 2], [0, 1, 1]])
    net = CortexNet(num_columns=3, in_dim=4, col_out=4, graph_k=2, edge_index=edge_index)
    assert net.edge_index.tolist() == [[1, 0, 2], [0, 1, 1]]
    assert net(torch.rand(2, 4)).shape == (2, 10)
    as_int32 = CortexNet(num_columns=3, in_dim=4, col_out=4, graph_k=2, edge_index=edge_index.int())
    assert as_int32.edge_index.dtype == torch.long


def test_custom_graph_needs_no_graph_k():
    edge_index = torch.tensor([[1, 0, 2], [0, 1, 1]])
    net = CortexNet(num_columns=3, in_dim=4, col_out=4, edge_index=edge_index)
    assert net(torch.rand(2, 4)).shape == (2, 10)


@pytest.mark.parametrize(
    "edge_index, error, match",
    [
        ([[0, 1], [1, 0]], TypeError, r"torch.as_tensor"),
        (torch.tensor([[0.0, 1.0], [1.0, 0.0]]), ValueError, r"edge_index.long\(\)"),
        (torch.tensor([[0, 1], [1, 2], [2, 0]]), ValueError, r"\[E, 2\] edge list needs .t\(\)"),
        (torch.tensor([0, 1, 1, 0]), ValueError, r"shape \[2, E\]"),
        (torch.tensor([[-1, 1], [1, 0]]), ValueError, r"source nodes -1..1.*valid: 0..5"),
        (torch.tensor([[0, 1], [6, 0]]), ValueError, r"target nodes 0..6, but the graph has 6"),
    ],
)
def test_refuses_a_bad_edge_index(edge_index, error, match):
    with pytest.raises(error, match=match):
        CortexNet(**TINY, edge_index=edge_index)


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(3, 9), r"in_dim=10"),
        (torch.rand(10), r"got shape \(10,\)"),
        (torch.rand(3, 2, 4), r"10 elements per sample"),
        (torch.rand(0, 10), r"empty batch"),
        (torch.rand(3, 10, dtype=torch.float64), r"x.to\(torch.float32\)"),
        (torch.randint(0, 255, (3, 10), dtype=torch.uint8), r"/ 255"),
    ],
)
def test_refuses_bad_inputs(x, match):
    with pytest.raises(ValueError, match=match):
        CortexNet(**TINY)(x)


@pytest.mark.parametrize(
    "y, match",
    [
        (torch.tensor([0.0, 1.0, 2.0]), r"y.long\(\)"),
        (torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), r"y.argmax"),
        (torch.tensor([0, 1]), r"2 labels for a batch of 3"),
        (torch.tensor([0, 1, 3]), r"top_out=3 classes \(valid: 0..2\)"),
        (torch.tensor([0, -1, 2]), r"labels -1..2"),
    ],
)
def test_training_step_refuses_bad_targets(y, match):
    net = CortexNet(**TINY)
    with pytest.raises(ValueError, match=match):
        net.training_step((torch.rand(3, 10), y))
    assert all(p.grad is None for p in net.parameters())  # refused before any work


def test_non_finite_input_check_is_opt_in():
    x = torch.rand(3, 10)
    x[1, 4], x[2, 0] = float("nan"), float("inf")
    assert torch.isnan(CortexNet(**TINY)(x)).any()  # default: the article's silent NaN
    with pytest.raises(ValueError, match="2 NaN/Inf values"):
        CortexNet(**TINY, check_finite_input=True)(x)


# --- it learns, and stays finite --------------------------------------------------------------


def test_fits_a_tiny_problem():
    net = CortexNet(num_columns=8, in_dim=10, col_out=16, top_out=2, graph_k=4, dropout=0.0,
                    graph_seed=0)  # fmt: skip
    x = torch.randn(64, 10)
    y = (x[:, 0] + x[:, 1] > 0).long()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = net.training_step((x, y))
        opt.step()
    assert loss.item() < 0.2
    assert (net.eval()(x).argmax(1) == y).float().mean() > 0.95


@pytest.mark.slow
def test_two_thousand_training_steps_stay_finite():
    model = CortexNet(num_columns=6, in_dim=8, col_out=4, top_out=3, graph_k=2, graph_seed=0,
                      message_iters=2, plasticity_lr=5e-3)  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.rand(2000, 4, 8), torch.randint(3, (2000, 4))
    for step in range(2000):
        optimizer.zero_grad()
        loss = model.training_step((x[step], y[step]))
        optimizer.step()
        assert torch.isfinite(loss), step
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name
    assert model.homeostasis.activity_avg.abs().min() > 1e-3  # far from the division by 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    ref, net = make_pair(16, True, 0)
    x = torch.rand(4, 20)
    expected = net.eval()(x)
    on_gpu = ref.cuda().to_cortexnet().eval()
    torch.testing.assert_close(on_gpu(x.cuda()).cpu(), expected, atol=1e-4, rtol=0)
