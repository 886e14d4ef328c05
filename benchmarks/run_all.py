"""Run every registered experiment, then render the report: one command regenerates it all.

    THP_MEM_ALLOC_ENABLE=1 python -m benchmarks run all   # full sizes: hours (the ablation study)
    python -m benchmarks run all --quick                  # smoke sizes, a few minutes
    python -m benchmarks run all --only layer_sweep bandwidth

The experiments are those of :mod:`benchmarks.registry`, in its order. A full run writes
``benchmarks/results/*.json``, ``docs/benchmarks.md``, ``docs/img/bench_*.png``, the
README's headline table and the docs of every experiment it ran (:mod:`benchmarks.renderers`).
``--quick`` writes everything under ``--out-dir`` (default
``benchmarks/results/quick``) and leaves docs and README alone; its sizes are smoke sizes,
so its table shows results without targets. An experiment whose data is missing is
skipped with one line saying how to get the data; the others still run. Each experiment
prints a line when it starts and when it ends, and one every few seconds while it runs.
Set ``THP_MEM_ALLOC_ENABLE=1`` in the shell (torch reads it before this module runs);
every result records whether it was set.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import harness, renderers, report
from benchmarks.datasets import DataNotFound, default_data_dir
from benchmarks.registry import EXPERIMENTS, Experiment
from cortexgnn._progress import ticking

#: seconds between two "still running" lines of one experiment
TICK_S = 4.0


def get_parser() -> argparse.ArgumentParser:
    p = harness.new_parser(__doc__)
    p.add_argument("--quick", action=argparse.BooleanOptionalAction, default=False,
                   help="smoke sizes; results and report under --out-dir only")  # fmt: skip
    p.add_argument("--only", nargs="*", default=list(EXPERIMENTS), choices=list(EXPERIMENTS),
                   metavar="NAME", help="these experiments (default all)")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", default=None, help="results folder")
    p.add_argument("--data-dir", default=str(default_data_dir()),
                   help="datasets (Planetoid/Cora, FashionMNIST) for the experiments that need "
                        "them")  # fmt: skip
    p.add_argument("--extra-args", nargs="*", default=[], help="appended to every experiment")
    return p


def _takes(experiment: Experiment, flag: str) -> bool:
    parser = experiment.load().get_parser()
    return flag in parser._option_string_actions  # noqa: SLF001 - argparse has no public query


def experiment_argv(experiment: Experiment, *, quick: bool, device: str, threads: int,
                    out_dir: str, data_dir: str) -> list[str]:  # fmt: skip
    """The experiment's own flags for this run: its smoke sizes, then the shared settings."""
    argv = [a.replace("{out_dir}", out_dir) for a in experiment.quick] if quick else []
    shared = {"--device": device, "--threads": str(threads), "--out-dir": out_dir,
              "--data-dir": data_dir}  # fmt: skip
    for flag, value in shared.items():
        if flag not in argv and _takes(experiment, flag):
            argv += [flag, value]
    return argv


@contextmanager
def progress(label: str) -> Iterator[None]:
    """Say when ``label`` starts, and every ``TICK_S`` seconds until it ends."""
    print(f"{label}: running", file=sys.stderr, flush=True)
    with ticking(f"{label}: running, {{seconds:.0f}} s", every_s=TICK_S):
        yield


class Unsupported(RuntimeError):
    """The experiment measures another device kind than this run's."""


def run_one(experiment: Experiment, argv: list[str], data_dir: str, device: str) -> dict:
    """Run one experiment.

    Raises:
        DataNotFound: its data is missing.
        Unsupported: it measures another device kind than ``device``.
    """
    if experiment.device and experiment.device != device:
        raise Unsupported(f"measures {experiment.device} only, this run is on {device} "
                          f"(--device {experiment.device})")  # fmt: skip
    if experiment.needs and not (Path(data_dir) / experiment.needs).is_dir():
        raise DataNotFound(
            f"{experiment.needs} not found under {data_dir}: pass --data-dir to a folder "
            f"holding it, or download it (`cortexgnn train --dataset fashion-mnist --download "
            f"--data-dir {data_dir}` fetches Fashion-MNIST)"
        )
    return experiment.load().main(argv)


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    device = harness.pick_device(args.device)
    if device.type == "cpu":
        harness.quiet_cpu_profiler()  # article_step's profile, in a full run
    out_dir = args.out_dir
    if out_dir is None:
        out_dir = str(harness.RESULTS_DIR / "quick") if args.quick else str(harness.RESULTS_DIR)
    summary, skipped = {}, {}
    for number, name in enumerate(args.only, 1):
        experiment = EXPERIMENTS[name]
        label = f"[{number}/{len(args.only)}] {name}"
        run_argv = experiment_argv(
            experiment, quick=args.quick, device=device.type, threads=args.threads,
            out_dir=out_dir, data_dir=args.data_dir,
        ) + list(args.extra_args)  # fmt: skip
        start = time.perf_counter()
        try:
            with progress(label):
                summary[name] = run_one(experiment, run_argv, args.data_dir, device.type)
        except (DataNotFound, Unsupported) as missing:
            skipped[name] = str(missing)
            print(f"{label}: skipped: {missing}", file=sys.stderr, flush=True)
            continue
        print(f"{label}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr,
              flush=True)  # fmt: skip
    publish = not args.quick and args.out_dir is None
    report_args = ["--results", out_dir, "--device", device.type]
    if args.quick:
        report_args.append("--quick")
    if publish:
        report_args += ["--readme", str(report.ROOT / "README.md")]
    else:
        report_args += ["--out", str(Path(out_dir) / "benchmarks.md"),
                        "--img-dir", str(Path(out_dir) / "img")]  # fmt: skip
    with progress("report"):
        summary["report"] = report.main(report_args)
        if publish:  # the other experiments' docs and figures, from the results just written
            summary["rendered"] = renderers.render([n for n in ("cora", "neurons", "ablation")
                                                    if n in summary])  # fmt: skip
    summary["skipped"] = skipped
    return summary


if __name__ == "__main__":
    result = main()
    print(report.headline_markdown(result["report"]["headline"]))
    print("wrote", result["report"]["doc"])
