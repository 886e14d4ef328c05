"""Question: how far does one machine take the shared-weight model, and what does memory cost?

One AdamW training step (forward, cross-entropy, backward, Hebbian update, optimizer step)
of ``CortexNet(shared_weights=True)`` at batch 4, D 128, input 784, 4 message iterations,
dropout 0, Watts-Strogatz k 8, p 0.15, for ``N`` columns from 10^3 up, with
``recompute_messages`` and ``bf16_autocast`` each on and off. Every point runs in a fresh
subprocess, so its peak resident set (``VmHWM``, the whole process: interpreter, torch,
model, optimizer and the step) is that point's alone; the step time is the median of
``--steps`` timed steps after one warm-up step. ``recompute=manual`` swaps the library's
non-reentrant ``torch.utils.checkpoint`` for the hand-written recompute below, to compare
the two.

The memory model (:func:`predicted_peak_bytes`) counts bytes per column: parameters,
gradients and AdamW's two moments of the per-column bias ``[N, D]`` and the edge weights
``[E]``; the graph's index tensors; and the node-state tensors ``[N, B, D]`` alive at the
peak, counted from the code (see docs/scaling.md). A point whose predicted peak exceeds the
memory available at that moment is skipped and recorded as such.

    THP_MEM_ALLOC_ENABLE=1 python -m benchmarks.shared_scale
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks import harness

DEFAULT_SIZES = [1_000, 10_000, 31_623, 100_000, 200_000]
MODES = ["off/fp32", "torch/fp32", "off/bf16", "torch/bf16"]  # recompute / precision
REPO_ROOT = Path(__file__).resolve().parent.parent

#: The largest set of temporaries of one attention backward, in float32 node states.
#: float32: the state gradient being propagated and the one accumulating into ``pre``
#: (2), the kernel's gradients of queries and states (2), a contiguous copy of its output
#: gradient (about half the time: 0.5). bfloat16: the two state gradients (1) and the
#: kernel's two gradients (1) at half size, plus one batch slice (1/B, B = 4) of the four
#: widened inputs (1) and of the two float32 gradients (0.5). See docs/scaling.md.
BACKWARD_TRANSIENT = {"fp32": 4.5, "bf16": 3.5}


def get_parser():
    p = harness.new_parser(__doc__)
    p.add_argument("--sizes", type=int, nargs="*", default=DEFAULT_SIZES)
    p.add_argument("--modes", nargs="*", default=MODES + ["manual/fp32"])
    p.add_argument(
        "--manual-sizes",
        type=int,
        nargs="*",
        default=[10_000, 31_623],
        help="sizes at which recompute=manual runs (it is compared, not swept)",
    )
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--col-out", type=int, default=128)
    p.add_argument("--in-dim", type=int, default=784)
    p.add_argument("--message-iters", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    p.add_argument(
        "--headroom-gb",
        type=float,
        default=1.0,
        help="skip a point whose predicted peak + this exceeds MemAvailable",
    )
    p.add_argument("--point", default=None, help=argparse.SUPPRESS)  # one point, internal
    p.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--merge",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="add these points to the saved results (same N and mode: replaced)",
    )
    return p  # fmt: skip


def _config(num_columns: int, args, recompute: str, precision: str):
    from cortexgnn import ModelConfig

    return ModelConfig(
        num_columns=num_columns, in_dim=args.in_dim, col_out=args.col_out,
        message_iters=args.message_iters, dropout=0.0, graph_seed=0, shared_weights=True,
        recompute_messages=recompute != "off", bf16_autocast=precision == "bf16",
    )  # fmt: skip


def predicted_peak_bytes(num_columns: int, mode: str, args, base_bytes: int) -> dict:
    """The memory model: bytes per column by kind, and the predicted whole-process peak.

    ``s`` is one node state of one column, ``B * D`` values of 4 bytes (float32) or 2
    (bfloat16). Without recompute each of the ``K`` iterations keeps four states for
    backward (its input, the folded query, the attention output, the relu output) and the
    attention weights ``[E, B]``; with recompute it keeps its input only, and backward
    holds one recomputed iteration (query, attention output, relu output, weights) at a
    time. On top: parameters, gradients and AdamW's moments of what grows with ``N``,
    the graph's index tensors, and :data:`BACKWARD_TRANSIENT` float32 states (counted
    for ``B = 4``).
    """
    recompute, precision = mode.split("/")
    d, b, k, iters = args.col_out, args.batch_size, 8, args.message_iters
    state = (4 if precision == "fp32" else 2) * b * d
    alpha = 4 * k * b  # attention weights [E, B] float32, k edges into each column
    per_column = {
        # bias [N, D] and edge weights [E] (k per column): weights, grads, 2 AdamW moments
        "parameters": 4 * (d + k),
        "gradients": 4 * (d + k),
        "optimizer": 8 * (d + k),
        # edge_index [2, E] int64, the attention CSR (ptr, col, dst, order, tptr, tedge,
        # tdst: ~6 E int64) and the graph cache's copy of edge_index
        "graph": 8 * k * (2 + 6 + 2),
        "per_iteration": state if recompute != "off" else 4 * state + alpha,
        "recomputed_iteration": 3 * state + alpha if recompute != "off" else 0,
        "backward_transient": int(BACKWARD_TRANSIENT[precision] * 4 * b * d),
    }
    total = sum(per_column.values()) + (iters - 1) * per_column["per_iteration"]
    return {"per_column": per_column, "bytes_per_column": total,
            "peak_bytes": base_bytes + num_columns * total}  # fmt: skip


def _rss_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


class _Recompute(torch.autograd.Function):
    """Hand-written recompute of one message iteration (the alternative to checkpoint).

    Forward runs the iteration without autograd and keeps only its tensor inputs and the
    RNG and autocast state; backward runs it again with autograd and differentiates it.
    """

    @staticmethod
    def forward(ctx, fn, rng, autocast, *inputs):
        ctx.fn, ctx.rng, ctx.autocast = fn, rng, autocast
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            return fn(*inputs)

    @staticmethod
    def backward(ctx, grad_out):
        inputs = [
            t.detach().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t
            for t in ctx.saved_tensors
        ]
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.set_rng_state(ctx.rng)
            with torch.autocast("cpu", torch.bfloat16, enabled=ctx.autocast):
                out = ctx.fn(*inputs)
        wanted = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad_out))
        return (None, None, None) + tuple(
            next(grads) if isinstance(t, torch.Tensor) and t.requires_grad else None for t in inputs
        )


def manual_checkpoint(fn, *inputs, use_reentrant=False):
    """Drop-in for ``torch.utils.checkpoint.checkpoint`` built on :class:`_Recompute`."""
    if any(t is None for t in inputs):  # save_for_backward takes tensors only
        present = [i for i, t in enumerate(inputs) if t is not None]

        def call(*tensors, fn=fn):
            full = list(inputs)
            for i, t in zip(present, tensors, strict=True):
                full[i] = t
            return fn(*full)

        return manual_checkpoint(call, *[inputs[i] for i in present])
    autocast = torch.is_autocast_enabled("cpu")
    return _Recompute.apply(fn, torch.get_rng_state(), autocast, *inputs)


def run_point(spec: str, args) -> dict:
    """One point in this (fresh) process: build, one warm-up step, timed steps, peak RSS."""
    import cortexgnn.nn.model as model_module
    from cortexgnn import CortexNet

    n, mode = spec.split(":")
    num_columns, (recompute, precision) = int(n), mode.split("/")
    torch.set_num_threads(args.threads)
    base_kib = _rss_kib("VmRSS")
    if recompute == "manual":
        model_module.checkpoint = manual_checkpoint
    torch.manual_seed(0)
    model = CortexNet(_config(num_columns, args, recompute, precision))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch_size, args.in_dim)
    y = torch.randint(0, 10, (args.batch_size,))

    def step() -> float:
        model.zero_grad(set_to_none=True)
        loss = model.training_step((x, y))
        optimizer.step()
        return float(loss)

    losses = [step()]  # warm-up: builds the graph cache, allocates the optimizer state
    seconds = []
    for _ in range(args.steps):
        started = time.perf_counter()
        losses.append(step())
        seconds.append(time.perf_counter() - started)
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    return {
        "N": num_columns, "mode": mode, "status": "ok", "step": harness._stats(seconds),
        "peak_rss_bytes": _rss_kib("VmHWM") * 1024, "base_rss_bytes": base_kib * 1024,
        "parameter_bytes": parameters, "losses": losses,
    }  # fmt: skip


def parameters_per_column(args) -> dict:
    """Parameters each added column brings, per mode: counted on built models, not typed."""
    from cortexgnn import CortexNet

    counts = {}
    for shared in (False, True):
        sizes = []
        for n in (16, 32):
            config = _config(n, args, "off", "fp32").replace(shared_weights=shared)
            sizes.append(sum(p.numel() for p in CortexNet(config).parameters()))
        counts["shared" if shared else "per_column"] = {
            "per_column": (sizes[1] - sizes[0]) / 16,
            "at_16_columns": sizes[0],
        }
    return counts


def _fit_exponent(rows: list[dict], key) -> float | None:
    """Slope of log(key) against log(N) over the points with N >= 10^4 (above the caches)."""
    pts = [(math.log(r["N"]), math.log(key(r))) for r in rows if r["N"] >= 10_000]
    if len(pts) < 3:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    return sum((a - mx) * (b - my) for a, b in pts) / sum((a - mx) ** 2 for a, _ in pts)


def fit_exponents(rows: list[dict], base: int) -> dict:
    """Per mode: exponents of step time and of peak memory above the empty process."""
    fits = {}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        ok = [r for r in rows if r["mode"] == mode and r["status"] == "ok"]
        fits[mode] = {
            "time_exponent": _fit_exponent(ok, lambda r: r["step"]["median_s"]),
            "peak_exponent": _fit_exponent(ok, lambda r: r["peak_rss_bytes"] - base),
        }
    return fits


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    if args.point is not None:
        print(json.dumps(run_point(args.point, args)))
        return {}
    started = time.perf_counter()
    # glibc maps every block of 128 KiB or more, so a freed tensor leaves the resident set at
    # once (its default threshold grows to 32 MiB and then reuses a fragmented heap)
    env = dict(os.environ, THP_MEM_ALLOC_ENABLE="1", OMP_NUM_THREADS=str(args.threads),
               MALLOC_MMAP_THRESHOLD_="131072")  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    passthrough = [
        f"--{name.replace('_', '-')}={getattr(args, name)}"
        for name in ("batch_size", "col_out", "in_dim", "message_iters", "threads", "steps")
    ]
    base = _baseline_rss(env, passthrough)
    rows = []
    for n in args.sizes:
        for mode in args.modes:
            if mode.startswith("manual") and n not in args.manual_sizes:
                continue
            model = predicted_peak_bytes(n, mode, args, base)
            available = _available_bytes()
            row = {"N": n, "mode": mode, "predicted": model, "available_bytes": available}
            if model["peak_bytes"] + args.headroom_gb * 2**30 > available:
                rows.append({**row, "status": "skipped: predicted peak over available memory"})
                print(f"N={n:8d} {mode:12s} skipped (predicted "
                      f"{model['peak_bytes'] / 2**30:.1f} GiB)", flush=True)  # fmt: skip
                continue
            cmd = [sys.executable, "-m", "benchmarks.shared_scale", f"--point={n}:{mode}"]
            done = subprocess.run(cmd + passthrough, env=env, cwd=REPO_ROOT, text=True,
                                  capture_output=True)  # fmt: skip
            if done.returncode != 0:
                rows.append({**row, "status": f"failed ({done.returncode})",
                             "stderr": done.stderr[-2000:]})  # fmt: skip
                print(f"N={n:8d} {mode:12s} failed: {done.stderr[-500:]}", flush=True)
                continue
            rows.append({**row, **json.loads(done.stdout.strip().splitlines()[-1])})
            r = rows[-1]
            print(f"N={n:8d} {mode:12s} step {r['step']['median_s']:8.3f} s  peak "
                  f"{r['peak_rss_bytes'] / 2**30:6.2f} GiB (model "
                  f"{model['peak_bytes'] / 2**30:6.2f})", flush=True)  # fmt: skip
    path = Path(args.out_dir or harness.RESULTS_DIR) / "shared_scale-cpu.json"
    environment = harness.environment(torch.device("cpu"), args.threads)
    for r in rows:  # a merged file mixes runs: every row keeps the conditions it ran under
        r["measured"] = _stamp(environment)
    if args.merge and path.is_file():
        new = {(r["N"], r["mode"]) for r in rows}
        saved = json.loads(path.read_text())
        old = [r for r in saved["rows"] if (r["N"], r["mode"]) not in new]
        for r in old:
            r.setdefault("measured", _stamp(saved["environment"]))
        rows = sorted(
            old + rows, key=lambda r: (r["N"], (MODES + ["manual/fp32"]).index(r["mode"]))
        )
    fits = fit_exponents(rows, base)
    result = {
        "benchmark": "shared_scale",
        "config": {k: v for k, v in vars(args).items() if k != "point"},
        "environment": environment,
        "base_rss_bytes": base,
        "parameters_per_column": parameters_per_column(args),
        "rows": rows,
        "fits": fits,
        "wall_s": time.perf_counter() - started,
    }
    if args.save:
        harness.write_result("shared_scale-cpu", result, args.out_dir)
    return result


def _baseline_rss(env: dict, passthrough: list[str]) -> int:
    """Peak resident bytes of a fresh process that trains a 16-column model for one step.

    What every point pays whatever its size: the interpreter, torch, PyG, the attention
    kernel's library and the autograd and optimizer machinery of a first step.
    """
    cmd = [sys.executable, "-m", "benchmarks.shared_scale", "--point=16:off/fp32"]
    done = subprocess.run(cmd + passthrough, env=env, cwd=REPO_ROOT, text=True,
                          capture_output=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_bytes"]


MARKERS = ("<!-- shared-scale:start -->", "<!-- shared-scale:end -->")
MODE_NAMES = {
    "off/fp32": "float32",
    "torch/fp32": "float32 + recompute",
    "off/bf16": "bf16",
    "torch/bf16": "bf16 + recompute",
    "manual/fp32": "float32 + hand-written recompute",
}


def _stamp(env: dict) -> dict:
    """The commit, date and load of one run, stamped on the rows it measured."""
    load = env.get("load_average_at_start") or [float("nan")]
    return {"commit": env["git_commit"][:7], "date_utc": env["date_utc"], "load": load[0]}


def _runs_line(rows: list[dict]) -> str:
    """Which rows each run measured, when a merged file holds more than one run."""
    runs: dict[tuple, list[int]] = {}
    for r in rows:
        m = r.get("measured")
        if m:
            runs.setdefault((m["commit"], m["date_utc"], m["load"]), []).append(r["N"])
    if len(runs) < 2:
        return ""
    parts = [
        f"N = {min(ns):,}..{max(ns):,} at commit {c}, {d}, load average {load:.1f}"
        if min(ns) != max(ns)
        else f"N = {ns[0]:,} at commit {c}, {d}, load average {load:.1f}"
        for (c, d, load), ns in runs.items()
    ]
    return " Rows by run: " + "; ".join(parts) + "."


def render(result: dict) -> str:
    """The Markdown that docs/scaling.md shows between its markers, from one result."""
    cfg, env, base = result["config"], result["environment"], result["base_rss_bytes"]
    args = argparse.Namespace(**cfg)
    counts = result["parameters_per_column"]
    gib = 2**30
    out = [
        f"Measured on {env['cpu']} ({env['cpu_count']} cores; load "
        f"average {env['load_average_at_start'][0]:.1f} at the start of the last run), "
        f"{env['num_threads']} thread, torch {env['torch']}, last run at commit "
        f"{env['git_commit'][:7]}, {env['date_utc']}. "
        f"Batch {cfg['batch_size']}, D {cfg['col_out']}, input {cfg['in_dim']}, "
        f"{cfg['message_iters']} iterations; one step = forward, backward, Hebbian update, "
        f"AdamW step; median of {cfg['steps']} step(s) after one warm-up step."
        + _runs_line(result["rows"]),
        "",
        "Parameters per column (counted on built models: the growth from 16 to 32 "
        "columns): per-column weights "
        f"{counts['per_column']['per_column']:,.0f}, shared weights "
        f"{counts['shared']['per_column']:,.0f}.",
        "",
        "Memory model, bytes per column (plus a fixed part, the peak of a 16-column step: "
        f"{base / gib:.2f} GiB; K = {cfg['message_iters']} iterations):",
        "",
        "| mode | parameters | gradients | AdamW | graph | per iteration | recomputed "
        "iteration | backward temporaries | total | at 10^6 columns |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        model = predicted_peak_bytes(10**6, mode, args, base)
        c = model["per_column"]
        out.append(
            f"| {MODE_NAMES[mode]} | {c['parameters']:,} | {c['gradients']:,} "
            f"| {c['optimizer']:,} | {c['graph']:,} | {c['per_iteration']:,} "
            f"| {c['recomputed_iteration']:,} | {c['backward_transient']:,} "
            f"| {model['bytes_per_column']:,} | {model['peak_bytes'] / gib:.1f} GiB "
            f"({model['peak_bytes'] / 1e9:.1f} GB) |"
        )
    out += [
        "",
        "Measured against the model: the peak resident set of the whole process, and the "
        "model's error on the part above the fixed part (what the model describes).",
        "",
        "| N | mode | step s (median) | peak GiB measured | peak GiB model | model error |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        name = MODE_NAMES.get(r["mode"], r["mode"])
        predicted = predicted_peak_bytes(r["N"], r["mode"], args, base)["peak_bytes"]
        if r["status"] != "ok":
            out.append(f"| {r['N']:,} | {name} | {r['status']} | | {predicted / gib:.2f} | |")
            continue
        peak = r["peak_rss_bytes"]
        out.append(
            f"| {r['N']:,} | {name} | {r['step']['median_s']:.2f} | {peak / gib:.2f} "
            f"| {predicted / gib:.2f} | {100 * (predicted - peak) / (peak - base):+.0f} % |"
        )
    out += ["", "Fitted exponents (log-log, N >= 10^4), time and peak above the fixed part:", ""]
    out += ["| mode | time | peak memory |", "|---|---|---|"]
    for mode, fit in result["fits"].items():
        cells = [f"{v:.2f}" if v is not None else "n/a" for v in fit.values()]
        out.append(f"| {MODE_NAMES.get(mode, mode)} | {cells[0]} | {cells[1]} |")
    out += ["", _million_line(result, args)]
    return "\n".join(out)


def _million_line(result: dict, args) -> str:
    """10^6 columns, bf16 + recompute: measured if it ran, the model, and the trend."""
    gib, base, mode = 2**30, result["base_rss_bytes"], "torch/bf16"
    model = predicted_peak_bytes(10**6, mode, args, base)["peak_bytes"]
    ok = sorted((r for r in result["rows"] if r["mode"] == mode and r["status"] == "ok"),
                key=lambda r: r["N"])  # fmt: skip
    text = (f"10^6 columns with {MODE_NAMES[mode]}: the model predicts a peak of "
            f"{model / gib:.1f} GiB ({model / 1e9:.1f} GB)")  # fmt: skip
    if len(ok) >= 2:
        a, b = ok[-2], ok[-1]
        slope = (b["peak_rss_bytes"] - a["peak_rss_bytes"]) / (b["N"] - a["N"])
        trend = b["peak_rss_bytes"] + slope * (10**6 - b["N"])
        text += (
            f"; the measured bytes per column between {a['N']:,} and {b['N']:,} columns "
            f"({slope:,.0f}) extrapolate to {trend / gib:.1f} GiB ({trend / 1e9:.1f} GB)"
        )
    million = [r for r in ok if r["N"] == 10**6]
    if million:
        r = million[0]
        text += (
            f"; measured: {r['peak_rss_bytes'] / gib:.1f} GiB "
            f"({r['peak_rss_bytes'] / 1e9:.1f} GB), {r['step']['median_s']:.0f} s per step"
        )
    else:
        text += "; not measured on this machine (see below)"
    return text + "."


def write_doc(result: dict, path: Path = REPO_ROOT / "docs" / "scaling.md") -> bool:
    """Replace the rendered block of ``path``; ``False`` where its markers are missing."""
    return harness.replace_between(path, *MARKERS, "\n" + render(result) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:  # the docs block, and the model's numbers in the file
        path = harness.RESULTS_DIR / "shared_scale-cpu.json"
        saved = json.loads(path.read_text())
        cfg = argparse.Namespace(**saved["config"])
        for row in saved["rows"]:
            row["predicted"] = predicted_peak_bytes(row["N"], row["mode"], cfg,
                                                    saved["base_rss_bytes"])  # fmt: skip
        saved["fits"] = fit_exponents(saved["rows"], saved["base_rss_bytes"])
        path.write_text(json.dumps(saved, indent=2) + "\n")
        print("updated docs/scaling.md:", write_doc(saved))
    else:
        main()
