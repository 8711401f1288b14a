"""The demo's part 2, the shared-table section: workers that all read one big read-only table.

This project gives them one ``sp.SharedMap`` (stored once, in native memory; each worker holds
a handle), against a fork pool whose workers inherit the caller's dict, and pools whose workers
each load a copy: forkserver (spawn where there is none), the stdlib interpreter pool (3.14+),
and this project's pool with a plain dict per worker.

The table (``benchmarks.table_tasks.make_table``) starts in two files, a pickle and the file
``SharedMap.save`` writes, written before any clock starts. What a way does in the caller before
its pool (fork: load the dict; this project: map the SharedMap's file) is timed and shown apart.
The figures compared, each with its own verdict, are the time from creating a pool to its first
result and the PSS added per worker once every worker has looked up many keys.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import subinterpreter_parallelism as sp

from ._demo_sections import (
    HAS_STDLIB_POOL,
    SUBJECT,
    TASK_MODULE,
    Section,
    Way,
    compare,
    fmt,
    process_way,
    ratio_text,
    section_header,
    stdlib_pool,
    task_module,
    tree_pss,
)

__all__ = ["SIZES", "TABLE_MODULE", "TableRow", "shared_table", "table_verdicts"]

#: (entries, random keys each worker looks up, pools per way), by ``quick``: a table of about
#: 50 MB as a dict with --quick, 260 MB without (Python 3.13).
SIZES = {True: (200_000, 20_000, 3), False: (1_000_000, 100_000, 3)}

#: The worker side of the table (the benchmark suite's, light like the demo's task module).
TABLE_MODULE = TASK_MODULE.rsplit(".", 1)[0] + ".table_tasks"


def _table_ways(tables: ModuleType, pickled: str, mapped: str) -> list[tuple[Way, str, Callable[[], Any]]]:
    """The ways of the shared-table section, in the order they run: (the pool, how its workers
    get the table, what readies the caller before the clock: returns what undoes it, or None)."""

    def processes(method: str, **options: Any) -> Way:
        context = multiprocessing.get_context(method)
        return replace(
            process_way(method), make=lambda n: ProcessPoolExecutor(n, mp_context=context, **options)
        )

    def inherit() -> Callable[[], None]:
        tables.load(pickled)  # the caller's dict, which every forked worker inherits
        return lambda: tables.keep(None)

    shared: list[Any] = []

    def map_file() -> Callable[[], None]:
        shared.append(sp.SharedMap.from_file(mapped))
        return shared.clear

    def ours(n: int, **options: Any) -> Executor:
        return sp.InterpreterPoolExecutor(n, **options)

    own = "its own dict, loaded from the pickle"
    loader: dict[str, Any] = {"initializer": tables.load, "initargs": (pickled,)}
    ways: list[tuple[Way, str, Callable[[], Any]]] = [
        (processes("fork"), "the caller's dict, inherited", inherit)
    ]
    if "forkserver" in multiprocessing.get_all_start_methods():
        ways.append((processes("forkserver", **loader), own, multiprocessing.forkserver.ensure_running))
    else:
        ways.append((processes("spawn", **loader), own, lambda: None))
    shared_way = Way(
        f"{SUBJECT}, SharedMap",
        lambda n: ours(n, initializer=tables.keep, initargs=(shared[0],)),
        subject=True,
    )
    # Before the pools that load a copy in interpreters of this process: memory they freed and
    # the allocator kept could be taken by ours, which would then look smaller than it is.
    ways.append((shared_way, "a handle on the caller's SharedMap, mapped from its file", map_file))
    if HAS_STDLIB_POOL:
        code = f"import {TABLE_MODULE} as t; t.load({pickled!r})"
        stdlib = Way("stdlib InterpreterPoolExecutor", lambda n: stdlib_pool(n, then=code))
        ways.append((stdlib, own, lambda: None))
    ways.append((Way(f"{SUBJECT}, a dict per worker", lambda n: ours(n, **loader)), own, lambda: None))
    return ways


def _settle() -> None:
    """Collects garbage and hands the memory that earlier pools freed back to the system
    (glibc's ``malloc_trim``), so that a new pool's memory shows as growth, not as reuse."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _table_figures(
    way: Way, tables: ModuleType, workers: int, entries: int, count: int, repeats: int
) -> tuple[float, float]:
    """New pools of ``way`` (the caller readied): the medians of the time to the first result
    and of the PSS added per worker once every worker looked up ``count`` random keys."""
    firsts, added = [], []
    for seed in range(repeats):
        _settle()
        before = tree_pss()
        t0 = time.perf_counter()
        pool = way.make(workers)
        try:
            if pool.submit(tables.first, "k1").result() != (1, 0.5, "v1"):
                raise AssertionError(f"{way.label}: the table gave a wrong value")
            firsts.append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory(prefix="sp-demo-meet-") as folder:
                futures = [
                    pool.submit(tables.lookups, entries, count, seed, folder, workers) for _ in range(workers)
                ]
                if len({worker for _, worker in [f.result() for f in futures]}) != workers:
                    raise AssertionError(f"{way.label}: the lookups ran on fewer workers")
            _settle()
            added.append(max(0.0, (tree_pss() - before) / workers))
        finally:
            pool.shutdown(wait=True)
    return statistics.median(firsts), statistics.median(added)


@dataclass
class TableRow:
    """One way's figures: what readying the caller took (None: nothing to do there), then the
    medians over its pools."""

    way: Way
    how: str
    caller: tuple[float, float] | None  # seconds, PSS added
    first_s: float
    added: float


def _measure(
    tables: ModuleType, pickled: str, mapped: str, workers: int, entries: int, count: int, repeats: int
) -> list[TableRow]:
    """Every way of :func:`_table_ways`, one after the other."""
    rows = []
    for way, how, prepare in _table_ways(tables, pickled, mapped):
        _settle()
        before = tree_pss()
        t0 = time.perf_counter()
        release = prepare()
        readied = time.perf_counter() - t0
        caller = (readied, tree_pss() - before) if release else None
        try:
            figures = _table_figures(way, tables, workers, entries, count, repeats)
        finally:
            if release:
                release()
        rows.append(TableRow(way, how, caller, *figures))
    return rows


def shared_table(workers: int, quick: bool, out: Callable[[str], None], number: str) -> list[Section]:
    """Workers that all read one big read-only table: a ``SharedMap`` against a fork pool that
    inherits the caller's dict and pools whose workers each load their own copy. Prints one
    verdict line on both figures; returns a verdict per figure."""
    entries, count, repeats = SIZES[quick]
    title = "a big read-only table that every worker reads"
    task_module()  # puts the suite's folder on sys.path
    tables = importlib.import_module(TABLE_MODULE)
    section_header(
        number,
        title,
        f'Every worker needs one read-only table: {entries:,} entries "k<i>" -> (i, i / 2, "v<i>"), kept in '
        "a file (a pickle, and the file SharedMap.save wrote). A new pool "
        f"of {workers} gets it as each way can: a fork pool inherits the caller's dict, loaded before "
        f"the pool; {SUBJECT} maps the SharedMap's file before the pool and gives each worker a handle "
        "(initializer); the other pools load a copy in each worker (initializer). Figures: the time from "
        "creating the pool to its first result (one lookup), and the PSS added per worker once every "
        f"worker has looked up {count:,} random keys (what the caller holds is counted before the pool); "
        f"median of {repeats} pools.",
        out,
    )
    with tempfile.TemporaryDirectory(prefix="sp-demo-table-") as folder:
        pickled, mapped = os.path.join(folder, "table.pickle"), os.path.join(folder, "table.spmap")
        table = tables.make_table(entries)
        with open(pickled, "wb") as file:
            pickle.dump(table, file, protocol=5)
        t0 = time.perf_counter()
        built = sp.SharedMap(table)
        build_s = time.perf_counter() - t0
        built.save(mapped)
        nbytes, pickle_size = built.nbytes, os.path.getsize(pickled)
        del table, built
        rows = _measure(tables, pickled, mapped, workers, entries, count, repeats)
    out(
        f"| way | its workers get | in the caller before the pool (time, PSS) | new pool to first result "
        f"| against {SUBJECT} | PSS added per worker | against {SUBJECT} |"
    )
    out("|---|---|---|---|---|---|---|")
    ours = next(row for row in rows if row.way.subject)
    rows = [*(row for row in rows if row is not ours), ours]  # ours last, as in every section
    for row in rows:
        caller = f"{fmt(row.caller[0], 's')}, {fmt(row.caller[1], 'B')}" if row.caller else "—"
        first = "—" if row.way.subject else ratio_text(row.first_s, ours.first_s)
        added = "—" if row.way.subject else ratio_text(row.added, ours.added)
        out(
            f"| {row.way.label} | {row.how} | {caller} | {fmt(row.first_s, 's')} | {first} | "
            f"{fmt(row.added, 'B')} | {added} |"
        )
    out(
        f"\nThe table: a {fmt(pickle_size, 'B')} pickle; {fmt(nbytes, 'B')} as a SharedMap, built from "
        f"the dict in {fmt(build_s, 's')}."
    )
    verdicts = table_verdicts(rows)
    out(f"\nverdict: {verdicts[0].text}. {verdicts[1].text[0].upper()}{verdicts[1].text[1:]}")
    return verdicts


def table_verdicts(rows: list[TableRow]) -> list[Section]:
    """The section's two verdicts, one per figure (the first result, the memory per worker):
    fork's inherited dict can give the first result sooner while a SharedMap takes less
    memory, and the summary says both."""
    verdicts = []
    for figure, unit, values in (
        ("new pool to first result", "s", [(row.way, row.first_s) for row in rows]),
        ("memory per worker", "B", [(row.way, row.added) for row in rows]),
    ):
        word, text, ratio = compare(values, unit)
        verdicts.append(Section(f"a big read-only table: {figure}", word, f"{figure}: {text}", ratio))
    return verdicts
