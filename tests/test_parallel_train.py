"""``cortexgnn train --column-shards P``: checks, one-process runs, torchrun runs.

A sharded run follows the one-process run (same seed, dropout off across processes), saves
a folder of shards that any process count resumes, and ``cortexgnn eval`` reads it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cortexgnn import load_article_checkpoint
from cortexgnn.cli import main
from cortexgnn.train.config import TrainConfig
from cortexgnn.train.metrics import read_metrics
from cortexgnn.train.sharded import write_consolidated

ARGS = ("train --dataset digits --num-columns 8 --col-out 8 --graph-k 4 --message-iters 2 "
        "--dropout 0 --batch-size 64 --log-every 1 --threads 1 --seed 1 --plasticity-lr 0.5 "
        "--no-progress --no-plot --no-final-eval").split()  # fmt: skip


def _losses(folder) -> list[float]:
    return [r["loss"] for r in read_metrics(folder / "metrics.jsonl") if r["kind"] == "train"]


def _assert_same_float32_losses(a, b) -> None:
    """Losses of two process layouts, at float32's tolerance: they are float32 values, and
    P processes sum the readout and the gradients in another order than one process does
    (on an AMD EPYC, step 17 of 46 differed by 2e-7 relative; float64's 1e-7 failed)."""
    torch.testing.assert_close(torch.tensor(a, dtype=torch.float32),
                               torch.tensor(b, dtype=torch.float32))  # fmt: skip


def test_column_shards_must_be_a_positive_count_of_cortexnet_columns():
    with pytest.raises(ValueError, match="P >= 1"):
        TrainConfig(column_shards=0)
    with pytest.raises(ValueError, match="--model reference"):
        TrainConfig(column_shards=2, model="reference")


def test_a_process_count_other_than_the_shards_names_the_launch(tmp_path, capsys):
    assert main([*ARGS, "--column-shards", "2", "--out-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "torchrun --nproc_per_node 2 -m cortexgnn train --column-shards 2" in err
    assert main([*ARGS, "--column-shards", "1", "--compile", "--out-dir", str(tmp_path)]) == 2
    assert "--compile is not supported with --column-shards" in capsys.readouterr().err


def test_one_shard_trains_like_cortexnet_and_resumes_without_the_flag(tmp_path):
    steps = ["--max-steps", "3"]
    assert main([*ARGS, *steps, "--out-dir", str(tmp_path / "plain")]) == 0
    assert main([*ARGS, *steps, "--column-shards", "1", "--out-dir", str(tmp_path / "s")]) == 0
    torch.testing.assert_close(_losses(tmp_path / "s"), _losses(tmp_path / "plain"))
    state = torch.load(tmp_path / "s" / "checkpoint.pth", weights_only=True)
    assert "model_state_dict" not in state and state["sharded_state"] == "shards/step-000000003"
    # exported as one brain.pth-style file, it holds the plain run's weights (to rounding)
    exported = write_consolidated(tmp_path / "s" / "checkpoint.pth", tmp_path / "brain.pth")
    plain = load_article_checkpoint(tmp_path / "plain" / "checkpoint.pth")
    for name, value in load_article_checkpoint(exported).state_dict().items():
        torch.testing.assert_close(value, plain.state_dict()[name], rtol=0, atol=1e-5)
    # the sharded checkpoint resumes in one process, and continues like the plain run
    for folder in ("plain", "s"):
        resume = ["--resume", str(tmp_path / folder / "checkpoint.pth"), "--max-steps", "5"]
        assert main([*ARGS, *resume]) == 0
    torch.testing.assert_close(_losses(tmp_path / "s"), _losses(tmp_path / "plain"))


def test_one_shard_of_shared_topographic_columns_trains_like_cortexnet(tmp_path):
    # one column shared by the 16 patch columns of the 8 x 8 digits, read out from column 5
    topographic = ["--num-columns", "16", "--patch-size", "2", "--shared-weights",
                   "--graph", "lattice", "--readout-column", "5", "--max-steps", "3"]  # fmt: skip
    plain, sharded = tmp_path / "plain", tmp_path / "sharded"
    assert main([*ARGS, *topographic, "--out-dir", str(plain)]) == 0
    assert main([*ARGS, *topographic, "--column-shards", "1", "--out-dir", str(sharded)]) == 0
    torch.testing.assert_close(_losses(sharded), _losses(plain))
    exported = write_consolidated(sharded / "checkpoint.pth", tmp_path / "brain.pth")
    model = load_article_checkpoint(exported)
    assert model.config.shared_weights and model.column_bias.shape == (16, 8)


#: a study run: a validation split, evaluations on it, the test set once at the end
VALIDATED = [a for a in ARGS if a != "--no-final-eval"] + ["--val-size", "200", "--eval-every", "2"]


def _test_record(folder: Path) -> dict:
    """The last test of a run (a run stopped at --max-steps and resumed tested twice)."""
    return [r for r in read_metrics(folder / "metrics.jsonl") if r["kind"] == "test"][-1]


def test_a_sharded_study_run_keeps_its_best_weights_as_shards_across_a_resume(tmp_path):
    whole = [*VALIDATED, "--column-shards", "1", "--max-steps", "6"]
    assert main([*whole, "--out-dir", str(tmp_path / "whole")]) == 0
    # the same run, stopped after 3 steps and resumed with and without --column-shards
    for name, flags in (("sharded", ["--column-shards", "1"]), ("plain", [])):
        first = [*VALIDATED, "--column-shards", "1", "--max-steps", "3"]
        assert main([*first, "--out-dir", str(tmp_path / name)]) == 0
        state = torch.load(tmp_path / name / "checkpoint.pth", weights_only=True)
        assert "best_model_state_dict" not in state  # one process's columns would be wrong
        best = tmp_path / name / state["best_sharded_state"]
        assert best.parent.name == "shards" and best.name.startswith("best-step-")
        resume = ["--resume", str(tmp_path / name / "checkpoint.pth"), "--max-steps", "6"]
        assert main([*VALIDATED, *resume, *flags]) == 0
        test, reference = _test_record(tmp_path / name), _test_record(tmp_path / "whole")
        assert test["weights_step"] == reference["weights_step"]
        assert test["test_acc"] == pytest.approx(reference["test_acc"], abs=1e-9)
        assert test["test_loss"] == pytest.approx(reference["test_loss"], rel=1e-5)
    folders = {p.name for p in (tmp_path / "whole" / "shards").iterdir()}
    assert len(folders) == 2 and {f.split("-")[0] for f in folders} == {"step", "best"}


@pytest.mark.slow
def test_a_two_process_study_run_resumes_with_the_best_weights_of_every_shard(tmp_path):
    """Each process holds its own columns of the best step: all of them come back."""
    # evaluated at step 3, inside the loop: the checkpoint's best step is its last step
    validated = [*VALIDATED[:-1], "3"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "cortexgnn", *validated, "--column-shards", "2",
               "--max-steps", "3", "--out-dir", str(tmp_path / "two")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    tested = _test_record(tmp_path / "two")
    # resumed at its last step in one process: it tests the best weights again, and gets
    # what the two processes got (the best step's columns of both processes came back)
    resume = ["--resume", str(tmp_path / "two" / "checkpoint.pth"), "--column-shards", "1"]
    assert main([*validated, *resume, "--max-steps", "3"]) == 0
    again = _test_record(tmp_path / "two")
    assert again["weights_step"] == tested["weights_step"]
    assert again["test_acc"] == pytest.approx(tested["test_acc"], abs=1e-9)
    assert again["test_loss"] == pytest.approx(tested["test_loss"], rel=1e-5)
    # and trained on, it ends like the one-process run
    assert main([*validated, *resume, "--max-steps", "6"]) == 0
    whole = [*validated, "--column-shards", "1", "--max-steps", "6"]
    assert main([*whole, "--out-dir", str(tmp_path / "one")]) == 0
    test, reference = _test_record(tmp_path / "two"), _test_record(tmp_path / "one")
    assert test["weights_step"] == reference["weights_step"]
    assert test["test_acc"] == pytest.approx(reference["test_acc"], abs=1e-9)
    assert test["test_loss"] == pytest.approx(reference["test_loss"], rel=1e-4)


@pytest.mark.slow
def test_torchrun_column_shards_train_like_one_process_and_reshard(tmp_path, capsys):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "cortexgnn", *ARGS, "--column-shards", "2",
               "--max-steps", "4", "--out-dir", str(tmp_path / "two")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("cortexgnn train:") == 1  # rank 0 reports
    assert main([*ARGS, "--max-steps", "4", "--out-dir", str(tmp_path / "one")]) == 0
    _assert_same_float32_losses(_losses(tmp_path / "two"), _losses(tmp_path / "one"))
    shards = sorted((tmp_path / "two" / "shards").iterdir())
    assert [p.name for p in shards] == ["step-000000004"]  # older folders are removed
    assert {p.name for p in shards[0].iterdir()} >= {"__0_0.distcp", "__1_0.distcp"}
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "two" / "checkpoint.pth")]) == 0
    two = capsys.readouterr().out.split(":", 1)[1]
    assert main(["eval", str(tmp_path / "one" / "checkpoint.pth")]) == 0
    assert capsys.readouterr().out.split(":", 1)[1] == two  # same accuracy and loss
    # P = 2 resumes with one shard (P = 1) and continues like the one-process run
    resume = ["--resume", str(tmp_path / "two" / "checkpoint.pth"), "--max-steps", "6"]
    assert main([*ARGS, *resume, "--column-shards", "1"]) == 0
    one = ["--resume", str(tmp_path / "one" / "checkpoint.pth"), "--max-steps", "6"]
    assert main([*ARGS, *one]) == 0
    _assert_same_float32_losses(_losses(tmp_path / "two"), _losses(tmp_path / "one"))


def _workers_of(parent: int) -> list[int]:
    """Process ids whose parent is ``parent`` and that run cortexgnn (torchrun's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"cortexgnn" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find workers")
def test_a_killed_process_restarts_from_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    args = [*ARGS, "--column-shards", "2", "--epochs", "2", "--out-dir", str(run)]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--max-restarts",
        "1",
        "-m",
        "cortexgnn",
        *args,
    ]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    steps_per_epoch = 23  # ceil(1437 digits training images / 64)
    deadline = time.monotonic() + 300
    killed_at = None
    while killed_at is None and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
        log = run / "metrics.jsonl"
        steps = (
            [r["step"] for r in read_metrics(log) if r["kind"] == "train"] if log.exists() else []
        )
        if steps and steps[-1] >= steps_per_epoch + 3:  # inside the second epoch
            workers = _workers_of(job.pid)
            assert len(workers) == 2, workers
            killed_at = time.time()
            os.kill(max(workers), signal.SIGKILL)
    try:
        out, err = job.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        job.kill()
        out, err = job.communicate()
    assert killed_at is not None, err[-3000:]
    assert job.returncode == 0, err[-3000:]
    state = torch.load(run / "checkpoint.pth", weights_only=True)
    assert state["step"] == 2 * steps_per_epoch
    records = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in records] == list(range(1, 2 * steps_per_epoch + 1))
    # steps up to the first epoch's checkpoint are the first attempt's; the rest were redone
    assert all((r["time"] < killed_at) == (r["step"] <= steps_per_epoch) for r in records)
    assert main([*ARGS, "--epochs", "2", "--out-dir", str(tmp_path / "one")]) == 0
    _assert_same_float32_losses(_losses(run), _losses(tmp_path / "one"))


def test_only_a_torchrun_restart_resumes_from_the_run_folder(tmp_path, monkeypatch):
    from cortexgnn.train.distributed import checkpoint_after_restart

    (tmp_path / "checkpoint.pth").write_bytes(b"")
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    assert checkpoint_after_restart(str(tmp_path)) is None  # a first attempt starts afresh
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert checkpoint_after_restart(str(tmp_path)) == str(tmp_path / "checkpoint.pth")
    assert checkpoint_after_restart(str(tmp_path / "empty")) is None  # nothing saved yet
    assert checkpoint_after_restart(None) is None


@pytest.mark.parametrize("folder", ["shards/..", "../shards/step-1", "/etc", None, "shards"])
def test_a_checkpoint_names_its_shards_inside_its_run_folder(tmp_path, folder):
    from cortexgnn import ModelConfig
    from cortexgnn.train.sharded import consolidated_checkpoint

    state = {"sharded_state": folder, "model_config": ModelConfig(num_columns=8).to_dict()}
    with pytest.raises(ValueError, match="must name shards/step-N"):
        consolidated_checkpoint(state, tmp_path / "checkpoint.pth")
