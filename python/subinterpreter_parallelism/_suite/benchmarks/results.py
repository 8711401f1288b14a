"""The results of a run, looked up by (workload, case, competitor), and the line naming its machine.

Every number the report, the targets and the plot show is read through :class:`Results` from
the records of the run being reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from .competitors import Ability, by_key

__all__ = ["Record", "Results", "machine_line"]

Record = dict[str, Any]


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
        for w, case, _ in self._index:
            if w == workload and case != "*":
                seen.setdefault(case, None)
        if workload == "scaling":
            return sorted(seen, key=lambda c: int(c.split()[0]))
        return list(seen)


def _known_abilities(key: str) -> frozenset[str]:
    try:
        return frozenset(a.value for a in by_key(key).abilities)
    except KeyError:
        return frozenset()


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
