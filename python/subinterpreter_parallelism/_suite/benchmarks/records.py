"""The records every scenario returns, and the helpers the scenarios share.

Every scenario takes a competitor key and a parameter dict (sizes, repeats; chosen by
``benchmarks.suite``) and returns a list of *records*, plain dicts that go to the JSON file
as they are:

    {"workload": "tiny", "case": "submit", "competitor": "fork", "unit": "s",
     "better": "lower", "samples": [...], "cpu_percent": [...], "extra": {...}}

A record has ``"na": reason`` instead of samples when the competitor cannot do the case,
or ``"error": text`` when it tried and failed. ``unit`` is "s" (seconds, per run or per
item as the case says), "tasks/s" or "B" (bytes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from . import workloads
from .competitors import Ability, by_key
from .measure import Timing, timed

__all__ = [
    "Record",
    "check",
    "error_record",
    "na_record",
    "new_record",
    "over_budget",
    "per_item",
    "repeat",
    "run_batch",
    "start_all",
    "start_budget",
]

Record = dict[str, Any]


def new_record(
    workload: str,
    case: str,
    key: str,
    unit: str,
    samples: Sequence[float],
    *,
    better: str = "lower",
    cpu: Sequence[float | None] | None = None,
    extra: dict[str, Any] | None = None,
) -> Record:
    """A record of samples: one case of one competitor."""
    record: Record = {
        "workload": workload,
        "case": case,
        "competitor": key,
        "unit": unit,
        "better": better,
        "samples": list(samples),
    }
    if cpu is not None:
        record["cpu_percent"] = list(cpu)
    if extra:
        record["extra"] = extra
    return record


def na_record(workload: str, case: str, key: str, reason: str) -> Record:
    """The record of a case the competitor cannot do, and why."""
    return {"workload": workload, "case": case, "competitor": key, "na": reason}


def error_record(workload: str, case: str, key: str, exc: BaseException) -> Record:
    """The record of a case that failed: the first line of its exception."""
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
    return {"workload": workload, "case": case, "competitor": key, "error": text}


def run_batch(executor: Executor, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Submits every call, then waits for all results in order."""
    futures = [executor.submit(fn, *args) for args in calls]
    return [future.result() for future in futures]


def start_all(executor: Executor, key: str, workers: int, seconds: float = 0.1) -> list[int]:
    """Makes every worker start and import the task modules (one held task per worker)."""
    if not by_key(key).can(Ability.WORKERS):
        return []
    return run_batch(executor, workloads.start_worker, [(seconds,)] * workers)


def check(results: Sequence[Any], expected: Sequence[Any], what: str) -> None:
    """Raises AssertionError when a run's results are not the expected ones."""
    if list(results) != list(expected):
        raise AssertionError(f"{what}: wrong results")


# When the cell's time budget ends (``params["budget_s"]``): later repeats are dropped, but every
# case still gets one sample. Keeps the suite's length bounded on a slow or busy machine.
_deadline = float("inf")


def over_budget() -> bool:
    """Whether the cell's time budget is spent."""
    return time.perf_counter() > _deadline


def start_budget(seconds: float) -> None:
    """Starts the cell's time budget: ``seconds`` from now (infinity: none)."""
    global _deadline
    _deadline = time.perf_counter() + seconds


def repeat(run: Callable[[], Any], warmups: int, repeats: int) -> list[Timing]:
    """``warmups`` untimed runs, then up to ``repeats`` timed ones (at least one)."""
    for _ in range(warmups):
        if over_budget():
            break
        run()
    timings = [timed(run)[1]]
    while len(timings) < repeats and not over_budget():
        timings.append(timed(run)[1])
    return timings


def per_item(runs: Sequence[Timing], count: int) -> list[float]:
    """Each run's wall time per item, for runs of ``count`` items."""
    return [t.wall_s / count for t in runs]
