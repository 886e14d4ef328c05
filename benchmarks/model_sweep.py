"""Question 3: the whole training step across column counts.

Part 1, per-column weights (the article's model): ``CortexNet`` against
``DenseReference`` with the same weights, one training step (forward, cross-entropy,
backward, Hebbian) per column count, until ``DenseReference`` passes ``--budget-s`` or the
per-column weights (and their gradients) pass ``--memory-cap-gb``: each column holds
``3 * D * in + 2 * D * D`` weights, about 1.3 MB at the article's sizes, so 4,096
columns need ~5.5 GB for weights and gradients before any activation (and 4x more with
AdamW's state).

Part 2, shared weights, to 100,000+ columns: ``CortexNet(shared_weights=True)``, one
column module and one query/key pair shared by all columns plus a learned per-column
bias ``[N, D]``; the rest is the per-column model's: folded attention over the
Watts-Strogatz graph, homeostasis, readout and the edge-restricted Hebbian update on
``[E]`` weights. It shows what the graph part costs at scale (``shared_scale.py`` takes
it to 10^6 columns with the memory-saving flags).

    THP_MEM_ALLOC_ENABLE=1 python -m benchmarks run model_sweep
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks import harness
from cortexgnn import CortexNet, DenseReference, ModelConfig

ARTICLE = ModelConfig()  # the article's sizes: every default below comes from it


def get_parser() -> argparse.ArgumentParser:
    p = harness.new_parser(__doc__)
    p.add_argument("--per-column-sizes", type=int, nargs="*", default=[64, 128, 256, 512, 1024])
    p.add_argument("--shared-sizes", type=int, nargs="*", default=[1024, 4096, 16384, 100_000])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--shared-batch-size", type=int, default=4)
    p.add_argument("--col-out", type=int, default=ARTICLE.col_out)
    p.add_argument("--in-dim", type=int, default=ARTICLE.in_dim)
    p.add_argument("--message-iters", type=int, default=ARTICLE.message_iters)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-run-time", type=float, default=0.0, help="0: one call per round")
    p.add_argument("--budget-s", type=float, default=15.0, help="max seconds per step")
    p.add_argument("--memory-cap-gb", type=float, default=6.0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True)
    return p


def per_column_bytes(n: int, in_dim: int, dim: int) -> int:
    """Weights plus gradients of ``n`` article columns with their query/key pairs."""
    return 2 * 4 * n * (3 * dim * in_dim + 2 * dim * dim)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    device = harness.pick_device(args.device)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows = []
    run_reference = True
    for n in args.per_column_sizes:
        if per_column_bytes(n, args.in_dim, args.col_out) > args.memory_cap_gb * 2**30:
            rows.append({"mode": "per_column", "N": n, "status": "over memory cap"})
            continue
        torch.manual_seed(n)
        hp = dict(num_columns=n, in_dim=args.in_dim, col_out=args.col_out,
                  message_iters=args.message_iters, dropout=0.0)  # fmt: skip
        ref = DenseReference(**hp, graph_seed=n).to(device)
        net = ref.to_cortexnet().to(device)
        x = torch.rand(args.batch_size, args.in_dim, device=device)
        y = torch.randint(0, 10, (args.batch_size,), device=device)

        def step(model, x=x, y=y):
            def run():
                model.zero_grad(set_to_none=True)
                model.training_step((x, y))

            return run

        fns = {"CortexNet": step(net)}
        if run_reference:
            t0 = time.perf_counter()
            step(ref)()
            if time.perf_counter() - t0 > args.budget_s:
                run_reference = False
                rows.append({"mode": "per_column", "impl": "DenseReference", "N": n,
                             "status": "over budget"})  # fmt: skip
            else:
                fns["DenseReference"] = step(ref)
        stats = harness.time_interleaved(
            fns, device=device, num_threads=args.threads, rounds=args.rounds,
            min_run_time=args.min_run_time,
        )  # fmt: skip
        for impl, st in stats.items():
            rows.append({"mode": "per_column", "impl": impl, "N": n, "status": "ok", "step": st,
                         "peak_bytes": harness.peak_memory_bytes(fns[impl], device)})  # fmt: skip
        del ref, net
    for n in args.shared_sizes:
        torch.manual_seed(n)
        config = ModelConfig(num_columns=n, in_dim=args.in_dim, col_out=args.col_out,
                             message_iters=args.message_iters, dropout=0.0, graph_seed=0,
                             shared_weights=True)  # fmt: skip
        model = CortexNet(config).to(device)
        x = torch.rand(args.shared_batch_size, args.in_dim, device=device)
        y = torch.randint(0, 10, (args.shared_batch_size,), device=device)

        def shared_step(model=model, x=x, y=y):
            model.zero_grad(set_to_none=True)
            model.training_step((x, y))

        st = harness.time_interleaved(
            {"shared": shared_step}, device=device, num_threads=args.threads,
            rounds=args.rounds, min_run_time=args.min_run_time,
        )["shared"]  # fmt: skip
        rows.append({"mode": "shared", "impl": "CortexNet (shared weights)", "N": n,
                     "status": "ok", "step": st,
                     "peak_bytes": harness.peak_memory_bytes(shared_step, device)})  # fmt: skip
        del model
    result = {
        "benchmark": "model_sweep",
        "config": vars(args),
        "environment": harness.environment(device, args.threads),
        "rows": rows,
        "per_column_bytes_at_4096": per_column_bytes(4096, args.in_dim, args.col_out),
        "wall_s": time.perf_counter() - started,
    }
    if args.save:
        harness.write_result(f"model_sweep-{device.type}", result, args.out_dir)
    return result


if __name__ == "__main__":
    for r in main()["rows"]:
        if r["status"] == "ok":
            print(f"{r['mode']:10s} {r['impl']:28s} N={r['N']:7d} "
                  f"step {r['step']['median_s'] * 1e3:9.1f} ms "
                  f"peak {(r['peak_bytes'] or 0) / 2**20:8.1f} MiB")  # fmt: skip
        else:
            print(f"{r['mode']:10s} {r.get('impl', ''):28s} N={r['N']:7d} {r['status']}")
