"""The PNG: CPU-bound throughput against workers and round-trip time against payload size; for
the many-core run (--scaling), one panel per metric against the number of workers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .competitors import Ability, by_key
from .results import Results, machine_line

__all__ = ["plot"]


def _style(key: str) -> dict[str, Any]:
    """The competitor's line style (its own colour; this project drawn thicker)."""
    try:
        own = dict(by_key(key).style)
    except KeyError:
        own = {}
    return {"linewidth": 1.6, "marker": "o", "markersize": 4, **own}


def plot(results: dict[str, Any], path: Path) -> None:
    """Writes the two-panel figure to ``path`` (PNG). Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = Results(results)
    if r.ran("widths"):
        _plot_widths(plt, r, results, path)
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), dpi=90)

    cases = r.cases("scaling")
    workers = [int(c.split()[0]) for c in cases]
    for key in r.keys:
        style = _style(key)
        if not r.can(key, Ability.PARALLEL):
            value = r.median("scaling", "1 workers", key)
            if value is not None and workers:
                left.plot([min(workers), max(workers)], [value, value], label=key, **style)
            continue
        points = [(w, v) for w, c in zip(workers, cases) for v, _ in r.medians("scaling", c, [key])]
        if points:
            left.plot(*zip(*points), label=key, **style)
    cores = results["machine"]["usable_cpus"]
    left.axvline(cores, color="#cccccc", linewidth=1, zorder=0)
    left.set_xlabel(f"workers ({cores} usable CPUs: grey line)")
    left.set_ylabel("tasks per second (higher is better)")
    left.set_title("CPU-bound py_factorial throughput")
    if workers:
        left.set_xticks(workers)
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)

    sizes = r.cases("data")
    nbytes = [_bytes_of(r, case) for case in sizes]
    for key in r.keys:
        points = [
            (b, v) for b, c in zip(nbytes, sizes) if b is not None for v, _ in r.medians("data", c, [key])
        ]
        if points:
            style = _style(key)
            right.plot(*zip(*points), label=key, **style)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("bytes sent to the task and returned")
    right.set_ylabel("round-trip time per task, s (lower is better)")
    right.set_title("Per-task overhead against payload size")
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=8)

    _save(plt, fig, results, path)


# metric of the widths workload -> (panel title, y label, logarithmic y)
_WIDTH_PANELS = (
    ("first result", "new pool to first result", "s (lower is better)", True),
    ("all started", "new pool to every worker busy", "s (lower is better)", True),
    ("interpreter start-up per worker", "interpreter start-up per worker (stats())", "s", True),
    ("memory per worker", "memory added per worker (PSS)", "MB (lower is better)", False),
    ("short tasks", "short tasks (~1 ms) throughput", "tasks/s (higher is better)", False),
    ("long tasks", "long tasks throughput", "tasks/s (higher is better)", False),
)


def _plot_widths(plt: Any, r: Results, results: dict[str, Any], path: Path) -> None:
    """The many-core run: one panel per metric, against the number of workers."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.2), dpi=90)
    widths = sorted({int(case.split()[0]) for case in r.cases("widths")})
    cores = results["machine"]["usable_cpus"]
    for axis, (metric, title, unit, log) in zip(axes.flat, _WIDTH_PANELS):
        for key in r.keys:
            points = []
            for width in widths:
                value = r.median("widths", f"{width} workers: {metric}", key)
                if value is not None:
                    points.append((width, value / 1e6 if metric == "memory per worker" else value))
            if len(points) == 1 and not r.can(key, Ability.PARALLEL):  # serial: one worker stands for all
                points = [(widths[0], points[0][1]), (widths[-1], points[0][1])]
            if points:
                axis.plot(*zip(*points), label=key, **_style(key))
        axis.axvline(cores, color="#cccccc", linewidth=1, zorder=0)
        axis.set_xscale("log", base=2)
        axis.set_xticks(widths, [str(w) for w in widths])
        if log:
            axis.set_yscale("log")
        else:
            axis.set_ylim(bottom=0)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(f"workers ({cores} usable CPUs: grey line)", fontsize=8)
        axis.set_ylabel(unit, fontsize=8)
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=7)
    _save(plt, fig, results, path)


def _save(plt: Any, fig: Any, results: dict[str, Any], path: Path) -> None:
    fig.suptitle(machine_line(results), fontsize=7, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    _write_small_png(buffer.getvalue(), path)


def _write_small_png(data: bytes, path: Path) -> None:
    """Writes the PNG with a 64-colour palette (a third of the size; it goes into the repository)."""
    try:
        from PIL import Image  # matplotlib depends on Pillow
    except ImportError:
        path.write_bytes(data)
        return
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").quantize(colors=64).save(path, format="PNG", optimize=True)


def _bytes_of(r: Results, case: str) -> int | None:
    """The payload size of a ``bytes`` data case (None for the other kinds: not plotted)."""
    for key in r.keys:
        record = r.record("data", case, key) or {}
        if "extra" in record:
            return int(record["extra"]["bytes"]) if record["extra"].get("kind", "bytes") == "bytes" else None
    return None
