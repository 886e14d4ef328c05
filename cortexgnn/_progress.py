"""Nothing waits silently: a line every few seconds while something long runs."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["ticking"]


@contextmanager
def ticking(template: str, every_s: float = 5.0, stream: TextIO | None = None) -> Iterator[None]:
    """Write ``template.format(seconds=...)`` every ``every_s`` seconds until the block ends.

    Args:
        template: one line, with ``{seconds}`` (e.g. ``"compiling: {seconds:.0f} s"``).
        every_s: seconds between two lines.
        stream: where to write (default: ``sys.stderr`` at each line).
    """
    start = time.perf_counter()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every_s):
            out = stream or sys.stderr
            out.write(template.format(seconds=time.perf_counter() - start) + "\n")
            out.flush()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
