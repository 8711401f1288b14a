"""The tables and the target of (k) CPU time per task (``cpu_per_task``), from its results."""

from __future__ import annotations

import statistics
from typing import Any

from . import workloads
from .cpu_per_task import PERF_EVENTS, ratio_of_pairs

__all__ = ["median_cpu", "paired_ratio", "render", "targets"]


def _cells(data: dict[str, Any], variant: str, loop: str, key: str) -> list[dict[str, Any]]:
    return [
        c for c in data["cells"] if (c["variant"], c["workload"], c["competitor"]) == (variant, loop, key)
    ]


def median_cpu(data: dict[str, Any], variant: str, loop: str, key: str) -> float | None:
    """Median CPU seconds per task over every round of one cell, or None."""
    samples = [s for c in _cells(data, variant, loop, key) for s in c.get("cpu_s", [])]
    return statistics.median(samples) if samples else None


def paired_ratio(data: dict[str, Any], loop: str) -> float | None:
    """This project's CPU per task over bare interpreters', paired in one process (see :func:`_run_paired`)."""
    return ratio_of_pairs(_cells(data, "default", loop, "paired"))


def _per_task(data: dict[str, Any], variant: str, loop: str, key: str, event: str) -> float | None:
    cells = [c for c in _cells(data, variant, loop, key) if event in c.get("counters", {})]
    if not cells:
        return None
    return float(statistics.median(c["counters"][event] / len(c["cpu_s"]) for c in cells))


def _count(event: str, value: float | None) -> str:
    """A perf counter per task: task-clock (perf's msec) as time, the others as counts."""
    if value is None:
        return "—"
    return _ms(value / 1e3) if event == "task-clock" else f"{value:.1f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1e3:.2f} ms"


def render(results: dict[str, Any]) -> list[str]:
    """The Markdown tables of :func:`run`'s results ([] when the run had none)."""
    data = results.get("cpu_per_task")
    if not data:
        return []
    keys = list(data["competitors"])
    loads = [c["load"] for c in data["cells"]]
    lines = [
        "### (k) CPU time per task, inside the task (time.thread_time())",
        "",
        f"{data['tasks']} tasks per batch on {data['workers']} workers, each loop sized for ~{data['task_s'] * 1e3:.0f} ms "
        f"of CPU ({', '.join(f'{k} n={v:,}' for k, v in data['sizes'].items())}); {data['rounds']} rounds, "
        f"each batch in a fresh process; medians over every task. Load average (1 min) during the "
        f"cells: {min(loads):.2f} to {max(loads):.2f}.",
        "",
    ]
    for variant, what in data["variants"].items():
        variant_keys = [k for k in keys if _cells(data, variant, next(iter(workloads.LOOPS)), k)]
        if variant != "default":
            lines += [f"Variant **{variant}**: {what}.", ""]
        header = ["loop", *variant_keys] + (["this / bare"] if {"this", "bare"} <= set(variant_keys) else [])
        paired = variant == "default" and any(paired_ratio(data, loop) for loop in workloads.LOOPS)
        header += ["this / bare, paired in one process"] if paired else []
        rows = []
        for loop in workloads.LOOPS:
            values = {k: median_cpu(data, variant, loop, k) for k in variant_keys}
            row = [loop, *[_ms(values[k]) for k in variant_keys]]
            if "this / bare" in header:
                this, bare = values["this"], values["bare"]
                row.append(f"{this / bare:.3f}x" if this and bare else "—")
            if paired:
                ratio = paired_ratio(data, loop)
                row.append("—" if ratio is None else f"{ratio:.3f}x")
            rows.append(row)
        lines += [*_table(header, rows), ""]
        if paired:
            lines += [
                "Paired: this project's pool and bare interpreters in one process, a batch of each in turn "
                f"({data.get('pairs', 4)} pairs per round, the order swapped each time); the median over "
                "the pairs of the ratio of their medians. It takes the process (memory layout, the "
                "moment's load) out of the comparison, which the columns above, one process per "
                "batch, cannot.",
                "",
            ]
        if data["perf"]:
            lines += ["perf stat, per task, while the batch ran (all threads and processes of the cell):", ""]
            counter_rows = []
            for loop in workloads.LOOPS:
                for event in PERF_EVENTS:
                    counts = [_per_task(data, variant, loop, k, event) for k in variant_keys]
                    counter_rows.append([f"{loop}: {event}", *[_count(event, v) for v in counts]])
            lines += [*_table(["counter", *variant_keys], counter_rows), ""]
    if not data["perf"]:
        lines += ["perf stat could not run here: no counters.", ""]
    errors = [
        f"- {c['variant']}, {c['workload']}, {c['competitor']}: {c['error']}"
        for c in data["cells"]
        if "error" in c
    ]
    lines += ["Errors:", *errors, ""] if errors else []
    lines += [f"- {key}: {reason}" for key, reason in data.get("skipped", {}).items()]
    return [*lines, ""]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 26's target: CPU per task in this project's pool <= 1.02x bare interpreters', each loop."""
    data = results.get("cpu_per_task")
    if not data:
        return []
    ratios = {}
    for loop in workloads.LOOPS:
        this, bare = median_cpu(data, "default", loop, "this"), median_cpu(data, "default", loop, "bare")
        paired = paired_ratio(data, loop)
        if paired is not None:
            ratios[loop] = paired
        elif this and bare:
            ratios[loop] = this / bare
    if not ratios:
        return [{"target": _TARGET, "measured": "not measured", "met": None}]
    measured = ", ".join(f"{loop} {ratio:.3f}x" for loop, ratio in ratios.items())
    return [{"target": _TARGET, "measured": measured, "met": all(r <= 1.02 for r in ratios.values())}]


_TARGET = (
    "CPU per task (inside the task): this project's pool <= 1.02x bare interpreters, each loop "
    "(paired in one process where measured)"
)
