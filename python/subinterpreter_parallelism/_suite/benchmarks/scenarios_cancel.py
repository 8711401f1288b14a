"""(h) Cancelling a running task: until `cancelled()`, until the worker is free, and how
long `cancel()` blocks while the task is inside a C call."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import workloads
from .competitors import Ability, by_key, make_executor
from .records import Record, na_record, new_record, over_budget, start_all


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.0002)
    return True


def scenario_cancel(key: str, p: dict[str, Any]) -> list[Record]:
    """``future.cancel()`` on a running pure-Python task until ``cancelled()``, and until the worker is free."""
    competitor = by_key(key)
    if not competitor.can(Ability.PARALLEL):
        reason = competitor.why_not(Ability.PARALLEL)
        return [
            na_record("cancel", "cancelled", key, reason),
            na_record("cancel", "worker free", key, reason),
        ]
    executor = make_executor(key, 1)
    try:
        start_all(executor, key, 1, 0.0)
        to_cancelled, to_free = [], []
        # Long enough never to finish here; short enough to wait out where cancel cannot stop it.
        spin_s = p["spin_s"] if competitor.can(Ability.STOPS_RUNNING) else 3 * p["running_s"]
        for attempt in range(p["repeats"]):
            if attempt and over_budget():
                break
            future = executor.submit(workloads.spin, spin_s)
            if competitor.can(Ability.REPORTS_RUNNING):
                _wait_until(future.running, 10)  # phase reported by the worker itself
            time.sleep(p["running_s"])
            t0 = time.perf_counter()
            cancelled = future.cancel()
            if not cancelled:
                future.result()
                reason = "cannot stop a running task: cancel() returned False"
                return [
                    na_record("cancel", "cancelled", key, reason),
                    na_record("cancel", "worker free", key, reason),
                ]
            if not _wait_until(future.cancelled, 30):
                raise AssertionError("cancel() returned True but the future never became cancelled")
            t1 = time.perf_counter()
            executor.submit(workloads.tiny, 1).result(timeout=60)
            t2 = time.perf_counter()
            to_cancelled.append(t1 - t0)
            to_free.append(t2 - t0)
    finally:
        executor.shutdown(wait=True)
    records = [
        new_record("cancel", "cancelled", key, "s", to_cancelled),
        new_record("cancel", "worker free", key, "s", to_free),
    ]
    if not competitor.can(Ability.STOPS_RUNNING):
        return [*records, na_record("cancel", "in C", key, competitor.why_not(Ability.STOPS_RUNNING))]
    return [*records, _cancel_in_c(key, p)]


def _cancel_in_c(key: str, p: dict[str, Any]) -> Record:
    """How long ``cancel()`` blocks its caller while the task holds its GIL in a C call: it only
    requests the interruption (delivered when the call returns), so it must not wait for it."""
    import mmap
    import os
    import tempfile

    executor = make_executor(key, 1)
    returns = []
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "gate")
        try:
            start_all(executor, key, 1, 0.0)
            for attempt in range(p["repeats"]):
                if attempt and over_budget():
                    break
                with open(path, "wb") as file:
                    file.write(b"\0\0\1")
                with open(path, "r+b") as file:
                    gate = mmap.mmap(file.fileno(), 3)
                try:
                    future = executor.submit(workloads.hold_gil_in_c, path)
                    if not _wait_until(lambda: gate[0] == 1, 30):
                        raise AssertionError("the C call never started")
                    t0 = time.perf_counter()
                    cancelled = future.cancel()
                    returns.append(time.perf_counter() - t0)
                    if not cancelled:
                        raise AssertionError("cancel() of a task in a C call returned False")
                finally:
                    gate[2] = 0  # the C call ends; the interruption then reaches the task
                executor.submit(workloads.tiny, 1).result(timeout=60)
                gate.close()
        finally:
            executor.shutdown(wait=True)
    return new_record("cancel", "in C", key, "s", returns)
