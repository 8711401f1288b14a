"""The PNG: CPU-bound throughput against workers, and round-trip time against payload size."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .competitors import Ability, by_key
from .report import Results, machine_line

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
        points = [(b, v) for b, c in zip(nbytes, sizes) if b is not None
                  for v, _ in r.medians("data", c, [key])]
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
