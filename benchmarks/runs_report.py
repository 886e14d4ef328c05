"""README's training-results table, rendered from committed run summaries.

Each row is one ``cortexgnn train`` run whose ``summary.json`` (and ``metrics.jsonl``) is
committed under ``docs/results/<name>/``: accuracy, time and the commit, threads and
machine that produced it. Nothing in the table is typed by hand.

    python benchmarks/runs_report.py --update-doc README.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

try:
    from . import harness
except ImportError:  # run as a script from the benchmarks folder
    import harness

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- runs-table:start -->", "<!-- runs-table:end -->"
#: (folder under docs/results, what the run is)
RUNS = (
    ("digits", "`cortexgnn train` (the defaults: digits, offline)"),
    ("fashion", "the article's full protocol on Fashion-MNIST"),
)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results-dir", default=str(ROOT / "docs" / "results"))
    p.add_argument("--update-doc", nargs="*", default=[], help="files with the markers")
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
        "a 2-core machine shared with other jobs, so compare them within a row, not across.",
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> str:
    args = get_parser().parse_args(argv)
    table = render(Path(args.results_dir))
    for doc in args.update_doc:
        harness.replace_between(doc, START, END, table)
    return table


if __name__ == "__main__":
    print(main())
