"""``recompute_messages`` and ``bf16_autocast``: what each changes, and what it must not.

Recompute must give the gradients of the plain model (same dropout masks included); bf16
must run, stay close to float32 and keep the plasticity and homeostasis statistics in
float32; the C++ attention kernel takes bfloat16 by widening it.
"""

from __future__ import annotations

import pytest
import torch

from cortexgnn import CortexNet, Homeostasis, small_world_graph
from cortexgnn.nn.plasticity import hebbian_delta
from cortexgnn.ops.attention import attention_graph, folded_attention
from cortexgnn.ops.kernel import load_kernel

TINY = dict(num_columns=12, in_dim=10, col_out=8, top_out=3, graph_k=4, graph_seed=1)
needs_kernel = pytest.mark.skipif(load_kernel() is None, reason="C++ kernel not built here")


def step_gradients(flags: dict, seed: int = 0) -> tuple[torch.Tensor, dict, CortexNet]:
    """Loss, gradients and the model after one training step from identical weights."""
    torch.manual_seed(seed)
    model = CortexNet(**TINY, **flags)
    x, y = torch.rand(5, 10), torch.tensor([0, 1, 2, 0, 1])
    torch.manual_seed(seed + 1)  # the same dropout draws for every model
    loss = model.training_step((x, y))
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return loss, grads, model


@pytest.mark.parametrize(
    "flags",
    [
        dict(),
        dict(shared_weights=True, attention_uses_edge_weight=True),
        dict(use_attention=False),
        dict(dropout=0.3),  # column and readout dropout: recompute must replay the masks
        dict(bf16_autocast=True, shared_weights=True),
    ],
    ids=["article", "shared-gated", "summed", "dropout", "bf16-shared"],
)
def test_recompute_gives_the_same_gradients(flags):
    loss, grads, model = step_gradients(flags)
    loss_r, grads_r, model_r = step_gradients({**flags, "recompute_messages": True})
    torch.testing.assert_close(loss_r, loss, rtol=0, atol=0)
    assert grads_r.keys() == grads.keys() and len(grads) >= 6
    for name, grad in grads.items():
        torch.testing.assert_close(grads_r[name], grad, rtol=1e-6, atol=1e-7, msg=name)
    torch.testing.assert_close(model_r.edge_weight, model.edge_weight, rtol=0, atol=0)


def test_recompute_keeps_fewer_tensors_for_backward():
    """What recompute is for: the saved activations no longer grow with the iterations."""

    def saved_bytes(recompute: bool, iterations: int) -> int:
        model = CortexNet(**TINY, shared_weights=True, message_iters=iterations, dropout=0.0,
                          recompute_messages=recompute)  # fmt: skip
        total = []

        def pack(t):
            total.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.rand(64, 10))
        return sum(total)

    growth = {r: saved_bytes(r, 8) - saved_bytes(r, 4) for r in (False, True)}
    assert 0 < growth[True] < growth[False] / 2


def test_bf16_runs_and_stays_close_to_float32():
    _, grads, model = step_gradients(dict(shared_weights=True, dropout=0.0))
    _, grads16, model16 = step_gradients(dict(shared_weights=True, dropout=0.0, bf16_autocast=True))
    x = torch.rand(6, 10)
    model.eval(), model16.eval()
    logits, pre, post = model16(x, return_states=True)
    assert logits.dtype == torch.float32 and pre.dtype == post.dtype == torch.bfloat16
    torch.testing.assert_close(logits, model(x), atol=0.05, rtol=0.05)
    for name, grad in grads.items():  # parameters and their gradients stay float32
        assert grads16[name].dtype == torch.float32, name
        scale = grad.abs().max().item()
        torch.testing.assert_close(grads16[name], grad, atol=0.1 * scale, rtol=0.1)
    assert model16.homeostasis.activity_avg.dtype == torch.float32


def test_statistics_of_bf16_states_are_float32():
    """Homeostasis and the Hebbian rule average bfloat16 states in float32."""
    torch.manual_seed(0)
    h = (torch.randn(300, 4, 64) + 3).bfloat16()  # [N, B, D]; a bf16 sum would round
    homeostasis = Homeostasis(300)
    out = homeostasis(h)
    assert out.dtype == torch.bfloat16 and homeostasis.activity_avg.dtype == torch.float32
    expected = 0.99 + 0.01 * h.double().mean(dim=(1, 2))
    torch.testing.assert_close(homeostasis.activity_avg.double(), expected, atol=1e-7, rtol=0)
    edge_index = small_world_graph(300, 4, 0.2, seed=0)
    pre, post = h, (h * 0.5 + 1).bfloat16()
    delta = hebbian_delta(edge_index, pre, post)
    assert delta.dtype == torch.float32
    torch.testing.assert_close(delta, hebbian_delta(edge_index, pre.float(), post.float()))


@needs_kernel
def test_the_kernel_takes_bf16_by_widening_it():
    torch.manual_seed(0)
    edge_index = small_world_graph(40, 6, 0.2, seed=0)
    graph = attention_graph(edge_index, 40)
    query = torch.randn(40, 3, 1, 16).bfloat16().requires_grad_()
    x = torch.randn(40, 3, 16).bfloat16().requires_grad_()
    weight = torch.rand(edge_index.size(1), requires_grad=True)
    wide = [t.detach().float().requires_grad_() for t in (query, x, weight)]
    torch.manual_seed(1)
    out = folded_attention(query, x, graph, weight, scale=0.3, dropout=0.2, backend="cpp")
    torch.manual_seed(1)
    expected = folded_attention(*wide[:2], graph, wide[2], scale=0.3, dropout=0.2, backend="cpp")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected.bfloat16(), rtol=0, atol=0)  # fp32, rounded once
    grad_out = torch.randn(out.shape)
    (out.float() * grad_out).sum().backward()
    (expected * grad_out).sum().backward()
    assert query.grad.dtype == x.grad.dtype == torch.bfloat16
    assert weight.grad.dtype == torch.float32
    for got, want in zip((query.grad, x.grad, weight.grad), (t.grad for t in wide), strict=True):
        torch.testing.assert_close(got.float(), want, atol=0.03 * want.abs().max(), rtol=0.05)


def test_the_summed_message_holds_one_block_of_messages_at_a_time():
    """``use_attention=False``: the weighted sum works N edges at a time, with equal results."""
    from cortexgnn.nn.model import weighted_neighbour_sum

    torch.manual_seed(0)
    num_nodes, k = 16, 4
    edge_index = small_world_graph(num_nodes, k, 0.2, seed=3)
    x = torch.randn(num_nodes, 2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.rand(edge_index.size(1), dtype=torch.float64, requires_grad=True)

    def all_at_once(x, w):  # the formula with every [E, B, D] message at once
        source, target = edge_index
        return torch.zeros_like(x).index_add_(0, target, x[source] * w.view(-1, 1, 1))

    def summed(x, w):
        return weighted_neighbour_sum(x, edge_index, w)

    torch.testing.assert_close(summed(x, w), all_at_once(x, w), rtol=0, atol=0)
    assert torch.autograd.gradcheck(summed, (x, w))
    assert torch.autograd.gradgradcheck(summed, (x, w))  # create_graph: the plain form

    def saved_elements(function) -> int:
        total = []
        with torch.autograd.graph.saved_tensors_hooks(
            lambda t: total.append(t.numel()) or t, lambda t: t
        ):
            function(x.float(), w.float()).sum()
        return max(total)

    # the largest tensor kept for backward is a state [N, B, D] (or the graph), not the
    # messages [E, B, D], k states' worth
    assert saved_elements(summed) <= max(x.numel(), edge_index.numel())
    assert saved_elements(all_at_once) >= k * x.numel()
