"""The demo: the seed's comparison, measured fairly, then the places where interpreters win.

Part 1 is the seed's comparison: ``py_factorial(n)`` as several tasks at once, run by a process
pool, by this project's sub-interpreters (through the seed's own interface,
``parallel(["module", "function", (args,)], ...)``), by threads and serially, with the same loop
in Swift beside them as a reference (not Python). Every parallel row pays the same kind of
start-up: a new pool, its workers started, and the task module imported in each worker. The
task module (``benchmarks.workloads``, from the suite folder shipped with the package) imports
nothing heavy, so no row pays for another's imports. Each row shows that start-up, the total,
and the CPU time each task took in its worker (``time.thread_time()``), which a busy machine
cannot inflate. On
Python 3.14 and later the process row uses the default start method (forkserver), with fork
and the stdlib ``InterpreterPoolExecutor`` beside it. Then the per-step breakdown of the
sub-interpreter run, as the Swift core timed it.

Part 2 (:data:`SECTIONS`: :mod:`subinterpreter_parallelism._demo_sections`, and the shared
table in :mod:`subinterpreter_parallelism._demo_table`) measures, now, each place where
interpreters are meant to win against the alternatives, with a one-line verdict each; the
closing lines count, figure by figure, where this project was ahead of every alternative, even,
or behind.

The load average goes with every part: a busy machine moves every wall-clock figure.

Run with ``python demo.py`` at the repository root, ``make demo``, or
``python -m subinterpreter_parallelism demo`` (``--quick`` for a few seconds per part).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import subinterpreter_parallelism as sp

from . import _native
from ._demo_sections import (
    TASK_MODULE,
    Section,
    cancel_running,
    data_heavy,
    load_line,
    many_small_tasks,
    memory,
    startup,
    stdlib_pool,
    task_module,
    verdict_word,
)
from ._demo_table import shared_table
from ._versions import default_worker_count

#: Part 2 of the demo, in order: each takes (workers, quick, out, its number) and returns its
#: verdict, or one per figure where it judges several (the shared table).
SECTIONS: list[Callable[[int, bool, Callable[[str], None], str], Section | list[Section]]] = [
    many_small_tasks,
    data_heavy,
    startup,
    memory,
    shared_table,
    cancel_running,
]

#: A 1-minute load average above this many per CPU at start makes the demo warn that the
#: machine is busy.
BUSY_LOAD_PER_CPU = 0.5
#: Within this ratio either way, two times are "even".
EVEN_WITHIN = 1.05


@dataclass
class Row:
    """One way of running the seed's tasks, over one or more runs."""

    method: str
    #: Whether it runs the Python tasks (the Swift reference row does not).
    python: bool = True
    #: Whether it can run Python code on several cores at once (threads and serial cannot).
    parallel: bool = True
    total_s: list[float] = field(default_factory=list)
    #: From creating the pool until its last worker began its first task (None: no pool).
    startup_s: list[float] = field(default_factory=list)
    #: Median CPU seconds of one task in its worker, per run.
    task_cpu_s: list[float] = field(default_factory=list)
    #: The tasks' CPU seconds over the wall time, per run (1.0 is one core kept busy).
    busy: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return statistics.median(self.total_s)

    def median(self, values: list[float]) -> float | None:
        return statistics.median(values) if values else None


def default_start_method() -> str:
    """The start method a plain ``ProcessPoolExecutor()`` uses here (fork before 3.14 on
    Linux, forkserver from 3.14)."""
    return multiprocessing.get_context().get_start_method()


def process_pool(method: str, workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` with start method ``method``."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))


Trace = tuple[int, float, int, int, float]  # result, CPU s, pid, thread id, began


def seed_calls(tasks: int, n: int) -> list[list[Any]]:
    """The calls of the sub-interpreter row, in the seed's form ``["module", "function", (args,)]``:
    ``py_factorial(n)``, timed in its worker by :func:`benchmarks.workloads.cpu_timed`."""
    return [[TASK_MODULE, "cpu_timed", ("int loop", n)] for _ in range(tasks)]


def _startup(t0: float, traces: list[Trace]) -> float:
    """When the last worker began its first task, counted from ``t0`` (pool creation)."""
    first: dict[tuple[int, int], float] = {}
    for _, _, pid, tid, began in traces:
        key = (pid, tid)
        first[key] = min(first.get(key, began), began)
    return max(0.0, max(first.values()) - t0)


def _record(row: Row, t0: float, traces: list[Trace], expected: int, pooled: bool) -> None:
    total = time.perf_counter() - t0
    if any(trace[0] != expected for trace in traces):
        raise AssertionError(f"{row.method} returned wrong results")
    cpu = [trace[1] for trace in traces]
    row.total_s.append(total)
    if pooled:
        row.startup_s.append(_startup(t0, traces))
    row.task_cpu_s.append(statistics.median(cpu))
    row.busy.append(sum(cpu) / total if total > 0 else 0.0)


def _run_pool(row: Row, make: Callable[[], Executor], calls: list[tuple[str, int]], expected: int) -> None:
    t0 = time.perf_counter()
    pool = make()
    try:
        futures = [pool.submit(task_module().cpu_timed, loop, n) for loop, n in calls]
        traces = [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True)
    _record(row, t0, traces, expected, pooled=True)


def seed_comparison(
    tasks: int, n: int, workers: int, runs: int, out: Callable[[str], None]
) -> tuple[list[Row], dict[str, Any]]:
    """Part 1: runs every row ``runs`` times (the rows in turn within each run) and prints
    the table of medians; returns the rows and the last sub-interpreter run's ``stats()``."""
    expected = _native.factorial_mod(n)
    calls = [("int loop", n)] * tasks
    default = default_start_method()
    mp_label = f"multiprocessing ({default}, the default start method)"
    rows = {"mp": Row(mp_label)}
    if default != "fork":
        rows["fork"] = Row("multiprocessing (fork)")
    rows["this"] = Row("sub-interpreters (this project)")
    if sys.version_info >= (3, 14):
        rows["stdlib"] = Row("stdlib InterpreterPoolExecutor")
    rows["threads"] = Row("threads (ThreadPoolExecutor)", parallel=False)
    rows["serial"] = Row("serial (one task at a time)", parallel=False)
    rows["swift"] = Row("reference: the same loop in Swift, not Python (threads)", python=False)
    stats: dict[str, Any] = {}

    def ours() -> None:
        row = rows["this"]
        t0 = time.perf_counter()
        pool = sp.InterpreterPoolExecutor(workers)
        try:
            traces = sp.parallel(*seed_calls(tasks, n), executor=pool)  # the seed's interface
        finally:
            pool.shutdown()
            stats.update(pool.stats())
        _record(row, t0, traces, expected, pooled=True)

    for _ in range(runs):
        # Process pools first: forking is safe while no interpreter pool exists (each pool
        # below is shut down before the next starts, so later runs are safe too).
        _run_pool(rows["mp"], lambda: process_pool(default, workers), calls, expected)
        if "fork" in rows:
            _run_pool(rows["fork"], lambda: process_pool("fork", workers), calls, expected)
        ours()
        if "stdlib" in rows:
            _run_pool(rows["stdlib"], lambda: stdlib_pool(workers), calls, expected)
        _run_pool(rows["threads"], lambda: ThreadPoolExecutor(workers), calls, expected)
        t0 = time.perf_counter()
        traces = [task_module().cpu_timed(*call) for call in calls]
        _record(rows["serial"], t0, traces, expected, pooled=False)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            native = list(pool.map(_native.factorial_mod, [n] * tasks))
        rows["swift"].total_s.append(time.perf_counter() - t0)
        if native != [expected] * tasks:
            raise AssertionError("the Swift loop returned wrong results")

    serial = rows["serial"].total
    out("| method | start-up | total | speed-up vs serial | CPU per task | tasks' CPU / wall |")
    out("|---|---|---|---|---|---|")
    for row in rows.values():
        startup = row.median(row.startup_s)
        cpu = row.median(row.task_cpu_s)
        busy = row.median(row.busy)
        out(
            f"| {row.method} | {_ms(startup) if startup is not None else '—'} | {row.total:.2f} s | "
            f"{serial / row.total:.2f}x | {_ms(cpu) if cpu is not None else '—'} | "
            f"{f'{busy * 100:.0f}%' if busy is not None else '—'} |"
        )
    return list(rows.values()), stats


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def seed_verdict(rows: list[Row], runs: int) -> Section:
    """This project's total against the other rows that run Python on several cores at once
    (process pools, the stdlib interpreter pool); threads and serial are there for reference."""
    ours = next(row for row in rows if row.method.startswith("sub-interpreters"))
    others = [row for row in rows if row.python and row.parallel and row is not ours]
    best = min(others, key=lambda row: row.total)
    ratio = best.total / ours.total
    word = verdict_word(ratio, EVEN_WITHIN)
    mp = rows[0]
    mp_ratio = mp.total / ours.total
    per_run = ", ".join(f"{a / b:.2f}" for a, b in zip(mp.total_s, ours.total_s))
    text = (
        f"{word}: sub-interpreters took {ours.total:.2f} s, {mp.method} {mp.total:.2f} s "
        f"({mp_ratio:.2f}x{f'; per run {per_run}' if runs > 1 else ''})"
    )
    if best is not mp:
        text += f"; best other parallel row: {best.method} {best.total:.2f} s ({ratio:.2f}x)"
    threads = next((row for row in rows if row.python and not row.parallel and row.total < best.total), None)
    if threads is not None and threads.total < ours.total:
        text += (
            f". {threads.method} beat every parallel row ({threads.total:.2f} s): no core was free "
            "for a second worker while this ran"
        )
    return Section("the seed's comparison (total time, start-up included)", word, text, ratio)


def step_table(stats: dict[str, Any], tasks: int, out: Callable[[str], None]) -> None:
    """The sub-interpreter run's per-step breakdown, as the Swift core timed it."""
    steps = stats["steps"]

    def total(*names: str) -> float:
        return float(sum(steps[name]["total_s"] for name in names))

    started = max(1, steps["interpreter_startup"]["count"])
    ended = max(1, steps["interpreter_shutdown"]["count"])
    pickling = total("encode_call", "decode_call", "encode_result", "deliver")
    out("\nThe last sub-interpreter run, per step (measured by the Swift core):")
    out("| step | total | per interpreter or task |")
    out("|---|---|---|")
    out(
        f"| creating interpreters | {total('interpreter_startup') * 1e3:.1f} ms | "
        f"{total('interpreter_startup') / started * 1e3:.1f} ms each ({started}) |"
    )
    out(
        f"| imports & pickling/unpickling | {pickling * 1e3:.2f} ms | {pickling / tasks * 1e3:.3f} ms per task |"
    )
    out(
        f"| waiting in the queue | {total('queue_wait') * 1e3:.1f} ms | "
        f"{total('queue_wait') / tasks * 1e3:.1f} ms per task |"
    )
    out(f"| function call | {total('call') * 1e3:.0f} ms | {total('call') / tasks * 1e3:.0f} ms per task |")
    out(
        f"| ending interpreters | {total('interpreter_shutdown') * 1e3:.1f} ms | "
        f"{total('interpreter_shutdown') / ended * 1e3:.1f} ms each |"
    )


def run_demo(
    tasks: int,
    n: int,
    workers: int,
    out: Callable[[str], None] = print,
    *,
    quick: bool = False,
    runs: int = 1,
    sections: bool = True,
) -> dict[str, Any]:
    """Runs both parts and prints them; returns the measurements (for ``--plot``)."""
    cpus = os.cpu_count() or 1
    load_at_start = os.getloadavg()
    busy = load_at_start[0] > cpus * BUSY_LOAD_PER_CPU
    out(
        f"subinterpreter_parallelism demo: Python {platform.python_version()}, {cpus} CPUs "
        f"({_cpu_model()}), {workers} workers{', quick sizes' if quick else ''}"
    )
    out(load_line("at start", cpus))
    if busy:
        out(
            f"warning: this machine is busy: load average {load_at_start[0]:.2f} on {cpus} CPUs before "
            f"the demo (above {cpus * BUSY_LOAD_PER_CPU:g}). Other programs compete for the CPUs, so the "
            "wall times below move with them; the CPU per task does not. Run it again when the machine "
            "is quieter.\n"
        )
    out(
        f"\n## 1. The seed's comparison: {tasks} tasks of py_factorial({n:,}), {workers} workers"
        f"{f', median of {runs} runs' if runs > 1 else ''}\n"
    )
    out(
        f'Each task is ["{TASK_MODULE}", "cpu_timed", ("int loop", {n})]: py_factorial(n) timed with '
        "time.thread_time() in its worker. Start-up: from creating the pool until its last worker "
        f"began its first task (worker started, {TASK_MODULE} imported). Total: start-up, the tasks "
        "and shutdown.\n"
    )
    rows, stats = seed_comparison(tasks, n, workers, runs, out)
    verdicts = [seed_verdict(rows, runs)]
    out(f"\nverdict: {verdicts[0].text}")
    out(load_line("after part 1", cpus))
    step_table(stats, tasks, out)
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": cpus,
        "tasks": tasks,
        "n": n,
        "workers": workers,
        "runs": runs,
        "rows": [row.__dict__ for row in rows],
        "stats": stats,
    }
    if sections:
        out("\n## 2. Where interpreters win: each measured now, against the alternatives")
        for number, section in enumerate(SECTIONS, 1):
            found = section(workers, quick, out, f"2.{number}")
            verdicts += found if isinstance(found, list) else [found]
        out("\n## Summary of this run")
        for word in ("ahead", "even", "behind"):
            names = [v.title for v in verdicts if v.word == word]
            label = {
                "ahead": "ahead of every alternative",
                "even": "even (within 5%) with the best alternative",
                "behind": "behind the best alternative",
            }[word]
            out(f"- {label}: {len(names)}{': ' + '; '.join(names) if names else ''}")
    load_at_end = os.getloadavg()
    out(load_line("at end", cpus))
    results["verdicts"] = [v.__dict__ for v in verdicts]
    results["load_average"] = [load_at_start, load_at_end]
    return results


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main(argv: list[str] | None = None) -> int:
    """``python demo.py [--quick] [--runs N] [--plot FILE.png] ...``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m subinterpreter_parallelism demo",
        description="The seed's comparison (py_factorial as parallel tasks, several ways, start-up "
        "included), then where interpreters win, each measured against the alternatives now.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds per part")
    parser.add_argument("--tasks", type=int, help="tasks of part 1 (default: 4 per worker)")
    parser.add_argument(
        "--n", type=int, help="py_factorial's n per task (default ~0.7 s a task, --quick ~0.05 s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_worker_count(),
        help="workers of every parallel row (default: the usable CPUs)",
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="run part 1 this many times and show the medians (default 1)"
    )
    parser.add_argument("--seed-only", action="store_true", help="part 1 only")
    parser.add_argument(
        "--plot", metavar="FILE.png", help="also draw the results into this PNG (needs matplotlib)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    tasks = args.tasks if args.tasks is not None else 4 * args.workers
    n = args.n if args.n is not None else (300_000 if args.quick else 5_000_000)
    if tasks < 1 or n < 0:
        parser.error("--tasks must be >= 1 and --n >= 0")
    if args.plot:
        try:
            from ._demo_plot import plot  # imports matplotlib: only for --plot
        except ImportError:
            parser.error("--plot needs matplotlib: pip install matplotlib (or the `bench` extra)")
    results = run_demo(tasks, n, args.workers, quick=args.quick, runs=args.runs, sections=not args.seed_only)
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
