"""(i) Popular pure-Python libraries (`benchmarks.libraries`), cold (a new pool) and warm."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

from .competitors import Ability, by_key, make_executor
from .libraries import LIBRARIES
from .measure import timed
from .records import Record, error_record, na_record, new_record, repeat, run_batch


def _digest(results: Sequence[Any]) -> int:
    """A checksum of a run's results: every competitor must get the same one (the test checks)."""
    import zlib

    return zlib.crc32(repr(list(results)).encode())


def scenario_libraries(key: str, p: dict[str, Any]) -> list[Record]:
    """Each library workload (``benchmarks.libraries``) on ``workers`` workers.

    cold: a new pool runs every task once, its start-up and the workers' imports included. The
    caller has imported the library first, untimed, as a script does at its top: fork's
    workers inherit that import, the others import again. warm: the same pool, again.
    """
    competitor = by_key(key)
    records: list[Record] = []
    for library in LIBRARIES:
        if library.name not in p["libraries"]:
            continue
        cases = (f"{library.name} cold", f"{library.name} warm")
        if competitor.can(Ability.PARALLEL) and not competitor.can(Ability.WORKERS):
            records += [
                na_record("libraries", case, key, "a new interpreter per call imports the library every time")
                for case in cases
            ]
            continue
        try:
            importlib.import_module(library.module)
            calls = library.calls(p["scale"])
            holder: list[Executor] = []

            def cold() -> list[Any]:
                holder.append(make_executor(key, p["workers"]))
                return run_batch(holder[0], library.task, calls)

            results, first = timed(cold)
            digest = _digest(results)
            try:

                def again() -> None:
                    if _digest(run_batch(holder[0], library.task, calls)) != digest:
                        raise AssertionError(
                            f"{library.name}: a warm run gave other results than the cold one"
                        )

                runs = repeat(again, 0, p["repeats"])
            finally:
                holder[0].shutdown(wait=True)
        except Exception as exc:
            records += [error_record("libraries", case, key, exc) for case in cases]
            continue
        extra = {"tasks": len(calls), "workers": p["workers"], "checksum": digest, "what": library.what}
        records.append(
            new_record("libraries", cases[0], key, "s", [first.wall_s], cpu=[first.cpu_percent], extra=extra)
        )
        records.append(
            new_record(
                "libraries",
                cases[1],
                key,
                "s",
                [t.wall_s for t in runs],
                cpu=[t.cpu_percent for t in runs],
                extra=extra,
            )
        )
    return records
