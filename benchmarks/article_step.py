"""Question 1: the article's configuration, CortexNet against DenseReference.

Batch 128, 64 columns, D 128, input 784, 4 message iterations: one training step
(forward, cross-entropy, backward, Hebbian update; no optimizer step) and one inference
forward, with the same weights and graph in the same process, interleaved. Also: the
step's FLOP count against a square GEMM measured in the same run (the FLOP floor), and a
profile of where CortexNet's step spends its time.

    THP_MEM_ALLOC_ENABLE=1 python -m benchmarks run article_step
"""

from __future__ import annotations

import argparse

import torch

from benchmarks import harness
from cortexgnn import DenseReference
from cortexgnn.nn.config import ModelConfig
from cortexgnn.train.config import TrainConfig

ARTICLE = ModelConfig()  # the article's sizes: every default below comes from it


def get_parser() -> argparse.ArgumentParser:
    p = harness.new_parser(__doc__)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--num-columns", type=int, default=ARTICLE.num_columns)
    p.add_argument("--col-out", type=int, default=ARTICLE.col_out)
    p.add_argument("--in-dim", type=int, default=ARTICLE.in_dim)
    p.add_argument("--message-iters", type=int, default=ARTICLE.message_iters)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--min-run-time", type=float, default=1.0, help="seconds per timing block")
    p.add_argument("--gemm-size", type=int, default=2048)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True)
    return p


def step_flops(batch: int, columns: int, dim: int, in_dim: int, iters: int, edges: int) -> dict:
    """FLOPs of one CortexNet training step, by part (multiply-add = 2 FLOPs).

    Columns: forward GEMM and weight gradient (the input needs no gradient). Folding
    ``Q_i^T K_i`` once: forward and two gradients. Per iteration: the folded query product
    (forward, gradient of ``h`` and of the fold) and the attention at its sparse minimum,
    ``4 E B D`` forward and ``10 E B D`` backward. The readout MLP is included; elementwise
    work (LayerNorm, activations, homeostasis, Hebbian) is not.
    """
    branches = 3 if in_dim != dim else 2
    column = 2 * batch * in_dim * branches * columns * dim
    parts = {
        "columns (GEMM + weight grad)": 2 * column,
        "fold K^T Q (fwd + bwd)": 3 * 2 * columns * dim**3,
        "folded query products (fwd + bwd)": iters * 3 * 2 * columns * batch * dim * dim,
        "attention (sparse minimum, fwd + bwd)": iters * 14 * edges * batch * dim,
        "readout (fwd + bwd)": 3 * 2 * batch * dim * (dim + 10),
    }
    parts["total"] = sum(parts.values())
    return parts


def reference_flops(batch: int, columns: int, dim: int, in_dim: int, iters: int) -> dict:
    """FLOPs of one DenseReference training step, counted like :func:`step_flops`.

    Per iteration each of the ``C`` gates projects its own column (query) and *all* ``C``
    columns (key), then scores and mixes ``C`` columns: forward
    ``C (2 B D^2 + 2 B C D^2 + 4 B C D)``, and the backward twice that.
    """
    branches = 3 if in_dim != dim else 2
    gates = columns * (2 * batch * dim * dim + 2 * batch * columns * dim * dim)
    gates += columns * 4 * batch * columns * dim
    parts = {
        "columns (GEMM + weight grad)": 2 * 2 * batch * in_dim * branches * columns * dim,
        "attention gates (fwd + bwd)": iters * 3 * gates,
        "readout (fwd + bwd)": 3 * 2 * batch * dim * (dim + 10),
    }
    parts["total"] = sum(parts.values())
    return parts


def _profile(fn, num_threads: int, top: int = 12) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(num_threads)
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            fn()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1.0
    return [
        {
            "op": e.key,
            "self_ms_per_step": e.self_cpu_time_total / 3 / 1e3,
            "share": e.self_cpu_time_total / total,
        }
        for e in rows[:top]
    ]


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    device = harness.pick_device(args.device)
    torch.manual_seed(0)
    hparams = dict(
        num_columns=args.num_columns, in_dim=args.in_dim, col_out=args.col_out,
        message_iters=args.message_iters, graph_k=min(8, args.num_columns - 1),
    )  # fmt: skip
    ref = DenseReference(**hparams, graph_seed=0).to(device)
    net = ref.to_cortexnet().to(device)
    x = torch.rand(args.batch_size, args.in_dim, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)

    def train_step(model):
        def run():
            model.zero_grad(set_to_none=True)
            model.training_step((x, y))

        return run

    def infer(model):
        @torch.no_grad()
        def run():
            model(x)

        return run

    timing = {}
    ref.train(), net.train()
    a = torch.randn(args.gemm_size, args.gemm_size, device=device)
    b = torch.randn(args.gemm_size, args.gemm_size, device=device)
    # The GEMM runs in the same interleaved rounds, so the floor sees the same machine load.
    timing["train_step"] = harness.time_interleaved(
        {"DenseReference": train_step(ref), "CortexNet": train_step(net), "gemm": lambda: a @ b},
        device=device, num_threads=args.threads, rounds=args.rounds,
        min_run_time=args.min_run_time,
    )  # fmt: skip
    gemm = timing["train_step"].pop("gemm")
    ref.eval(), net.eval()
    timing["inference"] = harness.time_interleaved(
        {"DenseReference": infer(ref), "CortexNet": infer(net)},
        device=device, num_threads=args.threads, rounds=args.rounds,
        min_run_time=args.min_run_time,
    )  # fmt: skip
    net.train()
    flops = step_flops(
        args.batch_size, args.num_columns, args.col_out, args.in_dim, args.message_iters,
        int(net.edge_index.size(1)),
    )  # fmt: skip
    rate = 2 * args.gemm_size**3 / gemm["median_s"]
    net_step = timing["train_step"]["CortexNet"]["median_s"]
    result = {
        "benchmark": "article_step",
        "config": vars(args),
        "environment": harness.environment(device, args.threads),
        "timing": timing,
        "speedup": {
            kind: t["DenseReference"]["median_s"] / t["CortexNet"]["median_s"]
            for kind, t in timing.items()
        },
        "flops": flops,
        "flops_reference": reference_flops(
            args.batch_size, args.num_columns, args.col_out, args.in_dim, args.message_iters
        ),
        "gemm": gemm,
        "gemm_flops_per_s": rate,
        "flop_floor_s": flops["total"] / rate,
        "fraction_of_flop_floor": flops["total"] / rate / net_step,
    }
    if args.profile and device.type == "cpu":
        result["profile"] = _profile(train_step(net), args.threads)
    if args.save:
        harness.write_result(f"article_step-{device.type}", result, args.out_dir)
    return result


if __name__ == "__main__":
    out = main()
    print({k: out[k] for k in ("speedup", "flop_floor_s", "fraction_of_flop_floor")})
    for kind, t in out["timing"].items():
        print(kind, {name: round(s["median_s"] * 1e3, 2) for name, s in t.items()}, "ms")
