"""The seed's comparison, on its workload: ``py_factorial(n)`` run as several tasks at once.

Rows: multiprocessing, sub-interpreters (this project), native Swift code with the GIL
released (the seed's "C++ extension" row), plain threads, and serial execution. Then the
per-step breakdown of the sub-interpreter run, measured by the Swift core. The load average
at start and end goes with the table, and a warning before it when the machine was already
busy (other programs' work skews every row).

Run with ``python demo.py`` at the repository root, ``make demo``, or
``python -m subinterpreter_parallelism demo``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

MODULUS = 1_000_000_007

#: A 1-minute load average above this many per CPU at start makes the demo warn that the
#: machine is busy.
BUSY_LOAD_PER_CPU = 0.5


def py_factorial(n: int) -> int:
    """The seed's workload: ``n!`` modulo 1_000_000_007, in pure Python."""
    k = 1
    for i in range(n, 1, -1):
        k *= i
        k %= MODULUS
    return k


@dataclass
class Row:
    method: str
    wall_s: float
    cpu_s: float

    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _measure(method: str, run: Callable[[], list[int]], expected: list[int]) -> Row:
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    results = run()
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    if results != expected:
        raise AssertionError(f"{method} returned wrong results")
    return Row(method, wall, cpu)


def run_demo(tasks: int, n: int, workers: int, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs every row and prints the tables; returns the measurements."""
    import subinterpreter_parallelism as sp
    from subinterpreter_parallelism import _native

    expected_one = _native.factorial_mod(n)
    expected = [expected_one] * tasks
    calls = [["subinterpreter_parallelism.demo", "py_factorial", (n,)] for _ in range(tasks)]
    cpus = os.cpu_count() or 1
    load_at_start = os.getloadavg()
    out(
        f"Workload: {tasks} tasks of py_factorial({n:,}), {workers} workers, "
        f"{cpus} CPUs, Python {platform.python_version()}\n"
    )
    if load_at_start[0] > cpus * BUSY_LOAD_PER_CPU:
        out(
            f"warning: this machine is busy: load average {load_at_start[0]:.2f} on {cpus} CPUs before "
            f"the demo (above {cpus * BUSY_LOAD_PER_CPU:g}). Other programs compete for the CPUs, so the "
            "times and speedups below are not reliable; run it again when the machine is quieter.\n"
        )

    rows: list[Row] = []

    # Processes first: forking before this process has started any pool thread is safe.
    def processes() -> list[int]:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(py_factorial, [n] * tasks))

    rows.append(_measure("multiprocessing (ProcessPoolExecutor, incl. start-up)", processes, expected))

    stats: dict[str, Any] = {}

    def subinterpreters() -> list[int]:
        pool = sp.InterpreterPoolExecutor(workers)
        try:
            return sp.parallel(*calls, executor=pool)
        finally:
            pool.shutdown()
            stats.update(pool.stats())

    rows.append(_measure("sub-interpreters (this project, incl. start-up)", subinterpreters, expected))

    def native() -> list[int]:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(_native.factorial_mod, [n] * tasks))

    rows.append(_measure("native Swift, GIL released (threads)", native, expected))

    def threads() -> list[int]:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(py_factorial, [n] * tasks))

    rows.append(_measure("threads (ThreadPoolExecutor)", threads, expected))
    rows.append(
        _measure("serial (one task at a time)", lambda: [py_factorial(n) for _ in range(tasks)], expected)
    )

    serial = rows[-1].wall_s
    out("| method | wall time | speedup vs serial | CPU use |")
    out("|---|---|---|---|")
    for row in rows:
        out(f"| {row.method} | {row.wall_s:.2f} s | {serial / row.wall_s:.2f}x | {row.cpu_percent():.0f}% |")
    load_at_end = os.getloadavg()
    out(
        f"\nload average (1, 5, 15 min): {_loads(load_at_start)} at start, {_loads(load_at_end)} at end, "
        f"on {cpus} CPUs{' (busy)' if load_at_start[0] > cpus * BUSY_LOAD_PER_CPU else ''}"
    )

    steps = stats["steps"]

    def total(*names: str) -> float:
        return sum(steps[name]["total_s"] for name in names)

    started = max(1, steps["interpreter_startup"]["count"])
    ended = max(1, steps["interpreter_shutdown"]["count"])
    out("\nSub-interpreter run, per step (measured by the Swift core):")
    out("| step | total | per interpreter or task |")
    out("|---|---|---|")
    out(
        f"| creating interpreters | {total('interpreter_startup') * 1e3:.1f} ms | "
        f"{total('interpreter_startup') / started * 1e3:.1f} ms each ({started}, in parallel) |"
    )
    pickling = total("encode_call", "decode_call", "encode_result", "deliver")
    out(
        f"| imports & pickling/unpickling | {pickling * 1e3:.2f} ms | {pickling / tasks * 1e3:.3f} ms per task |"
    )
    out(
        f"| waiting in the queue | {total('queue_wait') * 1e3:.1f} ms | {total('queue_wait') / tasks * 1e3:.1f} ms per task |"
    )
    out(f"| function call | {total('call') * 1e3:.0f} ms | {total('call') / tasks * 1e3:.0f} ms per task |")
    out(
        f"| ending interpreters | {total('interpreter_shutdown') * 1e3:.1f} ms | "
        f"{total('interpreter_shutdown') / ended * 1e3:.1f} ms each |"
    )
    return {
        "tasks": tasks,
        "n": n,
        "workers": workers,
        "load_average": [load_at_start, load_at_end],
        "rows": [row.__dict__ for row in rows],
        "stats": stats,
    }


def _loads(loads: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in loads)


def main(argv: list[str] | None = None) -> int:
    from subinterpreter_parallelism._versions import default_worker_count

    parser = argparse.ArgumentParser(
        prog="python -m subinterpreter_parallelism demo",
        description="The seed's comparison: py_factorial(n) as parallel tasks, several ways.",
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of about a minute")
    parser.add_argument("--tasks", type=int, help="number of tasks (default: 4 per worker)")
    parser.add_argument(
        "--n", type=int, help="factorial size per task (default: ~2 s per task, --quick ~0.1 s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_worker_count(),
        help="workers for every parallel row (default: the usable CPUs)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    tasks = args.tasks if args.tasks is not None else 4 * args.workers
    n = args.n if args.n is not None else (300_000 if args.quick else 5_000_000)
    if tasks < 1 or n < 0:
        parser.error("--tasks must be >= 1 and --n >= 0")
    run_demo(tasks, n, args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
