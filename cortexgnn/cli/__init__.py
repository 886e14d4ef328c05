"""The ``cortexgnn`` command line: one thin module per command over the libraries.

Each command module has an ``add_<command>_parser(subparsers)`` that declares its own flags
and a ``run_<command>(args)`` that calls the library and prints the result: ``train`` and
``eval`` (:mod:`cortexgnn.train`), ``doctor``, ``neurons`` (:mod:`cortexgnn.neurons`) and
``bench`` (the checkout's ``benchmarks/`` tool). Nothing here imports torch or training
code at import time (``cortexgnn --help`` stays fast): the handlers import what they run.
Every error a user can cause (a bad flag, a missing file, a full disk) ends as one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import warnings

from .._version import __version__
from .bench import add_bench_parser
from .doctor import add_doctor_parser
from .neurons import add_neurons_parser
from .parser import Parser
from .train import add_eval_parser, add_train_parser, typed_train_flags

__all__ = ["get_parser", "main"]


def get_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command."""
    parser = Parser(
        prog="cortexgnn",
        description="Cortical-column graph networks, and the neuron network simulator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(subparsers)
    add_eval_parser(subparsers)
    add_doctor_parser(subparsers)
    add_bench_parser(subparsers)
    add_neurons_parser(subparsers)
    return parser


# errno -> what to do about it, for the files of a run
_OS_FIXES = {
    errno.ENOSPC: "free disk space or choose another --out-dir; the last checkpoint is intact",
    errno.EDQUOT: "free disk space or choose another --out-dir; the last checkpoint is intact",
    errno.EACCES: "choose a folder you can write to (--out-dir)",
    errno.EPERM: "choose a folder you can write to (--out-dir)",
    errno.EROFS: "the file system is read-only: choose another --out-dir",
    errno.ENOTDIR: "a file is in the way: remove it or choose another --out-dir",
    errno.EEXIST: "a file is in the way: remove it or choose another --out-dir",
    errno.EISDIR: "a folder is in the way: remove it or choose another path",
    errno.ELOOP: "a symlink is in the way: remove it",
}


def _os_error_line(err: OSError) -> str:
    """One line for an ``OSError``: what failed, on which path, and what to do."""
    what = err.strerror or str(err)
    where = f": {err.filename}" if err.filename else ""
    fix = _OS_FIXES.get(err.errno)
    return f"{what}{where}" + (f" ({fix})" if fix else "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cortexgnn`` and ``python -m cortexgnn``; returns the exit status."""
    parser = get_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command == "train":
        args.given = typed_train_flags(argv[argv.index("train") + 1 :])
    prefix = f"cortexgnn {args.command}"
    original_format = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"{prefix}: warning: {message}\n"
    try:
        with warnings.catch_warnings():
            if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 warns for the job
                warnings.simplefilter("ignore")
            return args.handler(args)
    except (FileNotFoundError, ValueError) as err:  # missing data, bad checkpoint, bad flags
        print(f"{prefix}: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # the run folder cannot be written: permissions, full disk
        print(f"{prefix}: error: {_one_line(_os_error_line(err))}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = original_format
        sys.stdout.flush()
