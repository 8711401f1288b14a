"""What a pool costs to have: (e) its start-up to the first result, (f) the memory each
worker adds."""

from __future__ import annotations

import gc
import time
from typing import Any

from . import workloads
from .competitors import Ability, by_key, make_executor
from .measure import tree_memory
from .records import Record, na_record, new_record, over_budget, start_all

# -- (e) pool start-up to first result --------------------------------------------------------


def scenario_startup(key: str, p: dict[str, Any]) -> list[Record]:
    """From creating a pool of ``workers`` to the first task's result; shutdown timed apart."""
    if not by_key(key).can(Ability.PARALLEL):
        return [na_record("startup", "first result", key, by_key(key).why_not(Ability.PARALLEL))]
    workers = p["workers"]
    starts, stops = [], []
    for attempt in range(p["repeats"] + 1):  # the first one warms up imports and caches
        if attempt > 1 and over_budget():
            break
        t0 = time.perf_counter()
        executor = make_executor(key, workers)
        if executor.submit(workloads.tiny, 1).result() != 2:
            raise AssertionError("tiny: wrong result")
        t1 = time.perf_counter()
        executor.shutdown(wait=True)
        t2 = time.perf_counter()
        if attempt:
            starts.append(t1 - t0)
            stops.append(t2 - t1)
    return [
        new_record(
            "startup", "first result", key, "s", starts, extra={"workers": workers, "shutdown_s": stops}
        )
    ]


# -- (f) memory per worker --------------------------------------------------------------------


def scenario_memory(key: str, p: dict[str, Any]) -> list[Record]:
    """RSS and PSS added per worker: process tree before the pool and with ``workers`` warm workers."""
    if not by_key(key).can(Ability.WORKERS):
        reason = by_key(key).why_not(Ability.WORKERS)
        return [na_record("memory", "pss", key, reason), na_record("memory", "rss", key, reason)]
    workers = p["workers"]
    gc.collect()
    before = tree_memory()
    executor = make_executor(key, workers)
    try:
        # Every worker holds a task at the same time, so each one starts and imports.
        pids = start_all(executor, key, workers, p["hold_s"])
        gc.collect()
        time.sleep(0.2)
        after = tree_memory()
    finally:
        executor.shutdown(wait=True)
    extra = {"workers": workers, "before": before, "after": after, "worker_pids": len(set(pids))}
    return [
        new_record("memory", kind, key, "B", [(after[kind] - before[kind]) / workers], extra=extra)
        for kind in ("pss", "rss")
    ]
