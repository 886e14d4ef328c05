"""benchmarks/study.py: the rate search, the seeds, Holm, B's hop table, a smoke run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package

from benchmarks import study, study_graphs  # noqa: E402


def _run(name, lr, seed, val=0.5, test=0.5):
    return {"experiment": "C", "name": name, "lr": lr, "seed": seed, "best_val_acc": val,
            "test_acc": test}  # fmt: skip


def _args(*extra):
    return study.get_parser().parse_args(["--experiment", "C", *extra])


def test_the_rate_is_chosen_on_validation_once_every_rate_ran_ties_to_the_smaller():
    results = {"runs": [_run("article", 3e-4, 0, val=0.8), _run("article", 1e-3, 0, val=0.9)]}
    assert study.chosen_lr(results, "C", "article") is None
    results["runs"].append(_run("article", 3e-3, 0, val=0.9, test=0.99))
    assert study.chosen_lr(results, "C", "article") == 1e-3  # the tie goes to the smaller
    results["runs"][0]["test_acc"] = 1.0  # test accuracy never decides
    assert study.chosen_lr(results, "C", "article") == 1e-3


def test_pending_searches_the_rates_then_runs_the_seeds_and_borrows_a_rate():
    args = _args("--models", "article", "article-eval-updates")
    results = {"runs": []}
    todo = [(j.model.name, j.lr, j.seed) for j in study.pending(results, args)]
    assert todo == [("article", lr, 0) for lr in study.LEARNING_RATES]
    results["runs"] = [_run("article", lr, 0, val=v) for lr, v in zip(
        study.LEARNING_RATES, (0.7, 0.8, 0.75), strict=True)]  # fmt: skip
    todo = [(j.model.name, j.lr, j.seed) for j in study.pending(results, args)]
    assert todo == [("article", 1e-3, s) for s in range(1, 5)] + [
        ("article-eval-updates", 1e-3, s) for s in range(3)
    ]
    (labelled,) = [m for m in study.models(args, "C") if m.name == "article-eval-updates"]
    command = study.train_command(args, study.protocol(args, "C"), labelled, 1e-3, 0, Path("x"))
    assert "--no-freeze-homeostasis-in-eval" in command and "--val-size" in command
    with pytest.raises(SystemExit, match="unknown rows"):
        study.models(_args("--models", "nope"), "C")


def _finished(accs):
    """Experiment C with every row at rate 1e-3, ``accs[name]`` its test accuracy per seed."""
    runs = []
    for name, values in accs.items():
        runs += [_run(name, lr, 0, val=1.0 if lr == 1e-3 else 0.0, test=values[0])
                 for lr in study.LEARNING_RATES]  # fmt: skip
        runs += [_run(name, 1e-3, s, test=v) for s, v in enumerate(values) if s]
    return {"runs": runs}


def test_holm_establishes_the_largest_effects_in_order_and_stops_at_the_first_miss():
    base = [0.880, 0.881, 0.879, 0.882, 0.880]
    accs = {
        "article": base,
        "mlp-matched": [a - 0.02 + d for a, d in zip(base, (0, 1e-4, -1e-4, 2e-4, 0), strict=True)],
        "cnn-matched": [a - 0.001 * s for s, a in enumerate(base)],  # a trend, noisy
        "columns-16": base,
        "vit-matched-16": [a + d for a, d in zip(base, (1e-3, -1e-3, 2e-3, -2e-3, 0), strict=True)],
    }  # fmt: skip
    rows = {r["id"]: r for r in study.comparisons(_finished(accs), "C")}
    assert rows["C1"]["seeds"] == [0, 1, 2, 3, 4]
    assert rows["C1"]["mean"] == pytest.approx(2.0 - 0.004)  # the MLP's noise averages 0.004
    assert rows["C1"]["established"]
    assert not rows["C3"]["established"] and abs(rows["C3"]["mean"]) < 1e-9
    # C2 (mean +0.2, t ~ 2.8) passes a 95 % interval but not Holm's second step (|t| > 3.5)
    assert rows["C2"]["mean"] - rows["C2"]["half_width"] > 0 and not rows["C2"]["established"]


def test_a_comparison_still_missing_seeds_stays_out_of_holms_step_down():
    base = [0.880, 0.881, 0.879, 0.882, 0.880]
    noise = (0, 0.003, -0.003, 0.002, -0.002)
    accs = {
        "article": base,
        "mlp-matched": [a - 0.01 + d for a, d in zip(base, noise, strict=True)],  # t about 9
        "cnn-matched": [0.920, 0.922],  # 2 seeds so far: |t| about 80, on 1 degree of freedom
        "columns-16": base,
        "vit-matched-16": base,
    }
    rows = {r["id"]: r for r in study.comparisons(_finished(accs), "C")}
    assert rows["C2"]["seeds"] == [0, 1] and abs(rows["C2"]["t"]) > abs(rows["C1"]["t"]) > 5
    assert not rows["C2"]["established"]
    # sorted by |t| with C2 inside, C2's 1 degree of freedom would stop the step-down
    # before C1; C1 has its 5 seeds and passes the first step (|t| > 5.6 at 0.05 / 7)
    assert rows["C1"]["established"]


def test_the_hop_table_is_the_committed_one_and_fits_the_grid():
    first, second = study_graphs.item_columns(7, 8, 28, 56)
    assert first[:4] == [0, 1, 2, 3] and len(first) == len(second) == 16 and 24 in first
    table = study_graphs.hop_table()
    assert [r["d"] for r in table["graphs"]["lattice"]] == [3] * 5
    assert [r["d"] for r in table["graphs"]["complete"]] == [1] * 5
    committed = json.loads(study_graphs.HOPS.read_text())
    assert committed == json.loads(json.dumps(table))


def test_a_reach_counts_the_columns_and_pixels_within_k_hops_of_the_readout():
    table = study_graphs.reach_table()
    assert json.loads(study_graphs.REACH.read_text()) == json.loads(json.dumps(table))
    ring, complete = table["graphs"]["ring"][0], table["graphs"]["complete"][0]
    # k = 0: column 27 reads its own 7 x 7 patch of the 28 x 28 image
    assert ring["0"] == complete["0"] == {"columns": 1, "pixels": 49 / 784}
    # the ring over column index (degree 8) reaches columns 23..31 in one hop: all of grid
    # row 3 (image rows 9..15, 7 x 28 pixels) and column 23 (row 2, grid column 7), which
    # adds image rows 6..8 of columns 21..27 (3 x 7 pixels)
    assert ring["1"] == {"columns": 9, "pixels": (7 * 28 + 3 * 7) / 784}
    assert complete["1"] == {"columns": 64, "pixels": 1.0}
    lattice = table["graphs"]["lattice"][0]
    assert [lattice[str(k)]["columns"] for k in (1, 2)] == [5, 13]  # a diamond on the grid
    for rows in table["graphs"].values():  # more hops never hear less
        for row in rows:
            seen = [row[str(k)]["pixels"] for k in study_graphs.REACH_ITERS]
            assert seen == sorted(seen) and seen[-1] <= 1.0


def test_a_reach_uses_the_config_a_training_run_builds():
    from cortexgnn.cli import get_parser
    from cortexgnn.cli.train import _config_from_args
    from cortexgnn.train.config import model_config_for

    flags = [*study.A_COLUMNS, *study.A_GRAPHS["small-world"], "--readout-column", "27"]
    config = study_graphs.a_model_config(tuple(flags), seed=2)
    assert (config.patch_size, config.patch_stride, config.graph, config.graph_p) == (
        7, 3, "small-world", 0.15)  # fmt: skip
    # what `cortexgnn train FLAGS --seed 2` builds on Fashion-MNIST (784 pixels, 10 classes)
    args = get_parser().parse_args(["train", *flags, "--seed", "2"])
    assert model_config_for(_config_from_args(args, set()), 784, 10) == config


@pytest.mark.slow
def test_a_smoke_study_searches_rates_runs_seeds_and_resumes(tmp_path):
    results = tmp_path / "study.json"
    argv = ["--experiment", "C", "--dataset", "digits", "--val-size", "200", "--max-steps", "2",
            "--seeds", "2",
            "--models", "mlp-matched", "--runs-dir", str(tmp_path / "runs"),
            "--results", str(results)]  # fmt: skip
    script = [sys.executable, "-m", "benchmarks.study", *argv]  # the tool, from the root
    env = {**os.environ, "CORTEXGNN_NO_KERNEL": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(script, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    runs = json.loads(results.read_text())["runs"]
    assert {r["lr"] for r in runs if r["seed"] == 0} == set(study.LEARNING_RATES)
    assert len(runs) == 4 and all(r["test_acc"] is not None for r in runs)
    again = subprocess.run(script, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "done" not in again.stdout


def test_the_main_rows_and_rate_searches_of_every_experiment_come_before_the_cells():
    args = study.get_parser().parse_args([])
    assert args.experiment == ["B", "A", "C"]
    todo = study.pending({"runs": []}, args)
    # nothing has run: only the rate searches are ready (B's lattice at 4, A's three, C's five)
    searched = [(j.experiment, j.model.name) for j in todo]
    assert searched[:3] == [("B", "lattice-4")] * 3 and {j.seed for j in todo} == {0}
    assert {e for e, _ in searched} == {"A", "B", "C"} and len(todo) == 3 * 9
    # once B's rate is known, its main rows (5 seeds) go before any exploratory cell
    results = {
        "runs": [
            {**_run("lattice-4", lr, 0, val=v), "experiment": "B"}
            for lr, v in zip(study.LEARNING_RATES, (0.6, 0.7, 0.5), strict=True)
        ]
    }
    todo = study.pending(results, args)
    b_main = [j for j in todo if j.experiment == "B" and j.model.seeds == 5]
    assert {j.model.name for j in b_main} == {"random-2", "lattice-2", "lattice-8", "none"}
    assert all(j.lr == 1e-3 for j in b_main) and len(b_main) == 4 * 5
    first_cell = next(i for i, j in enumerate(todo) if j.model.seeds < 5 and j.seed > 0)
    assert first_cell > 20 and all(j.model.seeds == 5 for j in todo[:first_cell] if j.seed > 0)
    # the searched row's own further seeds (3: an exploratory cell) wait with the cells
    assert todo[first_cell].key == ("B", "lattice-4", 1e-3, 1)
    # the cells go seed by seed: every cell's seed 0 before any cell's seed 1
    cells = [j for j in todo if j.model.seeds < 5]
    assert [j.seed for j in cells] == sorted(j.seed for j in cells) and cells[0].seed == 0
    names = {j.model.name for j in cells}
    assert {j.model.name for j in cells if j.seed == 0} == names - {"lattice-4"}  # searched


def test_the_rows_of_a_and_b_train_the_preregistered_models():
    rows = {m.name: m for m in study.EXPERIMENTS["A"]["models"]}
    names = ("rewired-lattice-4-mean", "none-mean", "mlp-matched")
    main, twin, mlp = (rows[n].flags for n in names)
    assert "rewired-lattice" in main and ("--message-iters", "4") == main[-2:]
    assert twin == study.A_COLUMNS + study.NO_MESSAGES  # the same columns, no messages
    assert mlp[:2] == ("--model", "mlp-matched") and mlp[2:] == main  # sized to the graph model
    assert len(rows) == 27 and all(m.lr_from == "rewired-lattice-4-mean" for m in
                                   rows.values() if m.seeds == 3)  # fmt: skip
    b_rows = {m.name: m for m in study.EXPERIMENTS["B"]["models"]}
    assert len(b_rows) == 25 and set(study.B_GRAPHS) == set(study_graphs.b_graphs())
    assert "--readout-column" in b_rows["random-2"].flags and b_rows["random-2"].seeds == 5
    assert [c[0] for e in study.EXPERIMENTS.values() for c in e["comparisons"]] == [
        "A1",
        "A2",
        "B1",
        "B2",
        "C1",
        "C2",
        "C3",
    ]


def test_b_models_are_built_on_the_graphs_of_the_hop_table():
    from cortexgnn.nn.config import ModelConfig
    from cortexgnn.nn.topography import column_graph

    for name, flags in study.B_GRAPHS.items():
        given = dict(zip(flags[::2], flags[1::2], strict=True))
        config = ModelConfig(
            num_columns=49,
            in_dim=56 * 56,
            patch_size=8,
            graph_seed=3,
            graph=given["--graph"],
            graph_p=float(given.get("--graph-p", 0.15)),
        )
        built, expected = column_graph(config), study_graphs.b_graphs()[name](3)
        assert {tuple(e) for e in built.t().tolist()} == {tuple(e) for e in expected.t().tolist()}


def test_equal_accuracies_on_every_seed_are_no_effect_not_an_infinite_one():
    same = [0.5] * 5  # both at chance on every seed (a constant answer, as B's none)
    accs = {"article": same, "mlp-matched": same, "cnn-matched": [0.4] * 5,
            "columns-16": same, "vit-matched-16": same}  # fmt: skip
    rows = {r["id"]: r for r in study.comparisons(_finished(accs), "C")}
    assert rows["C1"]["t"] == 0.0 and not rows["C1"]["established"]
    assert rows["C2"]["t"] == float("inf") and rows["C2"]["established"]  # +10 on every seed
