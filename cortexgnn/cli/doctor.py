"""``cortexgnn doctor``: what this installation has and finds, as one dict of short facts.

Every probe is guarded: a missing package or an unexpected environment gives
``"not installed"``/``"unknown"`` instead of an error, so the report always prints.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path

from ..train.data import DATA_DIR_ENV
from .parser import BOOL

__all__ = ["DATASET_FOLDERS", "add_doctor_parser", "diagnose", "run_doctor"]

#: Dataset folders looked for under each data directory.
DATASET_FOLDERS = ("MNIST/raw", "FashionMNIST/raw", "Planetoid")


def _version(module: str) -> str:
    if importlib.util.find_spec(module) is None:
        return "not installed"
    try:
        with warnings.catch_warnings():  # a library's import-time warnings are not the report
            warnings.simplefilter("ignore")
            return __import__(module).__version__
    except Exception as err:  # a broken installation: say so, keep reporting
        return f"broken ({type(err).__name__}: {err})"


def _kernel() -> str:
    try:
        from ..ops.kernel import kernel_status

        status = kernel_status()
    except Exception:  # an older kernel module without kernel_status, or a failing probe
        return "unknown"
    state = "available" if status.get("available") else "not available"
    return f"{state} ({status.get('reason', '')}; cache {status.get('cache_dir', '?')})"


def _compiler() -> str:
    names = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    found = [shutil.which(name) for name in names if name]
    found = [path for path in found if path]
    return found[0] if found else "none (the C++ attention kernel cannot be built)"


def _ninja() -> str:
    path = shutil.which("ninja")
    if path:
        return path
    return "python package" if importlib.util.find_spec("ninja") else "none"


def _data_dirs(data_dir: str | None) -> dict[str, str]:
    candidates = [("--data-dir", data_dir), (f"${DATA_DIR_ENV}", os.environ.get(DATA_DIR_ENV)),
                  ("./data", "data")]  # fmt: skip
    report = {}
    for label, folder in candidates:
        if not folder:
            continue
        root = Path(folder)
        try:
            found = [name for name in DATASET_FOLDERS if (root / name).is_dir()]
            exists = root.is_dir()
        except OSError as err:
            report[f"data {label}"] = f"{root}: unreadable ({err.strerror or err})"
            continue
        if not exists:
            text = "not found"
        else:
            text = ", ".join(found) if found else "no datasets"
        report[f"data {label}"] = f"{root}: {text}"
    report["data digits"] = (
        "available (scikit-learn)" if importlib.util.find_spec("sklearn") else "needs scikit-learn"
    )
    return report


def diagnose(data_dir: str | None = None) -> dict[str, str]:
    """Versions, attention kernel, threads, CUDA, build tools and the data folders found.

    Args:
        data_dir: a data directory to look in besides ``$CORTEXGNN_DATA_DIR`` and ``./data``.

    Returns:
        Ordered ``{fact: value}`` strings.
    """
    report = {
        "python": f"{platform.python_version()} ({platform.machine()}, {platform.system()})",
        "torch": _version("torch"),
        "torch_geometric": _version("torch_geometric"),
        "cortexgnn": _version("cortexgnn"),
    }
    try:
        import torch

        threads = f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs"
        cuda = (
            f"available: {torch.cuda.device_count()} x {torch.cuda.get_device_name()}"
            if torch.cuda.is_available()
            else "not available"
        )
    except Exception:  # torch missing or broken: reported above
        threads, cuda = f"{os.cpu_count()} CPUs", "unknown"
    report["threads"] = threads
    report["cuda"] = cuda
    report["attention kernel"] = _kernel()
    report["c++ compiler"] = _compiler()
    report["ninja"] = _ninja()
    report.update(_data_dirs(data_dir))
    return report


def add_doctor_parser(subparsers) -> argparse.ArgumentParser:
    """The ``doctor`` sub-command: what this installation has and finds."""
    p = subparsers.add_parser(
        "doctor",
        help="versions, attention kernel, threads, CUDA, compiler and data folders found",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data-dir", default=None, help="also look for datasets here")
    p.add_argument(
        "--build-kernel",
        action=BOOL,
        default=False,
        help="compile the attention kernel now (once per source version, 30-60 s)",
    )
    p.set_defaults(handler=run_doctor)
    return p


def run_doctor(args: argparse.Namespace) -> int:
    """Print the :func:`diagnose` report, one fact a line."""
    if args.build_kernel:
        from ..ops.kernel import build_kernel

        try:
            build_kernel()
        except RuntimeError as err:
            print(f"cortexgnn doctor: error: the attention kernel did not build: {err}",
                  file=sys.stderr)  # fmt: skip
            return 2
    for name, value in diagnose(args.data_dir).items():
        print(f"{name:<16} {value}")
    return 0
