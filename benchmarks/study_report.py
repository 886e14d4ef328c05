r"""The study's results, rendered: docs/science.md part 2, the README paragraph, two figures.

Reads ``benchmarks/results/study.json`` (the runs) and ``study_hops.json`` (experiment
B's hop distances). Every number in the text is computed here from those files; a study
still running is reported as far as it got, with the runs still missing named.

    python -m benchmarks.study_report --update-doc docs/science.md README.md \\
        --plot docs/img/study_iterations.png --hops-plot docs/img/study_hops.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import harness, study, study_graphs
from benchmarks.ablation_report import (
    accuracy_text,
    difference_text,
    difference_words,
    interval,
)
from benchmarks.plots import save_figure
from cortexgnn.train.two_items import TASKS

DOC_START, DOC_END = "<!-- study:start -->", "<!-- study:end -->"
README_START, README_END = "<!-- study-readme:start -->", "<!-- study-readme:end -->"
#: what each main comparison predicts (docs/science.md part 2, preregistered)
PREDICTIONS = {
    "A1": "positive", "A2": "positive", "B1": "positive", "B2": "positive",
    "C1": "no better (≤ 0)", "C2": "no better (≤ 0)",
    "C3": "no better (≤ 0)",
}  # fmt: skip
#: each main comparison in a few words (the README's table)
GLOSSES = {
    "A1": "rewired 2-D lattice, 4 iterations − the same columns without messages",
    "A2": "the same graph model − an MLP",
    "B1": "random graph − 2-D lattice, both at 2 iterations",
    "B2": "2-D lattice at 8 iterations − no messages",
    "C1": "the article's model − an MLP",
    "C2": "the article's model − a CNN",
    "C3": "the article's model with 16 columns − a patch transformer",
}
#: the twin without messages and the matched MLP of each experiment's cells
TWINS = {"A": {"mean": "none-mean", "column": "none-column"}, "B": {None: "none"}}
#: C's labelled variants and the row each one changes (paired by seed: the change's effect)
VARIANTS = {"C": {"article-eval-updates": "article"}}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(study.RESULTS))
    p.add_argument("--hops", default=str(study_graphs.HOPS))
    p.add_argument("--update-doc", nargs="*", default=[], help="science.md and/or README.md")
    p.add_argument("--plot", default=None, help="accuracy against iterations (PNG)")
    p.add_argument("--hops-plot", default=None, help="B's accuracy against hop distance (PNG)")
    p.add_argument("--reach", default=str(study_graphs.REACH))
    p.add_argument("--reach-plot", default=None, help="A's accuracy against reach (PNG)")
    return p


# --- reading the runs --------------------------------------------------------------------


def row_lr(results: dict, experiment: str, name: str) -> float | None:
    """The rate a row runs at: its own choice, or the one it borrows; ``None`` until known."""
    row = study._row(experiment, name)
    return study.chosen_lr(results, experiment, row.lr_from or name)


def accuracies(results: dict, experiment: str, name: str, key: str = "test_acc") -> dict:
    """Seed -> ``key`` (in %) of a row's runs at its rate."""
    lr = row_lr(results, experiment, name)
    return {r["seed"]: 100 * r[key] for r in results["runs"]
            if r["experiment"] == experiment and r["name"] == name and r["lr"] == lr}  # fmt: skip


def planned(results: dict, experiment: str) -> int:
    """How many runs the experiment makes in all (each rate search counts 3)."""
    total = 0
    for row in study.EXPERIMENTS[experiment]["models"]:
        total += row.seeds + (len(study.LEARNING_RATES) - 1 if row.lr_from is None else 0)
    return total


def finished(results: dict, experiment: str) -> int:
    return sum(r["experiment"] == experiment for r in results["runs"])


def _mean_sd(values) -> str:
    """Accuracies in % as ``mean ± sd %``."""
    return accuracy_text([v / 100 for v in list(values)])


def paired_diffs(results: dict, experiment: str, a: str, b: str, reference=None) -> list[float]:
    """``a - b`` (or ``a - reference`` for a number, e.g. chance) in points, by seed."""
    mine = accuracies(results, experiment, a)
    if reference is not None:
        return [mine[s] - reference for s in sorted(mine)]
    theirs = accuracies(results, experiment, b)
    return [mine[s] - theirs[s] for s in sorted(mine.keys() & theirs.keys())]


def _above(diffs: list[float]) -> bool | None:
    """``True`` above zero at 95 %, ``False`` below, ``None`` when the interval holds 0."""
    if len(diffs) < 2:
        return None
    mean, half = interval(diffs)
    return True if mean - half > 0 else False if mean + half < 0 else None


# --- the main comparisons ------------------------------------------------------------------


def _verdict(row: dict, complete: bool) -> str:
    """Holm's verdict; provisional (``so far``) until the whole family has its seeds.

    Holm's step-down orders the family by ``|t|``: a comparison still to come can move
    every other one's step, either way.
    """
    if row["t"] is None:
        return f"pending ({len(row['seeds'])} of {row['planned_seeds']} seeds)"
    if not row["complete"]:
        return f"interim ({len(row['seeds'])} of {row['planned_seeds']} seeds)"
    verdict = "**established**" if row["established"] else "not established"
    verdict = verdict if complete else f"{verdict} so far"
    if row["established"]:  # the test is two-sided: say which way
        verdict += " (a > b)" if row["mean"] > 0 else " (a < b)"
    return verdict


def family_complete(rows: list[dict]) -> bool:
    """Whether every comparison of the family has all its seeds."""
    return all(row["complete"] for row in rows)


def main_table(results: dict, rows: list[dict]) -> list[str]:
    """The main comparisons' table; ``rows`` from ``study.comparisons``."""
    lines = [
        "| id | comparison (a − b) | predicted | paired seeds | a | b | a − b, points [95 %] | t "
        "| Holm (family of 7, 0.05) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    complete = family_complete(rows)
    for row in rows:
        e, a, b = row["experiment"], row["a"], row["b"]
        t = "–" if row["t"] is None else f"{row['t']:+.2f}"
        seeds = ", ".join(map(str, row["seeds"])) or "–"
        # each side over the seeds the pair shares, so that a − b is their difference
        a_acc, b_acc = (
            _mean_sd(v for s, v in accuracies(results, e, name).items() if s in row["seeds"])
            for name in (a, b)
        )
        lines.append(
            f"| {row['id']} | `{a}` − `{b}` ({e}) | {PREDICTIONS[row['id']]} | {seeds} "
            f"| {a_acc} | {b_acc} | {difference_text(row['diffs'])} | {t} "
            f"| {_verdict(row, complete)} |"
        )
    return lines


def prediction_outcomes(rows: list[dict]) -> str:
    """Each preregistered prediction against its verdict, once the family is complete.

    ``positive`` holds when established with a > b. ``no better (≤ 0)`` is contradicted only
    by an established a > b; an established a < b or an interval holding zero fits it.
    """
    if not family_complete(rows):
        return ""
    held, fits, against, open_ = [], [], [], []
    for row in rows:
        up = row["established"] and row["mean"] > 0
        down = row["established"] and row["mean"] < 0
        label = f"{row['id']} ({difference_text(row['diffs'])})"
        if PREDICTIONS[row["id"]] == "positive":
            (held if up else against if down else open_).append(label)
        else:
            (against if up else fits).append(label)
    parts = []
    if held:
        parts.append(f"held (established in the predicted direction): {', '.join(held)}")
    if fits:
        parts.append(f'fit "no better" (no established a > b): {", ".join(fits)}')
    if open_:
        parts.append(f"not decided (no established difference): {', '.join(open_)}")
    if against:
        parts.append(f"contradicted (established the other way): {', '.join(against)}")
    text = "; ".join(parts)
    return f"**The predictions against the data.** {text[0].upper()}{text[1:]}."


# --- the tables of every row ----------------------------------------------------------------


def _hops(hops: dict, graph: str | None) -> str:
    if graph is None:
        return "–"
    values = sorted({r["d"] for r in hops["graphs"][graph]})
    return ", ".join(map(str, values))


def _b_graph(name: str) -> tuple[str | None, int]:
    """B's row name -> (graph of the hop table or ``None``, iterations)."""
    if name == "none":
        return None, 0
    graph, iters = name.rsplit("-", 1)
    return graph, int(iters)


def rows_table(results: dict, experiment: str, hops: dict | None = None) -> list[str]:
    """Every row of an experiment with runs: rate, seeds, validation and test accuracy."""
    extra = " d (hops, seeds 0–4) |" if experiment == "B" else ""
    twin_col = " − no messages, points [95 %] |" if experiment in TWINS else ""
    if experiment in VARIANTS:
        twin_col = " − the row it varies, points [95 %] |"
    lines = [f"| row | parameters | rate | seeds | best validation | test |{extra}{twin_col}",
             "|---|---|---|---|---|---|" + "---|" * (bool(extra) + bool(twin_col))]  # fmt: skip
    for row in study.EXPERIMENTS[experiment]["models"]:
        tests = accuracies(results, experiment, row.name)
        if not tests:
            continue
        vals = accuracies(results, experiment, row.name, "best_val_acc")
        lr = row_lr(results, experiment, row.name)
        params = next(r["parameters"] for r in results["runs"]
                      if r["experiment"] == experiment and r["name"] == row.name)  # fmt: skip
        line = (f"| `{row.name}` | {params:,} | {lr:g} | {len(tests)} | {_mean_sd(vals.values())} "
                f"| {_mean_sd(tests.values())} |")  # fmt: skip
        if experiment == "B":
            line += f" {_hops(hops, _b_graph(row.name)[0])} |" if hops else " – |"
        if experiment in TWINS:
            twin = _twin(experiment, row.name)
            diffs = [] if twin in (None, row.name) else paired_diffs(results, experiment,
                                                                    row.name, twin)  # fmt: skip
            line += f" {difference_text(diffs)} |"
        elif experiment in VARIANTS:
            varied = VARIANTS[experiment].get(row.name)
            diffs = [] if varied is None else paired_diffs(results, experiment, row.name, varied)
            line += f" − `{varied}`: {difference_text(diffs)} |" if varied else " – |"
        lines.append(line)
    return lines


def _twin(experiment: str, name: str) -> str | None:
    """The row without messages that ``name`` is paired with (same readout)."""
    if name == "mlp-matched":
        return None
    if experiment == "A":
        return TWINS["A"][name.rsplit("-", 1)[1]]
    return TWINS["B"][None]


# --- what the data say, in sentences --------------------------------------------------------


def graph_effects(results: dict) -> dict[str, list[str]]:
    """Cells whose paired interval against the twin / the matched MLP lies above zero."""
    out = {"beats_twin": [], "beats_mlp": [], "tested_twin": [], "tested_mlp": []}
    for experiment in ("A", "B"):
        for row in study.EXPERIMENTS[experiment]["models"]:
            twin = _twin(experiment, row.name)
            if twin is None or twin == row.name:
                continue
            diffs = paired_diffs(results, experiment, row.name, twin)
            if len(diffs) >= 2:
                out["tested_twin"].append(row.name)
                if _above(diffs):
                    out["beats_twin"].append(
                        f"{experiment} `{row.name}` ({difference_words(diffs)})"
                    )
            if experiment == "A":
                diffs = paired_diffs(results, "A", row.name, "mlp-matched")
                if len(diffs) >= 2:
                    out["tested_mlp"].append(row.name)
                    if _above(diffs):
                        out["beats_mlp"].append(f"A `{row.name}` ({difference_words(diffs)})")
    return out


def status(results: dict) -> str:
    parts = [f"{e}: {finished(results, e)} of {planned(results, e)} runs"
             for e in study.EXPERIMENTS]  # fmt: skip
    commits = sorted({r.get("commit") or "?" for r in results["runs"]})
    return f"Runs finished so far: {'; '.join(parts)} (commits {', '.join(commits) or '–'})."


def plain_answer(results: dict) -> str:
    """Where the graph beats its twin and the matched MLP: counts, then one bullet a cell."""
    effects = graph_effects(results)
    if not effects["tested_twin"]:
        return (
            "No cell of A or B has two seeds paired with its no-message twin yet: no answer "
            "on the graph yet."
        )
    lines = [
        f"The column graph beats its own no-message-passing twin (paired 95 % interval above "
        f"zero) in {len(effects['beats_twin'])} of {len(effects['tested_twin'])} cells with "
        f"two or more seeds" + (":" if effects["beats_twin"] else "."),
        "",
        *(f"- {cell}" for cell in effects["beats_twin"]),
    ]
    if effects["tested_mlp"]:
        lines += [
            "",
            f"It beats the matched MLP in {len(effects['beats_mlp'])} of "
            f"{len(effects['tested_mlp'])} cells of A" + (":" if effects["beats_mlp"] else "."),
            "",
            *(f"- {cell}" for cell in effects["beats_mlp"]),
        ]
    lines += [
        "",
        "Each interval is the cell's own, uncorrected: only the main comparisons above "
        "carry a verdict.",
    ]
    return "\n".join(line for i, line in enumerate(lines) if line or lines[i - 1])


def readme_table(rows: list[dict]) -> list[str]:
    """The main comparisons (``study.comparisons``) in a few words each, with the verdicts."""
    lines = ["| id | comparison (a − b) | predicted | a − b, points [95 %] | Holm |",
             "|---|---|---|---|---|"]  # fmt: skip
    complete = family_complete(rows)
    for row in rows:
        lines.append(
            f"| {row['id']} | {GLOSSES[row['id']]} (`{row['a']}` − `{row['b']}`) "
            f"| {PREDICTIONS[row['id']]} | {difference_text(row['diffs'])} "
            f"| {_verdict(row, complete).replace('**', '')} |"
        )
    return lines


def effect_counts(results: dict) -> str:
    """How many cells beat their twin and the matched MLP (the cells: docs/science.md)."""
    effects = graph_effects(results)
    if not effects["tested_twin"]:
        return "No cell of A or B has two seeds paired with its no-message twin yet."
    text = (
        f"Across the cells with two or more seeds, the column graph beats its own "
        f"no-message-passing twin (paired 95 % interval above zero) in "
        f"{len(effects['beats_twin'])} of {len(effects['tested_twin'])}"
    )
    if effects["tested_mlp"]:
        text += (
            f", and the matched MLP in {len(effects['beats_mlp'])} of "
            f"{len(effects['tested_mlp'])} cells of A"
        )
    return text + " (exploratory, no correction)."


def render(results: dict, hops: dict | None, reach: dict | None = None) -> str:
    rows = study.comparisons(results, tuple(study.EXPERIMENTS))
    lines = [
        "## Results of part 2",
        "",
        "*Generated by `python -m benchmarks render study` from "
        "`benchmarks/results/study.json`.* " + status(results),
        "",
        "### The main comparisons",
        "",
        "Test accuracy in %, mean ± standard deviation over seeds; differences paired by "
        "seed, with the 95 % Student-t interval; Holm's method over the seven comparisons, "
        "two-sided (an established difference names its direction: a > b or a < b). "
        "A comparison with fewer than 5 seeds is interim and gets no verdict; until all "
        'seven have their seeds, every verdict is provisional ("so far"): Holm\'s '
        "step-down orders the whole family.",
        "",
        *main_table(results, rows),
        "",
        prediction_outcomes(rows),
        "",
        "### Does the graph carry information?",
        "",
        plain_answer(results),
        "",
    ]
    titles = {"A": "Experiment A: Fashion-MNIST, patch columns",
              "B": "Experiment B: the two-item task (chance is 50 %)",
              "C": "Experiment C: tuned baselines"}  # fmt: skip
    sentences = {"A": a_reach(results, reach) if reach else "",
                 "B": b_prediction(results, hops) if hops else ""}  # fmt: skip
    for experiment in study.EXPERIMENTS:
        table = rows_table(results, experiment, hops)
        if len(table) > 2:
            lines += [f"### {titles[experiment]}", "", *table, ""]
            lines += [sentence, ""] if (sentence := sentences.get(experiment)) else []
    lines += [
        "To run or continue the study (finished runs are skipped, a killed run resumes from "
        "its last epoch): `python -m benchmarks.study --data-dir PATH --workers 2`; to "
        "re-render this section and the figures: `python -m benchmarks render study`.",
        "",
        "Rows with fewer seeds than planned are still running; the rate column is the rate "
        "chosen on validation (or borrowed from the row that searched it). "
        "![accuracy against iterations](img/study_iterations.png)"
        + (" ![B against hop distance](img/study_hops.png)" if hops else "")
        + (" ![A's one-column readout against its reach](img/study_reach.png)" if reach else ""),
    ]
    return "\n".join(lines)


def b_counts(results: dict, hops: dict | None) -> str:
    """B's prediction run by run, in one sentence for the README ("" before B's runs)."""
    outcome = b_outcome(results, hops) if hops else None
    if not outcome or not (outcome["far"] or outcome["near"]):
        return ""
    far, near = outcome["far"], outcome["near"]
    return (
        f"Experiment B run by run: where the hop distance from the items to the readout "
        f"column exceeds the iterations, {len(outcome['at_chance'])} of {len(far)} runs sit "
        f"at chance; elsewhere {len(outcome['above'])} of {len(near)} runs lie above it "
        f"(chance band 50 ± {outcome['band']:.2f} points)."
    )


def headline(results: dict, hops: dict | None = None) -> str:
    """The README block: the main comparisons as a table, the cell counts, the status."""
    rows = study.comparisons(results, tuple(study.EXPERIMENTS))
    everything = all(finished(results, e) >= planned(results, e) for e in study.EXPERIMENTS)
    if not family_complete(rows):
        state = "in progress: Holm's verdicts are provisional until all seven are in"
    elif not everything:
        state = "the seven main comparisons complete, exploratory cells still to come"
    else:
        state = "complete"
    return "\n".join([
        f"**Can the column graph matter?** Part 2 of the study ({state}). Three "
        "experiments: A, Fashion-MNIST with columns that each see one patch of the image; "
        "B, a two-item task (same class or not, the items in opposite corners) read from "
        "one column, so that the answer has to cross the graph; C, the article's model "
        "against tuned baselines. Each MLP, CNN and patch transformer has the parameter "
        "count of the model it faces. Every choice is made on a "
        "validation split, each run sees the test set once, and the seven main "
        "comparisons were fixed before their runs and are corrected with Holm's method.",
        "",
        *readme_table(rows),
        "",
        " ".join(filter(None, [
            effect_counts(results), b_counts(results, hops), status(results),
            "Tables, figures and the cells: [docs/science.md](docs/science.md).",
        ])),
    ])  # fmt: skip


# --- figures ---------------------------------------------------------------------------------


def _series(results: dict, experiment: str, names: dict[int, str]) -> tuple[list, list, list]:
    xs, means, halves = [], [], []
    for iters, name in sorted(names.items()):
        values = list(accuracies(results, experiment, name).values())
        if values:
            mean, half = interval(values)
            xs.append(iters)
            means.append(mean)
            halves.append(half or 0.0)
    return xs, means, halves


def plot(results: dict, path: Path) -> Path | None:
    """Test accuracy against iterations, a line per graph: A (two readouts) and B."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [("A", "mean", "A: Fashion-MNIST, mean readout"),
              ("A", "column", "A: Fashion-MNIST, column 27 readout"),
              ("B", None, "B: two items, column 6 readout")]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (experiment, readout, title) in zip(axes, panels, strict=True):
        graphs = study.A_GRAPHS if experiment == "A" else study.B_GRAPHS
        twin = TWINS[experiment][readout]
        for i, graph in enumerate(graphs):
            names = {}
            for row in study.EXPERIMENTS[experiment]["models"]:
                suffix = f"-{readout}" if readout else ""
                base = row.name[: -len(suffix)] if suffix and row.name.endswith(suffix) else None
                base = base if readout else row.name
                if base and base.rsplit("-", 1)[0] == graph and base.rsplit("-", 1)[1].isdigit():
                    names[int(base.rsplit("-", 1)[1])] = row.name
            xs, means, halves = _series(results, experiment, names)
            if xs:
                ax.errorbar(xs, means, yerr=halves, marker="o", capsize=3, label=graph,
                            color=f"C{i}", linewidth=1.2, markersize=4)  # fmt: skip
        xs, means, halves = _series(results, experiment, {0: twin})
        if xs:
            ax.errorbar(xs, means, yerr=halves, marker="s", capsize=3, color="black",
                        label="no messages", markersize=5, linestyle="none")  # fmt: skip
        if experiment == "B":
            ax.axhline(50, color="gray", linestyle=":", linewidth=1, label="chance")
        if not ax.get_legend_handles_labels()[0]:
            ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks([0, 1, 2, 4, 8], ["0\n(no messages)", "1", "2", "4", "8"])
        ax.set_xlabel("message-passing iterations")
        ax.set_ylabel("test accuracy, % (mean, 95 % interval)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best", ncol=2)
    fig.suptitle("Accuracy against message-passing iterations, by graph (part 2)", fontsize=11)
    return save_figure(fig, path)


def b_points(results: dict, hops: dict) -> list[tuple[int, int, float]]:
    """B's runs on a graph as ``(d, iterations, test accuracy %)``, one per seed."""
    points = []
    for row in study.EXPERIMENTS["B"]["models"]:
        graph, iters = _b_graph(row.name)
        if graph is None:
            continue
        d = {r["seed"]: r["d"] for r in hops["graphs"][graph]}
        for seed, acc in accuracies(results, "B", row.name).items():
            if d.get(seed) is not None:
                points.append((d[seed], iters, acc))
    return points


def chance_band(pairs: int) -> float:
    """Half-width in points of the 95 % band of a fair coin's accuracy over ``pairs``."""
    return 100 * 1.96 * 0.5 / pairs**0.5


def b_outcome(results: dict, hops: dict) -> dict:
    """B's runs split by the prediction: ``far`` (``d`` > iterations) and ``near``.

    Returns the chance band's half-width (``band``, points), the test pairs, and the test
    accuracies of ``far``, ``at_chance`` (far and within the band), ``near`` and ``above``
    (near and above the band).
    """
    pairs = TASKS[study.EXPERIMENTS["B"]["dataset"]].num_test
    band = chance_band(pairs)
    points = b_points(results, hops)
    far = [acc for d, iters, acc in points if d > iters]
    near = [acc for d, iters, acc in points if d <= iters]
    return {"band": band, "pairs": pairs, "far": far, "near": near,
            "at_chance": [acc for acc in far if abs(acc - 50) <= band],
            "above": [acc for acc in near if acc > 50 + band]}  # fmt: skip


def b_prediction(results: dict, hops: dict) -> str:
    """B's prediction run by run: chance where ``d`` > iterations, above it elsewhere."""
    outcome = b_outcome(results, hops)
    band, pairs = outcome["band"], outcome["pairs"]
    far, near, at_chance, above = (outcome[k] for k in ("far", "near", "at_chance", "above"))
    if not far and not near:
        return ""
    parts = [
        f"**B's prediction, run by run** (each run's own graph and hop distance `d`; chance "
        f"band 50 ± {band:.2f} points, a fair coin's 95 % range over "
        f"{pairs:,} test pairs):"
    ]
    for label, runs, hits, want in (
        ("`d` > iterations (predicted: chance)", far, at_chance, "at chance"),
        ("`d` ≤ iterations (predicted: above chance)", near, above, "above the band"),
    ):
        if runs:
            parts.append(
                f"{label}: {len(hits)} of {len(runs)} runs {want}, test accuracy "
                f"{min(runs):.2f} to {max(runs):.2f} %"
            )
        else:
            parts.append(f"{label}: no run yet")
    held = len(at_chance) == len(far) and len(above) == len(near)
    verdict = ("The prediction held on every run so far." if held else
               "The prediction failed on some runs (see the figure).")  # fmt: skip
    return parts[0] + " " + "; ".join(parts[1:]) + ". " + verdict


def hops_plot(results: dict, hops: dict, path: Path) -> Path | None:
    """B: each run's test accuracy against hop distance ``d``, and against ``d`` − iterations.

    The prediction: chance right of zero, above chance left of it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    points = b_points(results, hops)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for k, iters in enumerate((2, 4, 8)):
        mine = [(d, acc) for d, i, acc in points if i == iters]
        if not mine:
            continue
        label, style = f"{iters} iterations", dict(color=f"C{k}", alpha=0.7, markersize=5)
        offset = (k - 1) * 0.12  # the three iteration counts side by side at each x
        left.plot([d + offset for d, _ in mine], [a for _, a in mine], "o", label=label, **style)
        right.plot([d - iters + offset for d, _ in mine], [a for _, a in mine], "o", **style,
                   label=label)  # fmt: skip
    for ax in (left, right):
        ax.axhline(50, color="gray", linestyle=":", linewidth=1, label="chance")
        ax.grid(alpha=0.3)
    right.axvline(0.5, color="tab:red", linewidth=1, label="d = iterations + ½")
    most = max([r["d"] or 0 for g in hops["graphs"].values() for r in g] + [1])
    left.set_xticks(range(0, most + 1))
    right.set_xticks(range(1 - 8, most - 1))
    right.set_xlim(0.5 - 8, most - 1.5)
    left.set_xlabel("hop distance d from the items to the readout column")
    right.set_xlabel("d − iterations (prediction: chance where > 0)")
    left.set_ylabel("test accuracy, % (one point per run)")
    left.set_title("B: accuracy against hop distance", fontsize=10)
    right.set_title("B: does information need d iterations to arrive?", fontsize=10)
    if points:
        left.legend(fontsize=8, loc="best")
        right.legend(fontsize=8, loc="best")
    else:
        left.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=left.transAxes)
    return save_figure(fig, path)


def reach_points(results: dict, reach: dict) -> list[tuple[str, int, float, float]]:
    """A's one-column runs as ``(graph, iterations, reach %, test accuracy %)``, one per seed.

    Reach is the share of the image's pixels read by the columns within ``iterations``
    hops of the readout column; ``none-column`` (graph ``"none"``) hears its own patch.
    """
    points = []
    for row in study.EXPERIMENTS["A"]["models"]:
        if not row.name.endswith("-column"):
            continue
        base = row.name.removesuffix("-column")
        graph, iters = ("none", 0) if base == "none" else (base.rsplit("-", 1)[0],
                                                           int(base.rsplit("-", 1)[1]))  # fmt: skip
        table = reach["graphs"]["ring" if graph == "none" else graph]
        share = {r["seed"]: 100 * r[str(iters)]["pixels"] for r in table}
        for seed, acc in accuracies(results, "A", row.name).items():
            if seed in share:
                points.append((graph, iters, share[seed], acc))
    return points


def a_reach(results: dict, reach: dict) -> str:
    """A's one-column runs grouped by how much of the image their readout column hears."""
    points = reach_points(results, reach)
    if not points:
        return ""
    groups = [
        ("its own patch only (no messages)", [p for p in points if p[0] == "none"]),
        ("part of the image", [p for p in points if p[0] != "none" and p[2] < 100]),
        ("the whole image", [p for p in points if p[2] >= 100]),
    ]
    parts = []
    for label, runs in groups:
        if not runs:
            continue
        accs = [p[3] for p in runs]
        span = f"{accs[0]:.2f} %" if len(accs) == 1 else f"{min(accs):.2f} to {max(accs):.2f} %"
        parts.append(f"{label}: {len(accs)} run{'s' * (len(accs) != 1)}, test accuracy {span}")
    return (
        f"**A's one-column readout against its reach** (exploratory; reach: the share of "
        f"the image read by the columns within `iterations` hops of column "
        f"{reach['readout']}, from `benchmarks/results/study_reach.json`). The readout "
        f"column hears " + "; ".join(parts) + "."
    )


def reach_plot(results: dict, reach: dict, path: Path) -> Path | None:
    """A's one-column runs: test accuracy against the share of the image within reach."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    points = reach_points(results, reach)
    fig, ax = plt.subplots(figsize=(7, 4.4))
    markers = {0: "s", 1: "v", 2: "^", 4: "o", 8: "D"}
    for i, graph in enumerate([*study.A_GRAPHS, "none"]):
        mine = [p for p in points if p[0] == graph]
        if not mine:
            continue
        color = "black" if graph == "none" else f"C{i}"
        for _, iters, x, y in mine:
            ax.plot(x, y, markers[iters], color=color, alpha=0.75, markersize=6)
        ax.plot([], [], "s" if graph == "none" else "o", color=color,
                label="no messages" if graph == "none" else graph)  # fmt: skip
    for iters, marker in markers.items():
        if iters and any(p[1] == iters for p in points):
            ax.plot([], [], marker, color="gray", label=f"{iters} iteration{'s' * (iters > 1)}")
    if points:
        ax.legend(fontsize=7, loc="lower right", ncol=2)
    else:
        ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 105)
    ax.set_xlabel(f"reach: % of the image read by the columns within (iterations) hops of "
                  f"column {reach['readout']}")  # fmt: skip
    ax.set_ylabel("test accuracy, % (one point per run)")
    ax.set_title("A, one-column readout: accuracy against what the readout column can hear",
                 fontsize=10)  # fmt: skip
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    results = study.load(Path(args.results))
    hops_path, reach_path = Path(args.hops), Path(args.reach)
    hops = json.loads(hops_path.read_text()) if hops_path.is_file() else None
    reach = json.loads(reach_path.read_text()) if reach_path.is_file() else None
    for doc in map(Path, args.update_doc):
        if doc.name == "README.md":
            harness.replace_between(doc, README_START, README_END, headline(results, hops))
        else:
            harness.replace_between(doc, DOC_START, DOC_END, render(results, hops, reach))
    if args.plot:
        plot(results, Path(args.plot))
    if args.hops_plot and hops:
        hops_plot(results, hops, Path(args.hops_plot))
    if args.reach_plot and reach:
        reach_plot(results, reach, Path(args.reach_plot))
    return results


if __name__ == "__main__":
    main()
