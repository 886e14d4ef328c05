"""What a training run records: the JSONL metrics log, the curves plot, the summary.

``metrics.jsonl`` holds one JSON object per line: ``{"kind": "train", "step", "epoch",
"loss", "lr", "steps_per_s", "time"}`` every few steps (``loss`` is the mean over those
steps) and ``{"kind": "eval", "step", "epoch", "test_loss", "test_acc", "final", "time"}``
after each evaluation (``final`` marks the extra one at the end of a run). With a
validation split (``val_size``) the evaluations are ``{"kind": "eval", "split":
"validation", ..., "val_loss", "val_acc"}`` and the run ends with one ``{"kind": "test",
"step", "epoch", "test_loss", "test_acc", "weights_step"}``. matplotlib is
optional: without it there is no plot, and nothing else changes.
"""

from __future__ import annotations

import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from .._io import atomic_write

__all__ = [
    "MetricsLog",
    "curves_figure",
    "environment",
    "peak_memory_mb",
    "plot_curves",
    "read_metrics",
    "write_summary",
]


class MetricsLog:
    """Append-only JSONL writer, flushed after every record (``tail -f`` friendly).

    The file is created whole (:func:`cortexgnn._io.atomic_write` with ``keep_open``): a
    symlink planted at ``path`` is replaced, not written through.

    Args:
        path: the ``metrics.jsonl`` file; ``None`` discards every record (the processes
            other than rank 0).
        resume_step: the checkpoint step a resumed run starts from: the records of
            ``resume_from`` are kept up to it, minus what the interrupted run wrote after its
            checkpoint (later steps and its end-of-run evaluation), so no step appears
            twice. ``None`` starts afresh.
        resume_from: the log of the run being resumed (default ``path``).
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        resume_step: int | None = None,
        resume_from: str | os.PathLike | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self._file = None
        if self.path is None:
            return
        source = Path(resume_from) if resume_from is not None else self.path
        kept = []
        if resume_step is not None and source.is_symlink():
            warnings.warn(
                f"{source} is a symlink: not read; the log restarts at step {resume_step}",
                stacklevel=2,
            )
        elif resume_step is not None and source.is_file():
            kept = [
                r for r in read_metrics(source)
                if r.get("step", 0) <= resume_step and not r.get("final", False)
            ]  # fmt: skip
        text = "".join(json.dumps(record) + "\n" for record in kept)
        self._file = atomic_write(self.path, text.encode(), keep_open=True)

    def write(self, **record) -> None:
        if self._file is None:
            return
        record["time"] = time.time()
        self._file.write((json.dumps(record) + "\n").encode())
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a ``metrics.jsonl`` file, in order.

    A torn last line (a run killed mid-write) is skipped with a warning naming the file;
    an unreadable line elsewhere raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    lines = path.read_text(errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            if number == len(lines):
                warnings.warn(
                    f"{path}: skipped its torn last line {number} (a run stopped mid-write)",
                    stacklevel=2,
                )
                break
            raise ValueError(
                f"{path} line {number} is not a metrics record ({err}): repair or delete the file"
            ) from err
        records.append(record)
    return records


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: CUDA allocator peak on a GPU, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


#: what ``git_commit`` checks for edits: the whole checkout except what runs write
_CODE_PATHS = (
    ":(top)",
    ":(top,exclude)benchmarks/results",
    ":(top,exclude)docs",
    ":(top,exclude)README.md",
)


def git_commit() -> str:
    """Short hash of the checkout this package runs from, ``+dirty`` with uncommitted code.

    Edits to what runs write (``benchmarks/results/``, ``docs/``, ``README.md``) do not
    count: a benchmark that regenerates several results files in turn stays at one commit.
    ``"unknown"`` outside a git checkout (an installed wheel) or without git.
    """
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here, capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *_CODE_PATHS],
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
        "torch": str(torch.__version__),
        "torch_geometric": str(torch_geometric.__version__),
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_commit": None if commit == "unknown" else commit,
    }


def curves_figure(records: list[dict], title: str = ""):
    """The loss and accuracy panels of :func:`plot_curves` as a matplotlib figure.

    Training loss against step on a linear axis with several ticks; every evaluation as a
    point on a line, the accuracy axis in percent capped at 100.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    split = "validation" if any("val_acc" in r for r in evals) else "test"  # --val-size runs
    accuracy = [100 * r["val_acc" if split == "validation" else "test_acc"] for r in evals]
    ax_acc.plot([r["step"] for r in evals], accuracy, "o-", ms=4, lw=1)
    ax_acc.set(xlabel="step", ylabel=f"{split} accuracy", title=f"{split} accuracy")
    low = min(accuracy, default=0.0)
    ax_acc.set_ylim(max(0.0, low - max(2.0, 0.1 * (100 - low))), 100.0)
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.grid(alpha=0.3)
    ax_loss.yaxis.set_major_locator(MaxNLocator(nbins=6))
    # whole-percent ticks (1, 2, 5 or 10 apart), so a label never rounds its own tick
    ax_acc.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10], integer=True))
    ax_acc.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    if evals:
        best = max(accuracy)
        title += f" (last {accuracy[-1]:.2f} %, best {best:.2f} %)"
    if title:
        fig.suptitle(title.strip())
    fig.tight_layout()
    return fig


def plot_curves(
    metrics_path: str | os.PathLike, png_path: str | os.PathLike, title: str = ""
) -> str | None:
    """Training loss and test accuracy against step, as a PNG; ``None`` without matplotlib.

    The PNG replaces ``png_path`` whole (a symlink there is replaced, never written through).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig = curves_figure(read_metrics(metrics_path), title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write(png_path, buffer.getvalue())
    return str(png_path)


def write_summary(summary: dict, path: str | os.PathLike) -> None:
    """``summary`` as indented JSON, written whole."""
    atomic_write(path, (json.dumps(summary, indent=2) + "\n").encode())
