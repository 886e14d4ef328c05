"""CortexNet against DenseReference (the article's loop), and its opt-in flags."""

from __future__ import annotations

import pytest
import torch

from cortexgnn import CortexNet, DenseReference


def make_pair(num_columns, use_attention, graph_seed, in_dim=20, col_out=16, **flags):
    k = 4 if num_columns < 16 else 8
    ref = DenseReference(
        num_columns=num_columns, in_dim=in_dim, col_out=col_out, graph_k=k,
        use_attention=use_attention, dropout=0.0, graph_seed=graph_seed,
    )  # fmt: skip
    return ref, CortexNet.from_reference(ref, **flags)


@pytest.mark.parametrize("use_attention", [True, False])
@pytest.mark.parametrize("num_columns", [8, 64])
@pytest.mark.parametrize("graph_seed", [0, 1, 2])
def test_eval_logits_match_reference(use_attention, num_columns, graph_seed):
    ref, net = make_pair(num_columns, use_attention, graph_seed)
    ref.eval(), net.eval()
    x = torch.rand(6, 20)
    for _ in range(2):  # the second call sees homeostasis statistics moved by the first
        torch.testing.assert_close(net(x), ref(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(net.homeostasis.activity_avg, ref.activity_avg)


def test_no_projection_branch_when_dims_agree():
    ref, net = make_pair(8, True, 0, in_dim=16, col_out=16)
    x = torch.rand(3, 16)
    assert net.columns.weight.shape[0] == 2
    torch.testing.assert_close(net.eval()(x), ref.eval()(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_attention", [True, False])
def test_three_training_steps_match_reference(use_attention):
    ref, net = make_pair(12, use_attention, 5)
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-3, weight_decay=1e-5)
    opt_net = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-5)
    for _ in range(3):
        x, y = torch.rand(8, 20), torch.randint(0, 10, (8,))
        for model, opt in ((ref, opt_ref), (net, opt_net)):
            opt.zero_grad()
            model.training_step((x, y))
            opt.step()
    src, dst = net.edge_index
    torch.testing.assert_close(net.edge_weight, ref.adj_weight[dst, src], atol=1e-4, rtol=0)
    torch.testing.assert_close(net.homeostasis.activity_avg, ref.activity_avg, atol=1e-4, rtol=0)
    x = torch.rand(5, 20)
    torch.testing.assert_close(net.eval()(x), ref.eval()(x), atol=1e-4, rtol=0)


def test_attention_mode_edge_weights_get_no_gradient_but_hebbian_moves_them():
    _, net = make_pair(10, True, 0)
    before = net.edge_weight.detach().clone()
    net.training_step((torch.rand(4, 20), torch.randint(0, 10, (4,))))
    assert net.edge_weight.grad is None
    assert not torch.equal(net.edge_weight.detach(), before)


def test_attention_uses_edge_weight_flag_makes_weights_matter():
    _, plain = make_pair(10, True, 0)
    _, gated = make_pair(10, True, 0, attention_uses_edge_weight=True)
    gated.load_state_dict(plain.state_dict())
    x = torch.rand(4, 20)
    assert not torch.allclose(plain.eval()(x), gated.eval()(x))
    gated.train()
    gated.training_step((x, torch.randint(0, 10, (4,))))
    assert gated.edge_weight.grad is not None and gated.edge_weight.grad.abs().sum() > 0


def test_freeze_homeostasis_flag_keeps_eval_deterministic():
    _, net = make_pair(8, True, 0, freeze_homeostasis_in_eval=True)
    net.eval()
    x = torch.rand(4, 20)
    torch.testing.assert_close(net(x), net(x), atol=0, rtol=0)
    _, faithful = make_pair(8, True, 0)
    faithful.eval()
    assert not torch.equal(faithful(x), faithful(x))


def test_round_trip_to_reference():
    ref, net = make_pair(8, True, 3)
    back = net.to_reference()
    x = torch.rand(3, 20)
    torch.testing.assert_close(back.eval()(x), ref.eval()(x), atol=1e-6, rtol=0)
    assert torch.equal(back.adj_struct, ref.adj_struct)


def test_accepts_image_shaped_input_and_refuses_wrong_size():
    net = CortexNet(num_columns=8, in_dim=16, col_out=8, graph_k=4, graph_seed=0).eval()
    assert net(torch.rand(2, 1, 4, 4)).shape == (2, 10)
    with pytest.raises(ValueError, match="in_dim=16"):
        net(torch.rand(2, 15))


def test_custom_graph_and_validation():
    edge_index = torch.tensor([[1, 0, 2], [0, 1, 1]])
    net = CortexNet(num_columns=3, in_dim=4, col_out=4, edge_index=edge_index)
    assert net.edge_index.tolist() == [[1, 0, 2], [0, 1, 1]]  # sorted by target
    assert net(torch.rand(2, 4)).shape == (2, 10)
    with pytest.raises(ValueError, match="num_columns=3"):
        CortexNet(num_columns=3, in_dim=4, col_out=4, edge_index=torch.tensor([[0], [3]]))


def test_fits_a_tiny_problem():
    torch.manual_seed(0)
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
    net.eval()
    assert (net(x).argmax(1) == y).float().mean() > 0.95


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    ref, net = make_pair(16, True, 0)
    x = torch.rand(4, 20)
    expected = net.eval()(x)
    on_gpu = CortexNet.from_reference(ref.cuda()).eval()
    torch.testing.assert_close(on_gpu(x.cuda()).cpu(), expected, atol=1e-4, rtol=0)
