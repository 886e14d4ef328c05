"""Tables and plots of a ``benchmarks/cora.py`` result (``benchmarks/results/cora.json``).

``render`` is the Markdown that ``docs/layer.md`` shows between its Cora markers and
``plot`` the figure beside it (``docs/img/cora.png``): per-seed test accuracy and the
distribution of epoch times of both layers, so spread and overlap are visible at a glance.
"""

from __future__ import annotations

from pathlib import Path

import torch

LABELS = {"column": "ColumnAttentionConv (project_first)", "gat": "GATConv"}
DOC_START, DOC_END = "<!-- cora-table:start -->", "<!-- cora-table:end -->"


def render(result: dict) -> str:
    """The Markdown table of a result (what ``docs/layer.md`` shows between its markers)."""
    env, args = result["environment"], result["args"]
    lines = [
        f"| layer | test accuracy, {args['seeds']} seeds | ms per training epoch, median "
        "(IQR) | parameters |",
        "|---|---|---|---|",
    ]
    for kind, summary in result["models"].items():
        low, high = summary["epoch_ms_iqr"]
        lines.append(
            f"| {LABELS[kind]} | {100 * summary['test_acc_mean']:.1f} ± "
            f"{100 * summary['test_acc_std']:.1f} % | {summary['epoch_ms_median']:.1f} "
            f"({low:.1f}-{high:.1f}) | {summary['params']:,} |"
        )
    models = result["models"]
    if {"column", "gat"} <= set(models):
        column, gat = models["column"], models["gat"]
        lines.append("")
        lines.append(
            f"ColumnAttentionConv minus GATConv: "
            f"{100 * (column['test_acc_mean'] - gat['test_acc_mean']):+.1f} points of mean "
            f"test accuracy, {100 * (column['epoch_ms_median'] / gat['epoch_ms_median'] - 1):+.1f}"
            f" % time per epoch."
        )
        layers = result.get("attention_layers")
        if layers:
            column_ms, gat_ms = layers["column"]["median_ms"], layers["gat"]["median_ms"]
            lines.append("")
            lines.append(
                f"The two attention layers alone (forward + backward, training mode, median of "
                f"interleaved rounds): ColumnAttentionConv {column_ms:.1f} ms, GATConv "
                f"{gat_ms:.1f} ms ({100 * (column_ms / gat_ms - 1):+.1f} %)."
            )
    load = env.get("load_average_at_start")
    lines.append("")
    lines.append(
        f"{env['cpu']}, {env['num_threads']} thread(s), shared with other jobs (load average "
        f"{load[0]:.1f} at the start); torch {env['torch']}, PyG {env['torch_geometric']}, "
        f"commit {env['git_commit']}, {env['date_utc']}. {args['epochs']} epochs per seed; "
        f"{result['timing']}."
    )
    return "\n".join(lines)


def update_doc(path: Path, result: dict) -> None:
    """Replace the text between the Cora table markers of ``path`` by ``render(result)``."""
    text = path.read_text()
    head, rest = text.split(DOC_START, 1)
    _, tail = rest.split(DOC_END, 1)
    path.write_text(f"{head}{DOC_START}\n{render(result)}\n{DOC_END}{tail}")


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
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, (key, factor, ylabel, title) in zip(axes, panels, strict=True):
        for pos, summary in enumerate(models.values()):
            values = torch.tensor(summary[key], dtype=torch.float64) * factor
            jitter = torch.linspace(-0.08, 0.08, len(values))
            ax.scatter(pos + jitter, values, s=18, alpha=0.7, color=f"C{pos}")
            std = float(values.std()) if len(values) > 1 else 0.0
            ax.errorbar(pos + 0.22, float(values.mean()), yerr=std, fmt="o", color="k", capsize=4)
        ax.set_xticks(range(len(models)), [LABELS[kind] for kind in models], fontsize=8)
        ax.set_xlim(-0.5, len(models) - 0.5)
        ax.set(ylabel=ylabel, title=title)
        ax.title.set_fontsize(9)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Cora: the PyG GAT example's model, one convolution swapped", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
