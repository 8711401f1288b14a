"""Does a task's code run slower in this project's workers than in the stdlib's (3.14+)?

Both pools run tasks in own-GIL sub-interpreters. This script separates "the interpreter runs
the code slower" from "per-task overhead" and from machine noise: it times each call *inside*
the worker with the worker thread's own CPU clock (``time.thread_time``), so neither the
caller, the hand-off nor other processes on the machine enter the figure. Both pools (one
worker each) live in this one process and take turns, call by call (each going first in every
other round), so that load changes hit both alike; it prints the median of each and the median
of the pairwise ratios.

    .venv-py314/bin/python benchmarks/worker_cpu.py [--rounds 9] [--libraries markdown,...]

Workloads: a pure-Python loop, and the first call of each library workload of the benchmark
suite (``benchmarks.libraries``: markdown, pygments, sqlglot, dateutil, networkx; they need
the ``bench`` extra). It also prints each worker's settings that could change speed (switch
interval, recursion limit, gc thresholds, trace and profile hooks, modules loaded).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_PATHS = [
    str(_HERE),
    str(_HERE.parent / "python"),
    str(_HERE.parent / "python" / "subinterpreter_parallelism" / "_suite"),
]


# ─── run inside the workers (imported there as the module ``worker_cpu``) ──────────────────


def cpu_per_call(fn: Any, args: tuple[Any, ...], repeat: int) -> float:
    """The worker thread's CPU seconds per call of ``fn(*args)``."""
    start = time.thread_time()
    for _ in range(repeat):
        fn(*args)
    return (time.thread_time() - start) / repeat


def count_up(n: int) -> int:
    """A pure-Python loop."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def settings() -> dict[str, Any]:
    """What in a worker could make the same code run at another speed."""
    import gc

    return {
        "switch interval": sys.getswitchinterval(),
        "recursion limit": sys.getrecursionlimit(),
        "gc thresholds": gc.get_threshold(),
        "gc enabled": gc.isenabled(),
        "trace hook": sys.gettrace(),
        "profile hook": sys.getprofile(),
        "modules": len(sys.modules),
    }


# ─── the caller ────────────────────────────────────────────────────────────────────────────


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--libraries", default="markdown,pygments,sqlglot,dateutil,networkx")
    options = parser.parse_args()
    if sys.version_info < (3, 14):
        sys.exit("the stdlib's InterpreterPoolExecutor needs Python 3.14+")

    import concurrent.futures as cf

    import subinterpreter_parallelism as sp
    import worker_cpu as tasks  # this file, by a name that both pools' workers can import
    from benchmarks.libraries import LIBRARIES

    print(f"Python {sys.version.split()[0]}, load average at start {os.getloadavg()[0]:.2f}")
    pools = {"this": sp.InterpreterPoolExecutor(1), "stdlib": cf.InterpreterPoolExecutor(1)}
    try:
        for name, pool in pools.items():
            print(f"{name:6s} worker settings: {pool.submit(tasks.settings).result()}")
        work: list[tuple[str, tuple[Any, ...]]] = [("pure-Python loop", (tasks.count_up, (1_000_000,), 1))]
        wanted = options.libraries.split(",")
        work += [(lib.name, (lib.task, lib.calls(1.0)[0], 3)) for lib in LIBRARIES if lib.name in wanted]
        print(f"{'workload':18s} {'this':>10s} {'stdlib':>10s}  this/stdlib (pairs: median, min-max)")
        for label, arguments in work:
            for pool in pools.values():
                pool.submit(tasks.cpu_per_call, *arguments).result()  # imports, caches
            samples: dict[str, list[float]] = {name: [] for name in pools}
            for round_ in range(options.rounds):
                order = list(pools.items())
                for name, pool in order if round_ % 2 == 0 else reversed(order):  # neither always first
                    samples[name].append(pool.submit(tasks.cpu_per_call, *arguments).result())
            ratios = [a / b for a, b in zip(samples["this"], samples["stdlib"])]
            print(
                f"{label:18s} {statistics.median(samples['this']) * 1e3:8.2f}ms "
                f"{statistics.median(samples['stdlib']) * 1e3:8.2f}ms  {statistics.median(ratios):.3f} "
                f"({min(ratios):.2f}-{max(ratios):.2f})",
                flush=True,
            )
    finally:
        for pool in pools.values():
            pool.shutdown()
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if os.environ.get("SP_WORKER_CPU_PATHS") is None:
        # Workers of both pools import by module name: put this folder, the package and the
        # suite on PYTHONPATH, which every interpreter of the new process reads.
        path = os.pathsep.join([*_PATHS, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        os.execve(
            sys.executable,
            [sys.executable, __file__, *sys.argv[1:]],
            {**os.environ, "PYTHONPATH": path, "SP_WORKER_CPU_PATHS": "1"},
        )
    main()
