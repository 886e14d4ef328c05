"""Article-format brain.pth files and atomic writes."""

from __future__ import annotations

import pytest
import torch

from cortexgnn import (
    CortexNet,
    DenseReference,
    ModelConfig,
    atomic_save,
    load_article_checkpoint,
    save_article_checkpoint,
)

SMALL = dict(num_columns=8, in_dim=12, col_out=8, graph_k=4, graph_seed=2)


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
    state = torch.load(path, weights_only=True)
    assert set(state) == {
        "epoch",
        "model_state_dict",
        "optimizer_state_dict",
        "loss",
        "hyperparams",
        "model_config",
    }
    assert state["model_config"] == net.config.to_dict()
    assert state["hyperparams"] == net.config.article_hparams()
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


def test_fix_flags_survive_the_round_trip(tmp_path):
    net = CortexNet(**SMALL, attention_uses_edge_weight=True,
                    freeze_homeostasis_in_eval=True).eval()  # fmt: skip
    with torch.no_grad():
        net.edge_weight.normal_()  # the flag gates attention by these: make them matter
    path = save_article_checkpoint(tmp_path / "brain.pth", net)
    back = load_article_checkpoint(path)
    assert back.config == net.config
    x = torch.rand(3, 12)
    assert torch.equal(back(x), net(x))
    flagless = load_article_checkpoint(path, attention_uses_edge_weight=False)
    assert not flagless.config.attention_uses_edge_weight  # settings override the file
    assert not torch.allclose(flagless(x), net(x))


def test_native_layout_restores_the_config_from_model_config(tmp_path):
    net = CortexNet(**SMALL, attention_uses_edge_weight=True, homeostasis_min_divisor=0.5)
    path = atomic_save(
        {"model_state_dict": net.state_dict(), "hyperparams": net.hparams,
         "model_config": net.config.to_dict()},
        tmp_path / "native.pth",
    )  # fmt: skip
    assert load_article_checkpoint(path).config == net.config


def test_file_without_model_config_gets_the_article_defaults(tmp_path):
    config = ModelConfig(**{k: v for k, v in SMALL.items() if k != "graph_seed"})
    ref = DenseReference(config).eval()
    net = load_article_checkpoint(article_file(tmp_path, ref, **config.article_hparams()))
    assert net.config.article_hparams() == config.article_hparams()
    assert not net.config.attention_uses_edge_weight


def test_inconsistent_or_unknown_stored_settings_are_refused(tmp_path):
    net = CortexNet(**SMALL)
    state = {"model_state_dict": net.state_dict(), "hyperparams": net.hparams,
             "model_config": {**net.config.to_dict(), "col_out": 16}}  # fmt: skip
    path = atomic_save(state, tmp_path / "edited.pth")
    with pytest.raises(ValueError, match="edited.pth.*disagree on \\['col_out'\\]"):
        load_article_checkpoint(path)
    state["model_config"] = {**net.config.to_dict(), "bogus": 1}
    path = atomic_save(state, tmp_path / "unknown.pth")
    with pytest.raises(ValueError, match="unknown.pth.*bogus"):
        load_article_checkpoint(path)


def test_brain_dict_is_the_one_builder_of_the_file():
    from cortexgnn.checkpoint import brain_dict

    net = CortexNet(num_columns=4, in_dim=6, col_out=4, top_out=3, graph_k=2, graph_seed=0)
    article = brain_dict(net, epoch=2, loss=0.5)
    assert set(article) == {"epoch", "model_state_dict", "optimizer_state_dict", "loss",
                            "hyperparams", "model_config"}  # fmt: skip
    assert "attention_gates.0.query.weight" in article["model_state_dict"]  # BrainNetwork's
    own = brain_dict(net, article_keys=False)
    assert own["model_state_dict"].keys() == net.state_dict().keys()
    assert own["model_config"] == net.config.to_dict() and own["optimizer_state_dict"] == {}
