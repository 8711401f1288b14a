"""Markdown report, target checks and the README section, from the suite's results.

Every number comes from the records of the run being reported; the median is the headline,
the minimum is shown beside it in the detailed tables, and every sample is in the JSON file.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cpu_report, shared_table
from .competitors import Ability, by_key
from .plan import WORKLOADS

__all__ = ["evaluate_targets", "render", "render_readme", "update_readme"]

Record = dict[str, Any]
README_BEGIN = "<!-- bench:begin (written by `make bench-readme`) -->"
README_END = "<!-- bench:end -->"


# -- looking things up ------------------------------------------------------------------------


class Results:
    """The suite's results, indexed by (workload, case, competitor)."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.raw = results
        self.params: dict[str, dict[str, Any]] = results["params"]
        self.keys: list[str] = [
            k for k in results["competitors"] if any(r["competitor"] == k for r in results["records"])
        ]
        self.labels: dict[str, str] = results["competitors"]
        # Runs saved before the abilities were recorded: take them from today's competitors.
        saved = results.get("abilities") or {}
        self.abilities: dict[str, frozenset[str]] = {
            key: frozenset(saved[key]) if key in saved else _known_abilities(key) for key in self.labels
        }
        subjects = [k for k in self.labels if Ability.SUBJECT.value in self.abilities[k]]
        #: The competitor the report is about (this project).
        self.subject: str = subjects[0] if subjects else "this"
        self._index: dict[tuple[str, str, str], Record] = {}
        for record in results["records"]:
            self._index[(record["workload"], record["case"], record["competitor"])] = record

    def ran(self, workload: str) -> bool:
        """Whether this run has any record of ``workload``."""
        return any(w == workload for w, _, _ in self._index)

    def can(self, key: str, ability: Ability) -> bool:
        """Whether competitor ``key`` has ``ability``."""
        return ability.value in self.abilities.get(key, frozenset())

    def having(self, ability: Ability) -> tuple[str, ...]:
        """The competitors of this run that have ``ability``."""
        return tuple(k for k in self.keys if self.can(k, ability))

    def record(self, workload: str, case: str, key: str) -> Record | None:
        """The record of one cell; a whole-workload failure (case "*") stands for every case."""
        return self._index.get((workload, case, key)) or self._index.get((workload, "*", key))

    def median(self, workload: str, case: str, key: str) -> float | None:
        """Median of the cell's samples, or None when it has none."""
        record = self.record(workload, case, key)
        if record is None or not record.get("samples"):
            return None
        return float(statistics.median(record["samples"]))

    def medians(self, workload: str, case: str, keys: Iterable[str]) -> list[tuple[float, str]]:
        """(median, competitor) for each of ``keys`` that has samples in this case."""
        found = []
        for key in keys:
            value = self.median(workload, self.case_for(workload, case, key), key)
            if value is not None:
                found.append((value, key))
        return found

    def case_for(self, workload: str, case: str, key: str) -> str:
        """Serial runs the scaling workload with one worker only: its throughput stands for all."""
        return "1 workers" if workload == "scaling" and not self.can(key, Ability.PARALLEL) else case

    def cases(self, workload: str) -> list[str]:
        """The cases of a workload, in the order they were first recorded."""
        seen: dict[str, None] = {}
        for (w, case, _), record in self._index.items():
            if w == workload and case != "*":
                seen.setdefault(case, None)
        if workload == "scaling":
            return sorted(seen, key=lambda c: int(c.split()[0]))
        return list(seen)


# -- formatting -------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    """A value with a readable unit: us/ms/s for seconds, MB for bytes, /s for throughput."""
    if value is None:
        return "—"
    if unit == "s":
        if abs(value) < 1e-3:
            return f"{value * 1e6:.3g} us" if abs(value) < 1e-5 else f"{value * 1e6:.0f} us"
        if abs(value) < 1:
            return f"{value * 1e3:.3g} ms"
        return f"{value:.3g} s"
    if unit == "B":
        return f"{value / 1e6:.1f} MB"
    if unit == "tasks/s":
        return f"{value:.3g}/s"
    return f"{value:.3g} {unit}"


def cell_text(results: Results, workload: str, case: str, key: str, with_min: bool = False) -> str:
    """What a table cell shows: the median, or n/a, fails, hangs, timeout."""
    record = results.record(workload, case, key)
    if record is None:
        return "—"
    if "na" in record:
        return "n/a"
    if "error" in record:
        error = record["error"]
        return (
            "hangs" if error.startswith("hangs") else "timeout" if error.startswith("timed out") else "fails"
        )
    samples = record.get("samples") or []
    if not samples:
        return "—"
    text = fmt(statistics.median(samples), record["unit"])
    if with_min and len(samples) > 1:
        best = max(samples) if record.get("better") == "higher" else min(samples)
        text += f" ({'max' if record.get('better') == 'higher' else 'min'} {fmt(best, record['unit'])})"
    return text


def comparison(results: Results, workload: str, case: str, *, among: tuple[str, ...] | None = None) -> str:
    """This project against the best other competitor (or the best of ``among``),
    e.g. "1.9x faster than fork"."""
    ours = results.median(workload, case, results.subject)
    record = results.record(workload, case, results.subject)
    if ours is None or record is None or ours <= 0:
        return "—"
    higher = record.get("better") == "higher"
    others = [
        (v, k)
        for v, k in results.medians(
            workload,
            case,
            [k for k in results.keys if k != results.subject and (among is None or k in among)],
        )
        if v > 0
    ]
    if not others:
        return "—"
    value, key = max(others) if higher else min(others)
    ratio = ours / value if higher else value / ours
    word = {"B": ("less", "more")}.get(
        record["unit"], ("higher", "lower") if higher else ("faster", "slower")
    )
    if ratio >= 1:
        return f"{_times(ratio)} {word[0]} than {key}"
    return f"{_times(1 / ratio)} {word[1]} than {key}"


def _times(ratio: float) -> str:
    return f"{ratio:.3g}x" if ratio < 1000 else f"{ratio:,.0f}x"


def _known_abilities(key: str) -> frozenset[str]:
    try:
        return frozenset(a.value for a in by_key(key).abilities)
    except KeyError:
        return frozenset()


# -- the summary ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    label: str
    workload: str
    case: str


def summary_rows(results: Results) -> list[SummaryRow]:
    """The headline rows: one or two per workload, labelled with this run's sizes."""
    p = results.params
    rows: list[SummaryRow] = []
    cpu = p.get("cpu", {})
    serial = results.median("cpu", "warm", "serial")
    each = serial / cpu["tasks"] if serial and cpu else cpu.get("target_task_s", 0.0)
    if cpu:
        rows.append(
            SummaryRow(f"{cpu['tasks']} × py_factorial (~{each:.2g} s each), warm pool", "cpu", "warm")
        )
        rows.append(SummaryRow("the same, including pool start-up", "cpu", "cold"))
    if "scaling" in p:
        cases = results.cases("scaling")
        cores = results.raw["machine"]["usable_cpus"]
        for workers in dict.fromkeys([cores, 2 * cores]):
            if f"{workers} workers" in cases:
                rows.append(
                    SummaryRow(f"CPU-bound throughput, {workers} workers", "scaling", f"{workers} workers")
                )
    tiny = p.get("tiny")
    if tiny:
        rows.append(SummaryRow(f"{tiny['submit_count']:,} tiny tasks via submit: per task", "tiny", "submit"))
        rows.append(SummaryRow("the same, function defined in `__main__`", "tiny", "submit __main__"))
        rows.append(
            SummaryRow(f"map, default chunking: per item ({tiny['map_count']:,} items*)", "tiny", "map")
        )
        rows.append(SummaryRow("map, this project's chunk size: per item", "tiny", "map chunked"))
    if "data" in p:
        cases = results.cases("data")
        sizes = [
            case for case in cases if case.endswith("B")
        ]  # the bytes cases: "1 MB", not "1 MB bytearray"
        for case in dict.fromkeys([sizes[0], *(s for s in sizes if s == "1 MB"), sizes[-1]] if sizes else []):
            rows.append(SummaryRow(f"round trip of {case} (argument + result)", "data", case))
        for case in cases:
            if not case.endswith("B") and (sizes and case.startswith(sizes[-1] + " ")):
                rows.append(SummaryRow(f"round trip of a {case}", "data", case))
    if "startup" in p:
        rows.append(
            SummaryRow(
                f"new pool of {p['startup']['workers']} workers to first result", "startup", "first result"
            )
        )
    if "memory" in p:
        rows.append(
            SummaryRow(f"memory added per worker (PSS, {p['memory']['workers']} workers)", "memory", "pss")
        )
        rows.append(SummaryRow("memory added per worker (RSS)", "memory", "rss"))
    if "queue" in p:
        rows.append(SummaryRow("Queue hand-off to a task blocked in get()", "queue", "hand-off"))
        rows.append(SummaryRow("Queue put + get in one interpreter", "queue", "put+get"))
    libraries = p.get("libraries")
    if libraries:
        for name in libraries["libraries"]:
            record = next(
                (
                    results.record("libraries", f"{name} cold", k)
                    for k in results.keys
                    if "extra" in (results.record("libraries", f"{name} cold", k) or {})
                ),
                None,
            )
            what = record["extra"]["what"] if record else name
            rows.append(
                SummaryRow(
                    f"{what}, {libraries['workers']} workers: new pool (cold)", "libraries", f"{name} cold"
                )
            )
            rows.append(SummaryRow(f"{what}: warm pool", "libraries", f"{name} warm"))
    if "cancel" in p:
        rows.append(SummaryRow("cancel() of a running task until cancelled()", "cancel", "cancelled"))
        rows.append(SummaryRow("cancel() until the worker has run the next task", "cancel", "worker free"))
        rows.append(
            SummaryRow("cancel() of a task inside a GIL-bound C call, until it returns", "cancel", "in C")
        )
    rows += [SummaryRow(*row) for row in shared_table.summary_rows(p)]
    return [row for row in rows if any(results.record(row.workload, row.case, k) for k in results.keys)]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def summary_table(results: Results) -> list[str]:
    """One row per headline measurement, one column per competitor, medians."""
    header = ["workload", *results.keys, "this vs best other", "this vs best process pool"]
    rows = []
    for row in summary_rows(results):
        cells = [
            cell_text(results, row.workload, results.case_for(row.workload, row.case, k), k)
            for k in results.keys
        ]
        rows.append(
            [
                row.label,
                *cells,
                comparison(results, row.workload, row.case),
                comparison(results, row.workload, row.case, among=results.having(Ability.PROCESSES)),
            ]
        )
    lines = _table(header, rows)
    tiny = results.params.get("tiny")
    if tiny:
        lines.append("")
        lines.append(
            f"\\* executors that send each item alone ran map over {tiny['map_count_per_item']:,} "
            f"items and the seed design {tiny['seed_count']} tasks; serial and this project "
            f"the full count. Costs are per item, so they compare."
        )
    return lines


def legend(results: Results) -> list[str]:
    """The competitors' full names."""
    return [f"- **{k}**: {results.labels[k]}" for k in results.keys]


# -- targets ----------------------------------------------------------------------------------


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
    return _table(["target", "measured", "met"], rows)


# -- the full report --------------------------------------------------------------------------


def machine_line(results: dict[str, Any]) -> str:
    """One line naming the machine, the Python, the build and the load."""
    m = results["machine"]
    build = m.get("build", {})
    build_text = ", ".join(f"{k} {v}" for k, v in build.items()) if isinstance(build, dict) else str(build)
    load0 = m["load_average"][0]
    load1 = m.get("load_average_end", [load0])[0]
    return (
        f"{m['cpu_model']}, {m['cpu_count']} CPUs ({m['usable_cpus']} usable), "
        f"Python {m['python']}, build: {build_text}; load average {load0:.2f} at start, "
        f"{load1:.2f} at end; {results['mode']} run of {results['duration_s']:.0f} s on {m['date']}"
    )


def _details(results: Results, workload: str, title: str) -> list[str]:
    cases = results.cases(workload)
    if not cases and not any(results.record(workload, "*", k) for k in results.keys):
        return []
    lines = [f"### {title}", ""]
    rows = [
        [
            case,
            *[
                cell_text(results, workload, results.case_for(workload, case, k), k, with_min=True)
                for k in results.keys
            ],
            comparison(results, workload, case),
            comparison(results, workload, case, among=results.having(Ability.PROCESSES)),
        ]
        for case in cases or ["*"]
    ]
    lines += _table(["case", *results.keys, "this vs best other", "this vs best process pool"], rows)
    cpu_rows = []
    for case in cases:
        cells = []
        for k in results.keys:
            record = results.record(workload, results.case_for(workload, case, k), k) or {}
            cpu = [c for c in record.get("cpu_percent") or [] if c is not None]
            cells.append(f"{statistics.median(cpu):.0f}%" if cpu else "")
        if any(cells):
            cpu_rows.append([case, *cells])
    if cpu_rows:
        lines += ["", "CPU utilisation (CPU time / wall time, all processes; 100% = one core):", ""]
        lines += _table(["case", *results.keys], cpu_rows)
    notes = []
    for k in results.keys:
        reasons: dict[str, list[str]] = {}
        for case in cases or ["*"]:
            record = results.record(workload, case, k) or {}
            if "na" in record or "error" in record:
                reasons.setdefault(str(record.get("na") or record.get("error")), []).append(case)
        for reason, where in reasons.items():
            notes.append(f"- {k}: {reason}" + ("" if len(where) == len(cases) else f" ({', '.join(where)})"))
    if notes:
        lines += [""] + notes
    return lines + [""]


def render(results: dict[str, Any]) -> str:
    """The whole report: machine, summary, targets, one detailed table per workload."""
    r = Results(results)
    lines = ["# subinterpreter_parallelism benchmarks", "", f"Machine: {machine_line(results)}", ""]
    for what, reason in results.get("skipped", {}).items():
        lines.append(f"- skipped: {what}: {reason}")
    if results.get("skipped"):
        lines.append("")
    lines += ["## Summary (medians)", ""] + summary_table(r) + [""] + legend(r) + [""]
    lines += ["## Targets", ""] + targets_table(results) + [""]
    lines += ["## Details (median, with the best sample)", ""]
    for workload, title in WORKLOADS.items():
        lines += _details(r, workload, title)
    lines += cpu_report.render(results)
    return "\n".join(lines)


def render_readme(results: dict[str, Any], image: str | None) -> str:
    """The README's benchmark section body: machine, summary, targets, plot, how to run."""
    r = Results(results)
    lines = [f"Measured on {machine_line(results)}.", ""]
    lines += summary_table(r) + [""]
    lines += ["Columns: " + "; ".join(f"**{k}**: {r.labels[k]}" for k in r.keys) + ".", ""]
    lines += targets_table(results) + [""]
    if image:
        lines += [f"![throughput against workers, and round-trip time against payload size]({image})", ""]
    return "\n".join(lines)


def update_readme(path: Path, results: dict[str, Any], image: str | None) -> None:
    """Replaces the text between the bench markers of ``path`` with :func:`render_readme`.

    Raises:
        ValueError: the file has no markers.
    """
    text = path.read_text()
    pattern = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {README_BEGIN!r} ... {README_END!r} markers")
    body = f"{README_BEGIN}\n{render_readme(results, image)}\n{README_END}"
    path.write_text(pattern.sub(lambda _: body, text, count=1))
