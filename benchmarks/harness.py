"""Timing, peak memory, environment and result files shared by every benchmark script.

Each script answers one question with ``main(argv) -> dict``; this module is how they all
time (``torch.utils.benchmark`` medians, candidates interleaved round by round so a noisy
shared machine hits every candidate alike), measure peak memory (peak resident set on the
CPU, the caching allocator's peak on CUDA), describe the machine and write
``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from cortexgnn import _import_pyg
from cortexgnn.train.metrics import git_commit

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def new_parser(doc: str) -> argparse.ArgumentParser:
    """An argparse parser described by the script docstring's first line, showing defaults."""
    return argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def cuda_usable() -> bool:
    """Whether a CUDA device can be used, asked without printing anything.

    A build without CUDA (``torch.version.cuda`` unset) is answered from the build alone;
    otherwise ``torch.cuda.is_available()`` asks the driver (silent where there is none)
    with its "CUDA initialization" warnings silenced.
    """
    if not torch.backends.cuda.is_built() or torch.version.cuda is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.cuda.is_available()


def quiet_cpu_profiler() -> None:
    """Keep kineto (``torch.profiler``'s C++ side) quiet on a machine without CUDA.

    Its first use logs ``ERROR ... gpuGetDeviceCount failed with code 35`` (it probes for a
    GPU even for a CPU-only profile) and ``USDT ... profiler_start/stop`` on every profile;
    ``KINETO_LOG_LEVEL=6`` (above its highest level, USDT = 5) drops both. Kineto reads the variable
    when the profiler first starts, so call this before that; a value already set is kept,
    and nothing changes where CUDA is usable (its messages may matter there).
    """
    if not cuda_usable():
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")


def _timer_class():
    """``torch.utils.benchmark.Timer``, imported without its CUDA warning.

    Importing it imports ``torch.utils.cpp_extension``, which logs ``No CUDA runtime is
    found, using CUDA_HOME=...`` on a CUDA build without a GPU: irrelevant to CPU timing.
    """
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)
    try:
        from torch.utils.benchmark import Timer
    finally:
        cpp_logger.setLevel(level)
    return Timer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_checkout_warning() -> str | None:
    """Why the commit in a result may not be this checkout's, or ``None`` when it is.

    Run from another folder, ``cortexgnn`` comes from wherever it is installed (an
    editable install of another worktree, say): the result then times, and is stamped
    with, that code.
    """
    import cortexgnn

    package = Path(cortexgnn.__file__).resolve().parent
    here = Path(__file__).resolve().parents[1]
    if package.parent == here:
        return None
    return (
        f"cortexgnn is imported from {package.parent}, not from this checkout ({here}): the "
        f"results time and name that code; run `python -m benchmarks run NAME` from {here} "
        "to time this checkout"
    )


def environment(device: torch.device, num_threads: int) -> dict:
    """What produced a result: hardware, threads, versions, commit, load."""
    problem = package_checkout_warning()
    if problem:
        logging.getLogger("benchmarks").warning(problem)
    _import_pyg()  # without PyG's import-time deprecation warning
    import torch_geometric

    env = {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "num_threads": num_threads,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        env["load_average_at_start"] = list(os.getloadavg())
    except OSError:
        env["load_average_at_start"] = None
    return env


def _stats(seconds: list[float]) -> dict:
    t = torch.tensor(seconds, dtype=torch.float64)
    q1, med, q3 = (float(torch.quantile(t, q)) for q in (0.25, 0.5, 0.75))
    return {"median_s": med, "iqr_s": q3 - q1, "min_s": float(t.min()), "samples": len(seconds)}


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    device: torch.device,
    num_threads: int,
    rounds: int = 5,
    min_run_time: float = 0.2,
    warmup: int = 1,
) -> dict[str, dict]:
    """Median seconds per call of each function, measured in interleaved rounds.

    Every round times each function once with ``Timer.blocked_autorange`` (which runs
    whole blocks for at least ``min_run_time``); the reported median and IQR are over the
    per-call times of all blocks of all rounds. ``min_run_time=0`` times a single call per
    round instead, with no block-size search: the smoke sizes of ``--quick`` runs.

    Args:
        fns: name -> zero-argument callable.
        device: where they run (CUDA is synchronised after each block).
        num_threads: intra-op threads for the measurement.
        rounds: interleaved rounds.
        min_run_time: seconds per ``blocked_autorange`` call; 0 for one call per round.
        warmup: untimed calls of each function first.
    """
    Timer = _timer_class()  # noqa: N806 - a class
    torch.set_num_threads(num_threads)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
        synchronize(device)
    per_call: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            if min_run_time <= 0:  # Timer.timeit would add its own warm-up calls
                t0 = time.perf_counter()
                fn()
                synchronize(device)
                per_call[name].append(time.perf_counter() - t0)
                continue
            stmt = "fn(); sync(device)"
            timer = Timer(
                stmt, globals={"fn": fn, "sync": synchronize, "device": device},
                num_threads=num_threads,
            )  # fmt: skip
            per_call[name].extend(timer.blocked_autorange(min_run_time=min_run_time).times)
    return {name: _stats(times) for name, times in per_call.items()}


def _rss_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Extra peak memory of one call of ``fn`` above what was resident before it.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset. CPU: the process's peak
    resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) minus the resident
    set before the call, with glibc told to map (and so unmap on free) every block of
    64 KiB or more during the call, so reused heap pages do not hide allocations; ``None``
    where ``/proc`` does not allow that.
    """
    if device.type == "cuda":
        synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    libc = _libc()
    if libc is not None:  # map every block >= 64 KiB, so a free returns it at once
        libc.mallopt(_M_MMAP_THRESHOLD, 64 << 10)
        libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kib("VmRSS")
    try:
        fn()
        peak = _rss_kib("VmHWM")
    finally:
        if libc is not None:  # back to a fixed large threshold for the timings
            libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    if before is None or peak is None:
        return None
    return max(peak - before, 0) * 1024


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def _libc():
    """The C library (glibc) through ctypes, or ``None`` where it is not glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both must exist
        return libc
    except (OSError, AttributeError):
        return None


def gemm_rate(device: torch.device, num_threads: int, size: int = 2048) -> float:
    """FLOP/s of a square fp32 matrix product ``[size, size] @ [size, size]``."""
    torch.set_num_threads(num_threads)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    stats = time_interleaved(
        {"gemm": lambda: a @ b}, device=device, num_threads=num_threads, rounds=3
    )["gemm"]
    return 2 * size**3 / stats["median_s"]


def copy_bandwidth(device: torch.device, num_threads: int, num_bytes: int = 256 << 20) -> float:
    """Bytes/s of ``dst.copy_(src)`` on fp32 buffers far above the last-level cache.

    Counts one read and one write per element, the usual STREAM "copy" convention.
    """
    torch.set_num_threads(num_threads)
    src = torch.randn(num_bytes // 4, device=device)
    dst = torch.empty_like(src)
    stats = time_interleaved(
        {"copy": lambda: dst.copy_(src)}, device=device, num_threads=num_threads, rounds=3
    )["copy"]
    return 2 * num_bytes / stats["median_s"]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if cuda_usable() else "cpu")
    return torch.device(name)


def write_result(name: str, result: dict, out_dir: str | Path | None = None) -> Path:
    """Write ``<out_dir>/<name>.json`` (default ``benchmarks/results``); returns the path."""
    folder = Path(out_dir) if out_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return path


def replace_between(path: str | Path, start: str, end: str, text: str) -> bool:
    """Replace what lies between the ``start`` and ``end`` markers of a Markdown file.

    Returns ``False`` (and writes nothing) when a marker is missing.
    """
    path = Path(path)
    content = path.read_text()
    if start not in content or end not in content:
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")
    return True


def measured_on(env: dict, setting: str) -> str:
    """The sentence under a results table: machine, ``setting``, torch, commit, date, load."""
    load = env.get("load_average_at_start") or [float("nan")]
    end = env.get("load_average_at_end")
    at_end = f" and {end[0]:.1f} at the end" if end else ""
    return (
        f"Measured on {env['cpu']} ({env['cpu_count']} cores), {setting}, torch "
        f"{env['torch']}, commit {env['git_commit']}, {env['date_utc']}; load average "
        f"{load[0]:.1f} at the start{at_end}."
    )


def render_committed(name: str, doc: Path, start: str, end: str, render) -> dict:
    """Re-render ``doc``'s block between ``start`` and ``end`` from ``results/<name>.json``."""
    result = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    replace_between(doc, start, end, render(result))
    return result


def publish(name: str, result: dict, out_dir, doc: Path, start: str, end: str, render) -> None:
    """Write ``result`` as ``<out_dir>/<name>.json`` (and re-render ``doc`` if committed).

    Into the committed results folder (``out_dir`` ``None``) the result also re-renders
    ``doc``'s block between ``start`` and ``end``.
    """
    result["path"] = str(write_result(name, result, out_dir))
    if out_dir is None:
        replace_between(doc, start, end, render(result))
