"""The command line end to end on tiny configurations: train, resume, eval, errors."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields

import pytest
import torch
from test_data import write_tiny_mnist

from cortexgnn import DenseReference, save_article_checkpoint
from cortexgnn.cli import get_parser, main
from cortexgnn.cli.train import MODEL_HELP, typed_train_flags
from cortexgnn.nn.config import ModelConfig

TINY = ["--num-columns", "6", "--graph-k", "2", "--col-out", "8", "--batch-size", "256",
        "--epochs", "1", "--eval-every", "100", "--no-progress", "--no-plot"]  # fmt: skip


def test_train_digits_then_eval_replays_the_final_accuracy(tmp_path, capsys):
    assert main(["train", *TINY, "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cortexnet on digits" in out and "test accuracy" in out and "peak memory" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["config"]["model_config"]["num_columns"] == 6
    # the model as built: digits are 8x8 with 10 classes, the graph seeded by --seed
    built = summary["model_config"]
    assert (built["in_dim"], built["top_out"], built["graph_seed"]) == (64, 10, 0)
    # the final evaluation ran on the state saved in the checkpoint, so eval reproduces it
    assert main(["eval", str(tmp_path / "checkpoint.pth")]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy {100 * summary['final_test_acc']:.2f} %" in out
    assert "360 digits test images" in out


@pytest.mark.parametrize("model", ["mlp-matched", "single-column", "cnn-matched", "vit-matched"])
def test_a_baseline_trains_and_evaluates_from_its_checkpoint(model, tmp_path, capsys):
    assert main(["train", *TINY, "--model", model, "--out-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "checkpoint.pth")]) == 0
    assert f"test accuracy {100 * summary['final_test_acc']:.2f} %" in capsys.readouterr().out


def test_train_mnist_from_idx_files(tmp_path, capsys):
    write_tiny_mnist(tmp_path / "data", num_train=48, num_test=16)
    args = ["train", *TINY, "--dataset", "mnist", "--data-dir", str(tmp_path / "data"),
            "--batch-size", "16", "--out-dir", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    assert "cortexnet on mnist" in capsys.readouterr().out
    state = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=False)
    assert state["hyperparams"]["in_dim"] == 784 and state["step"] == 3


def test_missing_dataset_is_one_clear_line_and_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run folder: runs/<timestamp> here
    missing = tmp_path / "empty"
    code = main(["train", *TINY, "--dataset", "fashion-mnist", "--data-dir", str(missing)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cortexgnn train: error: fashion-mnist not found in ")
    assert str(missing / "FashionMNIST" / "raw") in err and err.count("\n") == 1
    assert list((tmp_path / "runs").iterdir()) == []  # the failed run left no empty folder


def test_resume_takes_untyped_flags_from_the_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--max-steps", "3", "--out-dir", str(run)]) == 0
    assert "stopped early" in capsys.readouterr().out
    assert main(["train", "--resume", str(run / "checkpoint.pth"), "--no-progress"]) == 0
    assert "12 (2 epochs of 6 steps)" in capsys.readouterr().out
    code = main(["train", "--resume", str(run / "checkpoint.pth"), "--num-columns", "7"])
    assert code == 2
    assert "num_columns: checkpoint 6 vs now 7" in capsys.readouterr().err


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
    assert typed_train_flags(["--num-columns", "3", "--no-plot"]) == {"num_columns", "plot"}
    assert typed_train_flags([]) == set()
    with pytest.raises(SystemExit):
        get_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    assert "--batch-size BATCH_SIZE" in text and "(default: 128)" in text
    assert "--use-attention, --no-use-attention" in text


@pytest.mark.slow
def test_python_dash_m_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "cortexgnn", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("cortexgnn ")


def test_train_defaults_are_the_articles_protocol():
    args = get_parser().parse_args(["train"])
    protocol = {k: getattr(args, k) for k in (
        "dataset", "model", "num_columns", "col_out", "graph_k", "graph_p", "message_iters",
        "plasticity_lr", "use_attention", "e_i_ratio", "dropout", "epochs", "batch_size", "lr",
        "weight_decay", "t_max_epochs", "download")}  # fmt: skip
    assert protocol == dict(
        dataset="digits", model="cortexnet", num_columns=64, col_out=128, graph_k=8,
        graph_p=0.15, message_iters=4, plasticity_lr=5e-5, use_attention=True, e_i_ratio=0.8,
        dropout=0.1, epochs=10, batch_size=128, lr=1e-3, weight_decay=1e-5, t_max_epochs=12.0,
        download=False,
    )  # fmt: skip
    # 1437 / 128 -> 12 steps an epoch, 120 in all: evaluated several times, not never
    assert 120 // args.eval_every >= 4
    assert args.threads == 1  # the fastest measured here (see --help)


def test_every_model_setting_is_one_flag_named_after_its_field(capsys):
    settable = {f.name for f in fields(ModelConfig)} - {"in_dim", "top_out"}
    assert set(MODEL_HELP) == settable  # one help line per field, none for a missing one
    args = get_parser().parse_args(["train"])
    for name in settable:  # defaults come from ModelConfig
        assert getattr(args, name) == getattr(ModelConfig(), name), name
    typed = ["--num-columns", "5", "--graph-seed", "7", "--homeostasis-min-divisor", "0.5",
             "--no-use-hebbian", "--attention-uses-edge-weight",
             "--check-finite-input"]  # fmt: skip
    args = get_parser().parse_args(["train", *typed])
    assert (args.num_columns, args.graph_seed, args.homeostasis_min_divisor) == (5, 7, 0.5)
    assert not args.use_hebbian and args.attention_uses_edge_weight and args.check_finite_input
    assert get_parser().parse_args(["train", "--graph-seed", "none"]).graph_seed is None
    with pytest.raises(SystemExit):
        get_parser().parse_args(["train", "--columns", "5"])  # the old names are gone
    assert "--columns" in capsys.readouterr().err


def test_a_fix_flag_survives_resume_and_eval(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", *TINY, "--epochs", "2", "--max-steps", "3", "--attention-uses-edge-weight",
            "--out-dir", str(run)]  # fmt: skip
    assert main(args) == 0
    checkpoint = str(run / "checkpoint.pth")
    assert main(["train", "--resume", checkpoint, "--no-progress"]) == 0  # flag not typed
    state = torch.load(checkpoint, weights_only=True)
    assert state["step"] == 12 and state["model_config"]["attention_uses_edge_weight"]
    assert state["config"]["model_config"]["attention_uses_edge_weight"]
    summary = json.loads((run / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", checkpoint]) == 0  # eval rebuilds the model with the flag on
    assert f"test accuracy {100 * summary['final_test_acc']:.2f} %" in capsys.readouterr().out
    from cortexgnn.train.evaluate import evaluate_checkpoint

    assert evaluate_checkpoint(checkpoint)["model_config"]["attention_uses_edge_weight"]


BAD_FLAGS = [
    (["train", "--device", "foo"], "device must be"),
    (["train", "--threads", "0"], "threads must be >= 1"),
    (["train", "--max-steps", "-1"], "max_steps must be >= 1"),
    (["train", "--t-max-epochs", "-1"], "t_max_epochs must be"),
    (["train", "--epochs", "0"], "epochs must be >= 1"),
    (["train", "--plasticity-lr", "nan"], "plasticity_lr must be a finite number"),
    (["train", "--e-i-ratio", "nan"], "e_i_ratio must be a finite number"),
    (["train", "--batch-size", "0"], "batch_size must be >= 1"),
    (["train", "--lr", "inf"], "lr must be a finite number"),
    (["train", "--threads", "two"], "invalid int value"),
    (["train", "--model", "reference", "--attention-uses-edge-weight"], "only the article's"),
    (["eval", "nope.pth", "--batch-size", "-1"], "batch_size must be >= 1"),
    (["eval", "nope.pth", "--device", "foo"], "device must be"),
    (["train", "--plasticity-lr", "1e308"], "plasticity_lr must lie within"),
    (["train", "--threads", "100000"], "threads must be <= 1024"),
    (["train", "--seed", "99999999999999999999"], "seed must fit in 64 bits"),
    (["neurons", "simulate", "--num-nodes", "100000000"], "--num-nodes/--copies: 100,000,000"),
    (["neurons", "simulate", "--copies", "1000000000"], "--max-elements if you mean it"),
    (["neurons", "simulate", "--seed", "99999999999999999999"], "--seed must fit in 64 bits"),
]


@pytest.mark.parametrize("argv, message", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_a_bad_flag_is_one_line_and_status_2(tmp_path, capsys, argv, message):
    argv = [*argv, "--out-dir", str(tmp_path / "run")] if argv[0] == "train" else argv
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own refusals (a malformed value)
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pth").exists()


def test_cuda_without_cuda_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--device", "cuda", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu" in err and err.count("\n") == 1


def test_a_file_in_the_way_of_the_out_dir_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["train", *TINY, "--out-dir", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "exists and is not a folder" in err and err.count("\n") == 1
    assert main(["train", *TINY, "--out-dir", str(blocker / "run")]) == 2  # parent is a file
    err = capsys.readouterr().err
    assert str(blocker) in err and "--out-dir" in err and err.count("\n") == 1


@pytest.mark.parametrize("code, fix", [(errno.EACCES, "write to"), (errno.EROFS, "read-only")])
def test_an_unwritable_out_dir_is_one_line(tmp_path, capsys, monkeypatch, code, fix):
    from pathlib import Path

    def refuse(self, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)  # root ignores chmod: simulate the refusal
    assert main(["train", *TINY, "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "run") in err and fix in err and err.count("\n") == 1


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    from cortexgnn.train import loop

    saved = []

    def save_then_fill_the_disk(obj, path):
        if saved:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        saved.append(path)
        return real_save(obj, path)

    real_save = loop.atomic_save
    monkeypatch.setattr(loop, "atomic_save", save_then_fill_the_disk)
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "free disk space" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert torch.load(run / "checkpoint.pth", weights_only=True)["epoch"] == 1  # intact


def test_doctor_reports_versions_kernel_and_data(tmp_path, capsys, monkeypatch):
    (tmp_path / "FashionMNIST" / "raw").mkdir(parents=True)
    monkeypatch.delenv("CORTEXGNN_DATA_DIR", raising=False)
    assert main(["doctor", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for fact in ("python", "torch", "torch_geometric", "threads", "cuda", "attention kernel",
                 "c++ compiler", "ninja"):  # fmt: skip
        assert any(line.startswith(fact + " ") for line in out.splitlines()), fact
    assert f"{tmp_path}: FashionMNIST/raw" in out


def test_doctor_prints_no_warnings_of_the_libraries_it_imports(tmp_path):
    """A fresh process: PyG's import-time deprecation warning must not reach the user."""
    done = subprocess.run(
        [sys.executable, "-m", "cortexgnn", "doctor", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "CORTEXGNN_NO_KERNEL": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    assert "torch_geometric" in done.stdout


def test_doctor_survives_a_kernel_module_without_kernel_status(capsys, monkeypatch):
    import cortexgnn.ops.kernel as kernel

    monkeypatch.delattr(kernel, "kernel_status", raising=False)
    assert main(["doctor"]) == 0
    kernel_line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("attention")]
    assert kernel_line and kernel_line[0].endswith("unknown")


def test_every_command_is_registered():
    choices = get_parser()._subparsers._group_actions[0].choices
    assert set(choices) == {"train", "eval", "doctor", "bench", "neurons"}


@pytest.mark.slow
def test_help_is_fast_and_imports_no_torch():
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from cortexgnn.cli import get_parser; get_parser()\n"
        "print(time.perf_counter() - t, sorted({'torch', 'numpy', 'torch_geometric'} & "
        "set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    seconds, heavy = done.stdout.split(" ", 1)
    assert heavy.strip() == "[]", heavy
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cortexgnn", "train", "--help"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and "--num-columns" in done.stdout
    assert time.perf_counter() - start < 1.0


def test_ctrl_c_exits_130_after_its_checkpoint(tmp_path, capsys, monkeypatch):
    from cortexgnn.train import loop

    def interrupt_once(bar, *args):  # Ctrl-C during the first step
        monkeypatch.setattr(loop, "_update_bar", lambda *a: None)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(loop, "_update_bar", interrupt_once)
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out-dir", str(run)]) == 130
    assert torch.load(run / "checkpoint.pth", weights_only=True)["step"] == 1
    assert "interrupted" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["interrupted"] is True


def test_a_failed_run_leaves_no_lock(tmp_path, capsys):
    run = tmp_path / "run"
    empty = tmp_path / "no-data"
    empty.mkdir()
    argv = ["train", *TINY, "--dataset", "mnist", "--data-dir", str(empty), "--out-dir", str(run)]
    assert main(argv) == 2
    assert "mnist" in capsys.readouterr().err
    assert run.is_dir() and not (run / ".lock").exists()
    assert main(["train", *TINY, "--out-dir", str(tmp_path / "ok")]) == 0  # and a finished one
    assert not (tmp_path / "ok" / ".lock").exists()


def test_an_oversized_checkpoint_is_one_line_naming_the_flag(tmp_path, capsys):
    from cortexgnn import CortexNet

    path = save_article_checkpoint(tmp_path / "brain.pth", CortexNet(num_columns=4, in_dim=64,
                                   col_out=4, top_out=10, graph_k=2))  # fmt: skip
    state = torch.load(path, weights_only=True)
    state["hyperparams"]["num_columns"] = state["model_config"]["num_columns"] = 10**9
    torch.save(state, path)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "--max-elements" in err and err.count("\n") == 1


def test_resuming_a_checkpoint_with_edited_sizes_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--max-steps", "2", "--out-dir", str(run)]) == 0
    checkpoint = run / "checkpoint.pth"
    state = torch.load(checkpoint, weights_only=True)
    state["config"]["model_config"]["num_columns"] = 10**9
    torch.save(state, checkpoint)
    capsys.readouterr()
    assert main(["train", "--resume", str(checkpoint), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "num_columns=1000000000" in err and "GiB" in err and err.count("\n") == 1


@pytest.mark.parametrize("rank, shown", [("0", True), ("1", False)])
def test_warnings_once_per_job_under_torchrun(rank, shown, monkeypatch):
    import warnings

    from cortexgnn.cli import doctor

    def diagnose(data_dir):
        warnings.warn("the attention kernel could not be built", stacklevel=1)
        return {}

    monkeypatch.setattr(doctor, "diagnose", diagnose)
    monkeypatch.setenv("RANK", rank)  # what torchrun sets in every process
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["doctor"]) == 0
    assert [str(w.message) for w in seen] == (["the attention kernel could not be built"]
                                              if shown else [])  # fmt: skip
