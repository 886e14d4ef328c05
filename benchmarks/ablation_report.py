r"""Tables, figure and conclusions of the ablation study (``benchmarks/results/ablation.json``).

``render`` is what ``docs/science.md`` shows between its markers, ``headline`` the README
paragraph, ``plot`` the figure: nothing in them is typed by hand. Differences from
``article`` are paired by seed (one seed gives every variant the same data order and
graph seed), with a 95 % Student-t interval over the seeds both have; a
conclusion claims an effect only when its interval excludes zero, and calls it firm only
when the Bonferroni interval for the study's 17 comparisons excludes zero too (at 95 %
each, about one of 17 intervals would exclude zero with no effect at all). The control runs
of one explanation (:data:`CONTROLS`) are compared with the variant they explain, outside
those 17. The page names where this (old) protocol selected on the test set, with the share
of homeostasis updates that came from test images computed from the protocol's settings.

    python -m benchmarks render ablation   # docs/science.md, README.md, docs/img/ablation.png
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
from pathlib import Path

from benchmarks import harness
from benchmarks.plots import save_figure

RESULTS = Path(__file__).resolve().parent / "results" / "ablation.json"
DOC_START, DOC_END = "<!-- ablation:start -->", "<!-- ablation:end -->"
README_START, README_END = "<!-- science:start -->", "<!-- science:end -->"
GROUPS = {
    "article": "the article's model",
    "ring": "graph", "random": "graph", "complete": "graph", "no-message-passing": "graph",
    "plain": "message", "plain-no-hebbian": "message", "gated": "message",
    "gated-no-hebbian": "message",
    "no-homeostasis": "dynamics", "no-inhibition": "dynamics", "iterations-1": "dynamics",
    "iterations-8": "dynamics",
    "columns-16": "size", "columns-128": "size",
    "mlp-small": "baseline", "mlp-matched": "baseline", "single-column": "baseline",
}  # fmt: skip
#: control runs -> the variant whose explanation they test (not among the 17 comparisons)
CONTROLS = {
    "no-message-passing-no-homeostasis": "no-message-passing",
    "no-message-passing-min-divisor": "no-message-passing",
}
#: Fashion-MNIST's split sizes: what the homeostasis-update shares below are computed from
NUM_TRAIN, NUM_TEST = 60_000, 10_000
#: the groups whose variants change a biological part of the model (not its size or a baseline)
BIOLOGY = ("graph", "message", "dynamics")
#: every variant but ``article`` is compared with it: the family the Bonferroni level covers
COMPARISONS = len(GROUPS) - 1
FIRM_LEVEL = 1 - 0.05 / COMPARISONS


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--update-doc", nargs="*", default=[], help="docs/science.md and/or README.md")
    p.add_argument("--plot", default=None, help="write the figure here (needs matplotlib)")
    return p


@functools.cache
def t_quantile(level: float, df: int) -> float:
    """``q`` with ``P(|T| <= q) = level`` for Student's t with ``df`` degrees of freedom.

    Substituting ``t = sqrt(df) tan(theta)`` turns the density into ``cos(theta)**(df - 1)``
    on ``[0, pi/2)``, so the central probability is a bounded integral (Simpson's rule) and
    the quantile a bisection on ``theta``.
    """

    def mass(theta: float, n: int = 2000) -> float:
        h = theta / n
        ends = 1 + math.cos(theta) ** (df - 1)
        inner = sum((4 if i % 2 else 2) * math.cos(i * h) ** (df - 1) for i in range(1, n))
        return (ends + inner) * h / 3

    total, low, high = mass(math.pi / 2), 0.0, math.pi / 2
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if mass(mid) / total < level else (low, mid)
    return math.sqrt(df) * math.tan((low + high) / 2)


def interval(values: list[float], level: float = 0.95) -> tuple[float, float | None]:
    """Mean and the half-width of its t interval (``None`` for fewer than 2 values)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    quantile = t_quantile(level, len(values) - 1)
    return mean, quantile * statistics.stdev(values) / math.sqrt(len(values))


def paired(row: dict, article: dict, key: str = "final_accuracy") -> list[float]:
    """``row - article`` in accuracy points, for every seed both have."""
    mine = dict(zip(row["seeds"], row[key], strict=True))
    theirs = dict(zip(article["seeds"], article[key], strict=True))
    return [100 * (mine[s] - theirs[s]) for s in sorted(mine.keys() & theirs.keys())]


def accuracy_text(values: list[float]) -> str:
    """Accuracies (fractions) as ``mean ± sd %`` over seeds (one value: that value)."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{100 * values[0]:.2f} %"
    return f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f} %"


def difference_text(diffs: list[float]) -> str:
    """Paired differences (points) as ``mean [95 % interval]``."""
    if not diffs:
        return "–"
    mean, half = interval(diffs)
    if half is None:
        return f"{mean:+.2f} (1 seed)"
    return f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"


def difference_words(diffs: list[float]) -> str:
    """Paired differences (points) in a sentence, with the 95 % interval."""
    mean, half = interval(diffs)
    if half is None:
        return f"{mean:+.2f} points, 1 seed"
    return f"{mean:+.2f} points, 95 % interval {mean - half:+.2f} to {mean + half:+.2f}"


def is_firm(diffs: list[float]) -> bool:
    """Whether the Bonferroni interval (level ``FIRM_LEVEL``) of ``diffs`` excludes zero."""
    mean, wide = interval(diffs, FIRM_LEVEL)
    return wide is not None and abs(mean) > wide


def verdict(name: str, diffs: list[float]) -> tuple[str, str]:
    """``(kind, sentence)``: kind is ``better``, ``worse``, ``none`` or ``pending``.

    An effect's sentence also says whether it is firm: whether the Bonferroni interval
    (level ``FIRM_LEVEL``) excludes zero as well as the 95 % one.
    """
    if len(diffs) < 2:
        return "pending", f"`{name}`: not enough seeds yet for an interval."
    mean, half = interval(diffs)
    span = f"{mean:+.2f} points, 95 % interval [{mean - half:+.2f}, {mean + half:+.2f}]"
    if abs(mean) <= half:
        return "none", f"`{name}`: no detectable effect ({span}, {len(diffs)} paired seeds)."
    _, wide = interval(diffs, FIRM_LEVEL)
    firm = (
        f"firm: the {100 * FIRM_LEVEL:.1f} % interval excludes zero too"
        if is_firm(diffs)
        else f"not firm: the {100 * FIRM_LEVEL:.1f} % interval [{mean - wide:+.2f}, "
        f"{mean + wide:+.2f}] includes zero"
    )
    kind, than = ("better", "more") if mean > 0 else ("worse", "less")
    return kind, f"`{name}` is {than} accurate than `article`: {span}; {firm}."


def render(results: dict) -> str:
    """The Markdown between the markers of ``docs/science.md``."""
    rows = {r["name"]: r for r in results["variants"]}
    article = rows.get("article")
    proto = results["protocol"]
    lines = [*protocol_caveats(results), "",
        "| variant | group | parameters | seeds | final accuracy | best test accuracy (max over "
        "test evaluations) | final − article, points [95 % CI] | ms per step |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    studied = [n for n in GROUPS if n in rows]
    ordered = studied + [n for n in rows if n not in GROUPS]
    for name in ordered:
        row = rows[name]
        diffs = paired(row, article) if article and name != "article" else []
        group = GROUPS.get(name, "control" if name in CONTROLS else "")
        lines.append(
            f"| `{name}` | {group} | {row['parameters']:,} | {_seed_set(row['seeds'])} | "
            f"{accuracy_text(row['final_accuracy'])} | {accuracy_text(row['best_accuracy'])} | "
            f"{'baseline' if name == 'article' else difference_text(diffs)} | "
            f"{statistics.median(row['step_ms']):.1f} |"
        )
    missing = [n for n in GROUPS if n not in rows]
    done = sum(len(r["seeds"]) for r in rows.values())
    env = results.get("environment", {})
    commits = sorted({c for r in rows.values() for c in r.get("commits", []) if c})
    lines += [
        "",
        f"Fashion-MNIST, {proto['epochs']} epochs (AdamW lr {proto['lr']}, weight decay "
        f"{proto['weight_decay']}, batch {proto['batch_size']}, cosine period "
        f"{proto['t_max_epochs']:g} epochs), evaluation every {proto['eval_every']} steps and "
        f"at the end; mean ± standard deviation over seeds; ms per step: the median over seeds "
        f"of each run's median over 10-step windows (one thread per run, {env.get('cpu', '?')}, "
        f"runs two at a time on a shared machine, torch {env.get('torch', '?')}); commits "
        f"{', '.join(commits) or '?'}. {done} runs finished"
        + (f"; not yet run: {', '.join(f'`{n}`' for n in missing)}." if missing else "."),
        *([] if not article else ["", article_seeds(rows)]),
        "",
        "**Conclusions the intervals support** (final accuracy, paired by seed). With "
        f"{COMPARISONS} comparisons at 95 % each, about {COMPARISONS / 20:.2f} would exclude "
        f"zero with no effect at all, so an effect is called firm only when its Bonferroni "
        f"interval ({100 * FIRM_LEVEL:.1f} %) excludes zero too:",
        "",
    ]
    verdicts = [verdict(n, paired(rows[n], article)) for n in studied if n != "article"] if (
        article
    ) else []  # fmt: skip
    for kind in ("better", "worse", "none", "pending"):
        lines += [f"- {sentence}" for k, sentence in verdicts if k == kind]
    if not article:
        lines.append(
            "- none yet: no run of `article` has finished, and every comparison is paired with it."
        )
    lines += ["", design_limit(rows)]
    if "plain" in rows and "gated" in rows:
        lines += ["", attention_claim(rows)]
    if any(n in rows for n in CONTROLS):
        lines += ["", *control_runs(rows)]
    full = results.get("full_protocol", [])
    if full:
        lines += ["", "The whole 10-epoch protocol, one seed each:", "",
                  "| variant | parameters | final accuracy | best test accuracy | ms per step |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for row in full:
            lines.append(
                f"| `{row['name']}` | {row['parameters']:,} | "
                f"{accuracy_text(row['final_accuracy'])} | "
                f"{accuracy_text(row['best_accuracy'])} | {statistics.median(row['step_ms']):.1f} |"
            )
        settings = results.get("full_protocol_settings", {})
        commits = sorted({c for r in full for c in r.get("commits", []) if c})
        lines += [
            "",
            f"{settings.get('epochs', '?')} epochs, cosine period "
            f"{settings.get('t_max_epochs', float('nan')):g} epochs, evaluation every "
            f"{settings.get('eval_every', '?')} steps (the article's cadence) and at the end; "
            f"seed 0; commits {', '.join(commits) or '?'}. With one seed there is no "
            f"interval: these rows check that the short study's picture holds at the "
            f"article's length; they do not measure a difference.",
        ]
    return "\n".join(lines).rstrip()


def _seed_set(seeds: list[int]) -> str:
    """``0–4`` for a run of consecutive seeds, else the list."""
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def evaluations(steps: int, eval_every: int) -> int:
    """Evaluations of a run: every ``eval_every`` steps, and one more at the end if needed."""
    return steps // eval_every + (1 if steps % eval_every else 0)


def test_share(epochs: int, eval_every: int, batch_size: int) -> float:
    """The share of homeostasis updates made on test images under the old protocol.

    Every training step updates the running mean once; every evaluation once per test
    batch (the article's eval-time updates).
    """
    steps = epochs * math.ceil(NUM_TRAIN / batch_size)
    test_updates = evaluations(steps, eval_every) * math.ceil(NUM_TEST / batch_size)
    return test_updates / (steps + test_updates)


def protocol_caveats(results: dict) -> list[str]:
    """Where the old protocol selected on the test set, in numbers from its settings."""
    proto = results["protocol"]
    steps = proto["epochs"] * math.ceil(NUM_TRAIN / proto["batch_size"])
    share = test_share(proto["epochs"], proto["eval_every"], proto["batch_size"])
    rows = results["variants"]
    extra = [f"`{r['name']}`" for r in rows if r["name"] != "article" and len(r["seeds"]) > 3]
    full = results.get("full_protocol_settings")
    long = ""
    if full:
        long_share = test_share(full["epochs"], full["eval_every"], full["batch_size"])
        long = f" and {100 * long_share:.0f} % in the {full['epochs']}-epoch runs"
    picked = (
        f"the variant that received extra seeds and a {full['epochs'] if full else 10}-epoch "
        f"run ({', '.join(extra)}) was picked as the highest mean final test accuracy"
        if extra
        else "the best variant was to be picked on test accuracy"
    )
    return [
        f"**These are {proto['epochs']}-epoch runs under the old protocol**, which selected on "
        f"the test set in three places: there is no validation split, so the "
        f"{evaluations(steps, proto['eval_every'])} periodic evaluations of each run are on "
        f'the test set and "best test accuracy" is the maximum over them; {picked}; and '
        f"homeostasis kept updating its running mean during evaluation (the article's "
        f"behaviour), so {100 * share:.0f} % of its updates in the {proto['epochs']}-epoch "
        f"runs{long} came from test images. Final accuracies are less exposed than best ones "
        f"(no maximum), but their homeostasis statistics saw the test set too. Part 2 below "
        f"fixes all three before its runs."
    ]


def article_seeds(rows: dict) -> str:
    """The `article` row's seed sets, said explicitly: its mean vs the paired seeds."""
    article = rows["article"]
    others = [r for n, r in rows.items() if n != "article"]
    common = sorted(set(article["seeds"]).intersection(*(r["seeds"] for r in others)))
    by_seed = dict(zip(article["seeds"], article["final_accuracy"], strict=True))
    text = (
        f"The `article` row's accuracy is its mean over seeds {_seed_set(article['seeds'])}; "
        f"each difference is paired on the seeds both rows have"
    )
    if common and common != article["seeds"]:
        mean = statistics.fmean(by_seed[s] for s in common)
        text += (
            f", which for most rows are seeds {_seed_set(common)}, where `article` averages "
            f"{100 * mean:.2f} %"
        )
    return text + "."


def design_limit(rows: dict) -> str:
    """How large an effect this design could call firm, in standard deviations."""
    counts = sorted({len(r["seeds"]) for n, r in rows.items() if n in GROUPS and n != "article"})
    n = counts[0] if counts else 3
    if n < 2:
        return "With one seed per variant no interval exists yet."
    width = t_quantile(FIRM_LEVEL, n - 1) / math.sqrt(n)
    return (
        f"With {n} paired seeds the {100 * FIRM_LEVEL:.1f} % interval reaches ±{width:.1f} "
        f"standard deviations of the paired differences, so only an effect larger than about "
        f"{width:.0f} of them could be called firm: these verdicts say more about the design "
        f"than about the biology."
    )


def attention_claim(rows: dict) -> str:
    """What ``plain`` vs ``gated`` can and cannot say about attention against weighted sums."""
    plain, gated = rows["plain"], rows["gated"]
    diffs = paired(plain, gated)
    fewer = 1 - plain["parameters"] / gated["parameters"]
    return (
        f"**Attention against weighted sums.** `plain` − `gated`: {difference_text(diffs)} points "
        f"(paired seeds). `gated` keeps attention (gated by the Hebbian weights) and falls "
        f"behind `article` about as far as `plain` does, and `plain` has {100 * fewer:.1f} % "
        f"fewer parameters (no query/key matrices), so these runs do not show that attention "
        f"beats weighted sums."
    )


def control_runs(rows: dict) -> list[str]:
    """The control runs of the no-message-passing explanation, compared paired by seed."""
    target = rows.get("no-message-passing")
    lines = [
        "**Control runs of the no-message-passing explanation.** Hypothesis: "
        "`no-message-passing` fails because homeostasis divides each column by a running "
        "mean near zero. It predicts that with that division removed or floored the columns "
        "alone train normally. Differences are paired by seed:",
        "",
    ]
    for name in CONTROLS:
        if name not in rows:
            lines.append(f"- `{name}`: not run yet.")
            continue
        row = rows[name]
        versus = difference_text(paired(row, target)) if target else "–"
        lines.append(
            f"- `{name}` (`{' '.join(row['flags'])}`): {accuracy_text(row['final_accuracy'])} "
            f"({len(row['seeds'])} seed{'s' if len(row['seeds']) != 1 else ''}); − "
            f"`no-message-passing`: {versus} points; − `article`: "
            f"{difference_text(paired(row, rows['article'])) if 'article' in rows else '–'} points."
        )
    return [*lines, "", control_verdict(rows)]


def control_verdict(rows: dict) -> str:
    """What the control runs say about the no-message-passing explanation, in a sentence."""
    target = rows.get("no-message-passing")
    done = [n for n in CONTROLS if n in rows and len(rows[n]["seeds"]) >= 3]
    if len(done) < len(CONTROLS) or not target:
        return "Until both controls have 3 seeds the explanation stays a hypothesis."
    recovered = []
    for name in CONTROLS:
        mean, half = interval(paired(rows[name], target))
        recovered.append(half is not None and mean - half > 0)
    if all(recovered):
        return (
            "Both controls beat `no-message-passing` with 95 % intervals above zero: the data "
            "support the explanation (3 seeds each, old protocol)."
        )
    if any(recovered):
        return (
            "Only one control beats `no-message-passing` with a 95 % interval above zero: the "
            "data support the explanation in part."
        )
    return (
        "Neither control beats `no-message-passing` with a 95 % interval above zero: the "
        "data do not support the explanation."
    )


def headline(results: dict) -> str:
    """The README paragraph: the headline finding in numbers, and the link.

    The variants that change a biological part (graph, message rule, dynamics) are summed
    up apart from the size and baseline variants, so "no detectable difference" counts
    only what it claims to; the 10-epoch runs close the paragraph when there are any.
    """
    rows = {r["name"]: r for r in results["variants"]}
    article = rows.get("article")
    if not article:
        done = sum(len(r["seeds"]) for r in rows.values())
        return (
            f"**Does the biology matter?** The ablation study is under way: {done} run"
            f"{'s' if done != 1 else ''} finished, none yet of the article's own model, so no "
            f"comparison can be made; progress and every finished run: "
            f"[docs/science.md](docs/science.md)."
        )
    diffs = {n: paired(rows[n], article) for n in rows if n != "article" and n not in CONTROLS}
    kinds = {n: verdict(n, d)[0] for n, d in diffs.items()}
    decided = [n for n, k in kinds.items() if k != "pending"]
    missing = [n for n in GROUPS if n not in rows]
    complete = not missing and len(decided) == len(kinds)

    def effect(n: str, firmness: bool = True) -> str:
        firm = f", {'firm' if is_firm(diffs[n]) else 'not firm'}" if firmness else ""
        return f"`{n}` ({difference_words(diffs[n])}{firm})"

    text = (
        f"**Does the biology matter?** In a {results['protocol']['epochs']}-epoch "
        f"Fashion-MNIST study with paired seeds (under an old protocol that selected on the "
        f"test set: see the page), the article's model reaches "
        f"{accuracy_text(article['final_accuracy'])} ({_seeds(len(article['seeds']))}"
        f"{_paired_mean(rows)})"
    )
    matched = rows.get("mlp-matched")
    if matched and diffs["mlp-matched"]:
        text += (
            f", and a one-hidden-layer MLP with its parameter count "
            f"{accuracy_text(matched['final_accuracy'])} ({difference_words(diffs['mlp-matched'])})"
        )
    text += ". "
    biology = [n for n in decided if GROUPS.get(n) in BIOLOGY]
    if biology:
        moved = [n for n in biology if kinds[n] != "none"]
        still = len(biology) - len(moved)
        verb = "s that change" if len(biology) != 1 else " that changes"
        text += (
            f"Of the {len(biology)} variant{verb} a biological part (graph, message rule "
            f"or dynamics)"
            f"{'' if complete else ' with intervals so far'}, {still} "
            f"make{'s' if still == 1 else ''} no detectable difference"
        )
        if moved and not any(is_firm(diffs[n]) for n in moved):
            text += (
                f"; {len(moved)} differ{'s' if len(moved) == 1 else ''} at 95 % but none "
                f"firmly (Bonferroni over {COMPARISONS} comparisons): "
                f"{'; '.join(effect(n, False) for n in moved)}. "
            )
        else:
            text += f"; detectable: {'; '.join(effect(n) for n in moved)}. " if moved else ". "
    others = [n for n in decided if n not in biology and n != "mlp-matched"]
    if others:
        moved = [n for n in others if kinds[n] != "none"]
        still = [f"`{n}`" for n in others if kinds[n] == "none"]
        parts = [effect(n) for n in moved]
        if still:
            parts.append(f"no detectable difference: {', '.join(still)}")
        text += f"Size and baselines: {'; '.join(parts)}. "
    pending = len(kinds) - len(decided)
    if pending:
        text += "1 variant still lacks" if pending == 1 else f"{pending} variants still lack"
        text += " a second seed. "
    if missing:
        text += f"Not yet run: {', '.join(f'`{n}`' for n in missing)}. "
    full = results.get("full_protocol", [])
    if full:
        epochs = results.get("full_protocol_settings", {}).get("epochs", "?")
        runs = ", ".join(f"`{r['name']}` {accuracy_text(r['final_accuracy'])}" for r in full)
        text += f"Over the full {epochs}-epoch protocol (one seed each): {runs}. "
    if any(n in rows for n in CONTROLS):
        text += (
            f"Is `no-message-passing`'s failure homeostasis dividing by a near-zero mean? "
            f"{control_verdict(rows)} "
        )
    return text + "Table, figure and intervals: [docs/science.md](docs/science.md)."


def _paired_mean(rows: dict) -> str:
    """``; 88.25 % on seeds 0–2, where the differences are paired`` when the sets differ."""
    article = rows["article"]
    others = [r for n, r in rows.items() if n != "article" and n not in CONTROLS]
    common = sorted(set(article["seeds"]).intersection(*(r["seeds"] for r in others)))
    if not common or common == article["seeds"]:
        return ""
    by_seed = dict(zip(article["seeds"], article["final_accuracy"], strict=True))
    mean = statistics.fmean(by_seed[s] for s in common)
    return f"; {100 * mean:.2f} % on seeds {_seed_set(common)}, where the differences are paired"


def _seeds(count: int) -> str:
    return f"{count} seed{'s' if count != 1 else ''}"


def axis_range(means: list, halves: list, centre: float | None) -> tuple[float, float]:
    """The figure's accuracy axis in %, ``(low, high)``.

    It spans the intervals of the variants within 5 points of ``centre`` (the article's
    mean) with a point of margin: a far outlier would squeeze the differences that matter,
    so the figure labels it instead of drawing it.
    """
    spans = [(m - h, m + h) for m, h in zip(means, halves, strict=True)]
    near = [s for s, m in zip(spans, means, strict=True) if centre is None or abs(m - centre) <= 5]
    low = min(lo for lo, _ in near or spans) - 1.0
    high = max(hi for _, hi in near or spans) + 1.0
    return low, high


def plot(results: dict, path: Path) -> Path | None:
    """Final accuracy per variant with 95 % intervals; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = {r["name"]: r for r in results["variants"]}
    names = [n for n in GROUPS if n in rows][::-1]
    means, halves = [], []
    for name in names:
        mean, half = interval([100 * a for a in rows[name]["final_accuracy"]])
        means.append(mean)
        halves.append(half or 0.0)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    colors = ["tab:gray" if GROUPS[n] == "baseline" else "tab:blue" for n in names]
    ax.barh(range(len(names)), means, xerr=halves, color=colors, alpha=0.8, capsize=3)
    for i, name in enumerate(names):  # every seed as a dot
        ax.plot([100 * a for a in rows[name]["final_accuracy"]], [i] * len(rows[name]["seeds"]),
                "k.", markersize=3)  # fmt: skip
    centre = None  # the article's mean, in %
    if "article" in rows:
        centre = statistics.fmean(rows["article"]["final_accuracy"]) * 100
        ax.axvline(centre, color="tab:red", linewidth=1, label="article (mean)")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    low, high = axis_range(means, halves, centre)
    ax.set_xlim(max(0.0, low), min(100.0, high))
    for i, mean in enumerate(means):
        if mean < low:
            ax.annotate(f"◀ {mean:.1f} % (off the axis)", (low, i), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=8)  # fmt: skip
    ax.set_xlabel("final test accuracy, % (mean, 95 % interval, seeds as dots)")
    ax.set_title(f"Fashion-MNIST, {results['protocol']['epochs']} epochs", fontsize=10)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    for doc in args.update_doc:
        doc = Path(doc)
        if doc.name == "README.md":
            harness.replace_between(doc, README_START, README_END, headline(results))
        else:
            harness.replace_between(doc, DOC_START, DOC_END, render(results))
    if args.plot:
        plot(results, Path(args.plot))
    return results


if __name__ == "__main__":
    main()
