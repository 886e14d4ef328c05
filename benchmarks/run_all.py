"""Run every benchmark, then render the report: one command regenerates all of it.

    THP_MEM_ALLOC_ENABLE=1 python -m benchmarks.run_all            # full, ~30 min on 2 cores
    python -m benchmarks.run_all --quick                         # small sizes, about a minute

The full run writes ``benchmarks/results/*-<device>.json``, ``docs/benchmarks.md``,
``docs/img/bench_*.png`` and the README's headline table. ``--quick`` writes everything
under ``--out-dir`` (default ``benchmarks/results/quick``) and leaves docs and README alone;
its sizes are smoke sizes, so its table shows results without targets (only a full run is
compared with the targets, and its table names the commit, machine and date measured).
On a machine without CUDA nothing prints CUDA or profiler messages.
Set ``THP_MEM_ALLOC_ENABLE=1`` in the shell (torch reads it before this module runs); every
result records whether it was set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

try:
    from benchmarks import article_step, bandwidth, harness, layer_sweep, model_sweep, report
except ImportError:  # run as a script from the benchmarks folder
    import article_step
    import bandwidth
    import harness
    import layer_sweep
    import model_sweep
    import report

QUICK = {
    "article_step": ["--batch-size", "16", "--num-columns", "16", "--in-dim", "64",
                     "--rounds", "2", "--min-run-time", "0.05", "--gemm-size", "512",
                     "--no-profile"],
    "layer_sweep": ["--min-log2", "6", "--max-log2", "10", "--extra-sizes", "--rounds", "1",
                    "--min-run-time", "0.05", "--budget-s", "2", "--fit-range", "64", "1024"],
    "model_sweep": ["--per-column-sizes", "16", "32", "--shared-sizes", "256", "1024",
                    "--in-dim", "64", "--col-out", "32", "--batch-size", "8", "--rounds", "1"],
    "bandwidth": ["--sizes", "2048", "--rounds", "2", "--min-run-time", "0.05",
                  "--copy-mib", "32", "--torch-max-nodes", "2048", "--more-threads"],
}  # fmt: skip
SCRIPTS = {"article_step": article_step, "layer_sweep": layer_sweep,
           "model_sweep": model_sweep, "bandwidth": bandwidth}  # fmt: skip


def get_parser() -> argparse.ArgumentParser:
    p = harness.new_parser(__doc__)
    p.add_argument("--quick", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--only", nargs="*", default=list(SCRIPTS), choices=list(SCRIPTS))
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", default=None, help="results folder")
    p.add_argument("--extra-args", nargs="*", default=[], help="appended to every script")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    device = harness.pick_device(args.device)
    if device.type == "cpu":
        harness.quiet_cpu_profiler()  # article_step's profile, in a full run
    out_dir = args.out_dir
    if out_dir is None:
        out_dir = str(harness.RESULTS_DIR / "quick") if args.quick else str(harness.RESULTS_DIR)
    summary = {}
    for name in args.only:
        script_args = (QUICK[name] if args.quick else []) + [
            "--device", device.type, "--threads", str(args.threads), "--out-dir", out_dir,
            *args.extra_args,
        ]  # fmt: skip
        summary[name] = SCRIPTS[name].main(script_args)
    publish = not args.quick and args.out_dir is None
    report_args = ["--results", out_dir, "--device", device.type]
    if args.quick:
        report_args.append("--quick")
    if publish:
        report_args += ["--readme", str(report.ROOT / "README.md")]
    else:
        report_args += ["--out", str(Path(out_dir) / "benchmarks.md"),
                        "--img-dir", str(Path(out_dir) / "img")]  # fmt: skip
    summary["report"] = report.main(report_args)
    return summary


if __name__ == "__main__":
    result = main()
    print(report.headline_markdown(result["report"]["headline"]))
    print("wrote", result["report"]["doc"])
