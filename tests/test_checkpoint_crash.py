"""A process killed (SIGKILL) while writing a checkpoint loses nothing.

Every test here starts and kills a real process, so all but one are marked slow. A real
child process writes a large checkpoint over an existing one and is killed while the
bytes are still going out. ``atomic_save`` must leave the previous file intact and loadable;
a plain ``torch.save`` to the same path, killed the same way, leaves a torn file that
``read_checkpoint`` refuses (the failure the atomic write exists to prevent).
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

from cortexgnn import atomic_save
from cortexgnn.checkpoint import read_checkpoint

PAYLOAD_FLOATS = 48 * 2**20  # 192 MiB: long enough to write that the kill lands mid-save

WRITER = """
import sys, torch
from cortexgnn import atomic_save
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
state = {"step": 2, "model_state_dict": {"w": torch.ones(n)}, "hyperparams": {}}
print("ready", flush=True)
if mode == "atomic":
    atomic_save(state, path)
else:
    torch.save(state, path)
"""


def kill_while_writing(path: Path, mode: str) -> bool:
    """Start a writer of ``path``; SIGKILL it once its output file has bytes.

    Returns whether the kill arrived before the writer finished.
    """
    before = path.stat().st_mtime_ns if path.exists() else None
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode, str(PAYLOAD_FLOATS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout.readline().strip() == b"ready", child.stderr.read().decode()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if mode == "atomic":
            started = any(p.stat().st_size > 0 for p in path.parent.glob(f".{path.name}.*.tmp"))
        else:
            started = path.exists() and path.stat().st_mtime_ns != before
        if started:
            break
        time.sleep(0.0005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    child.stdout.close()
    child.stderr.close()
    return child.returncode == -signal.SIGKILL


def previous_checkpoint(path: Path) -> dict:
    state = {"step": 1, "model_state_dict": {"w": torch.arange(5.0)}, "hyperparams": {"a": 1}}
    atomic_save(state, path)
    return state


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_atomic_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pth"
    previous = previous_checkpoint(path)
    for _ in range(3):  # a kill that lands after the rename proves nothing: try again
        killed = kill_while_writing(path, "atomic")
        leftovers = list(tmp_path.glob(".checkpoint.pth.*.tmp"))
        if killed and leftovers:
            break
    assert killed and leftovers, "the writer finished before the kill; enlarge the payload"
    state = read_checkpoint(path)
    assert state["step"] == previous["step"]
    assert torch.equal(state["model_state_dict"]["w"], previous["model_state_dict"]["w"])
    # the torn temporary file is what the kill interrupted; it is not the checkpoint
    assert all(p.stat().st_size < PAYLOAD_FLOATS * 4 for p in leftovers)
    # the next save still works and replaces the file
    atomic_save({**previous, "step": 3}, path)
    assert read_checkpoint(path)["step"] == 3


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_plain_save_tears_the_file_and_loading_says_so(tmp_path):
    path = tmp_path / "checkpoint.pth"
    previous_checkpoint(path)
    assert kill_while_writing(path, "plain")
    assert 0 <= os.path.getsize(path) < PAYLOAD_FLOATS * 4
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_checkpoint(path)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_atomic_save_gets_the_permissions_of_a_plain_save(tmp_path):
    torch.save({"a": 1}, tmp_path / "plain.pth")
    atomic_save({"a": 1}, tmp_path / "atomic.pth")
    modes = [os.stat(tmp_path / name).st_mode for name in ("plain.pth", "atomic.pth")]
    assert modes[0] == modes[1], [oct(m) for m in modes]


CLI_RUN = ("train --dataset digits --num-columns 4 --col-out 8 --graph-k 2 --message-iters 1 "
           "--epochs 4 --seed 3 --no-progress --no-plot").split()  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_training_killed_mid_run_resumes_to_the_uninterrupted_result(tmp_path):
    from cortexgnn.cli import main

    killed_dir = tmp_path / "killed"
    checkpoint = killed_dir / "checkpoint.pth"
    child = subprocess.Popen(
        [sys.executable, "-m", "cortexgnn", *CLI_RUN, "--out-dir", str(killed_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # the same thread count as this process
    )
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)  # after the first epoch's checkpoint, mid-run
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    epoch = read_checkpoint(checkpoint)["epoch"]
    assert 1 <= epoch < 4, "the kill must land after a checkpoint and before the end"

    assert main(["train", "--resume", str(checkpoint)]) == 0  # everything else from the file
    assert main([*CLI_RUN, "--out-dir", str(tmp_path / "full")]) == 0
    resumed = read_checkpoint(checkpoint)
    full = read_checkpoint(tmp_path / "full" / "checkpoint.pth")
    assert resumed["step"] == full["step"] and resumed["epoch"] == 4
    for name, tensor in full["model_state_dict"].items():
        assert torch.equal(resumed["model_state_dict"][name], tensor), name
