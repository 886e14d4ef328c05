"""``cortexgnn bench``: the benchmark tool of the checkout (``python -m benchmarks run all``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .parser import BOOL

__all__ = ["add_bench_parser", "run_bench"]


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """The ``bench`` sub-command: ``python -m benchmarks run all`` (needs a source checkout)."""
    p = subparsers.add_parser(
        "bench",
        help="run every benchmark and render docs/benchmarks.md (--quick: smoke sizes)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action=BOOL, default=False,
                   help="small sizes; results and report under --out-dir only")  # fmt: skip
    p.add_argument("--only", nargs="*", default=None, metavar="NAME",
                   help="these experiments (`python -m benchmarks list`; default all)")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out-dir", default=None, help="default benchmarks/results[/quick]")
    p.add_argument("--data-dir", default=None, help="datasets (default: $CORTEXGNN_DATA_DIR, data)")
    p.set_defaults(handler=run_bench)
    return p


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark tool of the checkout beside this package, in its own process."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "__main__.py").is_file():
        raise FileNotFoundError(f"no benchmarks/ folder beside the package in {root}: "
                                "`cortexgnn bench` needs a source checkout")  # fmt: skip
    argv = ["--device", args.device, "--threads", str(args.threads)]
    argv += ["--quick"] if args.quick else []
    argv += ["--only", *args.only] if args.only else []
    argv += ["--out-dir", str(Path(args.out_dir).resolve())] if args.out_dir else []
    argv += ["--data-dir", str(Path(args.data_dir).resolve())] if args.data_dir else []
    # `python -m` from the checkout's root imports its benchmarks/ package, no sys.path edit
    command = [sys.executable, "-m", "benchmarks", "run", "all", *argv]
    return subprocess.run(command, cwd=root).returncode
