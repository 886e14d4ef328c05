"""Training runs a few at a time, in the order a study asks for them.

The studies (``ablation``, ``study``) pick their next runs from what is already recorded:
a run whose learning rate is chosen by earlier runs becomes ready only once those are in.
:func:`run_jobs` keeps ``workers`` runs going, asks the study again after each one ends,
and hands each result to the study to record before the next pick; a run that fails is
reported on stderr and not tried again in this invocation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

__all__ = ["run_jobs"]


def run_jobs(
    ready: Callable[[], Iterable[Hashable]],
    run: Callable[[Hashable], object],
    record: Callable[[Hashable, object], None],
    workers: int = 1,
) -> list[Hashable]:
    """Run every ready job, ``workers`` at a time, until none is left.

    Args:
        ready: the jobs still to run whose inputs are known, in order of priority; asked
            again after each run ends (a job already running is skipped).
        run: makes one job; a ``RuntimeError`` marks it failed.
        record: stores a finished job's result (in the calling thread, one at a time).
        workers: how many jobs run at once.

    Returns:
        The jobs that failed.
    """
    workers = max(1, workers)
    failures: list[Hashable] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running: dict[Future, Hashable] = {}
        while True:
            busy = set(running.values()) | set(failures)
            for job in ready():
                if len(running) >= workers:
                    break
                if job not in busy:
                    running[pool.submit(run, job)] = job
                    busy.add(job)
            if not running:
                return failures
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    result = future.result()
                except RuntimeError as err:
                    failures.append(job)
                    print(err, file=sys.stderr, flush=True)
                    continue
                record(job, result)
