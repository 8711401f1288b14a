"""(j) Widths (`make bench-scaling`): start-up, memory and throughput at 1 to N workers."""

from __future__ import annotations

import gc
import statistics
import time
from concurrent.futures import Executor
from typing import Any

from . import workloads
from .competitors import Ability, by_key, make_executor
from .measure import tree_memory
from .records import Record, check, new_record, repeat, run_batch
from .workloads import py_factorial


def _startup_record(executor: Executor, width: int, key: str) -> Record | None:
    """This project's own account of its workers' start-up (``stats()``, read once the pool has
    shut down: every worker has come up by then), or None for the other competitors."""
    stats = getattr(executor, "stats", None)
    if stats is None:
        return None
    ups = [s for s in stats().get("worker_startup") or [] if s]
    if not ups:
        return None
    each = [s["create_s"] + s["bootstrap_s"] for s in ups]
    extra = {
        "workers": width,
        "metric": "interpreter start-up per worker",
        "count": len(ups),
        "create_s": statistics.mean(s["create_s"] for s in ups),
        "bootstrap_s": statistics.mean(s["bootstrap_s"] for s in ups),
        "last_ready_s": max(s["ready_s"] for s in ups),
    }
    return new_record(
        "widths",
        f"{width} workers: interpreter start-up per worker",
        key,
        "s",
        [statistics.mean(each)],
        extra=extra,
    )


def _width_cold(key: str, width: int, p: dict[str, Any]) -> tuple[list[Record], Executor]:
    """A new pool of ``width`` workers: first result, all workers busy at once, memory per worker."""
    workload = "widths"
    gc.collect()
    before = tree_memory()
    t0 = time.perf_counter()
    executor = make_executor(key, width)
    try:
        if executor.submit(workloads.tiny, 1).result() != 2:
            raise AssertionError("tiny: wrong result")
        t1 = time.perf_counter()
        # One task per worker, each holding its worker: they all finish together once every
        # worker is up, so the time past the hold is when the slowest worker had started.
        run_batch(executor, workloads.hold, [(p["hold_s"],)] * width)
        t2 = time.perf_counter()
        after = tree_memory()
    except BaseException:
        executor.shutdown(wait=True)
        raise
    extra = {"workers": width, "metric": "first result"}
    records = [
        new_record(workload, f"{width} workers: first result", key, "s", [t1 - t0], extra=extra),
        new_record(
            workload,
            f"{width} workers: all started",
            key,
            "s",
            [max(0.0, t2 - t0 - p["hold_s"])],
            extra={**extra, "metric": "all started", "hold_s": p["hold_s"]},
        ),
        new_record(
            workload,
            f"{width} workers: memory per worker",
            key,
            "B",
            [(after["pss"] - before["pss"]) / width],
            extra={
                **extra,
                "metric": "memory per worker",
                "rss_per_worker": (after["rss"] - before["rss"]) / width,
            },
        ),
    ]
    return records, executor


def scenario_widths(key: str, p: dict[str, Any]) -> list[Record]:
    """For each width: a cold pool (first result, all started, memory per worker, and this
    project's interpreter start-up per worker), then short and long CPU-bound tasks on it."""
    competitor = by_key(key)
    records: list[Record] = []
    widths = p["widths"] if competitor.can(Ability.PARALLEL) else [1]
    for width in widths:
        if competitor.can(Ability.WORKERS):
            cold, executor = _width_cold(key, width, p)
            records += cold
        else:
            executor = make_executor(key, width)
        try:
            for kind in ("short", "long"):
                size = p[kind]
                tasks = size["tasks_per_worker"] * width
                calls = [(size["n"],)] * tasks
                expected = [size["expected"]] * tasks
                runs = repeat(
                    lambda: check(run_batch(executor, py_factorial, calls), expected, "py_factorial"),
                    1,
                    p["repeats"],
                )
                records.append(
                    new_record(
                        "widths",
                        f"{width} workers: {kind} tasks",
                        key,
                        "tasks/s",
                        [tasks / t.wall_s for t in runs],
                        better="higher",
                        cpu=[t.cpu_percent for t in runs],
                        extra={
                            "workers": width,
                            "metric": f"{kind} tasks",
                            "tasks": tasks,
                            "task_s": size["task_s"],
                        },
                    )
                )
        finally:
            executor.shutdown(wait=True)
        startup = _startup_record(executor, width, key)
        if startup is not None:
            records.append(startup)
    return records
