"""The command line end to end on tiny configurations: train, resume, eval, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from test_data import write_tiny_mnist

from cortexgnn import DenseReference, save_article_checkpoint
from cortexgnn.train.cli import _typed_train_flags, get_parser, main

TINY = ["--columns", "6", "--graph-k", "2", "--col-out", "8", "--batch-size", "256",
        "--epochs", "1", "--eval-every", "100", "--no-progress", "--no-plot"]  # fmt: skip


def test_train_digits_then_eval_replays_the_final_accuracy(tmp_path, capsys):
    assert main(["train", *TINY, "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cortexnet on digits" in out and "test accuracy" in out and "peak memory" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["config"]["columns"] == 6
    # the final evaluation ran on the state saved in the checkpoint, so eval reproduces it
    assert main(["eval", str(tmp_path / "checkpoint.pth")]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy {100 * summary['final_test_acc']:.2f} %" in out
    assert "360 digits test images" in out


def test_train_mnist_from_idx_files(tmp_path, capsys):
    write_tiny_mnist(tmp_path / "data", num_train=48, num_test=16)
    args = ["train", *TINY, "--dataset", "mnist", "--data-dir", str(tmp_path / "data"),
            "--batch-size", "16", "--out-dir", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    assert "cortexnet on mnist" in capsys.readouterr().out
    state = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=False)
    assert state["hyperparams"]["in_dim"] == 784 and state["step"] == 3


def test_missing_dataset_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "empty"
    code = main(["train", *TINY, "--dataset", "fashion-mnist", "--data-dir", str(missing)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cortexgnn train: error: fashion-mnist not found in ")
    assert str(missing / "FashionMNIST" / "raw") in err and err.count("\n") == 1


def test_resume_takes_untyped_flags_from_the_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--max-steps", "3", "--out-dir", str(run)]) == 0
    assert "stopped early" in capsys.readouterr().out
    assert main(["train", "--resume", str(run / "checkpoint.pth"), "--no-progress"]) == 0
    assert "12 (2 epochs of 6 steps)" in capsys.readouterr().out
    code = main(["train", "--resume", str(run / "checkpoint.pth"), "--columns", "7"])
    assert code == 2
    assert "columns: checkpoint 6 vs now 7" in capsys.readouterr().err


def test_eval_accepts_an_article_brain_pth(tmp_path, capsys):
    ref = DenseReference(num_columns=6, in_dim=64, col_out=8, graph_k=2, graph_seed=0)
    save_article_checkpoint(tmp_path / "brain.pth", ref, epoch=10)
    assert main(["eval", str(tmp_path / "brain.pth")]) == 0
    assert "on 360 digits test images" in capsys.readouterr().out


def test_eval_errors(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope.pth")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    assert main(["eval", str(tmp_path / "junk.pth")]) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err


def test_typed_flags_and_defaults_in_help(capsys):
    assert _typed_train_flags(["--columns", "3", "--no-plot"]) == {"columns", "plot"}
    assert _typed_train_flags([]) == set()
    with pytest.raises(SystemExit):
        get_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    assert "--batch-size BATCH_SIZE" in text and "(default: 128)" in text
    assert "--attention, --no-attention" in text


def test_python_dash_m_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "cortexgnn", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("cortexgnn ")


def test_train_defaults_are_the_articles_protocol():
    args = get_parser().parse_args(["train"])
    protocol = {k: getattr(args, k) for k in (
        "dataset", "model", "columns", "col_out", "graph_k", "graph_p", "message_iters",
        "plasticity_lr", "attention", "e_i_ratio", "dropout", "epochs", "batch_size", "lr",
        "weight_decay", "t_max_epochs", "eval_every", "download")}  # fmt: skip
    assert protocol == dict(
        dataset="digits", model="cortexnet", columns=64, col_out=128, graph_k=8, graph_p=0.15,
        message_iters=4, plasticity_lr=5e-5, attention=True, e_i_ratio=0.8, dropout=0.1,
        epochs=10, batch_size=128, lr=1e-3, weight_decay=1e-5, t_max_epochs=12.0,
        eval_every=100, download=False,
    )  # fmt: skip
