"""What a training run records: the JSONL metrics log, the curves plot, the summary.

``metrics.jsonl`` holds one JSON object per line: ``{"kind": "train", "step", "epoch",
"loss", "lr", "steps_per_s", "time"}`` every few steps (``loss`` is the mean over those
steps) and ``{"kind": "eval", "step", "epoch", "test_loss", "test_acc", "final", "time"}``
after each evaluation (``final`` marks the extra one at the end of a run). matplotlib is
optional: without it there is no plot, and nothing else changes.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

__all__ = ["MetricsLog", "environment", "peak_memory_mb", "plot_curves", "write_summary"]


class MetricsLog:
    """Append-only JSONL writer, flushed after every record (``tail -f`` friendly).

    Args:
        path: the ``metrics.jsonl`` file.
        resume_step: the checkpoint step a resumed run starts from: the file is kept up to
            it, minus what the interrupted run wrote after its checkpoint (later steps and
            its end-of-run evaluation), so no step appears twice. ``None`` starts afresh.
    """

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and self.path.is_file():
            kept = [
                r for r in read_metrics(self.path)
                if r["step"] <= resume_step and not r.get("final", False)
            ]  # fmt: skip
        self._file = self.path.open("w")
        for record in kept:
            self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def write(self, **record) -> None:
        record["time"] = time.time()
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a ``metrics.jsonl`` file, in order."""
    with Path(path).open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: CUDA allocator peak on a GPU, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def git_commit() -> str:
    """Short hash of the checkout this package runs from, ``+dirty`` with uncommitted edits.

    ``"unknown"`` outside a git checkout (an installed wheel) or without git.
    """
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here, capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=5,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def environment() -> dict:
    """Versions, threads, hardware and git commit, stored beside every result."""
    commit = git_commit()
    import torch_geometric

    return {
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_commit": None if commit == "unknown" else commit,
    }


def plot_curves(
    metrics_path: str | os.PathLike, png_path: str | os.PathLike, title: str = ""
) -> str | None:
    """Training loss and test accuracy against step, as a PNG; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    ax_acc.plot([r["step"] for r in evals], [100 * r["test_acc"] for r in evals], "o-", ms=3)
    ax_acc.set(xlabel="step", ylabel="test accuracy (%)", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if evals:
        best = max(evals, key=lambda r: r["test_acc"])
        title += f" (last {100 * evals[-1]['test_acc']:.2f} %, best {100 * best['test_acc']:.2f} %)"
    if title:
        fig.suptitle(title.strip())
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return str(png_path)


def write_summary(summary: dict, path: str | os.PathLike) -> None:
    """``summary`` as indented JSON."""
    Path(path).write_text(json.dumps(summary, indent=2) + "\n")
