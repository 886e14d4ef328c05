"""Checkpoint files from outside: a truncated, missing or foreign file gets an error that
names the problem and the fix."""

from __future__ import annotations

import pytest
import torch

from cortexgnn import CortexNet, atomic_save, load_article_checkpoint

TINY = dict(num_columns=6, in_dim=10, col_out=4, top_out=3, graph_k=2, graph_seed=0)


@pytest.fixture
def net() -> CortexNet:
    return CortexNet(**TINY)


@pytest.fixture
def saved(tmp_path, net):
    state = {"model_state_dict": net.state_dict(), "hyperparams": dict(net.hparams)}
    return tmp_path, state, atomic_save(state, tmp_path / "good.pth")


def test_checkpoint_truncated_or_empty(saved):
    tmp_path, _, good = saved
    data = good.read_bytes()
    for name, content in [("half.pth", data[: len(data) // 2]), ("empty.pth", b"")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=r"truncated or corrupt"):
            load_article_checkpoint(tmp_path / name)


def test_checkpoint_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*nope.pth"):
        load_article_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: torch.ones(3), r"needs the keys \['model_state_dict', 'hyperparams'\]"),
        (lambda s: {**s, "hyperparams": None}, r"'hyperparams' must be a dict"),
        (lambda s: {**s, "model_state_dict": [1]}, r"'model_state_dict' must be a state dict"),
        (
            lambda s: {**s, "model_state_dict": torch.nn.Linear(3, 2).state_dict()},
            r"another architecture",
        ),
        (lambda s: {**s, "hyperparams": {**s["hyperparams"], "col_out": 5}}, r"do not fit"),
        (lambda s: {**s, "hyperparams": {**s["hyperparams"], "num_columns": 7}}, r"do not fit"),
        (
            lambda s: {**s, "hyperparams": {**s["hyperparams"], "use_attention": False}},
            r"do not fit",
        ),
        (
            lambda s: {**s, "hyperparams": {**s["hyperparams"], "message_iters": -1}},
            r"message_iters must be >= 0",
        ),
        (lambda s: {**s, "hyperparams": {**s["hyperparams"], "heads": 2}}, r"\['heads'\]"),
    ],
)
def test_checkpoint_of_another_model(saved, edit, match):
    tmp_path, state, _ = saved
    torch.save(edit(state), tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=match):
        load_article_checkpoint(tmp_path / "bad.pth")
