"""The study's graph tables: where information can travel before it is read out.

Message passing moves information one hop per iteration, so after ``k`` iterations a
readout column holds what the columns within ``k`` hops of it saw. Two tables rest on that:

- **B's hop distances** (:func:`hop_table`, ``results/study_hops.json``, committed before
  B's runs): ``d``, the fewest hops from a column over each item to the readout column,
  per graph and seed. B's prediction is chance where ``d`` exceeds the iterations.
- **A's reach** (:func:`reach_table`, ``results/study_reach.json``, exploratory): for A's
  one-column readout, how many columns lie within ``k`` hops of it and what share of the
  image's pixels their patches cover, per graph, seed and ``k``. The graphs and patches
  are built by the model's own code from each row's training flags.

    python -m benchmarks.study --hops     # writes both tables
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from benchmarks.ablation import save

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HOPS = RESULTS_DIR / "study_hops.json"
REACH = RESULTS_DIR / "study_reach.json"
#: the iteration counts of A's reach table (0: the readout column's own patch)
REACH_ITERS = (0, 1, 2, 4, 8)

__all__ = [
    "HOPS",
    "REACH",
    "REACH_ITERS",
    "a_model_config",
    "b_graphs",
    "hop_table",
    "item_columns",
    "reach_table",
    "write_tables",
]


# --- experiment B: hop distance from the items to the readout column ---------------------


def b_graphs() -> dict:
    """Experiment B's graphs over the 7 x 7 grid of 49 columns: name -> builder(seed)."""
    from cortexgnn.graph import (
        complete_graph,
        lattice_graph,
        rewired_lattice_graph,
        small_world_graph,
    )

    return {
        "ring": lambda seed: small_world_graph(49, 8, 0.0, seed=seed),
        "small-world-0.05": lambda seed: small_world_graph(49, 8, 0.05, seed=seed),
        "small-world-0.15": lambda seed: small_world_graph(49, 8, 0.15, seed=seed),
        "small-world-0.5": lambda seed: small_world_graph(49, 8, 0.5, seed=seed),
        "lattice": lambda seed: lattice_graph(7, 7),
        "rewired-lattice-0.15": lambda seed: rewired_lattice_graph(7, 7, 0.15, seed=seed),
        "random": lambda seed: small_world_graph(49, 8, 1.0, seed=seed),
        "complete": lambda seed: complete_graph(49),
    }


def item_columns(grid: int, patch: int, item: int, canvas: int) -> tuple[list[int], list[int]]:
    """The columns whose patch overlaps the top-left item, and the bottom-right item's.

    Columns sit row-major on a ``grid x grid`` grid, their patches at stride ``patch`` on a
    ``canvas x canvas`` canvas with ``item x item`` items in opposite corners.
    """

    def overlaps(start: int, stop: int) -> list[int]:
        return [g for g in range(grid) if g * patch < stop and (g + 1) * patch > start]

    near, far = overlaps(0, item), overlaps(canvas - item, canvas)
    return [r * grid + c for r in near for c in near], [r * grid + c for r in far for c in far]


def hop_table(seeds: int = 5) -> dict:
    """B's hop distance ``d`` per graph and seed, with diameter and mean hop count.

    ``d`` is the larger, over the two items, of the fewest hops from a column over the item
    to the readout column (the grid's top-right corner): 56 x 56 canvas, 28 x 28 items,
    8 x 8 patches at stride 8.
    """
    from cortexgnn.graph import graph_stats, hops_to

    grid, readout = 7, 6
    first, second = item_columns(grid, 8, 28, 56)
    table = {}
    for name, build in b_graphs().items():
        rows = []
        for seed in range(seeds):
            edge_index = build(seed)
            hops = [hops_to(edge_index, grid * grid, cols, readout) for cols in (first, second)]
            stats = graph_stats(edge_index, grid * grid)
            d = None if None in hops else max(hops)
            rows.append({"seed": seed, "d": d, "diameter": stats["diameter"],
                         "mean_hops": stats["mean_hops"],
                         "num_edges": stats["num_edges"]})  # fmt: skip
        table[name] = rows
    return {"grid": grid, "readout": readout, "items": [first, second], "graphs": table}


# --- experiment A: what the one-column readout can hear ----------------------------------


def a_model_config(flags: tuple[str, ...], seed: int, in_dim: int = 28 * 28):
    """The ``ModelConfig`` that ``cortexgnn train FLAGS --seed SEED`` builds (10 classes).

    The flags go through the CLI's own parser, so the graph and the patches are the ones
    a training run with those flags uses (its graph seeded by the run seed).
    """
    from cortexgnn.cli import get_parser
    from cortexgnn.nn.config import ModelConfig

    args = get_parser().parse_args(["train", *flags])
    values = {f.name: getattr(args, f.name) for f in fields(ModelConfig) if hasattr(args, f.name)}
    values.update(in_dim=in_dim, top_out=10, graph_seed=seed)
    return ModelConfig().replace(**values)


def reach_table(seeds: int = 3) -> dict:
    """A's one-column readout: the columns within ``k`` hops and the pixels they read.

    For each of A's graphs, seed and ``k`` in :data:`REACH_ITERS`: ``columns``, how many
    columns (the readout column included) can reach the readout column in ``k`` hops, and
    ``pixels``, the share of the image covered by their patches.
    """
    import torch

    from benchmarks import study
    from cortexgnn.graph import hop_distances
    from cortexgnn.nn.topography import Patches, column_graph, image_shape, patch_stride

    table = {}
    for name, graph_flags in study.A_GRAPHS.items():
        rows = []
        for seed in range(seeds):
            config = a_model_config(study.A_COLUMNS + graph_flags, seed)
            cut = Patches(image_shape(config), config.patch_size, patch_stride(config))
            pixel_ids = torch.arange(config.in_dim, dtype=torch.float32).unsqueeze(0)  # [1, D]
            read = cut(pixel_ids)[:, 0].long()  # [N, P]: the pixels each column reads
            hops = hop_distances(column_graph(config), config.num_columns)[:, study.A_READOUT]
            row = {"seed": seed}
            for k in REACH_ITERS:
                near = (hops >= 0) & (hops <= k)  # [N]
                seen = torch.zeros(config.in_dim, dtype=torch.bool)
                seen[read[near].flatten()] = True
                row[str(k)] = {"columns": int(near.sum()), "pixels": int(seen.sum()) / seen.numel()}
            rows.append(row)
        table[name] = rows
    return {"readout": study.A_READOUT, "iterations": list(REACH_ITERS), "graphs": table}


def write_tables() -> dict:
    """Write both tables to ``benchmarks/results`` and return them."""
    tables = {"hops": hop_table(), "reach": reach_table()}
    save(HOPS, tables["hops"])
    save(REACH, tables["reach"])
    return tables
