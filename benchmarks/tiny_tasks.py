"""Tiny tasks, one ``submit`` each: per-task time of InterpreterPoolExecutor against
ThreadPoolExecutor with the same number of workers, in the same run (issue 15's target:
at most 0.8x threads).

Each round times ``[pool.submit(tiny, i) for i in range(N)]`` then ``f.result()`` for each
future, on both pools, alternating which goes first so that machine noise hits both alike.
It prints the median per-task time of each, the ratio of the medians, the median of the
rounds' own ratios with their spread, and the load average before and after.

    .venv/bin/python benchmarks/tiny_tasks.py [--tasks 20000] [--rounds 9] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor

from subinterpreter_parallelism import InterpreterPoolExecutor
from subinterpreter_parallelism._suite.benchmarks.workloads import tiny


def per_task_us(pool: Executor, tasks: int) -> float:
    """Microseconds per task for ``tasks`` submits, then every result."""
    start = time.perf_counter()
    futures = [pool.submit(tiny, i) for i in range(tasks)]
    for future in futures:
        future.result()
    return (time.perf_counter() - start) / tasks * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    threads, interpreters = [], []
    with (
        ThreadPoolExecutor(options.workers) as thread_pool,
        InterpreterPoolExecutor(options.workers) as interpreter_pool,
    ):
        per_task_us(thread_pool, options.tasks)  # warm-up: threads started, modules imported
        per_task_us(interpreter_pool, options.tasks)
        for round_ in range(options.rounds):
            pair = [(thread_pool, threads), (interpreter_pool, interpreters)]
            for pool, times in pair if round_ % 2 == 0 else pair[::-1]:
                times.append(per_task_us(pool, options.tasks))
    ratios = [i / t for t, i in zip(threads, interpreters)]
    t, i = statistics.median(threads), statistics.median(interpreters)
    print(
        f"Python {sys.version.split()[0]}, {options.workers} workers, {options.tasks} tasks x "
        f"{options.rounds} rounds, load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(f"  threads       {t:7.2f} us/task")
    print(f"  interpreters  {i:7.2f} us/task")
    print(
        f"  ratio of medians {i / t:.3f}; median of the rounds' ratios {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
