"""Render ``docs/benchmarks.md``, its plots and the README's headline table from results.

Reads ``<results>/{article_step,layer_sweep,model_sweep,bandwidth}-<device>.json`` (any
that exist), writes Markdown tables and PNG plots (``bench_*.png``, needs matplotlib;
skipped without it) and, with ``--readme``, replaces the README region between
``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` with the headline table.
Nobody copies numbers by hand.

    python benchmarks/report.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

try:
    from benchmarks.plots import LABELS, plots
except ImportError:  # run as a script from the benchmarks folder
    from plots import LABELS, plots

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--device", default="cpu", help="which result files: *-<device>.json")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--img-dir", default=str(ROOT / "docs" / "img"))
    p.add_argument("--readme", default=None, help="README to update between the markers")
    return p


def _load(folder: Path, name: str, device: str) -> dict | None:
    path = folder / f"{name}-{device}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _ms(stats: dict) -> str:
    return f"{stats['median_s'] * 1e3:.1f} ± {stats['iqr_s'] * 1e3 / 2:.1f}"


def _mib(num_bytes: int | None) -> str:
    return "n/a" if num_bytes is None else f"{num_bytes / 2**20:.0f}"


def _env_line(res: dict) -> str:
    env = res["environment"]
    load = env.get("load_average_at_start")
    load_txt = f", load average {load[0]:.1f} at start" if load else ""
    gpu = f", GPU {env['gpu']}" if env.get("gpu") else ""
    return (
        f"{env['cpu']} ({env['cpu_count']} cores){gpu}, {env['num_threads']} thread(s), "
        f"torch {env['torch']}, PyG {env['torch_geometric']}, commit {env['git_commit']}, "
        f"THP_MEM_ALLOC_ENABLE={env['THP_MEM_ALLOC_ENABLE']}, {env['date_utc']}{load_txt}"
    )


def headline(results: dict) -> list[dict]:
    """The issue's targets, each with the measured value: ``[{what, value, target, met}]``."""
    rows = []
    art = results.get("article_step")
    if art:
        speed = art["speedup"]["train_step"]
        c = art.get("config", {})
        size = f"B {c.get('batch_size')}, N {c.get('num_columns')}, in {c.get('in_dim')}"
        rows.append({"what": f"training step ({size}), CortexNet vs DenseReference",
                     "value": f"{speed:.1f}x faster", "target": ">= 25x",
                     "met": speed >= 25})  # fmt: skip
        frac = art["fraction_of_flop_floor"]
        rows.append({"what": "same step, share of the FLOP floor (FLOPs / GEMM rate)",
                     "value": f"{100 * frac:.0f} %", "target": ">= 50 %",
                     "met": frac >= 0.5})  # fmt: skip
    layer = results.get("layer_sweep")
    if layer:
        at = {r["impl"]: r for r in layer["rows"] if r["N"] == 10_000 and r["status"] == "ok"}
        ours, tc = at.get("cortexgnn"), at.get("pyg_transformer_conv")
        if ours and tc:
            speed = tc["forward_backward"]["median_s"] / ours["forward_backward"]["median_s"]
            rows.append({"what": "layer N=10,000 fwd+bwd vs PyG TransformerConv: time",
                         "value": f"{speed:.1f}x faster", "target": ">= 5x",
                         "met": speed >= 5})  # fmt: skip
            mem_ours = ours["peak_bytes_forward_backward"]
            mem_tc = tc["peak_bytes_forward_backward"]
            if mem_ours and mem_tc:
                ratio = mem_tc / mem_ours
                rows.append({"what": "layer N=10,000 fwd+bwd vs PyG TransformerConv: peak memory",
                             "value": f"{ratio:.1f}x less", "target": ">= 4x",
                             "met": ratio >= 4})  # fmt: skip
        fit = layer["fits"].get("cortexgnn", {}).get("forward_backward")
        lo, hi = layer["config"]["fit_range"]
        used = [
            r["N"]
            for r in layer["rows"]
            if r["impl"] == "cortexgnn" and r["status"] == "ok" and lo <= r["N"] <= hi
        ]
        lo, hi = (min(used), max(used)) if used else (lo, hi)  # the sizes the fit saw
        if fit is not None:
            rows.append({"what": f"layer time exponent, N = {lo:,} ... {hi:,} (fwd+bwd)",
                         "value": f"{fit:.2f}", "target": "<= 1.15",
                         "met": fit <= 1.15})  # fmt: skip
        loop = layer["fits"].get("article_loop", {}).get("forward_backward_all_sizes")
        if loop is not None:
            rows.append({"what": "article loop time exponent (all measured N)",
                         "value": f"{loop:.2f}", "target": "quadratic or worse",
                         "met": loop >= 1.9})  # fmt: skip
    bw = results.get("bandwidth")
    if bw:
        for r in bw["rows"]:
            if r["N"] == 10_000 and r["backend"] == "cpp" and r["kind"] == "forward_backward":
                threads = r.get("threads", bw["config"]["threads"])
                rows.append({"what": "attention alone N=10,000 fwd+bwd, 9*N*B*D*4 bytes / time"
                                     f" ({threads} thread{'s' if threads > 1 else ''})",
                             "value": f"{100 * r['fraction_of_copy']:.0f} % of copy bandwidth",
                             "target": ">= 20 %", "met": r["fraction_of_copy"] >= 0.2})  # fmt: skip
    return rows


def headline_markdown(rows: list[dict]) -> str:
    lines = ["| measurement | result | target | reached |", "|---|---|---|---|"]
    lines += [
        f"| {r['what']} | {r['value']} | {r['target']} | {'yes' if r['met'] else 'no'} |"
        for r in rows
    ]
    return "\n".join(lines)


def _article_section(art: dict) -> list[str]:
    out = ["## 1. Article configuration", "", f"Conditions: {_env_line(art)}.", ""]
    cfg = art["config"]
    out.append(
        f"Batch {cfg['batch_size']}, {cfg['num_columns']} columns, D {cfg['col_out']}, input "
        f"{cfg['in_dim']}, {cfg['message_iters']} message iterations; training step = "
        "zero_grad + forward + cross-entropy + backward + Hebbian update (no optimizer "
        f"step); {cfg['rounds']} interleaved rounds, median ± half IQR in ms."
    )
    out += ["", "| | DenseReference | CortexNet | speed-up |", "|---|---|---|---|"]
    for kind, t in art["timing"].items():
        out.append(
            f"| {kind.replace('_', ' ')} | {_ms(t['DenseReference'])} | {_ms(t['CortexNet'])} "
            f"| {art['speedup'][kind]:.1f}x |"
        )
    out += ["", "FLOP floor of the CortexNet step (multiply-add = 2 FLOPs):", ""]
    out += ["| part | GFLOP |", "|---|---|"]
    out += [f"| {k} | {v / 1e9:.2f} |" for k, v in art["flops"].items()]
    out += [
        "",
        f"Square fp32 GEMM ({cfg['gemm_size']}^3) timed in the same interleaved rounds: "
        f"{art['gemm_flops_per_s'] / 1e9:.1f} GFLOP/s, so the floor is "
        f"{art['flop_floor_s'] * 1e3:.1f} ms and the step runs at "
        f"{100 * art['fraction_of_flop_floor']:.0f} % of it.",
    ]
    ref = art.get("flops_reference")
    net_s = art["timing"]["train_step"]["CortexNet"]["median_s"]
    ref_s = art["timing"]["train_step"]["DenseReference"]["median_s"]
    if ref:
        ratio = ref["total"] / art["flops"]["total"]
        out += [
            "",
            f"DenseReference needs {ref['total'] / 1e9:.0f} GFLOP per step "
            f"({ref['attention gates (fwd + bwd)'] / 1e9:.0f} in its gates, which project all "
            f"columns for every column), {ratio:.1f}x the CortexNet count. At equal FLOP rates "
            f"that ratio is the speed-up; the columns' GEMM alone "
            f"({art['flops']['columns (GEMM + weight grad)'] / 1e9:.1f} GFLOP, the same in "
            f"both) caps it at {ref['total'] / art['flops']['columns (GEMM + weight grad)']:.0f}x "
            "even with free message passing. Measured: CortexNet runs its FLOPs at "
            f"{art['flops']['total'] / net_s / 1e9:.0f} GFLOP/s, DenseReference at "
            f"{ref['total'] / ref_s / 1e9:.0f} GFLOP/s, and the speed-up "
            f"({art['speedup']['train_step']:.1f}x) is the FLOP ratio times the ratio of "
            "those rates: a larger one needs DenseReference to run its big GEMMs worse than "
            "it does here.",
        ]
    if art.get("profile"):
        out += ["", "Where the CortexNet step spends its time (torch.profiler, self time):", ""]
        out += ["| op | ms per step | share |", "|---|---|---|"]
        out += [
            f"| `{p['op']}` | {p['self_ms_per_step']:.1f} | {100 * p['share']:.0f} % |"
            for p in art["profile"]
        ]
    return out + [""]


def _layer_section(layer: dict) -> list[str]:
    cfg = layer["config"]
    out = [
        "## 2. Message-passing layer, column-count sweep",
        "",
        f"Conditions: {_env_line(layer)}.",
    ]
    out += [
        "",
        f"Batch {cfg['batch_size']}, D {cfg['channels']}, Watts-Strogatz k {cfg['graph_k']}, "
        f"p {cfg['graph_p']}; shared D x D query/key weights, raw values. Time in ms (median "
        f"± half IQR of {cfg['rounds']} interleaved rounds); forward without autograd; "
        "fwd+bwd = gradients of x and the weights; peak = extra resident memory of one "
        f"fwd+bwd call (MiB). Budget {cfg['budget_s']} s per call, estimated-memory cap "
        f"{cfg['memory_cap_gb']} GB.",
        "",
        "| implementation | N | forward | fwd+bwd | peak MiB |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(layer["rows"], key=lambda r: (r["impl"], r["N"])):
        name = LABELS.get(r["impl"], r["impl"])
        if r["status"] != "ok":
            out.append(f"| {name} | {r['N']:,} | {r['status']} | | |")
            continue
        out.append(
            f"| {name} | {r['N']:,} | {_ms(r['forward'])} | {_ms(r['forward_backward'])} "
            f"| {_mib(r['peak_bytes_forward_backward'])} |"
        )
    lo, hi = cfg["fit_range"]
    out += ["", f"Fitted time exponents (log-log least squares, {lo:,} <= N <= {hi:,}, and "
            "over all measured N):", "", "| implementation | forward | fwd+bwd | fwd+bwd, all N |",
            "|---|---|---|---|"]  # fmt: skip

    def fmt(v):
        return "n/a" if v is None else f"{v:.2f}"

    for impl, fit in layer["fits"].items():
        out.append(
            f"| {LABELS.get(impl, impl)} | {fmt(fit['forward'])} | "
            f"{fmt(fit['forward_backward'])} | {fmt(fit['forward_backward_all_sizes'])} |"
        )
    agree = layer.get("agreement_max_abs_vs_article_loop") or {}
    if agree:
        out += ["", "Same maths, same inputs at the smallest N: largest absolute difference "
                "from the article loop: " + ", ".join(
                    f"{LABELS.get(k, k)} {v:.1e}" for k, v in agree.items() if k != "article_loop"
                ) + "."]  # fmt: skip
    out += [
        "",
        "![layer scaling](img/bench_scaling.png)",
        "",
        "![layer memory](img/bench_memory.png)",
    ]
    return out + [""]


def _model_section(model: dict) -> list[str]:
    cfg = model["config"]
    out = ["## 3. Full model across column counts", "", f"Conditions: {_env_line(model)}.", ""]
    out.append(
        f"Per-column weights (the article's model): batch {cfg['batch_size']}; shared weights "
        f"(one column and one query/key pair for all columns plus a per-column offset; a "
        f"benchmark-only variant): batch {cfg['shared_batch_size']}. D {cfg['col_out']}, "
        f"input {cfg['in_dim']}, {cfg['message_iters']} iterations, dropout 0. Per-column "
        f"weights and their gradients take {model['per_column_bytes_at_4096'] / 2**30:.1f} GB "
        "at 4,096 columns (before activations and optimizer state: AdamW adds twice the "
        f"weights), over the {cfg['memory_cap_gb']} GB cap set for this shared machine; "
        "beyond a few thousand columns only shared (or low-rank) weights fit."
    )
    out += ["", "| weights | implementation | N | step ms | peak MiB |", "|---|---|---|---|---|"]
    for r in model["rows"]:
        if r["status"] != "ok":
            out.append(f"| {r['mode']} | {r.get('impl', '')} | {r['N']:,} | {r['status']} | |")
        else:
            out.append(
                f"| {r['mode']} | {r['impl']} | {r['N']:,} | {_ms(r['step'])} "
                f"| {_mib(r['peak_bytes'])} |"
            )
    return out + ["", "![model sweep](img/bench_model.png)", ""]


def _bandwidth_section(bw: dict) -> list[str]:
    cfg = bw["config"]
    out = ["## 4. Bandwidth of the attention", "", f"Conditions: {_env_line(bw)}.", ""]
    out.append(
        f"Attention alone, given folded queries: batch {cfg['batch_size']}, D "
        f"{cfg['channels']}. Bound: 3*N*B*D*4 bytes forward, 9*N*B*D*4 forward+backward; "
        f"copy bandwidth from a {cfg['copy_mib']} MiB `copy_` timed in the same rounds."
    )
    out += ["", "| N | threads | backend | pass | ms | GB/s | copy GB/s | share of copy |"]
    out += ["|---|---|---|---|---|---|---|---|"]
    for r in bw["rows"]:
        threads = r.get("threads", cfg["threads"])
        out.append(
            f"| {r['N']:,} | {threads} | {r['backend']} | {r['kind'].replace('_', '+')} "
            f"| {_ms(r['time'])} "
            f"| {r['achieved_bytes_per_s'] / 1e9:.2f} | {r['copy_bytes_per_s'] / 1e9:.1f} "
            f"| {100 * r['fraction_of_copy']:.0f} % |"
        )
    return out + [""]


def update_readme(readme: Path, table: str) -> bool:
    """Replace the marker region of ``readme``; ``False`` if the markers are missing."""
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(
        f"{head}{START}\n{table}\n\n![scaling](docs/img/bench_scaling.png)\n{END}{tail}"
    )
    return True


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    folder = Path(args.results)
    names = ("article_step", "layer_sweep", "model_sweep", "bandwidth")
    results = {n: r for n in names if (r := _load(folder, n, args.device)) is not None}
    rows = headline(results)
    table = headline_markdown(rows)
    doc = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/report.py` from `benchmarks/results/*.json`; regenerate "
        "everything with `python -m benchmarks.run_all` (or `cortexgnn bench`). The machine "
        "is shared: other jobs ran during these measurements, so every number is a median of "
        "interleaved rounds, with the load average at the start recorded. One thread "
        "unless a table says otherwise: on 2 oversubscribed cores, 2 threads made code with "
        "many small ops (the article's loop above all) many times slower, since each op's "
        "thread barrier waits for a descheduled thread. Above the last-level cache, fresh "
        "allocations on this VM are expensive "
        "(first-touch page faults; `THP_MEM_ALLOC_ENABLE=1` helps), which shows in the "
        "largest sizes. No GPU was lent to this session, so there are no GPU results; the "
        "scripts take `--device cuda` and write `*-cuda.json` beside these.",
        "",
        "## Headline",
        "",
        table,
        "",
    ]
    sections = {"article_step": _article_section, "layer_sweep": _layer_section,
                "model_sweep": _model_section, "bandwidth": _bandwidth_section}  # fmt: skip
    for name, render in sections.items():
        if name in results:
            doc += render(results[name])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(doc))
    images = plots(results, Path(args.img_dir))
    readme_updated = update_readme(Path(args.readme), table) if args.readme else None
    return {"doc": str(out), "images": [str(p) for p in images], "headline": rows,
            "readme_updated": readme_updated}  # fmt: skip


if __name__ == "__main__":
    summary = main()
    print(headline_markdown(summary["headline"]))
    print("wrote", summary["doc"], *summary["images"], f"readme: {summary['readme_updated']}")
