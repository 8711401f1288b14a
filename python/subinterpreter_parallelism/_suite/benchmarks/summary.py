"""The summary table: one row per headline measurement, one column per competitor, and the
formatting every table of the report shares (units, cells, "1.9x faster than fork")."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from . import shared_table
from .competitors import Ability
from .results import Results

__all__ = ["SummaryRow", "cell_text", "comparison", "fmt", "legend", "markdown_table", "summary_table"]


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


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
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
    lines = markdown_table(header, rows)
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
