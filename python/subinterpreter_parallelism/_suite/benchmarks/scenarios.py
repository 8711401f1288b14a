"""What is measured: one function per workload, run for one competitor in a fresh process.

The scenarios live in modules of their own, one family of workloads each (``scenarios_*.py``,
and ``shared_table`` for the read-only table); their records are described in
``benchmarks.records``. This module names them and runs one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import shared_table
from .records import Record, error_record, start_budget
from .scenarios_cancel import scenario_cancel
from .scenarios_cpu import scenario_cpu, scenario_scaling
from .scenarios_data import scenario_data
from .scenarios_libraries import scenario_libraries
from .scenarios_pools import scenario_memory, scenario_startup
from .scenarios_queue import scenario_queue
from .scenarios_tiny import scenario_tiny
from .scenarios_widths import scenario_widths

__all__ = ["SCENARIOS", "run_scenario"]

SCENARIOS: dict[str, Callable[[str, dict[str, Any]], list[Record]]] = {
    "cpu": scenario_cpu,
    "scaling": scenario_scaling,
    "tiny": scenario_tiny,
    "data": scenario_data,
    "startup": scenario_startup,
    "memory": scenario_memory,
    "queue": scenario_queue,
    "cancel": scenario_cancel,
    "libraries": scenario_libraries,
    "widths": scenario_widths,
    "table": shared_table.scenario_table,
    "table-widths": shared_table.scenario_table_widths,
}


def run_scenario(workload: str, key: str, params: dict[str, Any]) -> list[Record]:
    """Runs one workload for one competitor; an exception becomes an error record."""
    start_budget(params.get("budget_s", float("inf")))
    try:
        return SCENARIOS[workload](key, params)
    except Exception as exc:
        return [error_record(workload, "*", key, exc)]
