"""``ModelConfig.shared_weights``: one column and one query/key pair for every column.

The maths: a dense oracle written here from the docstring, and the per-column model with
tied weights (the shared model is that model with every column's weights equal and the
per-column bias folded into each column's LayerNorm bias). Then the parameter count, the
checkpoint and the command line.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from cortexgnn import (
    CortexNet,
    DenseReference,
    ModelConfig,
    atomic_save,
    load_article_checkpoint,
    save_article_checkpoint,
)
from cortexgnn.cli import main
from cortexgnn.nn.baselines import cortexnet_num_parameters

TINY = dict(num_columns=7, in_dim=10, col_out=6, top_out=3, graph_k=4, graph_seed=3, dropout=0.0)


def shared_oracle(model: CortexNet, x: torch.Tensor) -> torch.Tensor:
    """The shared-weight model as dense loops over columns (no PyG, no kernel)."""
    n, d = model.config.num_columns, model.config.col_out
    weight = model.columns.weight[:, 0]  # [S, D, F]: the one column's branches
    exc, inh = x @ weight[0].t(), x @ weight[1].t()  # [B, D]
    column = F.relu(exc) * (1 - model.config.e_i_ratio * torch.sigmoid(inh)) + x @ weight[2].t()
    column = F.layer_norm(column, (d,)) * model.columns.norm_weight[0] + model.columns.norm_bias[0]
    pre = [column + model.column_bias[i] for i in range(n)]  # N x [B, D]
    source, target = model.edge_index
    query, key = model.conv.query_weight, model.conv.key_weight  # [D, D]: one pair
    post = pre
    for _ in range(model.config.message_iters):
        new = []
        for i in range(n):
            sources = source[target == i].tolist()
            q = post[i] @ query.t()  # [B, D]
            scores = torch.stack([(q * (post[j] @ key.t())).sum(-1) for j in sources], -1)
            alpha = torch.softmax(scores / d**0.5, dim=-1)  # [B, deg]
            message = sum(alpha[:, e, None] * post[j] for e, j in enumerate(sources))
            new.append(0.9 * F.relu(post[i] + 0.2 * message) + 0.1 * pre[i])
        post = new
    activity = torch.stack([h.mean() for h in post])  # [N]
    scale = 1.0 / (0.99 + 0.01 * activity + 1e-6)  # the running mean after one call
    pooled = sum(h * s for h, s in zip(post, scale, strict=True)) / n  # [B, D]
    return model.top_fc(model.intermediate(pooled))


def tied_per_column_model(shared: CortexNet) -> CortexNet:
    """The per-column model with every column's weights set to the shared ones."""
    tied = CortexNet(shared.config.replace(shared_weights=False))
    state = dict(shared.state_dict())
    n = shared.config.num_columns
    state["columns.weight"] = shared.columns.weight.expand(-1, n, -1, -1)
    state["columns.norm_weight"] = shared.columns.norm_weight.expand(n, -1)
    state["columns.norm_bias"] = shared.columns.norm_bias + shared.column_bias  # [N, D]
    del state["column_bias"]
    for name in ("query_weight", "key_weight"):
        state[f"conv.{name}"] = getattr(shared.conv, name).expand(n, -1, -1)
    tied.load_state_dict(state)
    return tied


def test_equals_the_dense_oracle():
    torch.manual_seed(0)
    model = CortexNet(**TINY, shared_weights=True)
    x = torch.rand(5, 10)
    with torch.no_grad():
        expected = shared_oracle(model, x)  # before the forward moves the homeostasis mean
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_equals_the_per_column_model_with_tied_weights_gradients_and_hebbian():
    torch.manual_seed(0)
    shared = CortexNet(**TINY, shared_weights=True, attention_uses_edge_weight=True)
    tied = tied_per_column_model(shared)
    x, y = torch.rand(5, 10), torch.tensor([0, 1, 2, 0, 1])
    loss_shared, loss_tied = shared.training_step((x, y)), tied.training_step((x, y))
    torch.testing.assert_close(loss_shared, loss_tied)
    # a shared weight's gradient is the sum of the tied copies' gradients
    grads = {
        "columns.weight": tied.columns.weight.grad.sum(1, keepdim=True),
        "columns.norm_weight": tied.columns.norm_weight.grad.sum(0, keepdim=True),
        "columns.norm_bias": tied.columns.norm_bias.grad.sum(0, keepdim=True),
        "column_bias": tied.columns.norm_bias.grad,
        "conv.query_weight": tied.conv.query_weight.grad.sum(0),
        "conv.key_weight": tied.conv.key_weight.grad.sum(0),
        "edge_weight": tied.edge_weight.grad,
        "top_fc.weight": tied.top_fc.weight.grad,
    }
    named = dict(shared.named_parameters())
    for name, expected in grads.items():
        torch.testing.assert_close(named[name].grad, expected, atol=1e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(shared.edge_weight, tied.edge_weight)  # the Hebbian update
    torch.testing.assert_close(shared.homeostasis.activity_avg, tied.homeostasis.activity_avg)


def test_dropout_draws_a_mask_per_column():
    torch.manual_seed(0)
    model = CortexNet(**{**TINY, "dropout": 0.5}, shared_weights=True).train()
    pre = model.column_states(torch.rand(2, 10))  # [N, B, D]
    dropped = pre == 0
    assert dropped.any() and not (dropped == dropped[:1]).all()  # columns differ


def test_parameter_count_per_column_of_each_mode():
    """What docs/scaling.md states, from built models: the count grows by this per column."""
    d, f, k = 128, 784, 8
    per_column = {}
    for shared in (False, True):
        config = ModelConfig(num_columns=16, graph_seed=0, shared_weights=shared)
        counts = [
            sum(p.numel() for p in CortexNet(config.replace(num_columns=n)).parameters())
            for n in (16, 32)
        ]
        per_column[shared] = (counts[1] - counts[0]) / 16
        model = CortexNet(config)
        assert cortexnet_num_parameters(config, model.edge_index.size(1)) == counts[0]
    assert per_column[False] == 3 * d * f + 2 * d + 2 * d * d + k  # 334,088
    assert per_column[True] == d + k  # the bias and the edge weights into the column


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = CortexNet(**TINY, shared_weights=True).eval()
    model.column_bias.data.normal_()
    x = torch.rand(3, 10)
    path = tmp_path / "checkpoint.pth"
    state = {
        "model_state_dict": model.state_dict(),
        "model_config": model.config.to_dict(),
        "hyperparams": model.hparams,
    }  # what the training loop writes, minus its extras
    atomic_save(state, path)  # fmt: skip
    loaded = load_article_checkpoint(path)
    assert loaded.config == model.config and loaded.conv.num_nodes is None
    torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(ValueError, match="shared_weights model has one column"):
        save_article_checkpoint(tmp_path / "brain.pth", model)  # the article's format: no


def test_the_dense_reference_refuses_it():
    with pytest.raises(ValueError, match="shared_weights"):
        DenseReference(**TINY, shared_weights=True)
    reference = DenseReference(**TINY)
    with pytest.raises(ValueError, match="weights per column"):
        reference.to_cortexnet(shared_weights=True)
    with pytest.raises(ValueError, match="no DenseReference form"):
        DenseReference.from_cortexnet(CortexNet(**TINY, shared_weights=True))


def test_command_line_flags_train_and_eval(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--num-columns", "6", "--graph-k", "2", "--col-out", "8",
            "--batch-size", "256", "--epochs", "1", "--max-steps", "2", "--no-progress",
            "--no-plot", "--shared-weights", "--recompute-messages", "--bf16-autocast",
            "--out-dir", str(run)]  # fmt: skip
    assert main(args) == 0
    state = torch.load(run / "checkpoint.pth", weights_only=True)
    config = state["model_config"]
    assert config["shared_weights"] and config["recompute_messages"] and config["bf16_autocast"]
    assert state["model_state_dict"]["column_bias"].shape == (6, 8)
    summary = json.loads((run / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(run / "checkpoint.pth"), "--batch-size", "256"]) == 0  # as trained
    assert f"test accuracy {100 * summary['final_test_acc']:.2f} %" in capsys.readouterr().out
