"""The Markdown report of a run, and the two sections ``make bench-readme`` writes from it.

Every number comes from the records of the run being reported; the median is the headline,
the minimum is shown beside it in the detailed tables, and every sample is in the JSON file.
The figures go to the users' benchmarks page (between the ``bench`` markers); the targets, met
or not, to the contributors' guide (between the ``bench-targets`` markers).
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from . import cpu_report
from .competitors import Ability
from .plan import WORKLOADS
from .results import Results, machine_line
from .summary import cell_text, comparison, legend, markdown_table, summary_table
from .targets import evaluate_targets, targets_table

__all__ = ["evaluate_targets", "render", "render_readme", "render_targets", "update_readme", "update_targets"]

README_BEGIN = "<!-- bench:begin (written by `make bench-readme`) -->"
README_END = "<!-- bench:end -->"
TARGETS_BEGIN = "<!-- bench-targets:begin (written by `make bench-readme`) -->"
TARGETS_END = "<!-- bench-targets:end -->"


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
    lines += markdown_table(["case", *results.keys, "this vs best other", "this vs best process pool"], rows)
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
        lines += markdown_table(["case", *results.keys], cpu_rows)
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
        lines += ["", *notes]
    return [*lines, ""]


def render(results: dict[str, Any]) -> str:
    """The whole report: machine, summary, targets, one detailed table per workload."""
    r = Results(results)
    lines = ["# subinterpreter_parallelism benchmarks", "", f"Machine: {machine_line(results)}", ""]
    for what, reason in results.get("skipped", {}).items():
        lines.append(f"- skipped: {what}: {reason}")
    if results.get("skipped"):
        lines.append("")
    lines += ["## Summary (medians)", "", *summary_table(r), "", *legend(r), ""]
    lines += ["## Targets", "", *targets_table(results), ""]
    lines += ["## Details (median, with the best sample)", ""]
    for workload, title in WORKLOADS.items():
        lines += _details(r, workload, title)
    lines += cpu_report.render(results)
    return "\n".join(lines)


def render_readme(results: dict[str, Any], image: str | None) -> str:
    """The benchmarks page's section: machine, summary, the columns' names, plot (no targets)."""
    r = Results(results)
    lines = [f"Measured on {machine_line(results)}.", ""]
    lines += [*summary_table(r), ""]
    lines += ["Columns: " + "; ".join(f"**{k}**: {r.labels[k]}" for k in r.keys) + ".", ""]
    if image:
        lines += [f"![throughput against workers, and round-trip time against payload size]({image})", ""]
    return "\n".join(lines)


def render_targets(results: dict[str, Any]) -> str:
    """The contributors' section: which run, then each target, what it measured, whether met."""
    lines = [f"Measured on {machine_line(results)}.", ""]
    lines += [*targets_table(results), ""]
    return "\n".join(lines)


def _replace_between(path: Path, begin: str, end: str, body: str) -> None:
    """Replaces the text between the markers ``begin`` and ``end`` of ``path`` with ``body``.

    Raises:
        ValueError: the file has no such markers.
    """
    text = path.read_text()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {begin!r} ... {end!r} markers")
    path.write_text(pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text, count=1))


def update_readme(path: Path, results: dict[str, Any], image: str | None) -> None:
    """Replaces the text between the bench markers of ``path`` with :func:`render_readme`.

    Raises:
        ValueError: the file has no markers.
    """
    _replace_between(path, README_BEGIN, README_END, render_readme(results, image))


def update_targets(path: Path, results: dict[str, Any]) -> None:
    """Replaces the text between the bench-targets markers of ``path`` with :func:`render_targets`.

    Raises:
        ValueError: the file has no markers.
    """
    _replace_between(path, TARGETS_BEGIN, TARGETS_END, render_targets(results))
