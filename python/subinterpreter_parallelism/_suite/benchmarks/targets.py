"""The project's speed targets: each a check of one run's results against a threshold.

A target says what was measured and whether it is met (None: not judged, e.g. a competitor
missing). The targets table is for contributors (CONTRIBUTING.md, through ``--targets``); the
users' benchmarks page shows the figures only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import cpu_report, shared_table
from .results import Results
from .summary import fmt, markdown_table

__all__ = ["TARGETS", "evaluate_targets", "targets_table"]


@dataclass(frozen=True)
class _Target:
    workload: str
    name: str
    check: Callable[[Results], tuple[str, bool | None]]


def _ratio_text(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def _best_process_pool(results: Results, workload: str, case: str) -> tuple[float | None, str]:
    values = results.medians(workload, case, ("fork", "forkserver", "spawn"))
    if not values:
        return None, "ProcessPool"
    value, key = min(values)
    return value, key


def _missing(*names: str) -> tuple[str, None]:
    return f"not measured ({', '.join(names)} missing)", None


def _cpu_vs_serial(r: Results) -> tuple[str, bool | None]:
    ours, serial = r.median("cpu", "warm", r.subject), r.median("cpu", "warm", "serial")
    if ours is None or serial is None:
        return _missing("this project" if ours is None else "serial")
    speedup = serial / ours
    return f"{speedup:.2f}x (this {fmt(ours, 's')}, serial {fmt(serial, 's')})", speedup >= 1.85


def _cpu_faster_than(key: str) -> Callable[[Results], tuple[str, bool | None]]:
    def check(r: Results) -> tuple[str, bool | None]:
        ours, other = r.median("cpu", "warm", r.subject), r.median("cpu", "warm", key)
        if ours is None or other is None:
            return _missing("this project" if ours is None else key)
        return f"this {fmt(ours, 's')}, {key} {fmt(other, 's')} ({_ratio_text(other, ours)})", ours < other

    return check


def _tiny_vs(keys: tuple[str, ...], factor: float | None) -> Callable[[Results], tuple[str, bool | None]]:
    def check(r: Results) -> tuple[str, bool | None]:
        ours = r.median("tiny", "submit", r.subject)
        values = r.medians("tiny", "submit", keys)
        if ours is None or not values:
            return _missing("this project" if ours is None else "/".join(keys))
        other, key = min(values)
        text = f"{other / ours:.1f}x (this {fmt(ours, 's')}, {key} {fmt(other, 's')} per task)"
        return text, None if factor is None else other / ours >= factor

    return check


def _tiny_at_most_threads(r: Results) -> tuple[str, bool | None]:
    """Issue 15: a tiny task costs this project at most 0.8x what it costs ThreadPoolExecutor."""
    ours, threads = r.median("tiny", "submit", r.subject), r.median("tiny", "submit", "threads")
    if ours is None or threads is None:
        return _missing("this project" if ours is None else "threads")
    return (
        f"{ours / threads:.2f}x threads' time (this {fmt(ours, 's')}, threads {fmt(threads, 's')} per task)",
        ours <= 0.8 * threads,
    )


def _main_vs_stdlib_pool(r: Results) -> tuple[str, bool | None]:
    """Issue 12: tiny tasks of a ``__main__`` function at least as fast as in the stdlib pool."""
    ours, other = (
        r.median("tiny", "submit __main__", r.subject),
        r.median("tiny", "submit __main__", "backport"),
    )
    if ours is None or other is None:
        return _missing("this project" if ours is None else "backport")
    return f"{other / ours:.2f}x (this {fmt(ours, 's')}, backport {fmt(other, 's')} per task)", ours <= other


def _map_vs_best_fork(r: Results) -> tuple[str, bool | None]:
    """Issue 15: ``map`` per item at least 1.5x faster than a fork pool with its best chunk size
    (of the two this suite runs: the default and this project's)."""
    ours = [
        v for v, _ in r.medians("tiny", "map", [r.subject]) + r.medians("tiny", "map chunked", [r.subject])
    ]
    fork = [v for v, _ in r.medians("tiny", "map", ["fork"]) + r.medians("tiny", "map chunked", ["fork"])]
    if not ours or not fork:
        return _missing("this project" if not ours else "fork")
    best, fork_best = min(ours), min(fork)
    return (
        f"{fork_best / best:.2f}x (this {fmt(best, 's')}, fork {fmt(fork_best, 's')} per item)",
        fork_best / best >= 1.5,
    )


def _map_overhead(r: Results) -> tuple[str, bool | None]:
    ours, serial = r.median("tiny", "map", r.subject), r.median("tiny", "map", "serial")
    if ours is None or serial is None:
        return _missing("this project" if ours is None else "serial")
    items = r.params["tiny"]["map_count"]
    overhead = ours - serial
    text = (
        f"{fmt(overhead, 's')} per item over {items:,} items (this {fmt(ours, 's')}, "
        f"serial {fmt(serial, 's')})"
    )
    return text, overhead <= 1e-6


def _data_vs_processes(r: Results) -> tuple[str, bool | None]:
    case = "100 MB"
    ours = r.median("data", case, r.subject)
    other, key = _best_process_pool(r, "data", case)
    if ours is None:
        return f"not measured ({case} is not among this run's sizes)", None
    if other is None:
        return _missing("ProcessPool")
    return f"{other / ours:.2f}x (this {fmt(ours, 's')}, {key} {fmt(other, 's')})", other / ours >= 3


def _data_vs_two_copies(r: Results) -> tuple[str, bool | None]:
    case = "100 MB"
    ours, floor = r.median("data", case, r.subject), r.median("data", case, "serial")
    if ours is None:
        return f"not measured ({case} is not among this run's sizes)", None
    if floor is None:
        return _missing("serial (two copies in the caller)")
    return f"{ours / floor:.2f}x (this {fmt(ours, 's')}, two copies {fmt(floor, 's')})", ours <= 1.2 * floor


def _data_vs_stdlib_pool(r: Results) -> tuple[str, bool | None]:
    """Every data case: this project at least as fast as the stdlib pool (or its backport)."""
    worst: tuple[float, str] | None = None
    for case in r.cases("data"):
        ours, theirs = r.median("data", case, r.subject), r.median("data", case, "backport")
        record = r.record("data", case, "backport") or {}
        if ours is None:
            continue
        if theirs is None:
            if "error" in record or "na" in record:  # it cannot send this kind at all
                continue
            return _missing("stdlib pool")
        if worst is None or theirs / ours < worst[0]:
            worst = (theirs / ours, case)
    if worst is None:
        return _missing("this project")
    return f"slowest case: {worst[0]:.2f}x as fast as the stdlib pool ({worst[1]})", worst[0] >= 1.0


def _threshold(workload: str, case: str, limit: float) -> Callable[[Results], tuple[str, bool | None]]:
    def check(r: Results) -> tuple[str, bool | None]:
        ours = r.median(workload, case, r.subject)
        if ours is None:
            return _missing("this project")
        record = r.record(workload, case, r.subject) or {}
        best = min(record.get("samples") or [ours])
        return f"median {fmt(ours, 's')} (min {fmt(best, 's')})", ours < limit

    return check


def _libraries_cold_vs_fork(r: Results) -> tuple[str, bool | None]:
    """Every library workload, cold: at most 1.1x fork's time."""
    ratios = []
    for case in r.cases("libraries"):
        if case.endswith(" cold"):
            ours, fork = r.median("libraries", case, r.subject), r.median("libraries", case, "fork")
            if ours is None or fork is None:
                return _missing("this project" if ours is None else "fork")
            ratios.append((ours / fork, case.removesuffix(" cold")))
    if not ratios:
        return "not measured (the libraries workload did not run)", None
    text = ", ".join(f"{name} {ratio:.2f}x" for ratio, name in ratios)
    return f"time against fork's: {text}", max(ratio for ratio, _ in ratios) <= 1.1


def _libraries_warm_vs_serial(r: Results) -> tuple[str, bool | None]:
    """Every library workload, warm: at least 1.9x serial (on 2 cores)."""
    speedups = []
    for case in r.cases("libraries"):
        if case.endswith(" warm"):
            ours, serial = r.median("libraries", case, r.subject), r.median("libraries", case, "serial")
            if ours is None or serial is None:
                return _missing("this project" if ours is None else "serial")
            speedups.append((serial / ours, case.removesuffix(" warm")))
    if not speedups:
        return "not measured (the libraries workload did not run)", None
    text = ", ".join(f"{name} {speedup:.2f}x" for speedup, name in speedups)
    return f"speed-up over serial: {text}", min(speedup for speedup, _ in speedups) >= 1.9


def _first_result_at(width: int) -> Callable[[Results], tuple[str, bool | None]]:
    def check(r: Results) -> tuple[str, bool | None]:
        case = f"{width} workers: first result"
        ours, theirs = r.median("widths", case, r.subject), r.median("widths", case, "forkserver")
        if ours is None:
            return f"not measured (this project at {width} workers missing)", None
        if theirs is None:
            return f"this {fmt(ours, 's')}; forkserver not measured", None
        return (
            f"this {fmt(ours, 's')}, forkserver {fmt(theirs, 's')} ({theirs / ours:.2f}x)",
            ours <= 0.015 and ours < theirs,
        )

    return check


def _memory_per_worker_at(width: int, limit: float) -> Callable[[Results], tuple[str, bool | None]]:
    def check(r: Results) -> tuple[str, bool | None]:
        ours = r.median("widths", f"{width} workers: memory per worker", r.subject)
        if ours is None:
            return f"not measured (this project at {width} workers missing)", None
        return f"{fmt(ours, 'B')} per worker", ours <= limit

    return check


TARGETS: tuple[_Target, ...] = (
    _Target("cpu", "8 CPU-bound tasks of ~0.3 s: >= 1.85x serial throughput", _cpu_vs_serial),
    _Target("cpu", "8 CPU-bound tasks: faster than ProcessPool (fork)", _cpu_faster_than("fork")),
    _Target("cpu", "8 CPU-bound tasks: faster than the stdlib-pool backport", _cpu_faster_than("backport")),
    _Target(
        "tiny", "20,000 tiny tasks via submit: per task <= 0.8x ThreadPoolExecutor's", _tiny_at_most_threads
    ),
    _Target(
        "tiny",
        "tiny tasks of a `__main__` function: at least as fast as the stdlib pool",
        _main_vs_stdlib_pool,
    ),
    _Target(
        "tiny", "20,000 tiny tasks via submit: >= 7x faster than the backport", _tiny_vs(("backport",), 7)
    ),
    _Target(
        "tiny",
        "20,000 tiny tasks via submit: >= 7x faster than ProcessPool",
        _tiny_vs(("fork", "forkserver", "spawn"), 7),
    ),
    _Target(
        "tiny", "map over 1,000,000 tiny items, default chunking: overhead <= 1 us per item", _map_overhead
    ),
    _Target(
        "tiny", "map per item: >= 1.5x faster than a fork pool at its best chunk size", _map_vs_best_fork
    ),
    _Target("data", "100 MB bytes argument + result: >= 3x faster than ProcessPool", _data_vs_processes),
    _Target(
        "data", "100 MB bytes argument + result: within 1.2x of two copies in the caller", _data_vs_two_copies
    ),
    _Target(
        "data",
        "every data case (bytes, bytearray, memoryview): at least as fast as the stdlib pool",
        _data_vs_stdlib_pool,
    ),
    _Target(
        "startup",
        "new pool of 2 workers runs its first task within 30 ms",
        _threshold("startup", "first result", 0.030),
    ),
    _Target("queue", "Queue hand-off median < 50 us", _threshold("queue", "hand-off", 50e-6)),
    _Target("queue", "Queue put/get pair in one interpreter < 2 us", _threshold("queue", "put+get", 2e-6)),
    _Target("cancel", "cancel-to-cancelled < 20 ms", _threshold("cancel", "cancelled", 0.020)),
    _Target(
        "cancel",
        "cancel() of a task inside a GIL-bound C call returns < 50 ms",
        _threshold("cancel", "in C", 0.050),
    ),
    _Target(
        "libraries",
        "five library workloads, cold (new pool): within 10% of fork or faster on each",
        _libraries_cold_vs_fork,
    ),
    _Target(
        "libraries",
        "five library workloads, warm: >= 1.9x serial on each (2 cores)",
        _libraries_warm_vs_serial,
    ),
    _Target(
        "widths",
        "new pool of 2 workers, first result: <= 15 ms and faster than forkserver",
        _first_result_at(2),
    ),
    _Target(
        "widths",
        "new pool of 16 workers, first result: <= 15 ms and faster than forkserver",
        _first_result_at(16),
    ),
    _Target(
        "widths",
        "memory per worker at 16 workers (PSS): no more than 4.6 MB (issue 15's figure)",
        _memory_per_worker_at(16, 4.6e6),
    ),
    *(_Target(*target) for target in shared_table.TARGETS),
)


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the project's issues: what was measured, and whether it is met (None: not judged)."""
    r = Results(results)
    out = []
    for target in TARGETS:
        if not r.ran(target.workload):
            continue  # a run of other workloads (--only, --scaling)
        measured, met = target.check(r)
        out.append({"target": target.name, "measured": measured, "met": met})
    out += cpu_report.targets(results)
    if results.get("mode") == "quick":
        for item in out:
            item["note"] = "quick mode: smaller sizes than the targets name"
    return out


def targets_table(results: dict[str, Any]) -> list[str]:
    """The targets as a Markdown table."""
    rows = [
        [t["target"], t["measured"], {True: "yes", False: "**no**", None: "—"}[t["met"]]]
        for t in results.get("targets") or evaluate_targets(results)
    ]
    return markdown_table(["target", "measured", "met"], rows)
