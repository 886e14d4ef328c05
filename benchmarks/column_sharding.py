"""Column sharding: strong and weak scaling, compute vs communication, halo bytes.

Each configuration starts ``P`` gloo processes (one thread each) that train a
:class:`~cortexgnn.parallel.model.ShardedCortexNet` on random batches: warm-up steps, then
timed steps, each between two barriers. A step's communication time is what its halo
all-to-alls took (forward and backward, waiting for slower peers included, from
:class:`~cortexgnn.parallel.collectives.HaloTraffic`); compute is the rest. The bytes each
process sent per message iteration are counted and compared with the plan's prediction
(:meth:`~cortexgnn.parallel.plan.HaloPlan.halo_bytes`), which must agree exactly.

- strong scaling: ``N`` columns (default 2,048) on ``P = 1, 2`` (``--strong 1 2 4``);
- weak scaling: ``--per-process`` columns (default 1,024) on each of ``P`` processes;
- a labelled *projection* of the article's model at 150,000 columns on ``P = 8 ... 1024``
  processes of a cluster, from a per-process GEMM rate and a link bandwidth (inputs) and
  the halo volume of contiguous ranges of a Watts-Strogatz graph (computed here).

Sizes: ``in_dim`` 64 (the digits data of ``cortexgnn train``; the article's 784 would need
11 GB of training state at 2,048 columns on one process), everything else
``ModelConfig()``'s. Run it on a quiet machine:

    python benchmarks/column_sharding.py
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
from pathlib import Path

import torch

from benchmarks import gloo_workers, harness
from cortexgnn import ModelConfig, small_world_graph
from cortexgnn.parallel.plan import column_bounds

NAME = "column_sharding"


def get_parser() -> argparse.ArgumentParser:
    p = harness.new_parser(__doc__)
    p.add_argument("--num-columns", type=int, default=2048, help="strong scaling N")
    p.add_argument("--strong", type=int, nargs="*", default=[1, 2], help="process counts")
    p.add_argument("--per-process", type=int, default=1024, help="weak scaling columns/process")
    p.add_argument("--weak", type=int, nargs="*", default=[1, 2], help="process counts")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--in-dim", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    p.add_argument("--projection-columns", type=int, default=150_000)
    p.add_argument("--projection-processes", type=int, nargs="*",
                   default=[8, 16, 32, 64, 128, 256, 512, 1024])  # fmt: skip
    p.add_argument("--gemm-tflops", type=float, default=50.0,
                   help="projection input: sustained fp32 GEMM TFLOP/s per process")  # fmt: skip
    p.add_argument("--link-gbps", type=float, default=400.0,
                   help="projection input: per-process link bandwidth, Gb/s")  # fmt: skip
    p.add_argument("--out-dir", default=None, help="default benchmarks/results")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--render", action="store_true",
                   help="only re-render docs/scaling.md from the committed results")  # fmt: skip
    return p


def _worker(rank: int, world_size: int, port: int, config: ModelConfig, args, out: str) -> None:
    gloo_workers.join(rank, world_size, port)
    model, batch = gloo_workers.sharded_model(config, args.batch_size)
    comms, sent = [], []

    def count() -> None:
        comms.append(model.traffic.seconds)
        sent.append(model.traffic.sent_bytes)

    steps = gloo_workers.timed_steps(model, batch, args.warmup, args.steps, after=count,
                                     before=model.traffic.reset)  # fmt: skip
    plan = model.plan
    torch.save(
        {
            "step_s": steps,
            "comm_s": comms,
            "sent_bytes_per_step": sent,
            "calls_per_step": model.traffic.calls,
            "predicted_bytes_per_iteration": plan.halo_bytes(args.batch_size, config.col_out),
            "num_local": plan.num_local,
            "num_halo": plan.num_halo,
            "num_parameters": sum(p.numel() for p in model.parameters()),
        },
        os.path.join(out, f"rank{rank}.pt"),
    )
    torch.distributed.destroy_process_group()


def run_config(num_columns: int, world_size: int, args) -> dict:
    """Time one (N, P): per-step medians over the timed steps, rank 0's clock."""
    config = ModelConfig(num_columns=num_columns, in_dim=args.in_dim, graph_seed=0)
    ranks = gloo_workers.spawn(_worker, world_size, config, args)
    iters = config.message_iters
    step = statistics.median(ranks[0]["step_s"])
    # a step is as slow as its slowest process, so communication is taken per step as the
    # least any process spent in it (the rest of that process's wait is load imbalance)
    comm = statistics.median(
        min(r["comm_s"][i] for r in ranks) for i in range(len(ranks[0]["comm_s"]))
    )
    measured = [r["sent_bytes_per_step"][-1] // iters if iters else 0 for r in ranks]
    predicted = [r["predicted_bytes_per_iteration"] for r in ranks]
    return {
        "num_columns": num_columns,
        "processes": world_size,
        "columns_per_process": [r["num_local"] for r in ranks],
        "halo_rows_per_process": [r["num_halo"] for r in ranks],
        "step_s": step,
        "step_iqr_s": _iqr(ranks[0]["step_s"]),
        "steps_per_s": 1.0 / step,
        "comm_s": comm,
        "compute_s": step - comm,
        "comm_share": comm / step,
        "halo_bytes_per_iteration_measured": measured,
        "halo_bytes_per_iteration_predicted": predicted,
        "halo_bytes_agree": measured == predicted,
        "num_parameters_per_process": [r["num_parameters"] for r in ranks],
    }


def _iqr(values: list[float]) -> float:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[2] - q[0]


def halo_cut(num_columns: int, world_size: int, k: int = 8, p: float = 0.15, seed: int = 0,
             edge_index: torch.Tensor | None = None, balanced: bool = False) -> dict:  # fmt: skip
    """Rows sent per message iteration for contiguous ranges of a Watts-Strogatz graph.

    The same count as the halo plan (each state once per destination process), without
    building every process's plan: unique ``(source, destination rank)`` pairs of the
    edges that cross ranks. ``balanced`` splits into ranges of ``floor`` or ``ceil(N/P)``
    columns instead of the plan's chunks (which leave ranks empty at 150,000 / 1,024).
    """
    if edge_index is None:
        edge_index = small_world_graph(num_columns, k, p, seed=seed)
    if balanced:
        bounds = torch.tensor([r * num_columns // world_size for r in range(world_size + 1)])
    else:
        bounds = torch.tensor(column_bounds(num_columns, world_size))
    source, target = edge_index
    src_rank = torch.bucketize(source, bounds, right=True) - 1
    dst_rank = torch.bucketize(target, bounds, right=True) - 1
    cross = src_rank != dst_rank
    pairs = torch.unique(source[cross] * world_size + dst_rank[cross])  # [rows sent]
    sent_per_rank = torch.bincount(
        torch.bucketize(pairs // world_size, bounds, right=True) - 1, minlength=world_size
    )
    return {
        "cross_edge_share": float(cross.float().mean()),
        "rows_sent_total": int(pairs.numel()),
        "rows_sent_max_per_process": int(sent_per_rank.max()),
        "columns_per_process": math.ceil(num_columns / world_size),
    }


def projection(args) -> dict:
    """The labelled cluster projection (see the module docstring); FLOPs counted by hand.

    Per column and training step (forward + backward = 3x forward), fp32, ``B`` samples:
    the column GEMMs ``2 B F D S`` (``S`` = 3 branches), the query/key fold ``2 D^3``, and
    per message iteration the folded queries ``2 B D^2`` and ``4 k B D`` for the scores and
    values of ``k`` in-edges. Communication: each iteration sends the halo rows ``B D``
    fp32 forward and their gradients back.
    """
    config = ModelConfig(num_columns=args.projection_columns)
    batch, dim, feat = 128, config.col_out, config.in_dim  # the article's batch and model
    per_column = 3 * (
        2 * batch * feat * dim * 3
        + 2 * dim**3
        + config.message_iters * (2 * batch * dim * dim + 4 * config.graph_k * batch * dim)
    )
    graph = small_world_graph(config.num_columns, config.graph_k, config.graph_p, seed=0)
    rows = []
    for world_size in args.projection_processes:
        cut = halo_cut(config.num_columns, world_size, edge_index=graph, balanced=True)
        compute = per_column * cut["columns_per_process"] / (args.gemm_tflops * 1e12)
        halo_bytes = 2 * config.message_iters * cut["rows_sent_max_per_process"] * batch * dim * 4
        comm = halo_bytes / (args.link_gbps * 1e9 / 8)
        rows.append({"processes": world_size, **cut, "compute_s": compute,
                     "halo_bytes_per_step": halo_bytes, "comm_s": comm,
                     "comm_share_without_overlap": comm / (compute + comm)})  # fmt: skip
    return {
        "label": "projection, not a measurement",
        "num_columns": config.num_columns,
        "batch_size": batch,
        "gemm_tflops_per_process": args.gemm_tflops,
        "link_gbps_per_process": args.link_gbps,
        "flops_per_column_per_step": per_column,
        "training_state_bytes_per_column": 16 * _parameters_per_column(config),
        "rows": rows,
    }


def _parameters_per_column(config: ModelConfig) -> int:
    branches = 3 if config.in_dim != config.col_out else 2
    return branches * config.col_out * config.in_dim + 2 * config.col_out * (1 + config.col_out)


DOC = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"
START, END = "<!-- column-sharding:start -->", "<!-- column-sharding:end -->"


def render(result: dict) -> str:
    """The Markdown tables of docs/scaling.md from a result of :func:`main`."""
    env = result["environment"]
    lines = [
        "| scaling | N | P | columns / process | s / step (IQR) | steps/s vs P = 1 | "
        "communication | halo bytes / iteration, measured = planned |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("strong", "weak"):
        for row in result[kind]:
            speedup = f"{row['speedup']:.2f}x" if "speedup" in row else "-"
            measured = row["halo_bytes_per_iteration_measured"]
            agree = "yes" if row["halo_bytes_agree"] else "**no**"
            lines.append(
                f"| {kind} | {row['num_columns']:,} | {row['processes']} | "
                f"{'/'.join(str(c) for c in row['columns_per_process'])} | "
                f"{row['step_s']:.3f} ({row['step_iqr_s']:.3f}) | {speedup} | "
                f"{100 * row['comm_share']:.1f} % | "
                f"{' + '.join(f'{b:,}' for b in measured)} ({agree}) |"
            )
    setting = (
        f"one thread per process, gloo, batch {result['args']['batch_size']}, in_dim "
        f"{result['args']['in_dim']}"
    )
    lines += [
        "",
        harness.measured_on(env, setting) + " "
        f"Medians of {result['args']['steps']} steps after "
        f"{result['args']['warmup']} warm-up steps.",
        "",
    ]
    proj = result["projection"]
    lines += [
        f"**Projection, not a measurement**: the article's model (batch {proj['batch_size']}) "
        f"at {proj['num_columns']:,} columns, {proj['gemm_tflops_per_process']:g} TFLOP/s "
        f"per process, {proj['link_gbps_per_process']:g} Gb/s per process, no overlap of "
        f"communication and compute; {proj['flops_per_column_per_step'] / 1e6:.0f} MFLOP "
        f"and {proj['training_state_bytes_per_column'] / 1e6:.1f} MB of fp32 training "
        f"state per column and step.",
        "",
        "| P | columns / process | edges crossing processes | halo rows sent (max per "
        "process) | compute s / step | halo GB / step | communication s / step | share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in proj["rows"]:
        lines.append(
            f"| {row['processes']} | {row['columns_per_process']:,} | "
            f"{100 * row['cross_edge_share']:.1f} % | {row['rows_sent_max_per_process']:,} | "
            f"{row['compute_s']:.4f} | {row['halo_bytes_per_step'] / 1e9:.2f} | "
            f"{row['comm_s']:.4f} | {100 * row['comm_share_without_overlap']:.0f} % |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    if args.render:
        return harness.render_committed(NAME, DOC, START, END, render)
    result = {"environment": harness.environment(torch.device("cpu"), 1), "args": vars(args)}
    result["projection"] = projection(args)
    for kind, sizes in (("strong", [args.num_columns] * len(args.strong)),
                        ("weak", [args.per_process * p for p in args.weak])):  # fmt: skip
        result[kind] = []
        for num_columns, world_size in zip(sizes, getattr(args, kind), strict=True):
            row = run_config(num_columns, world_size, args)
            result[kind].append(row)
            print(f"{kind:6} N={num_columns:5} P={world_size} {row['step_s']:.3f} s/step "
                  f"(comm {100 * row['comm_share']:.1f} %), halo bytes agree: "
                  f"{row['halo_bytes_agree']}", flush=True)  # fmt: skip
    base = result["strong"][0]["steps_per_s"]
    for row in result["strong"]:
        row["speedup"] = row["steps_per_s"] / base
    result["environment"]["load_average_at_end"] = list(os.getloadavg())
    if not args.no_write:
        harness.publish(NAME, result, args.out_dir, DOC, START, END, render)
    return result


if __name__ == "__main__":
    main()
