"""Pictures of a neuron-network run: action raster, transmitter traces, link animation.

The application side of :mod:`cortexgnn.neurons` (matplotlib lives here, never in the core).
The animation is the article's GUI idea: neurons laid out with networkx, a link drawn
bright while it carries transmitters, each neuron coloured by what it did that sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from cortexgnn.neurons.actions import Action

# one colour per Action code: accumulate, activate, transmit, release, recover
ACTION_COLOURS = ("#d9d9d9", "#fdae61", "#abd9e9", "#d7191c", "#2c7bb6")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: the most rows a raster draws: more would be a pixel tall each
MAX_RASTER_ROWS = 40


def _action_legend(ax) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=a.word) for a, c in zip(Action, ACTION_COLOURS, strict=True)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)


def raster(actions: Tensor, path: str | Path | None = None, names: Sequence[str] | None = None):
    """Actions over time: one row per neuron, one column per sweep (``actions [T, N]``).

    With more than :data:`MAX_RASTER_ROWS` neurons only the busiest are drawn (most sweeps
    doing something besides accumulating, ties in neuron order), each row labelled, so an
    active neuron among hundreds of quiet ones is a row you can see, not a pixel.
    """
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    num_steps, num_nodes = actions.shape
    rows = torch.arange(num_nodes)
    title = "actions per sweep"
    if num_nodes > MAX_RASTER_ROWS:
        busy = (actions != Action.ACCUMULATE).sum(0)  # [N] sweeps doing something else
        rows = torch.sort(-busy, stable=True).indices[:MAX_RASTER_ROWS]  # busiest first
        title += f" (the {MAX_RASTER_ROWS} busiest of {num_nodes} neurons)"
    shown = actions[:, rows]  # [T, R]
    height = min(2 + rows.numel() * 0.25, 10)
    fig, ax = plt.subplots(figsize=(min(5.5 + num_steps * 0.15, 15), height))
    ax.imshow(
        shown.t().cpu().numpy(),
        aspect="auto",
        interpolation="nearest",
        cmap=ListedColormap(ACTION_COLOURS),
        vmin=-0.5,
        vmax=len(Action) - 0.5,
        extent=(0.5, num_steps + 0.5, rows.numel() - 0.5, -0.5),
    )
    ax.set_xlabel("sweep")
    ax.set_ylabel("neuron")
    labels = [names[k] if names is not None else str(k) for k in rows.tolist()]
    ax.set_yticks(range(rows.numel()), labels)
    _action_legend(ax)
    ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def traces(
    current_state: Tensor,
    nodes: Sequence[int],
    path: str | Path | None = None,
    names: Sequence[str] | None = None,
    thresholds: Sequence[float] | None = None,
):
    """Excitatory, inhibitory and summed ``current_state`` of chosen neurons over time.

    Args:
        current_state: ``[T, M, 2]`` recorded for the neurons ``nodes`` (one copy).
        nodes: the neurons' indices, for the legend.
        path: save the figure here.
        names: all neurons' names (default their indices).
        thresholds: each drawn neuron's threshold, a dashed line when given.
    """
    plt = _pyplot()
    num_steps = current_state.size(0)
    sweeps = torch.arange(1, num_steps + 1).numpy()
    fig, axes = plt.subplots(len(nodes), 1, figsize=(8, 1.6 + 1.5 * len(nodes)), squeeze=False)
    for row, (ax, k) in enumerate(zip(axes[:, 0], nodes, strict=True)):
        pair = current_state[:, row].cpu()
        label = names[k] if names is not None else f"{k}"
        ax.plot(sweeps, pair[:, 0].numpy(), color="#d7191c", label="excitatory")
        ax.plot(sweeps, pair[:, 1].numpy(), color="#2c7bb6", label="inhibitory")
        ax.plot(sweeps, pair.sum(-1).numpy(), color="black", lw=1, label="sum")
        if thresholds is not None:
            ax.axhline(thresholds[row], color="grey", ls="--", lw=1, label="threshold")
        ax.set_ylabel(f"neuron {label}")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    axes[-1, 0].set_xlabel("sweep")
    fig.suptitle("current_state (after each sweep)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def animate(
    edge_index: Tensor,
    num_nodes: int,
    actions: Tensor,
    sent: Tensor,
    path: str | Path,
    names: Sequence[str] | None = None,
    fps: int = 4,
    seed: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> Path:
    """A GIF of the network: a link is lit while it carries transmitters that sweep.

    Args:
        edge_index: ``[2, E]`` links.
        num_nodes: ``N``.
        actions: ``[T, N]`` action codes (one copy).
        sent: ``[T, N, 2]`` what each neuron handed out per sweep (``run(record=("sent",))``).
        path: the ``.gif`` to write.
        names: node labels (drawn for up to 30 neurons).
        fps: frames (sweeps) per second.
        seed: the spring layout's seed.
        progress: called as ``progress(frame, num_frames)`` after each frame is drawn
            (drawing takes a while for large networks).
    """
    import networkx as nx

    plt = _pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    graph = nx.DiGraph()
    graph.add_nodes_from(range(num_nodes))
    links = [tuple(e) for e in edge_index.t().tolist()]
    graph.add_edges_from(links)
    layout = nx.spring_layout(graph, seed=seed)
    degree = torch.bincount(edge_index[0], minlength=num_nodes).clamp(min=1)  # [N]
    carried = sent.abs().sum(-1) / degree  # [T, N] per-link amount of each sender
    scale = float(carried.max()) or 1.0
    fig, ax = plt.subplots(figsize=(7.5, 6))

    def frame(t: int):
        ax.clear()
        ax.set_axis_off()
        # brightness on a log scale over three decades below the run's largest share
        relative = carried[t, edge_index[0]] / scale  # [E]
        light = ((relative.clamp(min=1e-30).log10() + 3) / 3).clamp(0, 1)  # [E] 0 dark, 1 lit
        widths = [0.6 + 4.4 * float(a) for a in light]
        colours = [(0.85, 0.1, 0.1, 0.2 + 0.8 * float(a)) if a > 0 else (0.6, 0.6, 0.6, 0.5)
                   for a in light]  # fmt: skip
        nx.draw_networkx_edges(graph, layout, edgelist=links, width=widths, edge_color=colours,
                               ax=ax, arrows=True, arrowsize=8)  # fmt: skip
        node_colours = [ACTION_COLOURS[int(a)] for a in actions[t]]
        nx.draw_networkx_nodes(graph, layout, node_color=node_colours, node_size=160, ax=ax,
                               edgecolors="black", linewidths=0.5)  # fmt: skip
        if num_nodes <= 30:
            labels = {k: (names[k] if names is not None else f"{k}") for k in range(num_nodes)}
            nx.draw_networkx_labels(graph, layout, labels=labels, font_size=7, ax=ax)
        ax.set_title(f"sweep {t + 1}: links lit by what they carry (log scale)")
        _action_legend(ax)  # what each neuron's colour means

    fig.subplots_adjust(right=0.78)  # room for the legend
    animation = FuncAnimation(fig, frame, frames=actions.size(0))
    path = Path(path)
    animation.save(path, writer=PillowWriter(fps=fps), progress_callback=progress)
    plt.close(fig)
    return path
