"""(l) A big read-only table that every worker reads: ``sp.SharedMap`` against the other ways to
give workers the same data (issue 25).

The table has ``entries`` (2,000,000) keys ``"k<i>" -> (i, i / 2, "v<i>")``. It starts in a file,
written once per cell; how each competitor's workers get it:

- **this**: a ``SharedMap`` mapped from its file, a handle per worker (``initializer``); and, in
  the rows marked "own dict per worker", a dict that each worker loads from a pickle;
- **fork**: the caller loads the dict and forked workers inherit it (copy-on-write); and a
  ``multiprocessing.Manager().dict()`` (rows marked so);
- **forkserver** (spawn where there is none) and **backport** (the stdlib interpreter pool on
  3.14+, its backport on 3.13): a dict that each worker loads from the pickle;
- **serial**: the caller's dict, read in the caller: a plain lookup, the baseline.

Rows: memory added per extra worker (PSS with 2 workers minus with 1, every worker having read
the table), time from a new pool (and the table in its file) to the first result, lookups per
second per worker (2 workers reading at once, keys drawn before the clock), one lookup of a
small value in the caller, the build time against ``pickle.dumps`` of the dict, and sizes.
``scenario_table_widths`` (``make bench-scaling``) adds workers one width at a time.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from . import table_tasks
from .measure import tree_memory

__all__ = ["TARGETS", "scenario_table", "scenario_table_widths", "summary_rows"]

WORKLOAD = "table"
WIDTHS_WORKLOAD = "table-widths"
OWN = ", own dict per worker"
MANAGER = ", Manager().dict() of ints"
MEMORY = "memory per extra worker (PSS)"
FIRST = "new pool to first result"
RATE = "lookups/s per worker"
ONE = "one lookup of an int, random keys (serial: dict; this: SharedMap; fork: Manager().dict())"
HOT = "one lookup of an int, one key again and again (the same three)"
BUILD = "build (this: SharedMap(table); serial: pickle.dumps(table))"
SIZE = "size (this: SharedMap.nbytes; serial: the dict's memory)"

Record = dict[str, Any]

# When this cell's time budget ends (``params["budget_s"]``): later repeats are dropped.
_deadline = float("inf")


def _over_budget() -> bool:
    return time.perf_counter() > _deadline


def _record(workload: str, case: str, key: str, unit: str, samples: list[float], *, better: str = "lower",
            extra: dict[str, Any] | None = None) -> Record:  # fmt: skip
    """A record in the suite's format (see scenarios.py): one case of one competitor."""
    return {"workload": workload, "case": case, "competitor": key, "unit": unit, "better": better,
            "samples": samples, "extra": extra or {}}  # fmt: skip


def _na(workload: str, case: str, key: str, reason: str) -> Record:
    return {"workload": workload, "case": case, "competitor": key, "na": reason}


#: The competitors that take part, and how their workers get the table.
WAYS = {
    "serial": "the caller's dict",
    "this": "SharedMap handles; own dict per worker",
    "fork": "inherited dict; Manager().dict()",
    "forkserver": "own dict per worker",
    "spawn": "own dict per worker",
    "backport": "own dict per worker",
}


def _pool(
    key: str, workers: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> Executor:
    """A new pool of competitor ``key`` whose workers run ``initializer(*initargs)`` first."""
    if key == "this":
        import subinterpreter_parallelism as sp

        return sp.InterpreterPoolExecutor(workers, initializer=initializer, initargs=initargs)
    if key in ("fork", "forkserver", "spawn"):
        context = multiprocessing.get_context(key)
        return ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
    if key == "backport":
        if sys.version_info >= (3, 14):
            from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]
        else:
            from interpreters_backport.concurrent.futures import InterpreterPoolExecutor
        return InterpreterPoolExecutor(workers, initializer=initializer, initargs=initargs)  # type: ignore[no-any-return]
    raise KeyError(key)


class _Way:
    """One way of giving a pool's workers the table: ``prepare()`` runs in the caller (loading
    or mapping the table there, if this way does) and returns the pool's initializer and
    arguments; ``release()`` drops what the caller holds."""

    def __init__(
        self,
        prepare: Callable[[], tuple[Callable[..., None] | None, tuple[Any, ...]]],
        release: Callable[[], None] = lambda: None,
    ) -> None:
        self.prepare = prepare
        self.release = release


def _read_everywhere(pool: Executor, width: int, p: dict[str, Any], seed: int, count: int) -> list[float]:
    """Every worker looks up ``count`` keys at the same time (they meet first); returns each
    worker's seconds."""
    with tempfile.TemporaryDirectory(prefix="sp-bench-meet-") as folder:
        futures = [
            pool.submit(table_tasks.lookups, p["entries"], count, seed, folder, width) for _ in range(width)
        ]
        results = [f.result() for f in futures]
    if len({worker for _, worker in results}) != width:
        raise AssertionError(f"{width} tasks ran on fewer workers")
    return [elapsed for elapsed, _ in results]


def _with_pool(key: str, width: int, way: _Way, body: Callable[[Executor], Any]) -> Any:
    """``body(pool)`` on a new pool of ``width`` workers that get the table ``way``'s way."""
    initializer, initargs = way.prepare()
    pool = _pool(key, width, initializer, initargs)
    del initargs  # the pool keeps what its workers need, for as long as it lives
    try:
        return body(pool)
    finally:
        pool.shutdown(wait=True)
        del pool
        way.release()


def _pss() -> int:
    gc.collect()
    return tree_memory()["pss"]


def _read_then_pss(width: int, p: dict[str, Any], count: int) -> Callable[[Executor], int]:
    """For ``_with_pool``: every worker reads, then the memory (PSS) of the process tree."""

    def measure(pool: Executor) -> int:
        _read_everywhere(pool, width, p, 0, count)
        return _pss()

    return measure


#: Workers without the table: what a worker costs by itself.
_BARE = _Way(lambda: (None, ()))


def _measure_way(key: str, suffix: str, way: _Way, p: dict[str, Any]) -> list[Record]:
    """Memory per extra worker, first result and lookups/s of one way (records ``case + suffix``)."""
    workers, count = p["workers"], p["lookups"]
    # What an extra worker costs without any table (the same tasks, the table left out).
    bare = [_with_pool(key, width, _BARE, _read_then_pss(width, p, count)) for width in (1, workers)]
    # One worker, warm: every page it needs read.
    alone = _with_pool(key, 1, way, _read_then_pss(1, p, count))
    # A new pool of `workers`: the first result (loading the table included), then lookups by
    # every worker at once, then the memory.
    firsts: list[float] = []
    rates: list[float] = []

    def first_result(pool: Executor) -> None:
        if pool.submit(table_tasks.first, "k1").result() != (1, 0.5, "v1"):
            raise AssertionError("first: wrong value")
        firsts.append(time.perf_counter() - t0)

    def everything(pool: Executor) -> int:
        first_result(pool)
        for seed in range(p["repeats"]):
            rates.extend(count / seconds for seconds in _read_everywhere(pool, workers, p, seed, count))
            if _over_budget():
                break
        return _pss()

    t0 = time.perf_counter()
    together = _with_pool(key, workers, way, everything)
    while len(firsts) < p["first_repeats"] and not _over_budget():
        t0 = time.perf_counter()
        _with_pool(key, workers, way, first_result)
    extra = {"entries": p["entries"], "workers": workers, "how": (WAYS[key] if not suffix else suffix[2:])}
    return [
        _record(
            WORKLOAD,
            MEMORY + suffix,
            key,
            "B",
            [(together - alone) / (workers - 1)],
            extra={
                **extra,
                "pss_1": alone,
                f"pss_{workers}": together,
                "without_table": (bare[1] - bare[0]) / (workers - 1),
            },
        ),
        _record(WORKLOAD, FIRST + suffix, key, "s", firsts, extra=extra),
        _record(
            WORKLOAD,
            RATE + suffix,
            key,
            "lookups/s",
            rates,
            better="higher",
            extra={**extra, "lookups": count},
        ),
    ]


def _per_lookup(mapping: Any, keys: list[str], repeats: int) -> list[float]:
    """Seconds per lookup of ``keys`` in ``mapping``, one sample per repeat."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for key in keys:
            mapping[key]
        samples.append((time.perf_counter() - start) / len(keys))
    return samples


def _files(p: dict[str, Any], folder: Path, key: str) -> tuple[Path, Path | None]:
    """Writes the table's pickle (and, for this project, its SharedMap file) into ``folder``."""
    table = table_tasks.make_table(p["entries"])
    pickled = folder / "table.pickle"
    with open(pickled, "wb") as file:
        pickle.dump(table, file, protocol=5)
    if key != "this":
        return pickled, None
    import subinterpreter_parallelism as sp

    mapped = folder / "table.spmap"
    sp.SharedMap(table).save(mapped)
    return pickled, mapped


def _loader(pickled: Path) -> _Way:
    return _Way(lambda: (table_tasks.load, (str(pickled),)))


def _inherited(pickled: Path) -> _Way:
    def prepare() -> tuple[None, tuple[()]]:
        table_tasks.load(str(pickled))  # the caller's copy, which fork hands down
        return None, ()

    return _Way(prepare, lambda: table_tasks.keep(None))


def _shared(mapped: Path) -> _Way:
    import subinterpreter_parallelism as sp

    return _Way(lambda: (table_tasks.keep, (sp.SharedMap.from_file(mapped),)))


def scenario_table(key: str, p: dict[str, Any]) -> list[Record]:
    """The shared-table rows for competitor ``key`` (see the module's docstring)."""
    global _deadline
    _deadline = time.perf_counter() + p.get("budget_s", float("inf"))
    if key not in WAYS:
        return [_na(WORKLOAD, "*", key, "not measured: see the other columns for each way of sharing")]
    if key == "serial":
        return _serial(p)
    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="sp-bench-table-") as folder:
        pickled, mapped = _files(p, Path(folder), key)
        gc.collect()
        if key == "this":
            assert mapped is not None
            records += _this_only(p, mapped)
            records += _measure_way(key, "", _shared(mapped), p)
            records += _measure_way(key, OWN, _loader(pickled), p)
        elif key == "fork":
            records += _measure_way(key, "", _inherited(pickled), p)
            records += _manager(p)
        else:
            records += _measure_way(key, "", _loader(pickled), p)
    return records


def _serial(p: dict[str, Any]) -> list[Record]:
    """The caller's own dict: its memory, pickle.dumps, lookups/s and one lookup."""
    gc.collect()
    before = tree_memory()["rss"]
    table = table_tasks.make_table(p["entries"])
    gc.collect()
    size = tree_memory()["rss"] - before
    dumps = []
    for _ in range(p["build_repeats"]):
        start = time.perf_counter()
        pickle.dumps(table, protocol=5)
        dumps.append(time.perf_counter() - start)
    table_tasks.keep(table)
    rates = [
        p["lookups"] / table_tasks.lookups(p["entries"], p["lookups"], seed)[0]
        for seed in range(p["repeats"])
    ]
    table_tasks.keep(None)
    del table
    small = table_tasks.make_small_values(p["entries"])
    keys = table_tasks.random_keys(p["entries"], p["lookups"], 7)
    extra = {"entries": p["entries"], "how": WAYS["serial"]}
    return [
        _record(
            WORKLOAD, SIZE, "serial", "B", [size], extra={**extra, "metric": "RSS added by building the dict"}
        ),
        _record(
            WORKLOAD,
            BUILD,
            "serial",
            "s",
            dumps,
            extra={**extra, "metric": "pickle.dumps(table, protocol=5)"},
        ),
        _record(WORKLOAD, RATE, "serial", "lookups/s", rates, better="higher", extra=extra),
        _record(WORKLOAD, ONE, "serial", "s", _per_lookup(small, keys, p["repeats"]), extra=extra),
        _record(
            WORKLOAD, HOT, "serial", "s", _per_lookup(small, keys[:1] * len(keys), p["repeats"]), extra=extra
        ),
    ]


def _this_only(p: dict[str, Any], mapped: Path) -> list[Record]:
    """SharedMap's build time and size, and one lookup in the caller."""
    import subinterpreter_parallelism as sp

    table = table_tasks.make_table(p["entries"])
    builds = []
    for _ in range(p["build_repeats"]):
        start = time.perf_counter()
        built = sp.SharedMap(table)
        builds.append(time.perf_counter() - start)
        size = built.nbytes
        del built
    del table
    start = time.perf_counter()
    sp.SharedMap.from_file(mapped)
    opened = time.perf_counter() - start
    small = sp.SharedMap(table_tasks.make_small_values(p["entries"]))
    gc.collect()
    keys = table_tasks.random_keys(p["entries"], p["lookups"], 7)
    extra = {"entries": p["entries"], "how": "SharedMap"}
    return [
        _record(WORKLOAD, SIZE, "this", "B", [size], extra=extra),
        _record(WORKLOAD, BUILD, "this", "s", builds, extra={**extra, "from_file_s": opened}),
        _record(WORKLOAD, ONE, "this", "s", _per_lookup(small, keys, p["repeats"]), extra=extra),
        _record(
            WORKLOAD, HOT, "this", "s", _per_lookup(small, keys[:1] * len(keys), p["repeats"]), extra=extra
        ),
    ]


def _manager(p: dict[str, Any]) -> list[Record]:
    """A ``Manager().dict()`` of the keys with int values: read by 2 fork workers, and once in the caller."""
    context = multiprocessing.get_context("fork")
    count = p["manager_lookups"]
    with context.Manager() as manager:
        proxy = manager.dict(table_tasks.make_small_values(p["entries"]))
        gc.collect()
        pool = ProcessPoolExecutor(
            p["workers"], mp_context=context, initializer=table_tasks.keep, initargs=(proxy,)
        )
        try:
            rates = []
            for seed in range(p["repeats"]):
                rates += [count / s for s in _read_everywhere(pool, p["workers"], p, seed, count)]
        finally:
            pool.shutdown(wait=True)
        keys = table_tasks.random_keys(p["entries"], count, 7)
        one = _per_lookup(proxy, keys, p["repeats"])
        hot = _per_lookup(proxy, keys[:1] * len(keys), p["repeats"])
    extra = {"entries": p["entries"], "workers": p["workers"], "lookups": count, "how": "Manager().dict()"}
    return [
        _record(WORKLOAD, RATE + MANAGER, "fork", "lookups/s", rates, better="higher", extra=extra),
        _record(WORKLOAD, ONE, "fork", "s", one, extra=extra),
        _record(WORKLOAD, HOT, "fork", "s", hot, extra=extra),
    ]


# -- make bench-scaling: the table at 1 to N workers -------------------------------------------


def scenario_table_widths(key: str, p: dict[str, Any]) -> list[Record]:
    """Memory with 1, 2, 4, ... workers that all read the table: per extra worker, at each width.

    Ways that copy the table per worker stop at the widths whose copies would take more than
    ``memory_fraction`` of the memory available now (the machine may be shared).
    """
    global _deadline
    _deadline = time.perf_counter() + p.get("budget_s", float("inf"))
    if key not in WAYS or key == "serial":
        return [_na(WIDTHS_WORKLOAD, "*", key, "not measured here")]
    import psutil

    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="sp-bench-table-") as folder:
        pickled, mapped = _files(p, Path(folder), key)
        # The size of one copy of the dict (what a worker that loads its own copy adds).
        before = tree_memory()["rss"]
        table_tasks.load(str(pickled))
        copy_size = max(0, tree_memory()["rss"] - before)
        table_tasks.keep(None)
        gc.collect()
        way = _shared(mapped) if mapped else _inherited(pickled) if key == "fork" else _loader(pickled)
        first: tuple[float, float] | None = None
        for width in p["widths"]:
            budget = p["memory_fraction"] * psutil.virtual_memory().available
            if key not in ("this", "fork") and width * copy_size > budget:
                reason = f"{width} copies of the table would need {width * copy_size / 1e9:.1f} GB"
                records.append(_na(WIDTHS_WORKLOAD, f"{width} workers: {MEMORY}", key, reason))
                continue
            measure = _read_then_pss(width, p, p["lookups"])
            totals = (_with_pool(key, width, way, measure), _with_pool(key, width, _BARE, measure))
            if first is None:
                first = totals
            elif width > 1:
                extra = {"entries": p["entries"], "workers": width, "pss": totals[0], "copy_size": copy_size,
                         "without_table": (totals[1] - first[1]) / (width - 1)}  # fmt: skip
                per_worker = (totals[0] - first[0]) / (width - 1)
                records.append(
                    _record(
                        WIDTHS_WORKLOAD, f"{width} workers: {MEMORY}", key, "B", [per_worker], extra=extra
                    )
                )
            if _over_budget():
                break
    return records


# -- the report's rows and targets --------------------------------------------------------------


def _median(results: Any, case: str, key: str) -> float | None:
    return results.median(WORKLOAD, case, key)  # type: ignore[no-any-return]


def _mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def _without_table(results: Any, case: str, key: str) -> float | None:
    """An extra worker's memory for the table alone: less what one costs without any table."""
    gross = _median(results, case, key)
    record = results.record(WORKLOAD, case, key) or {}
    bare = (record.get("extra") or {}).get("without_table")
    return None if gross is None or bare is None else gross - bare


def _memory_vs_dict(results: Any) -> tuple[str, bool | None]:
    ours, size = _without_table(results, MEMORY, "this"), _median(results, SIZE, "serial")
    gross = _median(results, MEMORY, "this")
    if ours is None or size is None or gross is None:
        return "not measured", None
    text = (
        f"{_mb(ours)} per extra worker for the table = {100 * ours / size:.2f}% of the dict ({_mb(size)}); "
        f"{_mb(gross)} with the worker itself"
    )
    own = _without_table(results, MEMORY + OWN, "this")
    if own is not None:
        text += f"; own dict per worker {_mb(own)} = {100 * own / size:.0f}%"
    return text, ours <= 0.01 * size


def _lookup_vs_dict(case: str) -> Callable[[Any], tuple[str, bool | None]]:
    def check(results: Any) -> tuple[str, bool | None]:
        ours, local = _median(results, case, "this"), _median(results, case, "serial")
        if ours is None or local is None:
            return "not measured", None
        return (
            f"SharedMap {ours * 1e9:.0f} ns, dict {local * 1e9:.0f} ns: {ours / local:.2f}x",
            ours <= 3 * local,
        )

    return check


def _lookup_vs_manager(case: str) -> Callable[[Any], tuple[str, bool | None]]:
    def check(results: Any) -> tuple[str, bool | None]:
        ours, manager = _median(results, case, "this"), _median(results, case, "fork")
        if ours is None or manager is None:
            return "not measured", None
        return (
            f"SharedMap {ours * 1e9:.0f} ns, Manager dict {manager * 1e6:.0f} us: {manager / ours:.0f}x",
            manager >= 100 * ours,
        )

    return check


def _first_vs_forkserver(results: Any) -> tuple[str, bool | None]:
    ours = _median(results, FIRST, "this")
    theirs = min(
        (v for k in ("forkserver", "spawn") if (v := _median(results, FIRST, k)) is not None), default=None
    )
    if ours is None or theirs is None:
        return "not measured", None
    return (
        f"this {ours * 1e3:.0f} ms, forkserver {theirs * 1e3:.0f} ms: {theirs / ours:.1f}x faster",
        ours < theirs,
    )


def _flat_at(width: int) -> Callable[[Any], tuple[str, bool | None]]:
    """At ``width`` workers, an extra worker adds at most 1% of the dict for the table (net of
    what a worker costs without it), and no more in all than at 2 workers (plus 10%)."""

    def check(results: Any) -> tuple[str, bool | None]:
        case, first = f"{width} workers: {MEMORY}", f"2 workers: {MEMORY}"
        ours, at_two = (
            results.median(WIDTHS_WORKLOAD, case, "this"),
            results.median(WIDTHS_WORKLOAD, first, "this"),
        )
        extra = (results.record(WIDTHS_WORKLOAD, case, "this") or {}).get("extra") or {}
        copy, bare = extra.get("copy_size"), extra.get("without_table")
        if ours is None or at_two is None or not copy or bare is None:
            return f"not measured (no {width}-worker run)", None
        net = ours - bare
        text = (
            f"{_mb(net)} per extra worker for the table = {100 * net / copy:.2f}% of the dict ({_mb(copy)}); "
            f"{_mb(ours)} with the worker itself, {_mb(at_two)} at 2 workers"
        )
        return text, net <= 0.01 * copy and ours <= 1.1 * at_two

    return check


#: (workload, name, check) for the report's targets table.
TARGETS: tuple[tuple[str, str, Callable[[Any], tuple[str, bool | None]]], ...] = (
    (WORKLOAD, "shared table: memory per extra worker <= 1% of the dict's size", _memory_vs_dict),
    (
        WORKLOAD,
        "shared table: one lookup of a small value, random keys: <= 3x a dict's",
        _lookup_vs_dict(ONE),
    ),
    (WORKLOAD, "shared table: one lookup of a small value, one key: <= 3x a dict's", _lookup_vs_dict(HOT)),
    (
        WORKLOAD,
        "shared table: one lookup, random keys: >= 100x faster than a Manager().dict()",
        _lookup_vs_manager(ONE),
    ),
    (
        WORKLOAD,
        "shared table: one lookup, one key: >= 100x faster than a Manager().dict()",
        _lookup_vs_manager(HOT),
    ),
    (
        WORKLOAD,
        "shared table: a new pool reaches its first result faster than forkserver",
        _first_vs_forkserver,
    ),
    (
        WIDTHS_WORKLOAD,
        "shared table at 16 workers: memory per extra worker flat, <= 1% of the dict",
        _flat_at(16),
    ),
)


def summary_rows(params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, workload, case) rows for the report's summary."""
    table = params.get(WORKLOAD)
    if not table:
        return []
    size = f"{table['entries']:,}-entry table"
    return [
        (f"{size}: memory per extra worker (PSS)", WORKLOAD, MEMORY),
        (f"{size}: new pool to first result", WORKLOAD, FIRST),
        (f"{size}: lookups/s per worker", WORKLOAD, RATE),
    ]
