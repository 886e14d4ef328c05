"""Hebbian edge plasticity and homeostasis against the article's dense formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cortexgnn import (
    Homeostasis,
    edge_index_to_dense,
    hebbian_delta,
    hebbian_update_,
    small_world_graph,
)


def test_hebbian_delta_reads_the_dense_outer_products_at_the_edges():
    edge_index = small_world_graph(12, 4, 0.3, seed=0)
    pre, post = torch.randn(12, 5, 3), torch.rand(12, 5, 3)
    p = F.normalize(pre.mean(dim=(1, 2)), dim=0)
    q = F.normalize(post.mean(dim=(1, 2)), dim=0)
    dense = torch.outer(p, q) - 0.1 * torch.outer(q, q)  # [i, j]: i receives from j
    delta = hebbian_delta(edge_index, pre, post)
    torch.testing.assert_close(delta, dense[edge_index[1], edge_index[0]])


def test_update_is_tanh_of_the_step_and_zero_activity_stays_finite():
    edge_index = small_world_graph(10, 4, 0.0)
    weight = torch.randn(edge_index.size(1))
    pre, post = torch.randn(10, 2, 3), torch.randn(10, 2, 3)
    expected = torch.tanh(weight + 0.5 * hebbian_delta(edge_index, pre, post))
    hebbian_update_(weight, edge_index, pre, post, lr=0.5)
    torch.testing.assert_close(weight, expected)
    zeros = torch.zeros(10, 2, 3)
    hebbian_update_(weight, edge_index, zeros, zeros, lr=0.5)
    assert torch.isfinite(weight).all()


def test_homeostasis_running_mean_and_scaling():
    homeo = Homeostasis(4)
    h = torch.rand(4, 3, 2) + 0.5
    out = homeo(h)
    avg = 0.99 + 0.01 * h.mean(dim=(1, 2))
    torch.testing.assert_close(homeo.activity_avg, avg)
    torch.testing.assert_close(out, h / (avg + 1e-6).view(-1, 1, 1))


def test_homeostasis_moves_in_eval_unless_frozen():
    faithful, frozen = Homeostasis(3), Homeostasis(3, freeze_in_eval=True)
    h = torch.rand(3, 2, 2) + 1.0
    for module in (faithful, frozen):
        module.eval()
        module(h)
    assert not torch.equal(faithful.activity_avg, torch.ones(3))  # the article's quirk
    assert torch.equal(frozen.activity_avg, torch.ones(3))
    frozen.train()
    frozen(h)
    assert not torch.equal(frozen.activity_avg, torch.ones(3))


def test_homeostasis_scale_carries_no_gradient():
    homeo = Homeostasis(2)
    h = torch.rand(2, 3, 4, requires_grad=True)
    homeo(h).sum().backward()
    torch.testing.assert_close(
        h.grad, (1 / (homeo.activity_avg + 1e-6)).view(-1, 1, 1).expand(2, 3, 4)
    )


def test_dense_helper_agrees_for_weights():
    edge_index = small_world_graph(6, 2, 0.0)
    weight = torch.arange(edge_index.size(1), dtype=torch.float)
    dense = edge_index_to_dense(edge_index, 6, weight)
    assert dense[edge_index[1], edge_index[0]].tolist() == weight.tolist()


def test_hebbian_rule_with_all_zero_activity_is_zero_not_nan():
    edge_index = small_world_graph(6, 2, 0.0)
    zeros = torch.zeros(6, 3, 4)
    assert torch.equal(hebbian_delta(edge_index, zeros, zeros), torch.zeros(edge_index.size(1)))
    weight = torch.randn(edge_index.size(1))
    expected = weight.tanh()
    hebbian_update_(weight, edge_index, zeros, torch.rand(6, 3, 4), lr=1.0)
    assert torch.isfinite(weight).all()
    # p = 0 leaves only the -0.1 q_i q_j term
    assert not torch.equal(weight, expected)


def test_homeostasis_divisor_near_zero_is_the_article_inf_unless_min_divisor():
    h = torch.ones(2, 3, 4)
    faithful = Homeostasis(2, freeze_in_eval=True).eval()
    safe = Homeostasis(2, freeze_in_eval=True, min_divisor=0.05).eval()
    for module in (faithful, safe):
        module.activity_avg.fill_(-module.eps)  # a running mean that crossed zero
    assert torch.isinf(faithful(h)).all()  # 1 / (a + eps) = 1 / 0: the article's arithmetic
    torch.testing.assert_close(safe(h), h / 0.05)


def test_homeostasis_min_divisor_keeps_sign_and_bounds_scale():
    safe, faithful = Homeostasis(3, min_divisor=0.1), Homeostasis(3)
    h = -torch.rand(3, 4, 2) - 0.5  # negative activity pulls the running mean through zero
    for _ in range(300):
        out_safe, out_faithful = safe(h), faithful(h)
    assert (faithful.activity_avg < 0).all()
    assert (out_faithful > 0).all()  # the article flips the sign of negative states
    assert (out_safe < 0).all() and out_safe.abs().max() <= h.abs().max() / 0.1 + 1e-6
    with pytest.raises(ValueError, match="min_divisor must be > 0"):
        Homeostasis(3, min_divisor=0.0)
