"""Tasks of the random-Ctrl-C stress programs (tests/sigint_stress.py): importable by workers."""

from __future__ import annotations

import time


def work(x: int = 0) -> int:
    """About a millisecond of pure-Python work."""
    end = time.perf_counter() + 0.001
    n = 0
    while time.perf_counter() < end:
        n += 1
    return x


def produce_forever(queue) -> None:
    """Puts into ``queue`` until interrupted (blocked in ``put`` whenever it is full)."""
    i = 0
    while True:
        queue.put(i)
        i += 1


def spin_forever() -> None:
    """A task that never returns by itself."""
    while True:
        pass
