"""Tables and plots of a ``benchmarks/cora.py`` result (``benchmarks/results/cora.json``).

``render`` is the Markdown that ``docs/layer.md`` shows between its Cora markers and
``plot`` the figure beside it (``docs/img/cora.png``): per-seed test accuracy and the
epoch times of every layer, so spread and overlap are visible at a glance.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks import harness
from benchmarks.plots import save_figure

LABELS = {
    "column": "ColumnAttentionConv (projection='first')",
    "column_pyg": "ColumnAttentionConv (projection='first', fused=False)",
    "gat": "GATConv",
}
PLOT_LABELS = {
    "column": "ColumnAttentionConv\n(fused kernel)",
    "column_pyg": "ColumnAttentionConv\n(fused=False)",
    "gat": "GATConv",
}
DOC_START, DOC_END = "<!-- cora-table:start -->", "<!-- cora-table:end -->"


def render(result: dict) -> str:
    """The Markdown table of a result (what ``docs/layer.md`` shows between its markers).

    Every layer is compared with GATConv (when it ran): points of mean test accuracy, and
    the relative time of a training epoch and of the two attention layers alone.
    """
    env, args, models = result["environment"], result["args"], result["models"]
    layers = result.get("attention_layers", {})
    gat, gat_layers = models.get("gat"), layers.get("gat")  # the baseline, when it ran
    lines = [
        f"| layer | test accuracy, {args['seeds']} seeds | vs GATConv | ms per training epoch, "
        "median (IQR) | vs GATConv | attention layers alone, ms | vs GATConv | parameters |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, summary in models.items():
        low, high = summary["epoch_ms_iqr"]
        alone = layers.get(kind, {}).get("median_ms")
        cells = [
            LABELS[kind],
            f"{100 * summary['test_acc_mean']:.1f} ± {100 * summary['test_acc_std']:.1f} %",
            _versus(100 * summary["test_acc_mean"], gat and 100 * gat["test_acc_mean"], kind),
            f"{summary['epoch_ms_median']:.1f} ({low:.1f}-{high:.1f})",
            _versus(summary["epoch_ms_median"], gat and gat["epoch_ms_median"], kind, "%"),
            "-" if alone is None else f"{alone:.1f}",
            _versus(alone, gat_layers and gat_layers["median_ms"], kind, "%"),
            f"{summary['params']:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    load = env.get("load_average_at_start")
    lines.append("")
    lines.append(
        "vs GATConv: points of mean accuracy, per cent of time. Attention layers alone: both "
        "convolutions of the model, forward and backward in training mode, median of "
        "interleaved rounds (no input dropout, loss or optimiser)."
    )
    lines.append("")
    lines.append(
        f"{env['cpu']}, {env['num_threads']} thread(s), load average "
        f"{load[0]:.1f} at the start; torch {env['torch']}, PyG {env['torch_geometric']}, "
        f"commit {env['git_commit']}, {env['date_utc']}. {args['epochs']} epochs per seed; "
        f"median over epochs (first {min(5, args['epochs'] - 1)} dropped) of "
        "forward+backward+Adam step, all models trained in lockstep with alternating order."
    )
    return "\n".join(lines)


def _versus(value: float | None, baseline: float | None, kind: str, unit: str = "") -> str:
    """``value`` against GATConv's: a difference in points, or in per cent with ``unit="%"``."""
    if kind == "gat":
        return "baseline"
    if value is None or baseline is None:
        return "-"
    if unit == "%":
        return f"{100 * (value / baseline - 1):+.1f} %"
    return f"{value - baseline:+.1f}"


def update_doc(path: Path, result: dict) -> None:
    """Replace the text between the Cora table markers of ``path`` by ``render(result)``."""
    harness.replace_between(path, DOC_START, DOC_END, render(result))


def plot(result: dict, path: Path) -> Path | None:
    """Write the Cora figure to ``path``; ``None`` (nothing written) without matplotlib.

    One point per seed and layer, with the mean and one standard deviation beside them:
    test accuracy on the left, the median training epoch time of the seed on the right.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    models = result["models"]
    panels = (
        ("test_acc", 100, "test accuracy (%)", f"{result['args']['seeds']} seeds"),
        (
            "epoch_ms_median_per_seed",
            1,
            "ms per training epoch (median of a seed)",
            f"{result['environment']['num_threads']} CPU thread(s), models in lockstep",
        ),
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (key, factor, ylabel, title) in zip(axes, panels, strict=True):
        for pos, summary in enumerate(models.values()):
            values = torch.tensor(summary[key], dtype=torch.float64) * factor
            jitter = torch.linspace(-0.08, 0.08, len(values))
            ax.scatter(pos + jitter, values, s=18, alpha=0.7, color=f"C{pos}")
            std = float(values.std()) if len(values) > 1 else 0.0
            ax.errorbar(pos + 0.22, float(values.mean()), yerr=std, fmt="o", color="k", capsize=4)
        ax.set_xticks(range(len(models)), [PLOT_LABELS[kind] for kind in models], fontsize=8)
        ax.set_xlim(-0.5, len(models) - 0.5)
        ax.set(ylabel=ylabel, title=title)
        ax.title.set_fontsize(9)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Cora: the PyG GAT example's model, one convolution swapped", fontsize=10)
    return save_figure(fig, path)
