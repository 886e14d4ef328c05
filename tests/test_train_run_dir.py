"""Run folders: one per run, never two writers, nothing written through a planted symlink."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
import torch
from test_train import records, tiny

from cortexgnn._io import atomic_write
from cortexgnn.train.loop import train
from cortexgnn.train.run_dir import RunDirError, open_run_dir


def test_each_run_gets_a_new_folder_and_latest_points_at_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = open_run_dir(None)
    second = open_run_dir(None)  # the same second: another folder, not the same one
    with first, second:
        assert first.path != second.path and first.path.parent == second.path.parent
        assert first.path.parent.resolve() == (tmp_path / "runs").resolve()
        assert first.created and (tmp_path / "runs" / "latest").resolve() == second.path.resolve()


def test_an_old_runs_latest_folder_is_kept_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "latest").mkdir(parents=True)  # the old default run folder
    (tmp_path / "runs" / "latest" / "checkpoint.pth").write_text("old run")
    with pytest.warns(UserWarning, match="could not point .*latest"), open_run_dir(None) as run:
        assert run.path.is_dir()
    assert (tmp_path / "runs" / "latest" / "checkpoint.pth").read_text() == "old run"


def test_a_folder_holding_a_run_is_refused_unless_overwrite(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match="already holds a run .*--overwrite"):
        open_run_dir(tmp_path)
    with open_run_dir(tmp_path, overwrite=True):
        assert not (tmp_path / "metrics.jsonl").exists()  # the old run's files are gone
    with open_run_dir(tmp_path, resume_dir=tmp_path):  # resuming its own run is fine
        pass


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    with open_run_dir(tmp_path):
        with pytest.raises(
            RunDirError, match=f"in use by another cortexgnn train \\(pid {os.getpid()}"
        ):
            open_run_dir(tmp_path)
    with open_run_dir(tmp_path):  # released on exit
        pass


def test_atomic_write_replaces_a_planted_symlink_instead_of_writing_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "summary.json").symlink_to(victim)
    atomic_write(tmp_path / "summary.json", b"{}")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "summary.json").is_symlink()
    assert (tmp_path / "summary.json").read_bytes() == b"{}"


def test_training_never_writes_through_symlinks_in_the_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    train(tiny(run, epochs=1, max_steps=2))
    for name in ("metrics.jsonl", "summary.json", "curves.png"):
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(victim)  # planted between the stop and the resume
    with pytest.warns(UserWarning, match="metrics.jsonl is a symlink: not read"):
        train(tiny(run, epochs=1, plot=True, resume=str(run / "checkpoint.pth")))
    assert victim.read_text() == "precious"
    for name in ("metrics.jsonl", "summary.json", "curves.png"):
        assert not (run / name).is_symlink(), name
    assert json.loads((run / "summary.json").read_text())["steps"] == 6


def test_resume_writes_beside_the_checkpoint_not_in_the_working_directory(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny(run, max_steps=4))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    summary = train(replace(tiny(run, resume=str(run / "checkpoint.pth")), out_dir=None))
    assert summary["steps"] == 12 and summary["out_dir"] == str(run)
    assert torch.load(run / "checkpoint.pth", weights_only=True)["step"] == 12
    assert list(elsewhere.iterdir()) == []
    assert [r["step"] for r in records(run) if r["kind"] == "train"] == [2, 4, 6, 8, 10, 12]


def test_resume_into_another_folder_carries_the_log_over(tmp_path):
    train(tiny(tmp_path / "a", max_steps=4))
    train(tiny(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint.pth")))
    assert [r["step"] for r in records(tmp_path / "b") if r["kind"] == "train"] == [
        2,
        4,
        6,
        8,
        10,
        12,
    ]


def test_a_torn_last_metrics_line_is_skipped_on_resume_with_a_warning(tmp_path):
    train(tiny(tmp_path, max_steps=4))
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"kind": "train", "ste')  # killed mid-write
    with pytest.warns(UserWarning, match="metrics.jsonl: skipped its torn last line"):
        train(tiny(tmp_path, resume=str(tmp_path / "checkpoint.pth")))
    assert [r["step"] for r in records(tmp_path) if r["kind"] == "train"] == [2, 4, 6, 8, 10, 12]
