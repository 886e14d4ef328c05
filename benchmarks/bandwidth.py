"""Question 4: achieved memory bandwidth of the attention against its lower bound.

The attention part of the layer, given the folded per-node queries ``[N, B, 1, D]``,
must read the queries and the node features and write the output: at least
``3 * N * B * D * 4`` bytes forward and ``9 * N * B * D * 4`` forward+backward (fp32). This
script times :func:`cortexgnn.ops.attention.folded_attention` on a Watts-Strogatz graph,
divides those byte counts by the measured time, and compares the result with a copy
bandwidth (``dst.copy_(src)`` far above the last-level cache, read + write) measured in
the same interleaved rounds.

    THP_MEM_ALLOC_ENABLE=1 python -m benchmarks run bandwidth
"""

from __future__ import annotations

import argparse

import torch

from benchmarks import harness
from cortexgnn import small_world_graph
from cortexgnn.nn.config import ModelConfig
from cortexgnn.ops.attention import attention_graph, folded_attention

ARTICLE = ModelConfig()  # the article's sizes: every default below comes from it


def get_parser() -> argparse.ArgumentParser:
    p = harness.new_parser(__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1 << 15, 1 << 17])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--channels", type=int, default=ARTICLE.col_out)
    p.add_argument("--graph-k", type=int, default=ARTICLE.graph_k)
    p.add_argument("--graph-p", type=float, default=ARTICLE.graph_p)
    p.add_argument(
        "--backends", nargs="+", default=["cpp", "torch"], choices=["cpp", "torch", "dense"]
    )
    p.add_argument("--torch-max-nodes", type=int, default=10_000, help="skip torch above this")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--more-threads", type=int, nargs="*", default=[2],
        help="also measure with these thread counts (kernel and copy alike)",
    )  # fmt: skip
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-run-time", type=float, default=0.3)
    p.add_argument("--copy-mib", type=int, default=256, help="copy buffer size")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True)
    return p


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    device = harness.pick_device(args.device)
    torch.set_num_threads(args.threads)
    b, d = args.batch_size, args.channels
    src = torch.randn(args.copy_mib << 18, device=device)  # copy_mib MiB of fp32
    dst = torch.empty_like(src)
    rows = []
    for n in args.sizes:
        torch.manual_seed(n)
        edge_index = small_world_graph(n, args.graph_k, args.graph_p, seed=n).to(device)
        graph = attention_graph(edge_index, n)
        query = (torch.randn(n, b, 1, d, device=device) * d**-0.5).requires_grad_()
        x = torch.randn(n, b, d, device=device).requires_grad_()
        grad = torch.randn(n, b, 1, d, device=device)
        fns = {"copy": lambda: dst.copy_(src)}
        for backend in args.backends:
            if backend == "torch" and n > args.torch_max_nodes:
                continue

            def fwd(backend=backend, query=query, x=x, graph=graph):
                with torch.no_grad():
                    return folded_attention(query, x, graph, scale=d**-0.5, backend=backend)

            def both(backend=backend, query=query, x=x, graph=graph, grad=grad):
                out = folded_attention(query, x, graph, scale=d**-0.5, backend=backend)
                return torch.autograd.grad(out, (query, x), grad)

            fns[f"{backend}/forward"], fns[f"{backend}/forward_backward"] = fwd, both
        for threads in [args.threads, *args.more_threads]:
            stats = harness.time_interleaved(
                fns, device=device, num_threads=threads, rounds=args.rounds,
                min_run_time=args.min_run_time,
            )  # fmt: skip
            copy_bps = 2 * src.numel() * 4 / stats["copy"]["median_s"]
            node_bytes = n * b * d * 4
            for name, st in stats.items():
                if name == "copy":
                    continue
                backend, kind = name.split("/")
                bound = (3 if kind == "forward" else 9) * node_bytes
                achieved = bound / st["median_s"]
                rows.append({
                    "N": n, "threads": threads, "backend": backend, "kind": kind, "time": st,
                    "bound_bytes": bound, "achieved_bytes_per_s": achieved,
                    "copy_bytes_per_s": copy_bps, "fraction_of_copy": achieved / copy_bps,
                })  # fmt: skip
        torch.set_num_threads(args.threads)
    result = {
        "benchmark": "bandwidth",
        "config": vars(args),
        "environment": harness.environment(device, args.threads),
        "rows": rows,
    }
    if args.save:
        harness.write_result(f"bandwidth-{device.type}", result, args.out_dir)
    return result


if __name__ == "__main__":
    for r in main()["rows"]:
        print(
            f"N={r['N']:7d} {r['threads']}T {r['backend']:6s} {r['kind']:16s} "
            f"{r['time']['median_s'] * 1e3:8.1f} ms {r['achieved_bytes_per_s'] / 1e9:6.2f} GB/s "
            f"= {100 * r['fraction_of_copy']:5.1f} % of copy {r['copy_bytes_per_s'] / 1e9:.1f} GB/s"
        )
