"""The benchmark tool's one entry point (``cortexgnn bench`` runs ``run all`` through it).

    python -m benchmarks list                          # every experiment and its question
    python -m benchmarks run NAME [FLAGS...]           # one experiment; FLAGS are its own
    python -m benchmarks run NAME --help               # those flags
    python -m benchmarks run all [--quick] [--only NAME...]   # every one, then the report
    python -m benchmarks render [NAME...]              # docs, README and figures from results

``run_all`` is a synonym of ``run all``.
"""

from __future__ import annotations

import sys

from benchmarks.datasets import DataNotFound
from benchmarks.registry import EXPERIMENTS
from cortexgnn import _import_pyg

USAGE = __doc__.split("\n\n")[1]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _import_pyg()  # experiments import PyG: once, without its import-time warning
    if argv[:1] == ["run_all"]:
        argv = ["run", "all", *argv[1:]]
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "list":
        width = max(map(len, EXPERIMENTS))
        for name, experiment in EXPERIMENTS.items():
            print(f"{name:<{width}}  {experiment.question}")
        return 0
    if command == "render":
        from benchmarks import renderers

        for name, written in renderers.render(rest or None).items():
            print(f"{name}: {', '.join(map(str, written)) or 'no result to render'}")
        return 0
    if command != "run" or not rest:
        print(USAGE, file=sys.stderr)
        return 0 if command in ("-h", "--help") else 2
    name, flags = rest[0], rest[1:]
    if name == "all":
        from benchmarks import report, run_all

        summary = run_all.main(flags)
        print(report.headline_markdown(summary["report"]["headline"]))
        print(f"report: {summary['report']['doc']}")
        return 0
    if name not in EXPERIMENTS:
        print(f"benchmarks: no experiment {name!r}; choose all or one of "
              f"{', '.join(EXPERIMENTS)}", file=sys.stderr)  # fmt: skip
        return 2
    program, sys.argv[0] = sys.argv[0], f"python -m benchmarks run {name}"  # argparse's prog
    try:
        EXPERIMENTS[name].load().main(flags)
    except DataNotFound as missing:
        print(f"benchmarks {name}: {missing}", file=sys.stderr)
        return 2
    finally:
        sys.argv[0] = program
    return 0


if __name__ == "__main__":
    sys.exit(main())
