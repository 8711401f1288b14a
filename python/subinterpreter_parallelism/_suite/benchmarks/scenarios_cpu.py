"""CPU-bound workloads: (a) the seed's factorial as one batch, cold and warm, and (b) its
throughput at several worker counts."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from .competitors import Ability, by_key, make_executor
from .measure import timed
from .records import Record, check, new_record, repeat, run_batch, start_all
from .workloads import py_factorial

# -- (a) the seed's factorial, CPU-bound ------------------------------------------------------


def scenario_cpu(key: str, p: dict[str, Any]) -> list[Record]:
    """``tasks`` calls of ``py_factorial(n)`` at once: first with pool start, then warm."""
    tasks, n, workers = p["tasks"], p["n"], p["workers"]
    calls = [(n,)] * tasks
    expected = [p["expected"]] * tasks
    # The seed started one thread per call, all at once; the pools get `workers` workers.
    size = workers if by_key(key).can(Ability.BOUNDED) else None
    holder: list[Executor] = []

    def cold() -> list[Any]:
        holder.append(make_executor(key, size))
        return run_batch(holder[0], py_factorial, calls)

    results, first = timed(cold)
    executor = holder[0]
    try:
        check(results, expected, "py_factorial")
        runs = repeat(
            lambda: check(run_batch(executor, py_factorial, calls), expected, "py_factorial"),
            p["warmups"],
            p["repeats"],
        )
    finally:
        executor.shutdown(wait=True)
    extra = {"tasks": tasks, "n": n, "workers": size}
    return [
        new_record(
            "cpu", "warm", key, "s", [t.wall_s for t in runs], cpu=[t.cpu_percent for t in runs], extra=extra
        ),
        new_record("cpu", "cold", key, "s", [first.wall_s], cpu=[first.cpu_percent], extra=extra),
    ]


# -- (b) CPU-bound scaling with the number of workers -----------------------------------------


def scenario_scaling(key: str, p: dict[str, Any]) -> list[Record]:
    """Throughput (tasks/s) of ``tasks_per_worker * w`` factorial tasks with ``w`` workers."""
    records = []
    counts = p["worker_counts"] if by_key(key).can(Ability.PARALLEL) else [1]
    for workers in counts:
        tasks = p["tasks_per_worker"] * workers
        calls = [(p["n"],)] * tasks
        expected = [p["expected"]] * tasks
        executor = make_executor(key, workers)
        try:
            start_all(executor, key, workers, p["start_s"])
            runs = repeat(
                lambda: check(run_batch(executor, py_factorial, calls), expected, "py_factorial"),
                p["warmups"],
                p["repeats"],
            )
        finally:
            executor.shutdown(wait=True)
        records.append(
            new_record(
                "scaling",
                f"{workers} workers",
                key,
                "tasks/s",
                [tasks / t.wall_s for t in runs],
                better="higher",
                cpu=[t.cpu_percent for t in runs],
                extra={"workers": workers, "tasks": tasks, "n": p["n"]},
            )
        )
    return records
