"""Hebbian edge plasticity and homeostasis against the article's dense formulas."""

from __future__ import annotations

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
