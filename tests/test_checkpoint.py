"""Article-format brain.pth files and atomic writes."""

from __future__ import annotations

import pytest
import torch

from cortexgnn import (
    CortexNet,
    DenseReference,
    atomic_save,
    load_article_checkpoint,
    save_article_checkpoint,
)


def article_file(tmp_path, ref, **hparams):
    """A checkpoint written the way the article's train.py writes it."""
    state = {
        "epoch": 10,
        "model_state_dict": ref.state_dict(),
        "optimizer_state_dict": {},
        "loss": 0.1,
        "hyperparams": hparams,
    }
    path = tmp_path / "brain.pth"
    torch.save(state, path)
    return path


def test_article_checkpoint_loads_into_cortexnet(tmp_path):
    hparams = dict(num_columns=8, in_dim=12, col_out=8, top_out=10, graph_k=4, graph_p=0.15,
                   message_iters=4, plasticity_lr=5e-5)  # fmt: skip
    ref = DenseReference(**hparams).eval()
    net = load_article_checkpoint(article_file(tmp_path, ref, **hparams))
    assert isinstance(net, CortexNet) and not net.training
    x = torch.rand(4, 12)
    torch.testing.assert_close(net(x), ref(x), atol=1e-5, rtol=0)


def test_round_trip_through_article_format(tmp_path):
    net = CortexNet(num_columns=8, in_dim=12, col_out=8, graph_k=4, graph_seed=2).eval()
    path = save_article_checkpoint(tmp_path / "out" / "brain.pth", net, epoch=3, loss=0.5)
    state = torch.load(path, weights_only=False)
    assert set(state) == {
        "epoch",
        "model_state_dict",
        "optimizer_state_dict",
        "loss",
        "hyperparams",
    }
    assert "columns.7.fc_exc.weight" in state["model_state_dict"]
    ref = DenseReference(**state["hyperparams"])
    ref.load_state_dict(state["model_state_dict"], strict=True)  # the article's own loader
    back = load_article_checkpoint(path)
    x = torch.rand(3, 12)
    expected = net(x)
    torch.testing.assert_close(back(x), expected, atol=1e-5, rtol=0)
    assert torch.equal(back.edge_index, net.edge_index)


def test_native_cortexnet_state_dict_loads(tmp_path):
    net = CortexNet(num_columns=6, in_dim=5, col_out=4, graph_k=2, graph_seed=0)
    path = tmp_path / "native.pth"
    atomic_save({"model_state_dict": net.state_dict(), "hyperparams": net.hparams}, path)
    back = load_article_checkpoint(path)
    for key, value in net.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_article_checkpoint(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_article_checkpoint(garbage)
    hparams = dict(num_columns=8, in_dim=12, col_out=8, graph_k=4)
    ref = DenseReference(**hparams)
    path = article_file(tmp_path, ref, **{**hparams, "col_out": 16})
    with pytest.raises(ValueError, match="do not fit"):
        load_article_checkpoint(path)
    path = article_file(tmp_path, ref, **{**hparams, "bogus": 1})
    with pytest.raises(ValueError, match="bogus"):
        load_article_checkpoint(path)


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    atomic_save({"a": 1}, tmp_path / "x.pth")
    atomic_save({"a": 2}, tmp_path / "x.pth")
    assert [p.name for p in tmp_path.iterdir()] == ["x.pth"]
    assert torch.load(tmp_path / "x.pth")["a"] == 2
