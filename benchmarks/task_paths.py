"""Per-task cost of each path a task takes through the pool, in one process: tiny pickled tasks
(``sorted([i])``), tiny by-name tasks (``operator.neg(i)``), tiny tasks of a ``__main__``
function, and ``map`` over many tiny items (chunked: each chunk a pickled call of the
runner's ``run_chunk``).

Each round times every kind once, in a rotating order; it prints each kind's median over the
rounds, wall time and the process's CPU time (every thread's: the workers run in this process)
in microseconds per task or item, with the load average before and after. Run it under two
builds, alternating, to compare them (the same script, each with its own venv).

    .venv/bin/python benchmarks/task_paths.py [--tasks 5000] [--items 200000] [--rounds 5] [--only name]
"""

from __future__ import annotations

import argparse
import operator
import os
import statistics
import sys
import time
from collections.abc import Callable

from subinterpreter_parallelism import InterpreterPoolExecutor


def plus_one(i: int) -> int:
    return i + 1


def per_task_us(submit: Callable[[int], object], tasks: int) -> tuple[float, float]:
    """Wall and CPU microseconds per task."""
    start, cpu = time.perf_counter(), time.process_time()
    futures = [submit(i) for i in range(tasks)]
    for future in futures:
        future.result()  # type: ignore[attr-defined]
    return (time.perf_counter() - start) / tasks * 1e6, (time.process_time() - cpu) / tasks * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="", help="time only the kinds whose name contains this")
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    times: dict[str, list[tuple[float, float]]] = {}
    with InterpreterPoolExecutor(options.workers) as pool:
        n, m = options.tasks, options.items
        kinds: dict[str, Callable[[], tuple[float, float]]] = {
            "sorted([i]) pickled": lambda: per_task_us(lambda i: pool.submit(sorted, [i]), n),
            "operator.neg(i) by name": lambda: per_task_us(lambda i: pool.submit(operator.neg, i), n),
            "__main__ fn(i)": lambda: per_task_us(lambda i: pool.submit(plus_one, i), n),
            "map(abs, range) per item": lambda: _map_us(pool, m),
        }
        kinds = {name: timer for name, timer in kinds.items() if options.only in name}
        for timer in kinds.values():
            timer()  # warm-up: every worker up, modules imported, definitions sent
        order = list(kinds)
        for round_ in range(options.rounds):
            for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                times.setdefault(name, []).append(kinds[name]())
    print(
        f"Python {sys.version.split()[0]}, {options.workers} workers, {options.rounds} rounds, "
        f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(f"  {'kind':<26} {'wall us':>9} {'cpu us':>9}")
    for name, values in times.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"  {name:<26} {wall:9.3f} {cpu:9.3f}")


def _map_us(pool: InterpreterPoolExecutor, items: int) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    for _ in pool.map(abs, range(items)):
        pass
    return (time.perf_counter() - start) / items * 1e6, (time.process_time() - cpu) / items * 1e6


if __name__ == "__main__":
    main()
