"""The metrics log reader and the curves figure."""

from __future__ import annotations

import json

import matplotlib
import pytest

from cortexgnn.train.metrics import curves_figure, plot_curves, read_metrics

matplotlib.use("Agg")


def _log(tmp_path, lines):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_read_metrics_refuses_a_broken_line_in_the_middle(tmp_path):
    path = _log(tmp_path, ['{"kind": "train", "step": 1}', "garbage", '{"step": 2}'])
    with pytest.raises(ValueError, match="metrics.jsonl line 2 is not a metrics record"):
        read_metrics(path)


def test_read_metrics_skips_a_torn_last_line(tmp_path):
    path = _log(tmp_path, ['{"kind": "train", "step": 1}', '{"kind": "tr'])
    with pytest.warns(UserWarning, match=f"{path}: skipped its torn last line 2"):
        assert read_metrics(path) == [{"kind": "train", "step": 1}]


def test_curves_show_every_evaluation_and_never_exceed_100_percent(tmp_path):
    import matplotlib.pyplot as plt

    train = [{"kind": "train", "step": s, "loss": 2.3 / s} for s in range(1, 121)]
    evals = [{"kind": "eval", "step": s, "test_acc": a}
             for s, a in [(20, 0.9), (40, 0.97), (60, 0.99), (80, 1.0), (120, 0.995)]]  # fmt: skip
    fig = curves_figure(train + evals, "cortexnet on digits")
    ax_loss, ax_acc = fig.axes
    (line,) = ax_acc.get_lines()
    assert list(line.get_xdata()) == [20, 40, 60, 80, 120] and line.get_marker() == "o"
    low, high = ax_acc.get_ylim()
    assert high == 100 and low >= 0
    visible = [
        t for t in ax_loss.get_yticks() if ax_loss.get_ylim()[0] <= t <= ax_loss.get_ylim()[1]
    ]
    assert len(visible) >= 3  # a loss panel with several ticks (a log axis had one)
    assert ax_loss.get_yscale() == "linear"
    plt.close(fig)
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in train + evals))
    png = plot_curves(path, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG" and png.endswith("curves.png")


def test_git_commit_counts_code_edits_but_not_regenerated_results(tmp_path):
    """``git_commit``'s pathspec: a results file or doc edited by a run is not ``+dirty``."""
    import shutil
    import subprocess

    from cortexgnn.train.metrics import _CODE_PATHS

    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout

    git("init", "-q")
    for name in ("cortexgnn/model.py", "benchmarks/results/x.json", "docs/a.md", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("one\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    status = ("status", "--porcelain", "--untracked-files=no", "--", *_CODE_PATHS)
    for name in ("benchmarks/results/x.json", "docs/a.md", "README.md"):
        (tmp_path / name).write_text("two\n")
    assert git(*status).strip() == ""
    (tmp_path / "cortexgnn/model.py").write_text("two\n")
    assert "cortexgnn/model.py" in git(*status)
