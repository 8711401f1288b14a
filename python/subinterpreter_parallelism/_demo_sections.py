"""The demo's part 2: each place where interpreters are meant to win, measured now.

One function per place: many small tasks, a data-heavy task, start-up against spawn and
forkserver, memory per worker, cancelling a running task (and, in :mod:`._demo_table`, a big
read-only table that every worker reads; ``demo.SECTIONS`` lists them in order). Each runs this
project and the alternatives that can do the same job on this machine, one pool at a time,
prints a small table and a one-line verdict (ahead of every alternative, even with the best,
or behind it), and returns that verdict. Nothing is taken from earlier runs.

Every pool is shut down before the next one starts: a process pool forks only while no
interpreter pool exists (see the README's caveats).
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import subinterpreter_parallelism as sp

from .bench import find_suite_root

__all__ = [
    "HAS_STDLIB_POOL",
    "SUBJECT",
    "TASK_MODULE",
    "Section",
    "Way",
    "cancel_running",
    "compare",
    "data_heavy",
    "fmt",
    "load_line",
    "many_small_tasks",
    "memory",
    "process_way",
    "ratio_text",
    "section_header",
    "startup",
    "stdlib_pool",
    "task_module",
    "tree_pss",
    "verdict_word",
]

#: The module of every task the demo runs: the benchmark suite's, which imports nothing heavy.
TASK_MODULE = "benchmarks.workloads"

#: Whether this Python has the stdlib's ``InterpreterPoolExecutor`` (3.14+). A value, not a
#: ``sys.version_info`` test at each use: the type checker reads the code for 3.12.
HAS_STDLIB_POOL = sys.version_info >= (3, 14)
#: Within this ratio either way, two figures are "even".
EVEN_WITHIN = 1.05
SUBJECT = "this project"


@dataclass
class Section:
    """A section's verdict: its title, ahead/even/behind, the line that says it, and the best
    alternative's figure over ours (above 1: ours is better)."""

    title: str
    word: str
    text: str
    ratio: float


def verdict_word(ratio: float, even_within: float = EVEN_WITHIN) -> str:
    """ "ahead", "even" or "behind" for ``ratio`` = the best alternative's cost over ours."""
    if ratio >= even_within:
        return "ahead"
    if ratio > 1 / even_within:
        return "even"
    return "behind"


def load_line(when: str, cpus: int | None = None) -> str:
    """The load average now, for the output."""
    one, five, fifteen = os.getloadavg()
    return f"load average (1, 5, 15 min) {when}: {one:.2f}, {five:.2f}, {fifteen:.2f} on {cpus or os.cpu_count()} CPUs"


@functools.cache
def task_module() -> ModuleType:
    """:data:`TASK_MODULE`, from the suite folder shipped in the package, which goes first on
    ``sys.path`` (this project's workers and spawned processes take the caller's path, forked
    ones inherit it; the stdlib pool gets it from an initializer, see :func:`stdlib_pool`).

    Raises:
        RuntimeError: the suite folder is missing from this installation.
    """
    root = find_suite_root()
    if root is None:
        raise RuntimeError("the demo's task module (the benchmark suite, _suite/) is missing: reinstall")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(TASK_MODULE)


def stdlib_pool(workers: int, then: str = "") -> Executor:
    """The stdlib's ``InterpreterPoolExecutor`` (Python 3.14+). Its interpreters start with
    the default ``sys.path``, not the caller's: an initializer adds the suite's folder, then
    runs the code ``then``."""
    # Here, not at import: before 3.14 there is none, and on 3.14+ it loads the stdlib's
    # interpreters modules, which only its rows need.
    from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]

    setup = f"import sys; sys.path.insert(0, {str(find_suite_root())!r})" + (f"; {then}" if then else "")
    return InterpreterPoolExecutor(workers, initializer=exec, initargs=(setup,))  # type: ignore[no-any-return]


# -- the ways to run a task ---------------------------------------------------------------------


@dataclass(frozen=True)
class Way:
    """One pool to compare: its label and how to make one with ``workers`` workers."""

    label: str
    make: Callable[[int], Executor]
    #: Sends a memoryview argument without a copy (lends it to the worker).
    lends: bool = False
    subject: bool = False


def process_way(method: str) -> Way:
    """A process pool with start method ``method``, labelled "(the default)" where it is."""
    default = multiprocessing.get_context().get_start_method()
    note = " (the default)" if method == default else ""
    return Way(
        f"processes, {method}{note}",
        lambda workers: ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)),
    )


def _stdlib_way() -> list[Way]:
    if not HAS_STDLIB_POOL:
        return []
    return [Way("stdlib InterpreterPoolExecutor", stdlib_pool, lends=True)]


def _this_way() -> Way:
    def make(workers: int) -> Executor:
        return sp.InterpreterPoolExecutor(workers)

    return Way(SUBJECT, make, lends=True, subject=True)


THREADS = Way("threads", lambda workers: ThreadPoolExecutor(workers))


def _process_ways(*methods: str) -> list[Way]:
    """Process pools: the default start method and fork (the same before 3.14), or ``methods``."""
    if not methods:
        default = multiprocessing.get_context().get_start_method()
        methods = tuple(dict.fromkeys((default, "fork")))
    available = multiprocessing.get_all_start_methods()
    return [process_way(m) for m in methods if m in available]


def _start_all(pool: Executor, workers: int, hold_s: float) -> dict[tuple[int, int], float]:
    """Makes every worker start and import the task module: ``workers`` tasks of ``ready(hold_s)``
    at once, again with a longer hold while fewer distinct workers answered (a worker that came
    up early can take two before a slow one has started). Returns, per worker (process id,
    thread id), the moment it began its first of them."""
    first: dict[tuple[int, int], float] = {}
    for attempt in range(5):
        hold = hold_s * 2**attempt
        for pid, tid, began in [
            f.result() for f in [pool.submit(task_module().ready, hold) for _ in range(workers)]
        ]:
            first[(pid, tid)] = min(first.get((pid, tid), began), began)
        if len(first) >= workers:
            break
    return first


# -- printing -----------------------------------------------------------------------------------


def fmt(value: float, unit: str) -> str:
    """``value`` for the tables: bytes (``unit`` "B") in MB, seconds in s, ms or us."""
    if unit == "B":
        return f"{value / 1e6:.1f} MB"
    if value < 1e-3:
        return f"{value * 1e6:.1f} us"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def _verdict(
    title: str,
    measured: list[tuple[Way, float]],
    unit: str,
    out: Callable[[str], None],
    notes: dict[str, str] | None = None,
) -> Section:
    """Prints the table (lower is better) and the verdict of ours against every alternative."""
    ours = next(value for way, value in measured if way.subject)
    out(f"| way | {'median' if unit != 'B' else 'PSS added per worker'} | against {SUBJECT} |")
    out("|---|---|---|")
    for way, value in measured:
        against = "—" if way.subject else ratio_text(value, ours)
        note = f" ({notes[way.label]})" if notes and way.label in notes else ""
        out(f"| {way.label}{note} | {fmt(value, unit)} | {against} |")
    word, text, ratio = compare(measured, unit)
    out(f"\nverdict: {text}")
    return Section(title, word, text, ratio)


def compare(measured: list[tuple[Way, float]], unit: str) -> tuple[str, str, float]:
    """Ours against every alternative (lower is better): the word, the verdict's text, and the
    best alternative's figure over ours."""
    ours = next(value for way, value in measured if way.subject)
    others = [(value, way) for way, value in measured if not way.subject]
    best_value, best = min(others, key=lambda pair: pair[0])
    word = verdict_word(best_value / ours) if ours > 0 else "ahead"
    beaten = [way.label for value, way in others if verdict_word(value / ours) == "ahead"]
    lost = [
        # A figure of 0 (a memory growth lost in the noise) has no ratio: it is shown as it is.
        f"{way.label} ({f'{ours / value:.2f}x' if value > 0 else fmt(value, unit)})"
        for value, way in others
        if verdict_word(value / ours) == "behind"
    ]
    level = [way.label for value, way in others if verdict_word(value / ours) == "even"]
    if word == "ahead":
        text = (
            f"ahead of every alternative: {SUBJECT} {fmt(ours, unit)}, the best other "
            f"({best.label}) {fmt(best_value, unit)}, {best_value / ours:.2f}x"
        )
    else:
        parts = [f"{word}: {SUBJECT} {fmt(ours, unit)}, {best.label} {fmt(best_value, unit)}"]
        if beaten:
            parts.append(f"ahead of {', '.join(beaten)}")
        if level:
            parts.append(f"even with {', '.join(level)}")
        if lost:
            parts.append(f"behind {', '.join(lost)}")
        text = "; ".join(parts)
    return word, text, best_value / ours if ours > 0 else float("inf")


def ratio_text(value: float, ours: float) -> str:
    """An alternative's figure against ours, for the tables' "against this project" column."""
    if ours <= 0 or value <= 0:
        return "—"
    ratio = value / ours
    return f"{ratio:.2f}x ours" if ratio >= 1 else f"{1 / ratio:.2f}x less than ours"


def section_header(number: str, title: str, what: str, out: Callable[[str], None]) -> None:
    """Prints a section's title, its sentence of method and the load average now."""
    out(f"\n### {number} {title}\n")
    out(f"{what} {load_line('now')}.\n")


# -- the sections -------------------------------------------------------------------------------


def many_small_tasks(workers: int, quick: bool, out: Callable[[str], None], number: str) -> Section:
    """``map(tiny, range(N))`` on a warm pool: what a small task costs to ship and return."""
    count = 100_000 if quick else 1_000_000
    alone = 500 if quick else 2_000  # for the maps that send each item alone (~20-200 us each)
    chunk = max(1, min(4096, -(-count // (workers * 16))))  # what this project's map picks
    title = "many small tasks"
    section_header(
        number,
        title,
        f"list(pool.map(tiny, range(N))) on a warm pool of {workers}, tiny(x) returning x + 1: time "
        f"per item. This project's map sends the items in chunks by default ({chunk:,} here); the "
        f"process pools are shown with their default (each item alone) and with the same chunks. "
        f"N = {count:,}, or {alone:,} for the maps that send each item alone.",
        out,
    )
    ways: list[tuple[Way, int | None]] = []
    for way in _process_ways():
        ways += [(way, None), (replace(way, label=f"{way.label}, chunksize={chunk:,}"), chunk)]
    ways += [(way, None) for way in [*_stdlib_way(), THREADS, _this_way()]]
    measured = []
    for way, chunksize in ways:
        items = count if way.subject or chunksize else alone
        pool = way.make(workers)
        try:
            _start_all(pool, workers, 0.01)
            options = {"chunksize": chunksize} if chunksize else {}
            list(pool.map(task_module().tiny, range(4 * workers), **options))  # a warm map too
            t0 = time.perf_counter()
            results = list(pool.map(task_module().tiny, range(items), **options))
            elapsed = time.perf_counter() - t0
            if results != list(range(1, items + 1)):
                raise AssertionError(f"{way.label}: tiny returned wrong results")
            measured.append((way, elapsed / items))
        finally:
            pool.shutdown(wait=True)
    return _verdict(title, measured, "s", out)


def _payloads(count: int, size: int) -> list[bytes]:
    block = bytes(range(256)) * (size // 256)
    return [bytes([i % 256]) + block[1:] for i in range(count)]


def data_heavy(workers: int, quick: bool, out: Callable[[str], None], number: str) -> Section:
    """Tasks that each get a large buffer and make a pure-Python pass over part of it."""
    size = 16_000_000
    tasks = 2 * workers if quick else 4 * workers
    repeats = 3
    title = "a data-heavy task"
    section_header(
        number,
        title,
        f"{tasks} tasks at once, each given its own {size // 1_000_000} MB buffer and reading every "
        f"64th byte in Python (checksum), on a warm pool of {workers}; median of {repeats} batches. "
        "Each way gets the data as it can take it: a memoryview where the pool lends it without a "
        "copy (this project, the stdlib pool), bytes elsewhere (pickled for processes).",
        out,
    )
    payloads = _payloads(tasks, size)
    expected = [task_module().checksum(p) for p in payloads]
    measured = []
    for way in [*_process_ways(), *_stdlib_way(), THREADS, _this_way()]:
        args: list[Any] = [memoryview(p) for p in payloads] if way.lends else payloads
        pool = way.make(workers)
        try:
            _start_all(pool, workers, 0.01)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                futures = [pool.submit(task_module().checksum, a) for a in args]
                if [f.result() for f in futures] != expected:
                    raise AssertionError(f"{way.label}: checksum returned wrong results")
                times.append(time.perf_counter() - t0)
            measured.append((way, statistics.median(times)))
        finally:
            pool.shutdown(wait=True)
            del args
    return _verdict(title, measured, "s", out)


def startup(workers: int, quick: bool, out: Callable[[str], None], number: str) -> Section:
    """A new pool until every worker has started and imported the task module."""
    repeats = 3 if quick else 5
    hold = 0.1
    title = "start-up against spawn and forkserver"
    section_header(
        number,
        title,
        f"A new pool of {workers} until its last worker began its first task (started, task module "
        f"imported); each worker holds its task {hold * 1e3:.0f} ms (longer where needed) so that every "
        "worker takes one; "
        f"median of {repeats}. Fork is shown too: it copies the parent instead of starting a "
        "fresh interpreter, and is no longer the default from Python 3.14.",
        out,
    )
    measured = []
    for way in [*_process_ways("spawn", "forkserver", "fork"), *_stdlib_way(), _this_way()]:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pool = way.make(workers)
            try:
                first = _start_all(pool, workers, hold)
            finally:
                pool.shutdown(wait=True)
            times.append(max(first.values()) - t0)
        measured.append((way, statistics.median(times)))
    return _verdict(title, measured, "s", out)


def tree_pss() -> int:
    """Proportional set size (bytes) of this process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue  # ended meanwhile
    return total


def memory(workers: int, quick: bool, out: Callable[[str], None], number: str) -> Section:
    """PSS added per worker by a pool whose workers have all started."""
    count = max(2, workers) if quick else max(4, workers)
    title = "memory per worker"
    section_header(
        number,
        title,
        f"PSS (proportional set size: shared pages split between the processes that share them) "
        f"of this process and its children, before a pool of {count} and once every worker ran a "
        "task, over the number of workers. Threads are left out: they run Python code one at a "
        "time.",
        out,
    )
    measured = []
    for way in [*_process_ways("spawn", "forkserver", "fork"), *_stdlib_way(), _this_way()]:
        before = tree_pss()
        pool = way.make(count)
        try:
            _start_all(pool, count, 0.05)
            after = tree_pss()
        finally:
            pool.shutdown(wait=True)
        measured.append((way, max(0.0, (after - before) / count)))
    return _verdict(title, measured, "B", out)


def _wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while not condition() and time.perf_counter() < deadline:
        time.sleep(0.001)


def cancel_running(workers: int, quick: bool, out: Callable[[str], None], number: str) -> Section:
    """``cancel()`` of a task that is already running, until the worker has run the next task."""
    spin_s = 1.0 if quick else 2.0
    title = "cancelling a running task"
    section_header(
        number,
        title,
        f"A pool of 1 runs spin({spin_s:g}), a pure-Python loop; once it runs, cancel() it and "
        "submit tiny(1): the time from cancel() until tiny's result, i.e. until the worker is free.",
        out,
    )
    measured = []
    notes = {}
    for way in [*_process_ways(), *_stdlib_way(), THREADS, _this_way()]:
        pool = way.make(1)
        try:
            _start_all(pool, 1, 0.0)
            running: Future[int] = pool.submit(task_module().spin, 60.0 if way.subject else spin_s)
            _wait_until(running.running, 10.0)
            time.sleep(0.05)  # process pools say "running" when the task is queued for the worker
            t0 = time.perf_counter()
            stopped = running.cancel()
            pool.submit(task_module().tiny, 1).result()
            measured.append((way, time.perf_counter() - t0))
            notes[way.label] = (
                "cancel() stopped it" if stopped else "cancel() returned False: it ran to its end"
            )
        finally:
            pool.shutdown(wait=True)
    return _verdict(title, measured, "s", out, notes)
