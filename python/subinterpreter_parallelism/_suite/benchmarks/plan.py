"""What the suite measures: the workloads' titles and their sizes for a run.

Below the report and the suite (both read the titles), above nothing but the native module
(the CPU-bound tasks are calibrated against this machine's speed).
"""

from __future__ import annotations

import time
from typing import Any

from .libraries import LIBRARIES

LIBRARY_NAMES = tuple(library.name for library in LIBRARIES)

__all__ = [
    "HEAVY",
    "OWN_RUNNER",
    "SCALING",
    "WORKLOADS",
    "build_params",
    "factorial_cost",
    "scaling_widths",
    "worker_counts",
]

# workload -> what it measures (the report's section titles)
WORKLOADS: dict[str, str] = {
    "cpu": "(a) the seed's py_factorial: 8 CPU-bound tasks",
    "scaling": "(b) CPU-bound throughput against the number of workers",
    "tiny": "(c) tiny tasks through submit and map: time per task",
    "data": "(d) data transfer: round trip of a bytes argument returned as the result",
    "startup": "(e) pool start-up to the first result (2 workers)",
    "memory": "(f) memory added per worker",
    "queue": "(g) Queue hand-off latency",
    "cancel": "(h) cancel a running pure-Python task",
    "libraries": "(i) popular pure-Python libraries: a new pool (start-up and imports included), then warm",
    "widths": "(j) 1 to N workers: start-up, first result, memory per worker, short and long tasks",
    "cputask": "(k) CPU time per task, inside the task: this pool, bare interpreters, process pools, stdlib pool",
    "table": "(l) a big read-only table that every worker reads: SharedMap and the other ways",
    "table-widths": "(m) the big table at 1 to N workers: memory per extra worker",
}

# Workloads with a runner of their own (cpu_per_task.py: its own competitors, perf stat per cell).
OWN_RUNNER = frozenset({"cputask"})

# The many-core run (`make bench-scaling`, --scaling): not part of the default run.
SCALING = ("widths", "table-widths")

# Left out of --quick unless named with --only: they take minutes.
HEAVY = frozenset({"libraries", "cputask"})


def factorial_cost() -> float:
    """Seconds per unit of ``n`` of ``py_factorial(n)`` on this machine, now (best of 5)."""
    from .workloads import py_factorial

    probe = 20_000
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        py_factorial(probe)
        best = min(best, time.perf_counter() - t0)
    return best / probe


def worker_counts(cores: int, quick: bool = False) -> list[int]:
    """1, 2, ... 2 x cores; on big machines (or quick runs) powers of two plus the core counts."""
    top = 2 * cores
    if top <= 8 and not quick:
        return list(range(1, top + 1))
    counts = {1, cores, top}
    power = 2
    while power < top:
        counts.add(power)
        power *= 2
    return sorted(counts)


def scaling_widths(cpus: int) -> list[int]:
    """The widths of the many-core run: 1, 2, 4, 8, 16 and the CPU count."""
    return sorted({1, 2, 4, 8, 16, cpus})


def build_params(
    quick: bool, cores: int, unit_cost: float, widths: list[int] | None = None
) -> dict[str, dict[str, Any]]:
    """Sizes and repeats of every workload; ``unit_cost`` calibrates the CPU-bound tasks."""
    from subinterpreter_parallelism import _native

    def factorial_of(seconds: float) -> dict[str, Any]:
        n = max(1_000, int(seconds / unit_cost))
        return {"n": n, "expected": _native.factorial_mod(n), "task_s": seconds}

    q = quick
    params: dict[str, dict[str, Any]] = {
        # CPU-bound cells run in 3 interleaved rounds (one repeat each), so that a busy spell of
        # the machine spreads over every competitor instead of hitting one.
        "cpu": {
            "tasks": 8,
            "workers": cores,
            "warmups": 0,
            "repeats": 1,
            "rounds": 1 if q else 3,
            "target_task_s": 0.04 if q else 0.3,
            **factorial_of(0.04 if q else 0.3),
        },
        "scaling": {
            "worker_counts": worker_counts(cores, quick),
            "tasks_per_worker": 2 if q else 4,
            "start_s": 0.05 if q else 0.2,
            "warmups": 0,
            "repeats": 1,
            "rounds": 1 if q else 3,
            **factorial_of(0.01 if q else 0.05),
        },
        "tiny": {
            "workers": cores,
            "submit_count": 2_000 if q else 20_000,
            "main_count": 500 if q else 5_000,
            "seed_count": 4 if q else 20,
            "map_count": 100_000 if q else 1_000_000,
            "map_count_per_item": 1_000 if q else 5_000,
            "repeats": 1 if q else 3,
            "main_probe_timeout_s": 1 if q else 10,
        },
        "data": {
            "workers": cores,
            "sizes": [1_000, 1_000_000]
            if q
            else [1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000],
            "trips": [20, 5] if q else [100, 100, 50, 20, 5, 3],
            "kinds": {
                kind: [1_000_000] if q else [1_000_000, 100_000_000] for kind in ("bytearray", "memoryview")
            },
        },
        "startup": {"workers": 2, "repeats": 1 if q else 5},
        "memory": {"workers": 2 if q else 4, "hold_s": 0.1 if q else 0.3},
        "queue": {
            "handoffs": 50 if q else 300,
            "handoff_warmups": 5 if q else 10,
            "handoff_min": 20,
            "handoff_budget_s": 0.3 if q else 3.0,
            "pause_s": 0.002,
            "pairs": 100_000,
            "pair_batch_s": 0.02 if q else 0.2,
            "repeats": 2 if q else 5,
        },
        "cancel": {"repeats": 3 if q else 10, "spin_s": 60.0, "running_s": 0.05},
        # Two interleaved rounds; scale 1 is about a second of serial work per library (2 cores, 3.13).
        "libraries": {
            "workers": cores,
            "libraries": list(LIBRARY_NAMES),
            "scale": 0.2 if q else 1.0,
            "repeats": 1 if q else 3,
            "rounds": 1 if q else 2,
        },
        # Short tasks show the per-task cost at each width, long ones the CPU-bound scaling.
        "widths": {
            "widths": widths or scaling_widths(cores),
            "hold_s": 0.2,
            "repeats": 1 if q else 2,
            "rounds": 1 if q else 2,
            "short": {"tasks_per_worker": 20 if q else 50, **factorial_of(0.001)},
            "long": {"tasks_per_worker": 2 if q else 4, **factorial_of(0.02 if q else 0.1)},
        },
    }
    # The table (issue 25): 2,000,000 entries, read 100,000 random keys at a time by 2 workers.
    table = {
        "entries": 100_000 if q else 2_000_000,
        "lookups": 10_000 if q else 100_000,
        "manager_lookups": 500 if q else 2_000,
        "workers": 2,
        "repeats": 1 if q else 3,
        "first_repeats": 1 if q else 2,
        "build_repeats": 1 if q else 2,
        "cell_timeout_s": 600.0,
    }
    params["table"] = table
    params["table-widths"] = {
        **table,
        "widths": sorted({1, *(widths or scaling_widths(cores))}),
        "memory_fraction": 0.25,
    }
    # Each batch in a fresh process under perf stat; tasks a multiple of the workers (the bare
    # interpreters split them evenly).
    params["cputask"] = {
        "task_s": 0.03 if q else 0.1,
        "tasks": (2 if q else 4) * cores,
        "workers": cores,
        "rounds": 1 if q else 3,
    }
    # Seconds after which a cell stops repeating (each case keeps at least one sample).
    budgets = {
        "cpu": 45,
        "scaling": 45,
        "tiny": 45,
        "data": 40,
        "libraries": 120,
        "widths": 120,
        "table": 300,
        "table-widths": 300,
    }
    for workload, values in params.items():
        values["budget_s"] = 10.0 if q else float(budgets.get(workload, 20))
    return params
