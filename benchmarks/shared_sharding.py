"""Question: what does splitting the shared-weight model over processes save per process?

One AdamW training step of ``ShardedCortexNet(shared_weights=True)`` with
``recompute_messages`` and ``bf16_autocast`` (the settings of the 10^6-column single-process
run in ``shared_scale``): batch 4, D 128, input 784, 4 message iterations, dropout 0,
Watts-Strogatz k 8, p 0.15, on ``P`` gloo processes of one thread each. Each process holds
``N / P`` columns' bias, homeostasis statistics and in-edges, and the replicated shared
column; its peak resident set (``VmHWM``: interpreter, torch, the transient whole model it
slices its columns from, its shard, optimizer and step) is read at the end. The step time
is the median of ``--steps`` timed steps (between barriers) after ``--warmup``; with more
processes than idle cores it measures contention, not speed-up. Run it on a quiet machine:

    THP_MEM_ALLOC_ENABLE=1 python -m benchmarks.shared_sharding
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import torch

from benchmarks import gloo_workers, harness
from cortexgnn import ModelConfig

NAME = "shared_sharding"
DOC = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"
START, END = "<!-- shared-sharding:start -->", "<!-- shared-sharding:end -->"


def get_parser():
    p = harness.new_parser(__doc__)
    p.add_argument("--sizes", type=int, nargs="*", default=[200_000], help="column counts N")
    p.add_argument("--processes", type=int, nargs="*", default=[1, 2], help="process counts P")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--in-dim", type=int, default=784)
    p.add_argument("--col-out", type=int, default=128)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=2, help="timed steps per configuration")
    p.add_argument("--out-dir", default=None, help="default benchmarks/results")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--render", action="store_true",
                   help="only re-render docs/scaling.md from the committed results")  # fmt: skip
    return p


def config_for(num_columns: int, args) -> ModelConfig:
    return ModelConfig(
        num_columns=num_columns, in_dim=args.in_dim, col_out=args.col_out, dropout=0.0,
        shared_weights=True, recompute_messages=True, bf16_autocast=True, graph_seed=0,
    )  # fmt: skip


def _peak_rss_bytes() -> int:
    """This process's peak resident set (``VmHWM`` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _worker(rank: int, world_size: int, port: int, config: ModelConfig, args, out: str) -> None:
    gloo_workers.join(rank, world_size, port)
    model, batch = gloo_workers.sharded_model(config, args.batch_size)
    steps = gloo_workers.timed_steps(model, batch, args.warmup, args.steps)
    torch.save(
        {
            "step_s": steps,
            "peak_rss_bytes": _peak_rss_bytes(),
            "num_local": model.plan.num_local,
            "num_parameters": sum(p.numel() for p in model.parameters()),
        },
        os.path.join(out, f"rank{rank}.pt"),
    )
    torch.distributed.destroy_process_group()


def run_config(num_columns: int, world_size: int, args) -> dict:
    """One (N, P): rank 0's median step, and every process's peak memory and parameters."""
    ranks = gloo_workers.spawn(_worker, world_size, config_for(num_columns, args), args)
    return {
        "num_columns": num_columns,
        "processes": world_size,
        "columns_per_process": [r["num_local"] for r in ranks],
        "step_s": statistics.median(ranks[0]["step_s"]),
        "peak_rss_bytes_per_process": [r["peak_rss_bytes"] for r in ranks],
        "num_parameters_per_process": [r["num_parameters"] for r in ranks],
    }


def render(result: dict) -> str:
    """The Markdown table of docs/scaling.md from a result of :func:`main`."""
    env, args = result["environment"], result["args"]
    lines = [
        "| N | P | columns / process | peak memory / process (largest) | vs P = 1 | "
        "parameters / process | s / step |",
        "|---|---|---|---|---|---|---|",
    ]
    single = {r["num_columns"]: max(r["peak_rss_bytes_per_process"])
              for r in result["rows"] if r["processes"] == 1}  # fmt: skip
    for row in result["rows"]:
        peak = max(row["peak_rss_bytes_per_process"])
        ratio = f"{peak / single[row['num_columns']]:.2f}x" if row["num_columns"] in single else "-"
        lines.append(
            f"| {row['num_columns']:,} | {row['processes']} | "
            f"{'/'.join(f'{c:,}' for c in row['columns_per_process'])} | "
            f"{peak / 2**30:.2f} GiB | {ratio} | "
            f"{max(row['num_parameters_per_process']):,} | {row['step_s']:.1f} |"
        )
    setting = (
        f"one thread per process, gloo, batch {args['batch_size']}, in_dim {args['in_dim']}, "
        f"D {args['col_out']}, shared weights with recompute and bfloat16"
    )
    lines += [
        "",
        harness.measured_on(env, setting)
        + f" Medians of {args['steps']} steps after {args['warmup']} warm-up step(s).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    if args.render:
        return harness.render_committed(NAME, DOC, START, END, render)
    result = {"environment": harness.environment(torch.device("cpu"), 1), "args": vars(args),
              "rows": []}  # fmt: skip
    for num_columns in args.sizes:
        for world_size in args.processes:
            row = run_config(num_columns, world_size, args)
            result["rows"].append(row)
            peak = max(row["peak_rss_bytes_per_process"]) / 2**30
            print(f"N={num_columns:,} P={world_size}: {row['step_s']:.1f} s/step, peak "
                  f"{peak:.2f} GiB per process", flush=True)  # fmt: skip
    if not args.no_write:
        harness.publish(NAME, result, args.out_dir, DOC, START, END, render)
    return result


if __name__ == "__main__":
    main()
