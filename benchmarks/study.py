"""Part 2 of the science page: the preregistered experiments under the validation protocol.

Every run is ``cortexgnn train`` with the protocol of docs/science.md part 2: 3 epochs,
batch 128, AdamW (weight decay 1e-5), a cosine period of 1.2 x the epochs, a fixed
validation split of 5,000 training images (``--val-size``), evaluations on it every 200
steps, homeostasis frozen during evaluation, and the test set evaluated once at the end
with the best validation step's weights. Each model of a main comparison first runs seed
0 at every learning rate in :data:`LEARNING_RATES`; the rate with the best validation
accuracy (ties: the smaller) then runs seeds 1-4. Test accuracy feeds no choice.

Three experiments (docs/science.md part 2): A, Fashion-MNIST with patch columns (graph x
readout x iterations); B, the two-item task read from one column (graph x iterations);
C, tuned baselines. Every rate search and every row of a main comparison runs first, B
before A before C, then the exploratory cells (3 seeds; seed 0 of every cell first).
``--hops`` writes the graph tables of :mod:`benchmarks.study_graphs`: what B's prediction
rests on (the hop distance from the two items to the readout column of every graph and
seed) and how much of the image A's readout column can hear after each iteration count.

The study is resumable like ``benchmarks/ablation.py``: finished runs are read back from
``benchmarks/results/study.json`` and skipped, a killed run resumes from its last epoch
checkpoint (its folder under ``--runs-dir``), and each finished run is added to the JSON
at once (read, add, write atomically).

    python -m benchmarks.study --data-dir PATH --workers 2     # two runs at a time, 1 thread each
    python -m benchmarks.study --experiment C --data-dir PATH  # one experiment
    python -m benchmarks.study --hops                          # the graph tables
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
from dataclasses import dataclass
from pathlib import Path

from benchmarks import harness
from benchmarks.ablation import median_step_ms, save
from benchmarks.ablation_report import interval, t_quantile
from benchmarks.jobs import run_jobs

RESULTS = Path(__file__).resolve().parent / "results" / "study.json"
LEARNING_RATES = (3e-4, 1e-3, 3e-3)
#: the family-wise level of the preregistered main comparisons (Holm)
FAMILY_LEVEL = 0.05


@dataclass(frozen=True)
class Model:
    """One row of an experiment: ``cortexgnn train`` flags and how its rate is chosen.

    Attributes:
        name: the row's name.
        flags: its ``cortexgnn train`` flags on top of the protocol's.
        seeds: how many seeds (5 for a model of a main comparison).
        lr_from: take the learning rate chosen for that model instead of searching.
        frozen: freeze homeostasis during evaluation (the protocol); ``False`` only for the
            labelled variant that keeps the article's eval-time updates.
    """

    name: str
    flags: tuple[str, ...] = ()
    seeds: int = 5
    lr_from: str | None = None
    frozen: bool = True


#: experiment A's columns: 7 x 7 patches at stride 3 of the 28 x 28 image, an 8 x 8 grid of
#: 64 columns (the article's count); the homeostasis divisor floored at 0.1 in every column
#: model of A and B, so that the no-message-passing twin differs from the graph model in its
#: messages only (part 1's control runs: with the article's divisor the columns alone fail)
A_COLUMNS = ("--patch-size", "7", "--patch-stride", "3", "--homeostasis-min-divisor", "0.1")
#: A's one-column readout: the column at row 3, column 3 of the 8 x 8 grid (a centre column)
A_READOUT = 27
#: experiment B's columns: 8 x 8 patches at stride 8 of the 56 x 56 canvas, a 7 x 7 grid,
#: read out from the top-right column (6), whose patch holds neither item
B_COLUMNS = ("--num-columns", "49", "--patch-size", "8", "--readout-column", "6",
             "--homeostasis-min-divisor", "0.1")  # fmt: skip

#: graph name -> its ``cortexgnn train`` flags (A: over the 8 x 8 grid)
A_GRAPHS = {
    "ring": ("--graph", "small-world", "--graph-p", "0"),
    "small-world": ("--graph", "small-world", "--graph-p", "0.15"),
    "lattice": ("--graph", "lattice"),
    "rewired-lattice": ("--graph", "rewired-lattice", "--graph-p", "0.15"),
    "random": ("--graph", "random"),
    "complete": ("--graph", "complete"),
}
#: B's graphs, as in its hop table (:func:`benchmarks.study_graphs.b_graphs`): Watts-Strogatz
#: over the column index with degree 8 for ring, small world and random (p 1); lattices over
#: the 7 x 7 grid
B_GRAPHS = {
    "ring": ("--graph", "small-world", "--graph-p", "0"),
    "small-world-0.05": ("--graph", "small-world", "--graph-p", "0.05"),
    "small-world-0.15": ("--graph", "small-world", "--graph-p", "0.15"),
    "small-world-0.5": ("--graph", "small-world", "--graph-p", "0.5"),
    "random": ("--graph", "small-world", "--graph-p", "1"),
    "lattice": ("--graph", "lattice"),
    "rewired-lattice-0.15": ("--graph", "rewired-lattice", "--graph-p", "0.15"),
    "complete": ("--graph", "complete"),
}
NO_MESSAGES = ("--message-iters", "0")


def _iters(n: int) -> tuple[str, ...]:
    return ("--message-iters", str(n))


def _experiment_a() -> tuple[Model, ...]:
    """A's rows: the main pair and the matched MLP, then graph x readout x iterations."""
    main = A_GRAPHS["rewired-lattice"] + _iters(4)
    rows = [
        Model("rewired-lattice-4-mean", A_COLUMNS + main),
        Model("none-mean", A_COLUMNS + NO_MESSAGES),
        Model("mlp-matched", ("--model", "mlp-matched") + A_COLUMNS + main),
    ]
    for readout, flags in (("mean", ()), ("column", ("--readout-column", str(A_READOUT)))):
        for graph, graph_flags in A_GRAPHS.items():
            for iters in (1, 2, 4, 8) if graph in ("ring", "small-world") else (4,):
                name = f"{graph}-{iters}-{readout}"
                if name != "rewired-lattice-4-mean":
                    rows.append(Model(name, A_COLUMNS + graph_flags + _iters(iters) + flags,
                                      seeds=3, lr_from="rewired-lattice-4-mean"))  # fmt: skip
        if readout == "column":
            rows.append(Model("none-column", A_COLUMNS + NO_MESSAGES + flags, seeds=3,
                              lr_from="rewired-lattice-4-mean"))  # fmt: skip
    return tuple(rows)


def _experiment_b() -> tuple[Model, ...]:
    """B's rows: the rate search on the lattice at 4, the main cells, then the grid."""
    main = {"random-2", "lattice-2", "lattice-8"}
    rows = [Model("lattice-4", B_COLUMNS + B_GRAPHS["lattice"] + _iters(4), seeds=3)]
    rows += [Model(name, B_COLUMNS + B_GRAPHS[name.rsplit("-", 1)[0]] + _iters(int(name[-1])),
                   lr_from="lattice-4") for name in sorted(main)]  # fmt: skip
    rows.append(Model("none", B_COLUMNS + NO_MESSAGES, lr_from="lattice-4"))
    for graph, flags in B_GRAPHS.items():
        for iters in (2, 4, 8):
            name = f"{graph}-{iters}"
            if name not in main and name != "lattice-4":
                rows.append(Model(name, B_COLUMNS + flags + _iters(iters), seeds=3,
                                  lr_from="lattice-4"))  # fmt: skip
    return tuple(rows)


#: experiment -> its dataset, rows and preregistered main comparisons (id, a, b: a - b)
EXPERIMENTS = {
    "A": {
        "dataset": "fashion-mnist",
        "models": _experiment_a(),
        "comparisons": (
            ("A1", "rewired-lattice-4-mean", "none-mean"),
            ("A2", "rewired-lattice-4-mean", "mlp-matched"),
        ),
    },
    "B": {
        "dataset": "two-items-fashion-mnist",
        "models": _experiment_b(),
        "comparisons": (
            ("B1", "random-2", "lattice-2"),
            ("B2", "lattice-8", "none"),
        ),
    },
    "C": {
        "dataset": "fashion-mnist",
        "models": (
            Model("article"),
            Model("columns-16", ("--num-columns", "16")),
            Model("mlp-matched", ("--model", "mlp-matched")),
            Model("cnn-matched", ("--model", "cnn-matched")),
            Model("vit-matched-16", ("--model", "vit-matched", "--num-columns", "16")),
            Model("article-eval-updates", seeds=3, lr_from="article", frozen=False),
        ),
        "comparisons": (
            ("C1", "article", "mlp-matched"),
            ("C2", "article", "cnn-matched"),
            ("C3", "columns-16", "vit-matched-16"),
        ),
    },
}
#: the order the runs go in: every experiment's rate searches and main rows (5 seeds)
#: first, B (the cheapest test of a graph effect), then A, then C; exploratory cells after
ORDER = ("B", "A", "C")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--experiment",
        nargs="+",
        choices=list(EXPERIMENTS),
        default=list(ORDER),
        help="the experiments to run, in this order of priority (default: B A C)",
    )
    p.add_argument("--data-dir", default=None, help="folder holding FashionMNIST/raw")
    p.add_argument("--models", nargs="*", default=None, help="only these rows (default: all)")
    p.add_argument("--runs-dir", default="runs/study", help="run folders (checkpoints)")
    p.add_argument("--results", default=str(RESULTS), help="the results JSON")
    p.add_argument("--dataset", default=None, help="replace the experiments' (smoke tests)")
    p.add_argument("--val-size", type=int, default=5000, help="validation images held out")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=None, help="cut every run short (smoke)")
    p.add_argument("--seeds", type=int, default=None, help="cap every row's seeds (smoke)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="runs at a time, one thread each (2 on a 2-core machine)",
    )
    p.add_argument(
        "--hops",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="only write the graph tables: B's hop distances (results/study_hops.json) and "
        "the reach of A's readout column (results/study_reach.json)",
    )
    return p


def protocol(args, experiment: str) -> dict:
    """The shared training settings of ``experiment``, as stored in the results file."""
    return {
        "dataset": args.dataset or EXPERIMENTS[experiment]["dataset"],
        "epochs": args.epochs, "batch_size": 128, "weight_decay": 1e-5,
        "t_max_epochs": 1.2 * args.epochs, "eval_every": 200, "val_size": args.val_size,
        "learning_rates": list(LEARNING_RATES), "threads_per_run": 1,
        "max_steps": args.max_steps,
    }  # fmt: skip


def models(args, experiment: str) -> list[Model]:
    """The rows of ``experiment`` that ``--models`` asks for (all by default)."""
    rows = EXPERIMENTS[experiment]["models"]
    known = {m.name for e in args.experiment for m in EXPERIMENTS[e]["models"]}
    unknown = set(args.models or ()) - known
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}; choose from {sorted(known)}")
    return [m for m in rows if args.models is None or m.name in args.models]


@dataclass(frozen=True)
class Job:
    """One run to make: a row of an experiment at a learning rate and seed."""

    experiment: str
    model: Model
    lr: float
    seed: int

    @property
    def key(self) -> tuple:
        return self.experiment, self.model.name, self.lr, self.seed


def _key(run: dict) -> tuple:
    return run["experiment"], run["name"], run["lr"], run["seed"]


def chosen_lr(results: dict, experiment: str, name: str) -> float | None:
    """The learning rate of ``name`` with the best validation accuracy at seed 0.

    ``None`` until every rate has its seed-0 run; ties go to the smaller rate.
    """
    runs = {r["lr"]: r for r in results["runs"]
            if r["experiment"] == experiment and r["name"] == name and r["seed"] == 0}  # fmt: skip
    if any(lr not in runs for lr in LEARNING_RATES):
        return None
    return max(LEARNING_RATES, key=lambda lr: (runs[lr]["best_val_acc"], -lr))


def pending(results: dict, args) -> list[Job]:
    """The runs still to make whose rate is known, in order of priority.

    First, experiment by experiment (``--experiment``'s order), every rate search and
    every row of a main comparison (5 seeds); then the exploratory cells, seed by seed
    (seed 0 of every cell before any cell's seed 1), so that an interrupted study has
    covered the whole grid first. A row that borrows its rate appears once the row it
    borrows from has searched.
    """
    done = {_key(r) for r in results["runs"]}
    tiers: tuple[list, list] = ([], [])
    for experiment in args.experiment:
        for model in models(args, experiment):
            tier = tiers[0] if model.seeds >= 5 else tiers[1]  # searches: tier 0 below
            seeds = range(min(model.seeds, args.seeds or model.seeds))
            if model.lr_from is None:
                tiers[0].extend(Job(experiment, model, lr, 0) for lr in LEARNING_RATES)
                lr = chosen_lr(results, experiment, model.name)
            else:
                lr = chosen_lr(results, experiment, model.lr_from)
            if lr is not None:
                tier.extend(Job(experiment, model, lr, s) for s in seeds)
    seen, out = set(), []
    for job in tiers[0] + sorted(tiers[1], key=lambda job: job.seed):
        if job.key not in done and job.key not in seen:
            seen.add(job.key)
            out.append(job)
    return out


def train_command(args, proto: dict, model: Model, lr: float, seed: int, out_dir: Path):
    """The ``cortexgnn train`` command line of one run."""
    cmd = [sys.executable, "-m", "cortexgnn", "train", *model.flags]
    cmd += ["--dataset", proto["dataset"]]
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    cmd += ["--epochs", str(proto["epochs"]), "--batch-size", str(proto["batch_size"])]
    cmd += ["--lr", str(lr), "--weight-decay", str(proto["weight_decay"])]
    cmd += ["--t-max-epochs", str(proto["t_max_epochs"]), "--eval-every", str(proto["eval_every"])]
    cmd += ["--val-size", str(proto["val_size"]), "--seed", str(seed), "--threads", "1"]
    cmd += ["--freeze-homeostasis-in-eval" if model.frozen else "--no-freeze-homeostasis-in-eval"]
    cmd += ["--no-progress", "--no-plot"]
    cmd += ["--max-steps", str(proto["max_steps"])] if proto["max_steps"] else []
    checkpoint = out_dir / "checkpoint.pth"
    if checkpoint.is_file():  # killed earlier: continue from its last epoch
        return [*cmd, "--resume", str(checkpoint)]
    return [*cmd, "--out-dir", str(out_dir)]


def run_one(args, job: Job) -> dict:
    """Train one job; returns its record from the run's summary.json."""
    experiment, model, lr, seed = job.experiment, job.model, job.lr, job.seed
    proto = protocol(args, experiment)
    out_dir = Path(args.runs_dir) / experiment / f"{model.name}-lr{lr:g}-s{seed}"
    if out_dir.exists() and not (out_dir / "checkpoint.pth").is_file():
        shutil.rmtree(out_dir)  # died before its first checkpoint: start over
    cmd = train_command(args, proto, model, lr, seed, out_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"{experiment} {model.name} lr {lr} seed {seed} failed: {done.stderr[-2000:]}"
        )
    summary = json.loads((out_dir / "summary.json").read_text())
    return {
        "experiment": experiment, "name": model.name, "flags": list(model.flags),
        "frozen_homeostasis": model.frozen, "lr": lr, "seed": seed,
        "parameters": summary["num_parameters"], "best_val_acc": summary["best_val_acc"],
        "best_step": summary["best_step"], "test_acc": summary["final_test_acc"],
        "steps": summary["steps"], "step_ms": median_step_ms(out_dir),
        "wall_s": time.perf_counter() - start,
        "commit": summary["environment"].get("git_commit"),
    }  # fmt: skip


def load(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"runs": []}


def paired(results: dict, experiment: str, a: str, b: str,
           lr_a: float | None = None, lr_b: float | None = None) -> dict:  # fmt: skip
    """``a - b`` in test-accuracy points, paired by seed, with its 95 % t interval.

    Each row at its chosen rate (or the one it borrows, or ``lr_a``/``lr_b``).
    """
    accs = {}
    for name, lr in ((a, lr_a), (b, lr_b)):
        row = _row(experiment, name)
        lr = lr or chosen_lr(results, experiment, row.lr_from or name)
        accs[name] = {r["seed"]: r["test_acc"] for r in results["runs"]
                      if r["experiment"] == experiment and r["name"] == name
                      and r["lr"] == lr}  # fmt: skip
    seeds = sorted(accs[a].keys() & accs[b].keys())
    diffs = [100 * (accs[a][s] - accs[b][s]) for s in seeds]
    out = {"a": a, "b": b, "seeds": seeds, "diffs": diffs, "mean": None, "half_width": None,
           "t": None}  # fmt: skip
    if len(diffs) >= 2:
        mean, half = interval(diffs)
        sd = statistics.stdev(diffs)
        if sd == 0:  # every seed the same difference: none (t 0), or a sure one (t inf)
            t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        else:
            t = mean / (sd / math.sqrt(len(diffs)))
        out.update(mean=mean, half_width=half, t=t)
    return out


def _row(experiment: str, name: str) -> Model:
    return next(m for m in EXPERIMENTS[experiment]["models"] if m.name == name)


def comparisons(results: dict, experiments=tuple(ORDER)) -> list[dict]:
    """The preregistered main comparisons of ``experiments``: paired, with Holm.

    Each is ``a - b`` in points over the seeds both rows have at their chosen rates, with
    its 95 % t interval. Holm's step-down at :data:`FAMILY_LEVEL` over the whole family
    (``m``: every main comparison of the study, whether its runs are finished or not) takes
    the comparisons with all their seeds: sorted by ``|t|`` (the same degrees of freedom
    for each, so the order of their p-values), the ``k``-th (from 0) is established when
    its ``|t|`` passes the two-sided quantile at level ``1 - FAMILY_LEVEL / (m - k)`` and
    every one before it did. A comparison with seeds still missing waits outside the
    step-down: its ``t`` on fewer degrees of freedom would misorder the family.
    """
    if isinstance(experiments, str):
        experiments = (experiments,)
    rows = []
    for experiment in experiments:
        for cid, a, b in EXPERIMENTS[experiment]["comparisons"]:
            row = {"id": cid, "experiment": experiment, **paired(results, experiment, a, b)}
            planned = min(_row(experiment, a).seeds, _row(experiment, b).seeds)
            complete = row["t"] is not None and len(row["seeds"]) >= planned
            rows.append({**row, "planned_seeds": planned, "complete": complete,
                         "established": False})  # fmt: skip
    m = sum(len(EXPERIMENTS[e]["comparisons"]) for e in EXPERIMENTS)
    ready = sorted((r for r in rows if r["complete"]), key=lambda r: -abs(r["t"]))
    for k, row in enumerate(ready):
        needed = t_quantile(1 - FAMILY_LEVEL / (m - k), len(row["diffs"]) - 1)
        if abs(row["t"]) <= needed:
            break
        row["established"] = True
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    if args.hops:
        from benchmarks import study_graphs

        return study_graphs.write_tables()
    path = Path(args.results)
    results = load(path)
    protocols = results.setdefault("protocols", {})
    for experiment in args.experiment:
        proto, stored = protocol(args, experiment), protocols.get(experiment)
        if stored is not None and stored != proto:
            raise SystemExit(
                f"{path} holds runs of experiment {experiment} under another protocol "
                f"({stored}); these settings ({proto}) would mix them: use another --results"
            )
        protocols[experiment] = proto
    results["environment"] = harness.environment(harness.pick_device("cpu"), 1)

    def finish(job: Job, run: dict) -> None:
        nonlocal results
        # read, add, write: runs recorded meanwhile by another process are kept
        results = {**load(path), "protocols": results["protocols"],
                   "environment": results["environment"]}  # fmt: skip
        if _key(run) not in {_key(r) for r in results["runs"]}:
            results["runs"].append(run)
        save(path, results)
        test, wall = 100 * run["test_acc"], run["wall_s"]
        name = f"{job.experiment} {job.model.name} lr {job.lr:g} seed {job.seed}"
        print(f"done {name} (test {test:.2f} %, {wall:.0f} s)", flush=True)

    run_jobs(lambda: pending(results, args), lambda job: run_one(args, job), finish, args.workers)
    results["comparisons"] = comparisons(results, args.experiment)
    return results


if __name__ == "__main__":
    main()
