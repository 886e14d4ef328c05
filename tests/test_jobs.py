"""benchmarks/jobs.py: runs in priority order, a few at a time, re-asking after each."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package

from benchmarks.jobs import run_jobs  # noqa: E402


def test_jobs_run_in_order_unlock_later_ones_and_a_failure_is_not_retried(capsys):
    done, lock, active, peak = [], threading.Lock(), [0], [0]

    def ready():  # "b" becomes ready once "a" is recorded, like a seed after its rate search
        todo = [j for j in ("a", "x", "fail") if j not in done]
        return todo + (["b"] if "a" in done and "b" not in done else [])

    def run(job):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            if job == "fail":
                raise RuntimeError("fail broke")
            return job.upper()
        finally:
            with lock:
                active[0] -= 1

    results = {}

    def record(job, result):
        results[job] = result
        done.append(job)

    failures = run_jobs(ready, run, record, workers=2)
    assert failures == ["fail"] and results == {"a": "A", "x": "X", "b": "B"}
    assert done.index("a") < done.index("b") and peak[0] <= 2
    assert "fail broke" in capsys.readouterr().err


def test_one_worker_runs_strictly_in_priority_order():
    order = []
    remaining = ["first", "second", "third"]
    run_jobs(lambda: list(remaining), lambda job: job, lambda job, _: (order.append(job),
             remaining.remove(job)), workers=1)  # fmt: skip
    assert order == ["first", "second", "third"]
