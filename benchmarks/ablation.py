"""Does the biology matter? Every part of CortexNet switched off in turn, beside baselines.

Each variant is a list of ``cortexgnn train`` flags (so any row reruns alone) trained on
Fashion-MNIST with the article's protocol shortened to ``--epochs`` (3): AdamW (lr 1e-3,
weight decay 1e-5), batch 128, a cosine schedule whose period keeps the article's ratio
(12 epochs of period for 10 of training, so ``1.2 * epochs``), evaluation every
``--eval-every`` steps and at the end. ``--seeds`` seeds each (3), and ``--extra-seeds``
more (5 in all) for ``article`` and for the best variant once all first seeds are in.
``--full`` instead runs the article's whole 10-epoch protocol (evaluation every 100
steps, the article's cadence), one seed, for ``article``, ``mlp-matched`` and the best
variant. ``--adopt NAME=DIR`` records a finished run made elsewhere (the README's
full-protocol run is the ``article`` one) after checking that every setting it stored is
the one this study would pass.

Runs are subprocesses of ``cortexgnn train`` with one thread each, ``--jobs`` at a time.
The study is resumable: finished runs are read back from ``benchmarks/results/ablation.json``
and skipped; a run that was killed resumes from its last epoch checkpoint (its folder under
``--runs-dir``); every finished run is added to the JSON at once (read, add, write
atomically, so runs recorded meanwhile by another process are kept). Render the
tables and the figure with ``benchmarks/ablation_report.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import harness
from benchmarks.jobs import run_jobs
from cortexgnn._io import atomic_write

RESULTS = Path(__file__).resolve().parent / "results" / "ablation.json"

#: name -> ``cortexgnn train`` flags (on top of the protocol's)
VARIANTS = {
    "article": [],
    # graph
    "ring": ["--graph-p", "0"],
    "random": ["--graph-p", "1"],
    "complete": ["--graph-k", "64"],
    "no-message-passing": ["--message-iters", "0"],
    # controls of no-message-passing: is its failure homeostasis dividing by a near-zero mean?
    "no-message-passing-no-homeostasis": ["--message-iters", "0", "--no-use-homeostasis"],
    "no-message-passing-min-divisor": [
        "--message-iters",
        "0",
        "--homeostasis-min-divisor",
        "0.1",
    ],
    # message
    "plain": ["--no-use-attention"],
    "plain-no-hebbian": ["--no-use-attention", "--no-use-hebbian"],
    "gated": ["--attention-uses-edge-weight"],
    "gated-no-hebbian": ["--attention-uses-edge-weight", "--no-use-hebbian"],
    # dynamics
    "no-homeostasis": ["--no-use-homeostasis"],
    "no-inhibition": ["--e-i-ratio", "0"],
    "iterations-1": ["--message-iters", "1"],
    "iterations-8": ["--message-iters", "8"],
    # size
    "columns-16": ["--num-columns", "16"],
    "columns-128": ["--num-columns", "128"],
    # baselines
    "mlp-small": ["--model", "mlp-small"],
    "mlp-matched": ["--model", "mlp-matched"],
    "single-column": ["--model", "single-column"],
}
#: the baselines first (minutes each), then the column networks in the order above
ORDER = [n for n in VARIANTS if "--model" in VARIANTS[n]] + [
    n for n in VARIANTS if "--model" not in VARIANTS[n]
]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="folder holding FashionMNIST/raw")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant")
    p.add_argument("--extra-seeds", type=int, default=2, help="more for article and the best")
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="optimizer steps between evals (default 200; 100, the article's, with --full)",
    )
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (one thread each)")
    p.add_argument(
        "--full",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the 10-epoch protocol for article, mlp-matched and the best variant",
    )
    p.add_argument("--max-steps", type=int, default=None, help="cut every run short (smoke)")
    p.add_argument("--runs-dir", default="runs/ablation", help="run folders (checkpoints)")
    p.add_argument("--results", default=str(RESULTS), help="the results JSON")
    p.add_argument(
        "--rescan",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="only recompute step times of recorded runs from their run folders",
    )
    p.add_argument(
        "--adopt",
        nargs="*",
        default=[],
        metavar="NAME=DIR",
        help="record finished runs made elsewhere with exactly this protocol's settings "
        "(checked against their summary.json), then stop; with --full for 10-epoch runs",
    )
    return p


def protocol(args) -> dict:
    """The shared training settings, as stored in the results file."""
    epochs = 10 if args.full else args.epochs
    eval_every = args.eval_every or (100 if args.full else 200)
    return {
        "dataset": "fashion-mnist", "epochs": epochs, "batch_size": 128, "lr": 1e-3,
        "weight_decay": 1e-5, "t_max_epochs": 1.2 * epochs, "eval_every": eval_every,
        "threads_per_run": 1, "max_steps": args.max_steps,
    }  # fmt: skip


def train_command(args, proto: dict, name: str, seed: int, out_dir: Path) -> list[str]:
    """The ``cortexgnn train`` command line of one run."""
    cmd = [sys.executable, "-m", "cortexgnn", "train", *VARIANTS[name]]
    cmd += ["--dataset", proto["dataset"], "--data-dir", args.data_dir]
    cmd += ["--epochs", str(proto["epochs"]), "--batch-size", str(proto["batch_size"])]
    cmd += ["--lr", str(proto["lr"]), "--weight-decay", str(proto["weight_decay"])]
    cmd += ["--t-max-epochs", str(proto["t_max_epochs"]), "--eval-every", str(proto["eval_every"])]
    cmd += ["--seed", str(seed), "--threads", "1", "--no-progress", "--no-plot"]
    cmd += ["--max-steps", str(proto["max_steps"])] if proto["max_steps"] else []
    checkpoint = out_dir / "checkpoint.pth"
    if checkpoint.is_file():  # killed earlier: continue from its last epoch
        return [*cmd, "--resume", str(checkpoint)]
    return [*cmd, "--out-dir", str(out_dir)]


def run_one(args, proto: dict, name: str, seed: int) -> dict:
    """Train one (variant, seed); returns its record from the run's summary.json."""
    tag = "full" if args.full else "short"
    out_dir = Path(args.runs_dir) / tag / f"{name}-s{seed}"
    if out_dir.exists() and not (out_dir / "checkpoint.pth").is_file():
        shutil.rmtree(out_dir)  # a run that died before its first checkpoint: start over
    cmd = train_command(args, proto, name, seed, out_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{name} seed {seed} failed: {done.stderr.strip()[-2000:]}")
    return run_record(name, seed, out_dir, time.perf_counter() - start)


def run_record(name: str, seed: int, out_dir: Path, wall_s: float | None) -> dict:
    """One finished run's entry, read from its folder's ``summary.json``."""
    summary = json.loads((out_dir / "summary.json").read_text())
    return {
        "name": name,
        "seed": seed,
        "parameters": summary["num_parameters"],
        "final_accuracy": summary["final_test_acc"],
        "best_accuracy": summary["best_test_acc"],
        "step_ms": median_step_ms(out_dir),
        "wall_s": wall_s,
        "commit": summary["environment"].get("git_commit"),
    }


#: ``cortexgnn train`` settings that do not change what a run computes
_INCIDENTAL = {"data_dir", "out_dir", "resume", "progress", "plot", "overwrite", "download",
               "device", "log_every", "command", "handler"}  # fmt: skip


def adopt(args, proto: dict, spec: str) -> dict:
    """The record of a finished run made elsewhere, after checking it used this protocol.

    ``spec`` is ``NAME=DIR``. The run's stored settings (``summary.json``'s ``config`` and
    its ``model_config``) must equal what this study would have passed for ``NAME``, seed
    included, except settings that do not change the computation (folders, progress).

    Raises:
        ValueError: unknown variant, unfinished run, or a setting that differs.
    """
    from cortexgnn.cli import get_parser as train_parser

    name, _, folder = spec.partition("=")
    if name not in VARIANTS or not folder:
        raise ValueError(f"--adopt takes NAME=DIR with NAME one of {sorted(VARIANTS)}: {spec!r}")
    out_dir = Path(folder)
    summary_path = out_dir / "summary.json"
    if not summary_path.is_file():
        raise ValueError(f"{summary_path} does not exist: adopt a finished run's folder")
    summary = _consistent_summary(out_dir)
    config = summary["config"]
    cut_short = config.get("max_steps") and summary["steps"] >= config["max_steps"]
    if not (summary.get("finished") or cut_short):
        raise ValueError(f"{out_dir} did not finish its run; resume it first")
    seed = config.get("seed")
    if not isinstance(seed, int):
        raise ValueError(f"{out_dir} is not a consistent run folder: its config has no seed")
    argv = train_command(args, proto, name, seed, Path(args.runs_dir) / "unused")[3:]
    expected = vars(train_parser().parse_args(argv))
    stored = {**config, **config.get("model_config", {})}
    differ = [
        f"{key}: run {stored.get(key)!r}, study {value!r}"
        for key, value in expected.items()
        if key not in _INCIDENTAL and stored.get(key) != value
    ]
    if differ:
        raise ValueError(f"{out_dir} is not a {name!r} run of this protocol: " + "; ".join(differ))
    return run_record(name, seed, out_dir, summary["train_time_s"] + summary["eval_time_s"])


_SUMMARY_KEYS = {"config": dict, "steps": int, "final_test_acc": (float, type(None)),
                 "best_test_acc": (float, type(None)), "train_time_s": (int, float),
                 "eval_time_s": (int, float), "steps_per_s": (int, float, type(None)),
                 "num_parameters": int, "environment": dict}  # fmt: skip


def _consistent_summary(out_dir: Path) -> dict:
    """A run folder's ``summary.json``, once its checkpoint and metrics agree with it.

    The checkpoint must exist and hold the summary's step count; ``metrics.jsonl`` must log
    training up to that step and evaluations whose last and best accuracies are the
    summary's; the summary's speed must be its steps over its training time. A folder that
    fails any of these (hand-edited, damaged, from another run) is refused in one line.

    Raises:
        ValueError: what is missing or disagrees, naming the folder.
    """
    from cortexgnn.checkpoint import read_checkpoint

    def damaged(why: str) -> ValueError:
        return ValueError(f"{out_dir} is not a consistent run folder: {why}")

    try:
        summary = json.loads((out_dir / "summary.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise damaged(f"summary.json is unreadable ({err})") from None
    if not isinstance(summary, dict):
        raise damaged("summary.json is not a JSON object")
    for key, kinds in _SUMMARY_KEYS.items():
        if not isinstance(summary.get(key), kinds) or isinstance(summary.get(key), bool):
            raise damaged(f"summary.json has no valid {key!r} (got {summary.get(key)!r:.40})")
    steps = summary["steps"]
    if steps < 1:
        raise damaged(f"summary.json records {steps} steps")
    checkpoint = out_dir / "checkpoint.pth"
    if not checkpoint.is_file():
        raise damaged("checkpoint.pth is missing")
    try:
        state = read_checkpoint(checkpoint)
    except ValueError as err:
        raise damaged(str(err).splitlines()[0]) from None
    if state.get("step") != steps:
        raise damaged(f"checkpoint.pth is at step {state.get('step')}, summary.json says {steps}")
    rows = []
    try:
        lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise damaged(f"metrics.jsonl is unreadable ({err})") from None
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        if isinstance(row, dict):
            rows.append(row)
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval" and isinstance(r.get("test_acc"), float)]
    if not train or train[-1].get("step") != steps:
        last = train[-1].get("step") if train else "no training rows"
        raise damaged(f"metrics.jsonl logs training to step {last}, summary.json says {steps}")
    accuracies = [r["test_acc"] for r in evals]
    if not accuracies or accuracies[-1] != summary["final_test_acc"]:
        raise damaged(
            f"final_test_acc {summary['final_test_acc']} is not the last accuracy in "
            f"metrics.jsonl ({accuracies[-1] if accuracies else 'none logged'})"
        )
    if max(accuracies) != summary["best_test_acc"]:
        raise damaged(
            f"best_test_acc {summary['best_test_acc']} is not the best in metrics.jsonl "
            f"({max(accuracies)})"
        )
    train_s = summary["train_time_s"]
    if not (train_s > 0 and math.isclose(summary["steps_per_s"] or 0, steps / train_s,
                                         rel_tol=1e-6)):  # fmt: skip
        raise damaged(
            f"steps_per_s {summary['steps_per_s']} is not its {steps} steps over "
            f"train_time_s {train_s}"
        )
    return summary


def median_step_ms(out_dir: Path) -> float:
    """Median training time per step over the run's logged windows (``metrics.jsonl``).

    A median over windows of a few steps, unlike the run's mean, ignores the windows in
    which the machine was busy elsewhere or the run was paused.
    """
    rates = []
    for line in (out_dir / "metrics.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        if row.get("kind") == "train" and row.get("steps_per_s"):
            rates.append(row["steps_per_s"])
    return 1e3 / statistics.median(rates)


def rescan(args) -> dict:
    """Recompute ``step_ms`` of every recorded run from its run folder, where it still is."""
    path = Path(args.results)
    results = load(path)
    for section, tag in (("variants", "short"), ("full_protocol", "full")):
        for row in results.get(section, []):
            for k, seed in enumerate(row["seeds"]):
                out_dir = Path(args.runs_dir) / tag / f"{row['name']}-s{seed}"
                if (out_dir / "metrics.jsonl").is_file():
                    row["step_ms"][k] = median_step_ms(out_dir)
    save(path, results)
    return results


def load(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"variants": [], "full_protocol": []}


def save(path: Path, results: dict) -> None:
    """Write atomically: a kill never leaves a torn results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(results, indent=2) + "\n").encode())


def record(results: dict, section: str, run: dict) -> None:
    """Add one finished run to its variant's per-seed lists (kept sorted by seed)."""
    rows = results[section]
    row = next((r for r in rows if r["name"] == run["name"]), None)
    if row is None:
        row = {"name": run["name"], "flags": VARIANTS[run["name"]], "parameters": None,
               "seeds": [], "final_accuracy": [], "best_accuracy": [], "step_ms": [],
               "commits": []}  # fmt: skip
        rows.append(row)
    if run["seed"] in row["seeds"]:
        return
    row["parameters"] = run["parameters"]
    row["seeds"].append(run["seed"])
    for key in ("final_accuracy", "best_accuracy", "step_ms"):
        row[key].append(run[key])
    row["commits"].append(run["commit"])
    order = sorted(range(len(row["seeds"])), key=row["seeds"].__getitem__)
    for key in ("seeds", "final_accuracy", "best_accuracy", "step_ms", "commits"):
        row[key] = [row[key][i] for i in order]


def best_variant(results: dict, seeds: int) -> str | None:
    """The variant with the highest mean final accuracy, once all have ``seeds`` seeds.

    Baselines and ``article`` itself are not candidates; ``None`` until every variant has
    its first ``seeds`` seeds.
    """
    rows = {r["name"]: r for r in results["variants"]}
    if any(len(rows.get(name, {}).get("seeds", [])) < seeds for name in VARIANTS):
        return None
    candidates = [n for n in VARIANTS if n != "article" and "--model" not in VARIANTS[n]]
    return max(candidates, key=lambda n: statistics.mean(rows[n]["final_accuracy"]))


def pending(results: dict, args, section: str) -> list[tuple[str, int]]:
    """(variant, seed) pairs still to run, cheapest variants first."""
    done = {(r["name"], s) for r in results[section] for s in r["seeds"]}
    if section == "full_protocol":
        best = best_variant(results, args.seeds)
        names = ["article", "mlp-matched"] + ([best] if best else [])
        return [(n, 0) for n in names if (n, 0) not in done]
    todo = [(n, s) for s in range(args.seeds) for n in ORDER if n in args.variants]
    best = best_variant(results, args.seeds)
    extra = range(args.seeds, args.seeds + args.extra_seeds)
    todo += [(n, s) for n in ("article", best) if n for s in extra]
    return [job for job in todo if job not in done]


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    if args.rescan:
        return rescan(args)
    path = Path(args.results)
    results = load(path)
    section = "full_protocol" if args.full else "variants"
    proto = protocol(args)
    settings = "full_protocol_settings" if args.full else "protocol"
    if not results[section] or settings not in results:  # the first run fixes the protocol
        results[settings] = proto
    elif results[settings] != proto:
        raise SystemExit(
            f"{path} holds runs of another protocol ({results[settings]}); "
            f"these settings ({proto}) would mix them: use another --results"
        )
    if args.adopt:
        for spec in args.adopt:
            try:
                record(results, section, adopt(args, proto, spec))
            except ValueError as err:  # a refused or damaged folder: one line, no traceback
                raise SystemExit(f"ablation --adopt: error: {err}") from None
        save(path, results)
        return results
    results["environment"] = harness.environment(harness.pick_device("cpu"), 1)

    def finish(job: tuple[str, int], run: dict) -> None:
        nonlocal results
        # read, add, write: runs recorded meanwhile by another process (--adopt, --rescan)
        # are kept, and the next pick sees them
        results = {**load(path), "environment": results["environment"]}
        record(results, section, run)
        save(path, results)
        print(f"done {job[0]} seed {job[1]}", flush=True)

    run_jobs(lambda: pending(results, args, section), lambda job: run_one(args, proto, *job),
             finish, args.jobs)  # fmt: skip
    return results


if __name__ == "__main__":
    main()
