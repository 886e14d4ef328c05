"""README's training-results table, rendered from committed run summaries.

Each row is one ``cortexgnn train`` run whose ``summary.json`` (and ``metrics.jsonl``) is
committed under ``docs/results/<name>/``: accuracy, time and the commit, threads and
machine that produced it. Nothing in the table is typed by hand.

    python -m benchmarks render runs   # README.md and docs/results.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks import harness

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- runs-table:start -->", "<!-- runs-table:end -->"
#: docs/results.md's account of the full-protocol run
FULL_RUN, FULL_START, FULL_END = "fashion", "<!-- fashion-run:start -->", "<!-- fashion-run:end -->"
#: (folder under docs/results, what the run is)
RUNS = (
    ("digits", "`cortexgnn train` (the defaults: digits, offline)"),
    ("fashion", "the article's full protocol on Fashion-MNIST"),
)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results-dir", default=str(ROOT / "docs" / "results"))
    p.add_argument("--update-doc", nargs="*", default=[], help="files with the markers")
    p.add_argument(
        "--update-results-page", default=None, help="docs/results.md: the full run's account"
    )
    return p


def render(results_dir: Path) -> str:
    """The Markdown table of the runs in :data:`RUNS` found under ``results_dir``."""
    lines = [
        "| run | model, epochs | final (best) test accuracy | wall time: train + eval | "
        "s per step | threads | commit, machine |",
        "|---|---|---|---|---|---|---|",
    ]
    for folder, what in RUNS:
        path = results_dir / folder / "summary.json"
        if not path.is_file():
            continue
        s = json.loads(path.read_text())
        env = s["environment"]
        best = s["best_test_acc"]
        lines.append(
            f"| {what} | {s['model']}, {s['epochs_completed']} | "
            f"{100 * s['final_test_acc']:.2f} % ({100 * best:.2f} %) | "
            f"{_duration(s['train_time_s'])} + {_duration(s['eval_time_s'])} | "
            f"{s['time_per_step_s']:.3f} | {env['threads']} | "
            f"`{env['git_commit']}`, {env.get('cpu', '?')} |"
        )
    lines += [
        "",
        "Each row is a committed `docs/results/<run>/summary.json`; times are wall-clock on "
        "the machine and threads the row names, so compare them within a row, not across.",
    ]
    return "\n".join(lines)


def render_full_run(results_dir: Path, folder: str = FULL_RUN) -> str:
    """The full-protocol run in detail, from its ``summary.json`` and ``metrics.jsonl``."""
    run = results_dir / folder
    s = json.loads((run / "summary.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval"]
    windows = [1 / r["steps_per_s"] for r in records if r.get("kind") == "train"]
    q1, median, q3 = statistics.quantiles(windows, n=4) if len(windows) > 1 else [0.0] * 3
    epoch_end = {}  # epoch -> the last evaluation in it
    for r in evals:  # the evaluation after the last step belongs to the last epoch
        epoch_end[min(r["epoch"], s["epochs_completed"] - 1)] = r["test_acc"]
    best_epoch = next((r["epoch"] for r in evals if r["step"] == s["best_step"]), None)
    env, config = s["environment"], s["config"]
    per_pass = s["eval_time_s"] / max(len(evals), 1)
    total = s["train_time_s"] + s["eval_time_s"]
    rows = [
        f"Full run, all {s['epochs_completed']} epochs, code at commit `{env['git_commit']}` "
        f"(`docs/results/{folder}/`, {env['threads']} thread{'s' * (env['threads'] != 1)}, "
        f"{env.get('cpu', '?')}):",
        "",
        "| | |",
        "|---|---|",
        f"| protocol | {s['epochs_completed']} epochs x {s['steps_per_epoch']} steps = "
        f"{s['steps']:,} AdamW steps (batch {config['batch_size']}, lr {config['lr']:g}), "
        f"{len(evals)} evaluations on the whole test set |",
        f"| final test accuracy | **{100 * s['final_test_acc']:.2f} %** (after the last step) |",
        f"| best test accuracy | **{100 * s['best_test_acc']:.2f} %** (step {s['best_step']:,}"
        + (f", epoch {best_epoch + 1}" if best_epoch is not None else "")
        + ") |",
        f"| wall time | **{_duration(total)}**: training {s['train_time_s']:,.0f} s + "
        f"evaluation {s['eval_time_s']:,.0f} s ({per_pass:.1f} s per pass) |",
        f"| time per training step | {s['time_per_step_s']:.3f} s mean; {median:.3f} s median "
        f"over {config['log_every']}-step windows (IQR {q1:.3f}-{q3:.3f} s) |",
        f"| peak memory | {s['peak_memory_mb']:,.0f} MiB (process peak RSS, dataset included) |",
        "",
        "Test accuracy at the last evaluation of each epoch: "
        + ", ".join(f"{100 * epoch_end[e]:.2f}" for e in sorted(epoch_end))
        + " %.",
    ]
    return "\n".join(rows)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> str:
    args = get_parser().parse_args(argv)
    table = render(Path(args.results_dir))
    for doc in args.update_doc:
        harness.replace_between(doc, START, END, table)
    if args.update_results_page:
        full = render_full_run(Path(args.results_dir))
        harness.replace_between(args.update_results_page, FULL_START, FULL_END, full)
    return table


if __name__ == "__main__":
    print(main())
