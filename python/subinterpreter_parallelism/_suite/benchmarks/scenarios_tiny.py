"""(c) Tiny tasks: the per-task cost of `submit` (a module's function and one of `__main__`)
and the per-item cost of `map` (each executor's default chunking, then this project's)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from . import workloads
from .competitors import Ability, by_key, make_executor
from .measure import Timing
from .records import Record, check, error_record, na_record, new_record, per_item, repeat, run_batch


def _main_function() -> Callable[[int], int] | None:
    """``tiny_in_main`` from the ``__main__`` module (benchmarks.cell defines it there)."""
    return getattr(sys.modules.get("__main__"), "tiny_in_main", None)


def _submit_per_task(executor: Executor, fn: Callable[[int], int], count: int, repeats: int) -> list[Timing]:
    """Runs of ``count`` tiny tasks submitted one by one, after a warm-up of a tenth of that."""
    expected = list(range(1, count + 1))

    def run() -> None:
        futures = [executor.submit(fn, i) for i in range(count)]
        check([f.result() for f in futures], expected, "tiny")

    run_batch(executor, fn, [(i,) for i in range(max(1, count // 10))])
    return repeat(run, 0, repeats)


def scenario_tiny(key: str, p: dict[str, Any]) -> list[Record]:
    """Per-task cost of tiny tasks through ``submit`` (module and ``__main__`` function) and ``map``."""
    workers = p["workers"]
    records: list[Record] = []
    competitor = by_key(key)
    if not competitor.can(Ability.PARALLEL):
        count = p["submit_count"]
        runs = repeat(lambda: [workloads.tiny(i) for i in range(count)], 1, p["repeats"])
        records.append(
            new_record(
                "tiny",
                "submit",
                key,
                "s",
                per_item(runs, count),
                cpu=[t.cpu_percent for t in runs],
                extra={"items": count, "how": "plain loop"},
            )
        )
        records.append(na_record("tiny", "submit __main__", key, competitor.why_not(Ability.MAIN_FUNCTIONS)))
        count = p["map_count"]
        runs = repeat(lambda: list(map(workloads.tiny, range(count))), 1, p["repeats"])
        records.append(
            new_record(
                "tiny",
                "map",
                key,
                "s",
                per_item(runs, count),
                cpu=[t.cpu_percent for t in runs],
                extra={"items": count, "how": "builtin map"},
            )
        )
        records.append(na_record("tiny", "map chunked", key, competitor.why_not(Ability.CHUNKSIZE)))
        return records

    executor = make_executor(key, workers if competitor.can(Ability.BOUNDED) else None)
    usable = True
    try:
        # submit, module-level function
        # Without persistent workers every call starts an interpreter: far fewer calls.
        count = p["submit_count"] if competitor.can(Ability.WORKERS) else p["seed_count"]
        runs = _submit_per_task(executor, workloads.tiny, count, p["repeats"])
        records.append(
            new_record(
                "tiny",
                "submit",
                key,
                "s",
                per_item(runs, count),
                cpu=[t.cpu_percent for t in runs],
                extra={"items": count},
            )
        )

        # map: each executor's default chunking, then the chunks this project picks
        if not competitor.can(Ability.MAP):
            records.append(na_record("tiny", "map", key, competitor.why_not(Ability.MAP)))
            records.append(na_record("tiny", "map chunked", key, competitor.why_not(Ability.MAP)))
        else:
            # A map that sends each item alone gets fewer items (the cost is per item).
            count = p["map_count"] if competitor.can(Ability.BATCHED_MAP) else p["map_count_per_item"]
            runs = repeat(_mapper(executor, count, None), 0, p["repeats"])
            records.append(
                new_record(
                    "tiny",
                    "map",
                    key,
                    "s",
                    per_item(runs, count),
                    cpu=[t.cpu_percent for t in runs],
                    extra={"items": count},
                )
            )
            if competitor.can(Ability.CHUNKSIZE):
                count = p["map_count"]
                chunk = max(1, min(4096, count // (workers * 16)))
                runs = repeat(_mapper(executor, count, chunk), 0, p["repeats"])
                records.append(
                    new_record(
                        "tiny",
                        "map chunked",
                        key,
                        "s",
                        per_item(runs, count),
                        cpu=[t.cpu_percent for t in runs],
                        extra={"items": count, "chunksize": chunk},
                    )
                )
            else:
                records.append(na_record("tiny", "map chunked", key, competitor.why_not(Ability.CHUNKSIZE)))

        # submit, a function defined in __main__ (last: a pool may hang on it)
        main_fn = _main_function()
        if not competitor.can(Ability.MAIN_FUNCTIONS):
            records.append(
                na_record("tiny", "submit __main__", key, competitor.why_not(Ability.MAIN_FUNCTIONS))
            )
        elif main_fn is None:
            records.append(na_record("tiny", "submit __main__", key, "run through benchmarks.cell"))
        else:
            probe = executor.submit(main_fn, 0)
            try:
                probe.result(timeout=p["main_probe_timeout_s"])
            except TimeoutError:
                usable = False
                records.append(
                    {
                        "workload": "tiny",
                        "case": "submit __main__",
                        "competitor": key,
                        "error": f"hangs: no result after {p['main_probe_timeout_s']} s",
                    }
                )
            except Exception as exc:
                records.append(error_record("tiny", "submit __main__", key, exc))
            else:
                count = p["main_count"]
                runs = _submit_per_task(executor, main_fn, count, p["repeats"])
                records.append(
                    new_record(
                        "tiny",
                        "submit __main__",
                        key,
                        "s",
                        per_item(runs, count),
                        cpu=[t.cpu_percent for t in runs],
                        extra={"items": count},
                    )
                )
    finally:
        if usable:
            executor.shutdown(wait=True)
        else:
            executor.shutdown(wait=False)  # the cell process ends with os._exit
    return records


def _mapper(executor: Executor, count: int, chunksize: int | None) -> Callable[[], None]:
    """A run of ``executor.map(tiny, range(count))`` that checks the last result."""

    def run() -> None:
        items = range(count)
        out = (
            executor.map(workloads.tiny, items)
            if chunksize is None
            else executor.map(workloads.tiny, items, chunksize=chunksize)
        )
        last = -1
        for value in out:
            last = value
        if last != count:
            raise AssertionError("map: wrong results")

    return run
