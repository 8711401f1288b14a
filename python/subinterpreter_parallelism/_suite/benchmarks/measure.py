"""Clocks, CPU time, memory and machine facts: the measuring tools every scenario uses."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Timing", "cpu_seconds", "machine_facts", "summarize", "timed", "tree_memory"]


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and all its descendants, alive or reaped.

    Live child processes (process-pool workers) are read through psutil; without psutil
    only the reaped ones count, so process pools would look idle.
    """
    psutil = _psutil()
    if psutil is None:
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    total = 0.0
    processes = [psutil.Process()]
    try:
        processes += processes[0].children(recursive=True)
    except psutil.Error:
        pass
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # ended meanwhile; its time shows up in its parent's children_* times
        total += times.user + times.system + times.children_user + times.children_system
    return total


@dataclass(frozen=True)
class Timing:
    """Wall-clock and CPU seconds of one measured run."""

    wall_s: float
    cpu_s: float

    @property
    def cpu_percent(self) -> float | None:
        """CPU time over wall time (100% is one core kept busy); None for runs shorter than
        0.1 s, which the kernel's 10 ms CPU-time ticks cannot resolve."""
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s >= 0.1 else None


def timed[T](run: Callable[[], T]) -> tuple[T, Timing]:
    """Runs ``run()``; returns its result and how long it took."""
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    result = run()
    wall = time.perf_counter() - t0
    return result, Timing(wall, cpu_seconds() - cpu0)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and count of a list of samples (empty dict for no samples)."""
    if not values:
        return {}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": float(len(values)),
    }


def tree_memory() -> dict[str, int]:
    """RSS, PSS and USS in bytes, summed over this process and its descendants (needs psutil)."""
    psutil = _psutil()
    if psutil is None:
        raise RuntimeError("memory measurements need psutil (pip install psutil, or the `bench` extra)")
    totals = {"rss": 0, "pss": 0, "uss": 0}
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            info = process.memory_full_info()
        except psutil.Error:
            continue
        for key in totals:
            totals[key] += int(getattr(info, key, 0))
    return totals


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine_facts(root: Path) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, memory, load, Python, this project's build."""
    from subinterpreter_parallelism import _native
    from subinterpreter_parallelism.executor import default_worker_count

    facts: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": default_worker_count(),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "build": _native.build_info(),
        "git_commit": _git_commit(root),
        "packages": {
            name: _version(name)
            for name in (
                "subinterpreter_parallelism",
                "loky",
                "interpreters-pep-734",
                "cloudpickle",
                "psutil",
                "matplotlib",
            )
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    psutil = _psutil()
    if psutil is not None:
        facts["memory_total_bytes"] = psutil.virtual_memory().total
    return facts
