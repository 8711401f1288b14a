"""``python demo.py --plot FILE.png``: the demo's results as one PNG (needs matplotlib, which
importing this module loads: ``demo`` imports it only for ``--plot``).

Left, part 1: each row's total time, its start-up drawn darker at the bottom of the bar.
Right, part 2: for each verdict, the best alternative's figure over this project's (above 1:
this project is ahead), on a log scale, with the "even" band shaded.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window
import matplotlib.pyplot as plt
import matplotlib.ticker

__all__ = ["plot"]

_COLOURS = {"ahead": "#2ca02c", "even": "#7f7f7f", "behind": "#d62728"}


def plot(results: dict[str, Any], path: str | Path) -> None:
    """Writes the figure for ``results`` (what ``run_demo`` returned) to ``path``."""
    matplotlib.use("Agg")
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), dpi=90, gridspec_kw={"width_ratios": [1, 1.1]})
    rows = results["rows"]
    labels = [row["method"].replace(" (", "\n(", 1) for row in rows]
    totals = [_median(row["total_s"]) for row in rows]
    startups = [_median(row["startup_s"]) or 0.0 for row in rows]
    positions = list(range(len(rows)))
    left.barh(
        positions, totals, color=["#d62728" if "this project" in r["method"] else "#1f77b4" for r in rows]
    )
    left.barh(positions, startups, color="#333333", label="start-up")
    left.set_yticks(positions, labels, fontsize=7)
    left.invert_yaxis()
    left.set_xlabel("seconds (lower is better)")
    left.set_title(
        f"{results['tasks']} × py_factorial({results['n']:,}), {results['workers']} workers", fontsize=10
    )
    left.legend(fontsize=8)
    left.grid(axis="x", alpha=0.3)

    verdicts = results["verdicts"]
    names = [v["title"] for v in verdicts]
    ratios = [v["ratio"] for v in verdicts]
    spots = list(range(len(verdicts)))
    # From 1 (even) towards the ratio: right of 1 this project is ahead, left of it behind.
    right.barh(spots, [r - 1 for r in ratios], left=1, color=[_COLOURS[v["word"]] for v in verdicts])
    right.axvspan(1 / 1.05, 1.05, color="#dddddd", zorder=0)
    right.axvline(1.0, color="black", linewidth=0.8)
    right.set_xscale("log")
    low, high = min([*ratios, 1.0]), max([*ratios, 1.0])
    right.set_xlim(low / 1.6, high * 3)
    ticks = [
        t for t in (0.01, 0.03, 0.1, 0.25, 0.5, 1, 2, 4, 10, 30, 100, 300, 1000) if low / 1.6 <= t <= high * 3
    ]
    right.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    right.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    right.set_yticks(spots, names, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("best alternative / this project (above 1: this project ahead)")
    right.set_title("where interpreters win, measured in this run", fontsize=10)
    for spot, ratio, verdict in zip(spots, ratios, verdicts):
        right.text(ratio, spot, f" {ratio:.2f}x {verdict['word']}", va="center", fontsize=7)
    right.grid(axis="x", alpha=0.3, which="both")
    load = results["load_average"]
    fig.suptitle(
        f"subinterpreter_parallelism demo: Python {results['python']}, {results['cpus']} CPUs, "
        f"load average {load[0][0]:.2f} at start, {load[1][0]:.2f} at end",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
