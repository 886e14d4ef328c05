"""Every CUDA measurement of the Triton attention path in one command (< 10 min on one H100).

Three parts, each written to ``benchmarks/results/<part>-cuda.json``:

- ``cuda_layer_sweep``: one attention layer (``D x D`` query/key, raw values, the
  article's message) on a Watts-Strogatz graph (``k = 8``), batch ``B = 16``, ``D = 128``,
  ``N`` from 10^3 to 10^6, forward and forward+backward time and peak memory, for
  ``ColumnAttentionConv`` with ``fused_backend="triton"``, the same layer on its CUDA
  default (``"auto"``: fused PyTorch attention) and on PyG's ``propagate`` (``fused=False``),
  and PyG's ``TransformerConv`` and ``GATConv`` on the equivalent ``Batch`` of ``B`` graph
  copies. Sizes whose estimated working set passes ``--memory-cap-gb`` are recorded as
  skipped. At the smallest ``N`` the Triton output is compared with ``propagate``'s.
- ``cuda_bandwidth``: ``folded_attention`` forward+backward on the Triton and PyTorch
  backends; the bytes it must move at least (``9 N B D`` elements: read ``q``, ``x`` and
  write ``out`` forward; read ``g``, ``q``, ``x``, ``out`` and write both gradients
  backward) over its time, against a copy bandwidth (``dst.copy_(src)``, read + write)
  measured in the same run.
- ``cuda_article_step``: the article's configuration (batch 128, 64 columns, ``D`` 128,
  input 784, 4 message iterations), one training step of ``DenseReference``, of
  ``CortexNet`` on its CUDA default, and of ``CortexNet`` with its attention layer switched
  to ``fused_backend="triton"``, same weights and inputs.

Timing: warm-up calls, then repeated calls with ``torch.cuda.synchronize()`` until
``--min-run-time`` seconds (at least ``--min-reps``); median and interquartile range.

    python -m benchmarks.cuda_suite                       # on a CUDA machine
    python -m benchmarks.cuda_suite --device cpu --quick  # a smoke run of the logic

Without CUDA and without ``--device cpu`` it refuses in one line. On the CPU the Triton
candidates run only under ``TRITON_INTERPRET=1`` (else they are recorded as skipped).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cortexgnn import ColumnAttentionConv, DenseReference, _import_pyg, small_world_graph
from cortexgnn.ops.attention import attention_graph, folded_attention
from cortexgnn.ops.triton_attention import triton_applies
from cortexgnn.train.metrics import git_commit
from cortexgnn.train.run_dir import write_atomic

_import_pyg()  # PyG's import-time deprecation warning, silenced once

from torch_geometric.data import Batch, Data  # noqa: E402
from torch_geometric.nn import GATConv, TransformerConv  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LAYERS = ("triton", "auto", "propagate", "transformer_conv", "gat_conv")
PYG_BATCH = ("transformer_conv", "gat_conv")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the logic only")
    p.add_argument("--parts", nargs="+", default=["layer", "bandwidth", "article"])
    p.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--graph-k", type=int, default=8)
    p.add_argument("--graph-p", type=float, default=0.15)
    p.add_argument("--layers", nargs="+", default=list(LAYERS), choices=LAYERS)
    p.add_argument("--bandwidth-sizes", type=int, nargs="+", default=[10**5, 10**6])
    p.add_argument("--copy-mib", type=int, default=2048, help="copy buffer size")
    p.add_argument("--memory-cap-gb", type=float, default=64.0, help="skip larger estimates")
    p.add_argument("--min-run-time", type=float, default=0.5, help="seconds timed per case")
    p.add_argument("--min-reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out-dir", default=str(RESULTS_DIR), help="results folder")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True)
    return p


def quick(args: argparse.Namespace) -> None:
    """Shrink every size so that the CPU (and Triton's interpreter) runs it in seconds."""
    args.sizes, args.bandwidth_sizes = [12, 24], [16]
    args.batch_size, args.channels, args.graph_k = 2, 8, 4
    args.copy_mib, args.min_run_time, args.min_reps, args.warmup = 1, 0.0, 2, 1


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, args) -> dict:
    """Median and interquartile range of ``fn``'s wall time, after warm-up calls."""
    for _ in range(args.warmup):
        fn()
    synchronize(device)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < args.min_reps or time.perf_counter() - started < args.min_run_time:
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
    return {
        "median_s": statistics.median(times),
        "iqr_s": quartiles[2] - quartiles[0],
        "reps": len(times),
    }


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """The caching allocator's peak over one call, above what was allocated before."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def environment(device: torch.device) -> dict:
    import torch_geometric

    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "num_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": _triton_version(),
        "torch_geometric": torch_geometric.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def _triton_runs(device: torch.device) -> bool:
    return triton_applies(torch.empty(0, device=device))


@functools.cache
def watts_strogatz(n: int, k: int, p: float) -> torch.Tensor:
    """The benchmark graph, built once per size (seconds at 10^6 nodes)."""
    return small_world_graph(n, min(k, n - 1), p, seed=0)


def estimated_bytes(layer: str, n: int, e: int, b: int, d: int) -> int:
    """Rough forward+backward working set in float32, to skip sizes that cannot fit."""
    node = n * b * d * 4
    if layer == "triton":  # x, folded query, output, their gradients: no edge tensor
        return 7 * node + 3 * e * b * 4
    if layer == "gat_conv":
        return 3 * e * b * d * 4 + 10 * node
    return 6 * e * b * d * 4 + 8 * node  # per-edge [E, B, D] messages and their gradients


def forward_backward(run: Callable, params: list[torch.Tensor]) -> Callable[[], object]:
    """One forward and the gradients of ``params`` for a fixed random output gradient."""
    with torch.no_grad():
        grad_out = torch.randn_like(run())
    return lambda: torch.autograd.grad(run(), params, grad_out)


def build_layer(layer: str, x: torch.Tensor, edge_index: torch.Tensor, batch: Batch | None):
    """``(run, params)`` for one candidate; ``run()`` gives its output."""
    d = x.size(-1)
    if layer in PYG_BATCH:
        conv = (TransformerConv if layer == "transformer_conv" else GATConv)(d, d).to(x.device)
        bx = batch.x.clone().requires_grad_()  # [B*N, D]
        return (lambda: conv(bx, batch.edge_index)), [bx, *conv.parameters()]
    options = {"triton": {"fused_backend": "triton"}, "auto": {}, "propagate": {"fused": False}}
    conv = ColumnAttentionConv(d, d, **options[layer]).to(x.device)
    torch.manual_seed(0)
    conv.reset_parameters()  # one set of weights for the three layer variants
    return (lambda: conv(x, edge_index)), [x, conv.query_weight, conv.key_weight]


def layer_sweep(args, device: torch.device) -> dict:
    rows, agreement = [], None
    b, d = args.batch_size, args.channels
    for n in args.sizes:
        edge_index = watts_strogatz(n, args.graph_k, args.graph_p)
        edge_index = edge_index.to(device)
        e = edge_index.size(1)
        x = torch.randn(n, b, d, device=device, requires_grad=True)  # [N, B, D]
        batch, outputs = None, {}
        for layer in args.layers:
            row = {"layer": layer, "N": n, "E": e, "B": b, "D": d}
            if layer == "triton" and not _triton_runs(device):
                rows.append({**row, "status": "skipped: triton does not run on this device"})
                continue
            need = estimated_bytes(layer, n, e, b, d)
            if need > args.memory_cap_gb * 2**30:
                rows.append({**row, "status": f"skipped: estimated {need / 2**30:.0f} GiB"})
                continue
            if layer in PYG_BATCH and batch is None:
                xb = x.detach().transpose(0, 1)  # [B, N, D]: B disjoint copies of the graph
                data = [Data(x=xb[i], edge_index=edge_index) for i in range(b)]
                batch = Batch.from_data_list(data)
            run, params = build_layer(layer, x, edge_index, batch)
            with torch.no_grad():
                out = run()
            if layer in ("triton", "propagate") and agreement is None:  # [N, B, D] each
                outputs[layer] = out
            forward = time_call(torch.no_grad()(run), device, args)
            both = forward_backward(run, params)
            row |= {
                "status": "ok",
                "forward": forward,
                "forward_backward": time_call(both, device, args),
            }
            row["peak_bytes_forward_backward"] = peak_bytes(both, device)
            rows.append(row)
            del run, params, both, out
        if agreement is None and len(outputs) == 2:
            agreement = {
                "N": n,
                "max_abs_triton_vs_propagate": float(
                    (outputs["triton"] - outputs["propagate"]).abs().max()
                ),
            }
        del x, batch, outputs
    speedups = {}
    for n in args.sizes:
        times = {
            r["layer"]: r["forward_backward"]["median_s"]
            for r in rows
            if r["N"] == n and r["status"] == "ok"
        }
        if "triton" in times:
            speedups[str(n)] = {
                f"triton_vs_{other}": t / times["triton"]
                for other, t in times.items()
                if other != "triton"
            }
    return {"rows": rows, "forward_backward_speedup": speedups, "agreement": agreement}


def bandwidth(args, device: torch.device) -> dict:
    copy = copy_bandwidth(args, device)
    backends = ["triton", "torch"] if _triton_runs(device) else ["torch"]
    rows = [row for n in args.bandwidth_sizes for row in attention_bytes(args, device, n, backends)]
    for row in rows:
        if row["status"] == "ok":
            row["fraction_of_copy"] = row["bytes_per_s"] / copy["bytes_per_s"]
    return {"copy": copy, "rows": rows}


def copy_bandwidth(args, device: torch.device) -> dict:
    """``dst.copy_(src)`` far above the caches: bytes read + written per second."""
    src = torch.randn(args.copy_mib << 18, device=device)  # copy_mib MiB of float32
    dst = torch.empty_like(src)
    timing = time_call(lambda: dst.copy_(src), device, args)
    return timing | {"bytes_per_s": 2 * src.numel() * 4 / timing["median_s"]}


def attention_bytes(args, device: torch.device, n: int, backends: list[str]) -> list[dict]:
    """The minimum bytes of ``folded_attention`` forward+backward over its time, per backend."""
    b, d = args.batch_size, args.channels
    edge_index = watts_strogatz(n, args.graph_k, args.graph_p)
    graph = attention_graph(edge_index.to(device), n)
    query = torch.randn(n, b, 1, d, device=device, requires_grad=True)  # [N, B, 1, D]
    x = torch.randn(n, b, d, device=device, requires_grad=True)  # [N, B, D]
    minimum = 9 * n * b * d * 4  # bytes: see the module docstring
    rows = []
    for backend in backends:
        row = {"backend": backend, "N": n, "E": int(graph.col.numel()), "bytes_min": minimum}
        if backend == "torch" and 6 * row["E"] * b * d * 4 > args.memory_cap_gb * 2**30:
            rows.append({**row, "status": "skipped: over the memory cap"})
            continue

        def run(backend=backend):
            return folded_attention(query, x, graph, scale=d**-0.5, backend=backend)

        timing = time_call(forward_backward(run, [query, x]), device, args)
        rows.append(
            {
                **row,
                "status": "ok",
                "forward_backward": timing,
                "bytes_per_s": minimum / timing["median_s"],
            }
        )
    return rows


def article_step(args, device: torch.device) -> dict:
    settings = dict(num_columns=64, in_dim=784, col_out=128, message_iters=4, graph_k=8)
    batch_size = 128
    if args.quick:
        settings, batch_size = (
            dict(num_columns=8, in_dim=16, col_out=8, message_iters=2, graph_k=4),
            4,
        )
    torch.manual_seed(0)
    reference = DenseReference(**settings, graph_seed=0).to(device)
    models = {"DenseReference": reference, "CortexNet": reference.to_cortexnet().to(device)}
    if _triton_runs(device):
        models["CortexNet_triton"] = reference.to_cortexnet().to(device)
        for module in models["CortexNet_triton"].modules():
            if isinstance(module, ColumnAttentionConv):
                module.fused_backend = "triton"
    x = torch.rand(batch_size, settings["in_dim"], device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    timing = {}
    for name, model in models.items():
        model.train()

        def step(model=model):
            model.zero_grad(set_to_none=True)
            model.training_step((x, y))

        timing[name] = time_call(step, device, args)
    base = timing["DenseReference"]["median_s"]
    speedup = {name: base / t["median_s"] for name, t in timing.items() if name != "DenseReference"}
    return {
        "settings": settings | {"batch_size": batch_size},
        "train_step": timing,
        "speedup_vs_reference": speedup,
    }


PARTS = {"layer": layer_sweep, "bandwidth": bandwidth, "article": article_step}
FILES = {"layer": "cuda_layer_sweep", "bandwidth": "cuda_bandwidth", "article": "cuda_article_step"}


def main(argv: list[str] | None = None) -> dict:
    """Run the parts, write ``<part>-<device>.json`` each, return ``{part: result}``."""
    args = get_parser().parse_args(argv)
    if args.device != "cuda" and args.device != "cpu":
        raise SystemExit(f"cuda_suite: --device must be cuda or cpu, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "cuda_suite: no CUDA device here; run it on a GPU machine "
            "(--device cpu --quick only checks the logic)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"cuda_suite: unknown parts {sorted(unknown)}; choose from {list(PARTS)}")
    if args.quick:
        quick(args)
    device = torch.device(args.device)
    results = {}
    for part in args.parts:
        started = time.perf_counter()
        result = {
            "benchmark": FILES[part],
            "config": vars(args),
            "environment": environment(device),
        }
        result |= PARTS[part](args, device)
        result["wall_s"] = time.perf_counter() - started
        results[part] = result
        if args.save:
            path = Path(args.out_dir) / f"{FILES[part]}-{device.type}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, (json.dumps(result, indent=2) + "\n").encode())
        print(f"{part}: {result['wall_s']:.1f} s", file=sys.stderr)
    return results


if __name__ == "__main__":
    out = main()
    for row in out.get("layer", {}).get("rows", []):
        if row["status"] == "ok":
            ms = row["forward_backward"]["median_s"] * 1e3
            print(f"{row['layer']:16s} N={row['N']:8d} fwd+bwd {ms:10.2f} ms")
        else:
            print(f"{row['layer']:16s} N={row['N']:8d} {row['status']}")
    for part in ("bandwidth", "article"):
        if part in out:
            summary = out[part].get("rows") or out[part]["speedup_vs_reference"]
            print(part, json.dumps(summary, indent=None)[:2000])
