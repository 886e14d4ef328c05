"""benchmarks/study_report.py: part 2's tables, verdicts, sentences and figures from the runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package

from benchmarks import study, study_graphs, study_report  # noqa: E402


def _runs(experiment, name, accs, searched=True, params=1000):
    """Runs of one row at rate 1e-3 (its search won by 1e-3 when ``searched``)."""
    runs = []
    if searched:
        runs += [{"experiment": experiment, "name": name, "lr": lr, "seed": 0,
                  "best_val_acc": 0.9 if lr == 1e-3 else 0.1, "test_acc": accs[0],
                  "parameters": params} for lr in study.LEARNING_RATES]  # fmt: skip
    runs += [{"experiment": experiment, "name": name, "lr": 1e-3, "seed": s,
              "best_val_acc": 0.8, "test_acc": a, "parameters": params}
             for s, a in enumerate(accs) if s or not searched]  # fmt: skip
    return runs


@pytest.fixture
def results():
    runs = _runs("B", "lattice-4", [0.70, 0.71, 0.69])
    runs += _runs("B", "random-2", [0.80, 0.82, 0.81, 0.80, 0.83], searched=False)
    runs += _runs("B", "lattice-2", [0.50, 0.51, 0.49, 0.50, 0.50], searched=False)
    runs += _runs("B", "none", [0.50, 0.50, 0.51], searched=False)
    runs += _runs("A", "rewired-lattice-4-mean", [0.850, 0.851, 0.849, 0.852, 0.850])
    runs += _runs("A", "none-mean", [0.840, 0.838, 0.842, 0.839, 0.841])
    runs += _runs("A", "mlp-matched", [0.860, 0.861, 0.859, 0.862, 0.860])
    runs += _runs("A", "ring-2-mean", [0.845, 0.846], searched=False)
    return {"runs": runs}


def test_the_main_table_pairs_by_seed_and_gives_verdicts_only_with_five_seeds(results):
    table = "\n".join(study_report.main_table(results, study.comparisons(results)))
    b1 = next(line for line in table.splitlines() if line.startswith("| B1 "))
    assert "| 0, 1, 2, 3, 4 |" in b1 and "+31.20 [" in b1
    # C has not run: Holm orders the whole family, so every verdict is provisional
    assert "**established** so far" in b1
    b2 = next(line for line in table.splitlines() if line.startswith("| B2 "))
    assert "pending (0 of 5 seeds)" in b2  # lattice-8 has no runs
    a2 = next(line for line in table.splitlines() if line.startswith("| A2 "))
    assert "-1.00 [" in a2 and "established** so far (a < b)" in a2  # the MLP wins, firmly


def test_the_plain_answer_counts_cells_against_the_twin_and_the_mlp(results):
    effects = study_report.graph_effects(results)
    # B: lattice-4 (3 seeds) and random-2 beat none; lattice-2 does not (chance, like none)
    assert {e.split("`")[1] for e in effects["beats_twin"]} >= {"random-2", "lattice-4"}
    assert not any("`lattice-2`" in e for e in effects["beats_twin"])
    assert "ring-2-mean" in effects["tested_twin"] and effects["beats_mlp"] == []
    answer = study_report.plain_answer(results)
    assert "It beats the matched MLP in 0 of 2 cells of A." in answer


def test_render_headline_and_figures_come_from_the_runs(results, tmp_path):
    hops = study_graphs.hop_table()
    text = study_report.render(results, hops)
    assert "| `lattice-2` | 1,000 | 0.001 | 5 |" in text and "| 3 |" in text  # d = 3
    assert "A: 23 of 93 runs; B: 18 of 85 runs" in study_report.status(results)
    headline = study_report.headline(results)
    b1 = next(line for line in headline.splitlines() if line.startswith("| B1 "))
    assert "(`random-2` − `lattice-2`)" in b1 and "| +31.20 [" in b1 and "established so far" in b1
    assert "in progress" in headline
    effects = study_report.graph_effects(results)
    counts = f"in {len(effects['beats_twin'])} of {len(effects['tested_twin'])}, and the matched"
    assert counts in headline and "MLP in 0 of 2 cells of A" in headline
    assert "Experiment B run by run" not in headline  # no hop table given: no B sentence
    # lattice-2 (d 3 > 2 iterations): 51 % and 49 % lie outside the 50 ± 0.98 band
    with_b = study_report.headline(results, hops)
    assert "exceeds the iterations, 3 of 5 runs sit at chance; elsewhere 8 of 8 runs" in with_b
    first = study_report.plot(results, tmp_path / "it.png")
    second = study_report.hops_plot(results, hops, tmp_path / "hops.png")
    assert first.stat().st_size > 10_000 and second.stat().st_size > 10_000


def test_the_doc_and_readme_markers_are_there():
    assert study_report.DOC_START in (ROOT / "docs" / "science.md").read_text()
    assert study_report.README_START in (ROOT / "README.md").read_text()


def test_b_prediction_counts_runs_against_the_chance_band(results):
    hops = study_graphs.hop_table()
    assert round(study_report.chance_band(10_000), 2) == 0.98  # 1.96 x 0.5 / 100, in points
    text = study_report.b_prediction(results, hops)
    # lattice-2 (d = 3 > 2): two of its seeds (49 %, 51 %) lie outside 50 +- 0.98
    assert "3 of 5 runs at chance" in text and "failed on some runs" in text
    for run in results["runs"]:
        if run["name"] == "lattice-2":
            run["test_acc"] = 0.5
    text = study_report.b_prediction(results, hops)
    # now lattice-2 sits at chance; lattice-4 and random-2 (d <= iterations) lie above
    assert "5 of 5 runs at chance" in text and "8 of 8 runs above the band" in text
    assert "held on every run so far" in text
    results["runs"] += _runs("B", "lattice-8", [0.505], searched=False)  # d 3 <= 8, yet chance
    assert "failed on some runs" in study_report.b_prediction(results, hops)
    assert study_report.b_prediction({"runs": []}, hops) == ""


def test_the_headline_says_complete_only_when_every_planned_run_is_in():
    """Main comparisons at 5 seeds with exploratory cells missing is not "complete"."""
    import random

    rng = random.Random(0)

    def rows(main_only: bool) -> list[dict]:
        runs = []
        for experiment, spec in study.EXPERIMENTS.items():
            main = {name for _, a, b in spec["comparisons"] for name in (a, b)}
            for model in spec["models"]:
                if main_only and model.name not in main and model.lr_from is not None:
                    continue
                accs = [0.8 + rng.random() / 100 for _ in range(model.seeds)]
                runs += _runs(experiment, model.name, accs, searched=model.lr_from is None)
        return runs

    partial = study_report.headline({"runs": rows(main_only=True)})
    assert "(the seven main comparisons complete, exploratory cells still to come)" in partial
    assert " so far |" not in partial  # final verdicts
    whole = {"runs": rows(main_only=False)}
    assert all(study_report.finished(whole, e) == study_report.planned(whole, e)
               for e in study.EXPERIMENTS)  # fmt: skip
    assert "Part 2 of the study (complete)." in study_report.headline(whole)


def test_prediction_outcomes_read_each_verdict_against_its_prediction():
    def row(id_, diffs, established):
        mean = sum(diffs) / len(diffs)
        return {"id": id_, "diffs": diffs, "mean": mean, "established": established,
                "complete": True}  # fmt: skip

    rows = [
        row("A1", [0.01, 0.012, 0.011], True),  # positive, a > b: held
        row("A2", [-0.01, -0.012, -0.011], True),  # positive, a < b: contradicted
        row("B1", [0.01, -0.01, 0.0], False),  # positive, nothing established: not decided
        row("C1", [-0.02, -0.021, -0.019], True),  # no better, a < b: fits
        row("C3", [0.02, 0.021, 0.019], True),  # no better, a > b: contradicted
    ]
    text = study_report.prediction_outcomes(rows)
    assert text.startswith("**The predictions against the data.** Held")
    held, fits, undecided, against = (text.split(word, 1)[1].split(";")[0] for word in
                                      ("Held", "fit", "not decided", "contradicted"))  # fmt: skip
    assert "A1" in held and "A2" not in held
    assert "C1" in fits and "C3" not in fits
    assert "B1" in undecided
    assert "A2" in against and "C3" in against
    assert study_report.prediction_outcomes([{**rows[0], "complete": False}]) == ""


def test_the_eval_updates_variant_is_paired_with_the_article_row():
    runs = _runs("C", "article", [0.880, 0.882, 0.879, 0.881, 0.880])
    runs += _runs("C", "article-eval-updates", [0.870, 0.873, 0.869], searched=False)
    runs += _runs("C", "mlp-matched", [0.881, 0.882, 0.880, 0.881, 0.882])
    table = study_report.rows_table({"runs": runs}, "C")
    assert table[0].endswith("| − the row it varies, points [95 %] |")
    variant = next(line for line in table if line.startswith("| `article-eval-updates` "))
    # paired on seeds 0-2 only: -1.0, -0.9, -1.0 points
    assert "| − `article`: -0.97 [" in variant
    assert all(line.endswith("| – |") for line in table[2:] if "eval-updates" not in line)


def test_a_reach_groups_the_one_column_runs_by_what_the_readout_hears(tmp_path):
    reach = study_graphs.reach_table(seeds=2)
    runs = _runs("A", "rewired-lattice-4-mean", [0.89])  # the rate search they borrow
    runs += _runs("A", "none-column", [0.60, 0.62], searched=False)
    runs += _runs("A", "ring-1-column", [0.78, 0.77], searched=False)
    runs += _runs("A", "complete-4-column", [0.87, 0.86], searched=False)
    runs += _runs("A", "ring-1-mean", [0.88, 0.88], searched=False)  # not a one-column row
    points = study_report.reach_points({"runs": runs}, reach)
    assert sorted(points) == sorted([
        ("none", 0, 100 * (49 / 784), 60.0), ("none", 0, 100 * (49 / 784), 62.0),
        ("ring", 1, 100 * (217 / 784), 78.0), ("ring", 1, 100 * (217 / 784), 77.0),
        ("complete", 4, 100.0, 87.0), ("complete", 4, 100.0, 86.0)])  # fmt: skip
    text = study_report.a_reach({"runs": runs}, reach)
    assert "its own patch only (no messages): 2 runs, test accuracy 60.00 to 62.00 %" in text
    assert "part of the image: 2 runs, test accuracy 77.00 to 78.00 %" in text
    assert "the whole image: 2 runs, test accuracy 86.00 to 87.00 %" in text
    assert study_report.reach_plot({"runs": runs}, reach, tmp_path / "reach.png").is_file()
    assert study_report.a_reach({"runs": []}, reach) == ""
