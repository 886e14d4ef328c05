"""Render ``docs/benchmarks.md``, its plots and the README's headline table from results.

Reads ``<results>/{article_step,layer_sweep,model_sweep,bandwidth}-<device>.json`` (any
that exist), writes Markdown tables and PNG plots (``bench_*.png``, needs matplotlib;
skipped without it) and, with ``--readme``, replaces the README region between
``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` with the headline table,
followed by a line naming the commit, machine and date of the results it came from.
With ``--quick`` (smoke sizes, what ``run_all --quick`` renders) the table lists results
without targets: small sizes say nothing about the targets, which need the full sizes.
Nobody copies numbers by hand.

    python -m benchmarks render benchmarks
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import harness
from benchmarks.plots import plots
from benchmarks.report_sections import SECTIONS

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
    p.add_argument("--quick", action=argparse.BooleanOptionalAction, default=False,
                   help="smoke-size results: no targets in the table")  # fmt: skip
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                   help="write the PNG plots (needs matplotlib)")  # fmt: skip
    return p


def _load(folder: Path, name: str, device: str) -> dict | None:
    path = folder / f"{name}-{device}.json"
    return json.loads(path.read_text()) if path.is_file() else None


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


def smoke_rows(rows: list[dict]) -> list[dict]:
    """``rows`` measured at smoke sizes: the same results, no target and no verdict."""
    return [{**r, "target": None, "met": None} for r in rows]


def headline_markdown(rows: list[dict], smoke: bool | None = None) -> str:
    """The headline table, or a sentence saying there is none.

    Smoke-size rows (``smoke``; by default, when no row has a target) get two columns,
    measurement and result, and no verdict.
    """
    if not rows:
        return "No headline measurement in these results."
    if smoke is None:
        smoke = all(r["target"] is None for r in rows)
    if smoke:
        lines = ["| measurement (smoke size: no target) | result |", "|---|---|"]
        return "\n".join(lines + [f"| {r['what']} | {r['value']} |" for r in rows])
    lines = ["| measurement | result | target | reached |", "|---|---|---|---|"]
    lines += [
        f"| {r['what']} | {r['value']} | {r['target']} | {'yes' if r['met'] else 'no'} |"
        for r in rows
    ]
    return "\n".join(lines)


def _when(env: dict) -> str:
    date = env.get("date_utc") or "date unknown"
    return date.replace("T", " ")[:16] + " UTC" if date.endswith("Z") else date


def _machine(env: dict) -> str:
    threads = env.get("num_threads")
    gpu = f", GPU {env['gpu']}" if env.get("gpu") else ""
    return (
        f"{env.get('cpu', 'unknown CPU')} ({env.get('cpu_count')} cores){gpu}, "
        f"{threads} thread{'' if threads == 1 else 's'}"
    )


def source_line(results: dict, where: str = "benchmarks/results/*.json") -> str:
    """One line naming what the headline was rendered from: commit, machine, date.

    Read from each result's ``environment``; the machine is named once when all results
    share it, otherwise with each result.
    """
    envs = {name: r["environment"] for name, r in results.items() if r.get("environment")}
    if not envs:
        return ""
    machines = {_machine(e) for e in envs.values()}
    one_machine = len(machines) == 1
    parts = [
        f"`{name}` at commit {e.get('git_commit') or 'unknown'}, {_when(e)}"
        + ("" if one_machine else f", {_machine(e)}")
        for name, e in envs.items()
    ]
    on = f" on {machines.pop()}" if one_machine else ""
    return f"Rendered from `{where}`, measured{on}: " + "; ".join(parts) + "."


def conditions_table(results: dict) -> str:
    """One row per result: the machine, device, threads and load it recorded, as data."""
    lines = [
        "| result | CPU (cores) | device | threads | load average at start | "
        "`THP_MEM_ALLOC_ENABLE` | torch, PyG | commit, date |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        env = result.get("environment")
        if not env:
            continue
        load = env.get("load_average_at_start")
        device = env.get("device", "cpu") + (f" ({env['gpu']})" if env.get("gpu") else "")
        lines.append(
            f"| `{name}` | {env.get('cpu', 'unknown')} ({env.get('cpu_count')}) | {device} "
            f"| {env.get('num_threads')} | {'n/a' if load is None else f'{load[0]:.1f}'} "
            f"| {env.get('THP_MEM_ALLOC_ENABLE') or 'unset'} "
            f"| {env.get('torch')}, {env.get('torch_geometric')} "
            f"| {env.get('git_commit') or 'unknown'}, {_when(env)} |"
        )
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> bool:
    """Replace the marker region of ``readme``; ``False`` if the markers are missing."""
    return harness.replace_between(
        readme, START, END, f"{table}\n\n![scaling](docs/img/bench_scaling.png)"
    )


def _shown(folder: Path) -> str:
    """The results folder as the docs name it: relative to the checkout where inside it."""
    try:
        return str(folder.resolve().relative_to(ROOT))
    except ValueError:
        return str(folder)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    folder = Path(args.results)
    names = ("article_step", "layer_sweep", "model_sweep", "bandwidth")
    results = {n: r for n in names if (r := _load(folder, n, args.device)) is not None}
    rows = headline(results)
    if args.quick:
        rows = smoke_rows(rows)
        table = headline_markdown(rows, smoke=True)
    else:
        table = headline_markdown(rows)
        source = source_line(results, f"{_shown(folder)}/*-{args.device}.json")
        table += f"\n\n{source}" if source else ""
    doc = ["# Benchmarks", ""]
    if args.quick:
        doc += [
            "Smoke run (`python -m benchmarks run all --quick`, or `cortexgnn bench --quick`): "
            "small sizes that check every experiment runs and the report renders. The "
            "targets are set at the full sizes, so nothing here is compared with them; "
            "`python -m benchmarks run all` measures those.",
            "",
        ]
    doc += [
        "Generated by `python -m benchmarks render` (or `run all`, which measures first) from "
        "`benchmarks/results/*.json`. Every time is a median of rounds that interleave the "
        "compared implementations after a warm-up, so a change of load during a run hits "
        "them alike; the conditions below are what each result recorded when it ran.",
        "",
        "## Conditions",
        "",
        conditions_table(results),
        "",
        "## Headline" + (" (smoke sizes, no targets)" if args.quick else ""),
        "",
        table,
        "",
    ]
    for name, render in SECTIONS.items():
        if name in results:
            doc += render(results[name])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(doc))
    images = plots(results, Path(args.img_dir)) if args.plots else []
    readme_updated = update_readme(Path(args.readme), table) if args.readme else None
    return {"doc": str(out), "images": [str(p) for p in images], "headline": rows,
            "readme_updated": readme_updated}  # fmt: skip


if __name__ == "__main__":
    summary = main()
    print(headline_markdown(summary["headline"]))
    print("wrote", summary["doc"], *summary["images"], f"readme: {summary['readme_updated']}")
