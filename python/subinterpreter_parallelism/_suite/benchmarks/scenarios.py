"""What is measured: one function per workload, run for one competitor in a fresh process.

Every scenario takes a competitor key and a parameter dict (sizes, repeats; chosen by
``benchmarks.suite``) and returns a list of *records*, plain dicts that go to the JSON file
as they are:

    {"workload": "tiny", "case": "submit", "competitor": "fork", "unit": "s",
     "better": "lower", "samples": [...], "cpu_percent": [...], "extra": {...}}

A record has ``"na": reason`` instead of samples when the competitor cannot do the case,
or ``"error": text`` when it tried and failed. ``unit`` is "s" (seconds, per run or per
item as the case says), "tasks/s" or "B" (bytes).
"""

from __future__ import annotations

import gc
import importlib
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from . import shared_table, workloads
from .competitors import Ability, by_key, make_executor
from .libraries import LIBRARIES
from .measure import Timing, timed, tree_memory
from .workloads import py_factorial

__all__ = ["SCENARIOS", "run_scenario"]

Record = dict[str, Any]


def _record(
    workload: str,
    case: str,
    key: str,
    unit: str,
    samples: Sequence[float],
    *,
    better: str = "lower",
    cpu: Sequence[float | None] | None = None,
    extra: dict[str, Any] | None = None,
) -> Record:
    record: Record = {
        "workload": workload,
        "case": case,
        "competitor": key,
        "unit": unit,
        "better": better,
        "samples": list(samples),
    }
    if cpu is not None:
        record["cpu_percent"] = list(cpu)
    if extra:
        record["extra"] = extra
    return record


def _na(workload: str, case: str, key: str, reason: str) -> Record:
    return {"workload": workload, "case": case, "competitor": key, "na": reason}


def _error(workload: str, case: str, key: str, exc: BaseException) -> Record:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
    return {"workload": workload, "case": case, "competitor": key, "error": text}


def _run_batch(executor: Executor, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Submits every call, then waits for all results in order."""
    futures = [executor.submit(fn, *args) for args in calls]
    return [future.result() for future in futures]


def _start_all(executor: Executor, key: str, workers: int, seconds: float = 0.1) -> list[int]:
    """Makes every worker start and import the task modules (one held task per worker)."""
    if not by_key(key).can(Ability.WORKERS):
        return []
    return _run_batch(executor, workloads.start_worker, [(seconds,)] * workers)


def _check(results: Sequence[Any], expected: Sequence[Any], what: str) -> None:
    if list(results) != list(expected):
        raise AssertionError(f"{what}: wrong results")


# When the cell's time budget ends (``params["budget_s"]``): later repeats are dropped, but every
# case still gets one sample. Keeps the suite's length bounded on a slow or busy machine.
_deadline = float("inf")


def _over_budget() -> bool:
    return time.perf_counter() > _deadline


def _repeat(run: Callable[[], Any], warmups: int, repeats: int) -> list[Timing]:
    """``warmups`` untimed runs, then up to ``repeats`` timed ones (at least one)."""
    for _ in range(warmups):
        if _over_budget():
            break
        run()
    timings = [timed(run)[1]]
    while len(timings) < repeats and not _over_budget():
        timings.append(timed(run)[1])
    return timings


# -- (a) the seed's factorial, CPU-bound ------------------------------------------------------


def scenario_cpu(key: str, p: dict[str, Any]) -> list[Record]:
    """``tasks`` calls of ``py_factorial(n)`` at once: first with pool start, then warm."""
    tasks, n, workers = p["tasks"], p["n"], p["workers"]
    calls = [(n,)] * tasks
    expected = [p["expected"]] * tasks
    # The seed started one thread per call, all at once; the pools get `workers` workers.
    size = workers if by_key(key).can(Ability.BOUNDED) else None
    holder: list[Executor] = []

    def cold() -> list[Any]:
        holder.append(make_executor(key, size))
        return _run_batch(holder[0], py_factorial, calls)

    results, first = timed(cold)
    executor = holder[0]
    try:
        _check(results, expected, "py_factorial")
        runs = _repeat(
            lambda: _check(_run_batch(executor, py_factorial, calls), expected, "py_factorial"),
            p["warmups"],
            p["repeats"],
        )
    finally:
        executor.shutdown(wait=True)
    extra = {"tasks": tasks, "n": n, "workers": size}
    return [
        _record(
            "cpu", "warm", key, "s", [t.wall_s for t in runs], cpu=[t.cpu_percent for t in runs], extra=extra
        ),
        _record("cpu", "cold", key, "s", [first.wall_s], cpu=[first.cpu_percent], extra=extra),
    ]


# -- (b) CPU-bound scaling with the number of workers -----------------------------------------


def scenario_scaling(key: str, p: dict[str, Any]) -> list[Record]:
    """Throughput (tasks/s) of ``tasks_per_worker * w`` factorial tasks with ``w`` workers."""
    records = []
    counts = p["worker_counts"] if by_key(key).can(Ability.PARALLEL) else [1]
    for workers in counts:
        tasks = p["tasks_per_worker"] * workers
        calls = [(p["n"],)] * tasks
        expected = [p["expected"]] * tasks
        executor = make_executor(key, workers)
        try:
            _start_all(executor, key, workers, p["start_s"])
            runs = _repeat(
                lambda: _check(_run_batch(executor, py_factorial, calls), expected, "py_factorial"),
                p["warmups"],
                p["repeats"],
            )
        finally:
            executor.shutdown(wait=True)
        records.append(
            _record(
                "scaling",
                f"{workers} workers",
                key,
                "tasks/s",
                [tasks / t.wall_s for t in runs],
                better="higher",
                cpu=[t.cpu_percent for t in runs],
                extra={"workers": workers, "tasks": tasks, "n": p["n"]},
            )
        )
    return records


# -- (c) tiny tasks through submit and map ----------------------------------------------------


def _main_function() -> Callable[[int], int] | None:
    """``tiny_in_main`` from the ``__main__`` module (benchmarks.cell defines it there)."""
    return getattr(sys.modules.get("__main__"), "tiny_in_main", None)


def _submit_per_task(executor: Executor, fn: Callable[[int], int], count: int, repeats: int) -> list[Timing]:
    """Runs of ``count`` tiny tasks submitted one by one, after a warm-up of a tenth of that."""
    expected = list(range(1, count + 1))

    def run() -> None:
        futures = [executor.submit(fn, i) for i in range(count)]
        _check([f.result() for f in futures], expected, "tiny")

    _run_batch(executor, fn, [(i,) for i in range(max(1, count // 10))])
    return _repeat(run, 0, repeats)


def _per_item(runs: Sequence[Timing], count: int) -> list[float]:
    return [t.wall_s / count for t in runs]


def scenario_tiny(key: str, p: dict[str, Any]) -> list[Record]:
    """Per-task cost of tiny tasks through ``submit`` (module and ``__main__`` function) and ``map``."""
    workers = p["workers"]
    records: list[Record] = []
    competitor = by_key(key)
    if not competitor.can(Ability.PARALLEL):
        count = p["submit_count"]
        runs = _repeat(lambda: [workloads.tiny(i) for i in range(count)], 1, p["repeats"])
        records.append(
            _record(
                "tiny",
                "submit",
                key,
                "s",
                _per_item(runs, count),
                cpu=[t.cpu_percent for t in runs],
                extra={"items": count, "how": "plain loop"},
            )
        )
        records.append(_na("tiny", "submit __main__", key, competitor.why_not(Ability.MAIN_FUNCTIONS)))
        count = p["map_count"]
        runs = _repeat(lambda: list(map(workloads.tiny, range(count))), 1, p["repeats"])
        records.append(
            _record(
                "tiny",
                "map",
                key,
                "s",
                _per_item(runs, count),
                cpu=[t.cpu_percent for t in runs],
                extra={"items": count, "how": "builtin map"},
            )
        )
        records.append(_na("tiny", "map chunked", key, competitor.why_not(Ability.CHUNKSIZE)))
        return records

    executor = make_executor(key, workers if competitor.can(Ability.BOUNDED) else None)
    usable = True
    try:
        # submit, module-level function
        # Without persistent workers every call starts an interpreter: far fewer calls.
        count = p["submit_count"] if competitor.can(Ability.WORKERS) else p["seed_count"]
        runs = _submit_per_task(executor, workloads.tiny, count, p["repeats"])
        records.append(
            _record(
                "tiny",
                "submit",
                key,
                "s",
                _per_item(runs, count),
                cpu=[t.cpu_percent for t in runs],
                extra={"items": count},
            )
        )

        # map: each executor's default chunking, then the chunks this project picks
        if not competitor.can(Ability.MAP):
            records.append(_na("tiny", "map", key, competitor.why_not(Ability.MAP)))
            records.append(_na("tiny", "map chunked", key, competitor.why_not(Ability.MAP)))
        else:
            # A map that sends each item alone gets fewer items (the cost is per item).
            count = p["map_count"] if competitor.can(Ability.BATCHED_MAP) else p["map_count_per_item"]
            runs = _repeat(_mapper(executor, count, None), 0, p["repeats"])
            records.append(
                _record(
                    "tiny",
                    "map",
                    key,
                    "s",
                    _per_item(runs, count),
                    cpu=[t.cpu_percent for t in runs],
                    extra={"items": count},
                )
            )
            if competitor.can(Ability.CHUNKSIZE):
                count = p["map_count"]
                chunk = max(1, min(4096, count // (workers * 16)))
                runs = _repeat(_mapper(executor, count, chunk), 0, p["repeats"])
                records.append(
                    _record(
                        "tiny",
                        "map chunked",
                        key,
                        "s",
                        _per_item(runs, count),
                        cpu=[t.cpu_percent for t in runs],
                        extra={"items": count, "chunksize": chunk},
                    )
                )
            else:
                records.append(_na("tiny", "map chunked", key, competitor.why_not(Ability.CHUNKSIZE)))

        # submit, a function defined in __main__ (last: a pool may hang on it)
        main_fn = _main_function()
        if not competitor.can(Ability.MAIN_FUNCTIONS):
            records.append(_na("tiny", "submit __main__", key, competitor.why_not(Ability.MAIN_FUNCTIONS)))
        elif main_fn is None:
            records.append(_na("tiny", "submit __main__", key, "run through benchmarks.cell"))
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
                records.append(_error("tiny", "submit __main__", key, exc))
            else:
                count = p["main_count"]
                runs = _submit_per_task(executor, main_fn, count, p["repeats"])
                records.append(
                    _record(
                        "tiny",
                        "submit __main__",
                        key,
                        "s",
                        _per_item(runs, count),
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
        for last in out:
            pass
        if last != count:
            raise AssertionError("map: wrong results")

    return run


# -- (d) data transfer ------------------------------------------------------------------------


def _data_cases(p: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """(case, size, trips, kind): every size as ``bytes``, some sizes as the other kinds."""
    cases = [(_size_case(size), size, trips, "bytes") for size, trips in zip(p["sizes"], p["trips"])]
    trips_of = dict(zip(p["sizes"], p["trips"]))
    for kind, sizes in p.get("kinds", {}).items():
        cases += [(f"{_size_case(size)} {kind}", size, trips_of.get(size, 3), kind) for size in sizes]
    return cases


def scenario_data(key: str, p: dict[str, Any]) -> list[Record]:
    """Round trip of a binary argument (bytes, bytearray, memoryview) returned as the result,
    one task at a time, per size.

    "serial" measures the floor of any round trip that copies once each way: two copies of the
    data in the caller, each into a new object (as the receiving interpreters must make).
    """
    records = []
    executor = make_executor(key, p["workers"]) if by_key(key).can(Ability.PARALLEL) else None
    try:
        if executor is not None:
            _start_all(executor, key, p["workers"])
        for case, size, trips, kind in _data_cases(p):
            data = workloads.as_kind(workloads.make_payload(size), kind)
            samples = []
            try:
                for trip in range(trips + 1):  # the first trip warms up
                    if trip > 1 and _over_budget():
                        break
                    t0 = time.perf_counter()
                    if executor is None:
                        back = workloads.two_copies(data)
                    else:
                        back = executor.submit(workloads.echo, data).result()
                    elapsed = time.perf_counter() - t0
                    if len(back) != len(data) or back != data:
                        raise AssertionError(f"echo of {case} came back wrong")
                    del back
                    if trip:
                        samples.append(elapsed)
            except Exception as exc:
                if kind == "memoryview" and ("pickle" in str(exc).lower() or "shareable" in str(exc).lower()):
                    # Process pools and the stdlib pool pickle what they send: pickle refuses memoryviews.
                    records.append(
                        _na("data", case, key, f"cannot send a memoryview ({type(exc).__name__}: {exc})")
                    )
                else:
                    records.append(_error("data", case, key, exc))
                continue
            finally:
                del data
            records.append(
                _record("data", case, key, "s", samples, extra={"bytes": size, "trips": trips, "kind": kind})
            )
    finally:
        if executor is not None:
            executor.shutdown(wait=True)
    return records


def _size_case(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


# -- (e) pool start-up to first result --------------------------------------------------------


def scenario_startup(key: str, p: dict[str, Any]) -> list[Record]:
    """From creating a pool of ``workers`` to the first task's result; shutdown timed apart."""
    if not by_key(key).can(Ability.PARALLEL):
        return [_na("startup", "first result", key, by_key(key).why_not(Ability.PARALLEL))]
    workers = p["workers"]
    starts, stops = [], []
    for attempt in range(p["repeats"] + 1):  # the first one warms up imports and caches
        if attempt > 1 and _over_budget():
            break
        t0 = time.perf_counter()
        executor = make_executor(key, workers)
        if executor.submit(workloads.tiny, 1).result() != 2:
            raise AssertionError("tiny: wrong result")
        t1 = time.perf_counter()
        executor.shutdown(wait=True)
        t2 = time.perf_counter()
        if attempt:
            starts.append(t1 - t0)
            stops.append(t2 - t1)
    return [
        _record("startup", "first result", key, "s", starts, extra={"workers": workers, "shutdown_s": stops})
    ]


# -- (f) memory per worker --------------------------------------------------------------------


def scenario_memory(key: str, p: dict[str, Any]) -> list[Record]:
    """RSS and PSS added per worker: process tree before the pool and with ``workers`` warm workers."""
    if not by_key(key).can(Ability.WORKERS):
        reason = by_key(key).why_not(Ability.WORKERS)
        return [_na("memory", "pss", key, reason), _na("memory", "rss", key, reason)]
    workers = p["workers"]
    gc.collect()
    before = tree_memory()
    executor = make_executor(key, workers)
    try:
        # Every worker holds a task at the same time, so each one starts and imports.
        pids = _start_all(executor, key, workers, p["hold_s"])
        gc.collect()
        time.sleep(0.2)
        after = tree_memory()
    finally:
        executor.shutdown(wait=True)
    extra = {"workers": workers, "before": before, "after": after, "worker_pids": len(set(pids))}
    return [
        _record("memory", kind, key, "B", [(after[kind] - before[kind]) / workers], extra=extra)
        for kind in ("pss", "rss")
    ]


# -- (g) Queue hand-off ------------------------------------------------------------------------


def scenario_queue(key: str, p: dict[str, Any]) -> list[Record]:
    """Hand-off to a task blocked in ``get()``, and a put/get pair within the caller."""
    competitor = by_key(key)
    if not competitor.can(Ability.QUEUES) or competitor.queues is None:
        reason = competitor.why_not(Ability.QUEUES)
        return [_na("queue", "hand-off", key, reason), _na("queue", "put+get", key, reason)]
    records: list[Record] = []
    inbox, outbox, keep = competitor.queues()
    executor = make_executor(key, 1)
    try:
        _start_all(executor, key, 1, 0.0)
        total = p["handoffs"] + p["handoff_warmups"]
        task = executor.submit(workloads.queue_echo, inbox, outbox, total)
        latencies = []
        deadline = time.perf_counter() + p["handoff_budget_s"]
        sent = 0
        while sent < total:
            time.sleep(p["pause_s"])  # let the worker park in get()
            t0 = time.perf_counter()
            inbox.put(sent)
            seen = outbox.get(timeout=30)
            sent += 1
            if sent > p["handoff_warmups"]:
                latencies.append(seen - t0)
            if time.perf_counter() > deadline and len(latencies) >= p["handoff_min"]:
                break
        for rest in range(sent, total):  # a slow queue: finish the task's loop untimed
            inbox.put(rest)
            outbox.get(timeout=30)
        task.result(timeout=60)
        records.append(
            _record(
                "queue",
                "hand-off",
                key,
                "s",
                latencies,
                extra={"queue": competitor.queue_kind, "pause_s": p["pause_s"]},
            )
        )
    except Exception as exc:
        records.append(_error("queue", "hand-off", key, exc))
    finally:
        executor.shutdown(wait=True)

    try:
        records.append(_pair_record(key, inbox, p))
    except Exception as exc:
        records.append(_error("queue", "put+get", key, exc))
    finally:
        if keep is not None:
            keep.shutdown()
    return records


def _pair_record(key: str, q: Any, p: dict[str, Any]) -> Record:
    """``q.put(i); q.get()`` in the caller, batched; sized so a batch takes ~``pair_batch_s``."""
    probe = 50
    t0 = time.perf_counter()
    for i in range(probe):
        q.put(i)
        q.get()
    per_pair = (time.perf_counter() - t0) / probe
    count = max(probe, min(p["pairs"], int(p["pair_batch_s"] / per_pair)))

    def batch() -> None:
        for i in range(count):
            q.put(i)
            q.get()

    runs = _repeat(batch, 1, p["repeats"])
    return _record(
        "queue",
        "put+get",
        key,
        "s",
        _per_item(runs, count),
        extra={"queue": by_key(key).queue_kind, "pairs": count},
    )


# -- (h) cancel a running task ----------------------------------------------------------------


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.0002)
    return True


def scenario_cancel(key: str, p: dict[str, Any]) -> list[Record]:
    """``future.cancel()`` on a running pure-Python task until ``cancelled()``, and until the worker is free."""
    competitor = by_key(key)
    if not competitor.can(Ability.PARALLEL):
        reason = competitor.why_not(Ability.PARALLEL)
        return [_na("cancel", "cancelled", key, reason), _na("cancel", "worker free", key, reason)]
    executor = make_executor(key, 1)
    try:
        _start_all(executor, key, 1, 0.0)
        to_cancelled, to_free = [], []
        # Long enough never to finish here; short enough to wait out where cancel cannot stop it.
        spin_s = p["spin_s"] if competitor.can(Ability.STOPS_RUNNING) else 3 * p["running_s"]
        for attempt in range(p["repeats"]):
            if attempt and _over_budget():
                break
            future = executor.submit(workloads.spin, spin_s)
            if competitor.can(Ability.REPORTS_RUNNING):
                _wait_until(future.running, 10)  # phase reported by the worker itself
            time.sleep(p["running_s"])
            t0 = time.perf_counter()
            cancelled = future.cancel()
            if not cancelled:
                future.result()
                reason = "cannot stop a running task: cancel() returned False"
                return [_na("cancel", "cancelled", key, reason), _na("cancel", "worker free", key, reason)]
            if not _wait_until(future.cancelled, 30):
                raise AssertionError("cancel() returned True but the future never became cancelled")
            t1 = time.perf_counter()
            executor.submit(workloads.tiny, 1).result(timeout=60)
            t2 = time.perf_counter()
            to_cancelled.append(t1 - t0)
            to_free.append(t2 - t0)
    finally:
        executor.shutdown(wait=True)
    records = [
        _record("cancel", "cancelled", key, "s", to_cancelled),
        _record("cancel", "worker free", key, "s", to_free),
    ]
    if not competitor.can(Ability.STOPS_RUNNING):
        return records + [_na("cancel", "in C", key, competitor.why_not(Ability.STOPS_RUNNING))]
    return records + [_cancel_in_c(key, p)]


def _cancel_in_c(key: str, p: dict[str, Any]) -> Record:
    """How long ``cancel()`` blocks its caller while the task holds its GIL in a C call: it only
    requests the interruption (delivered when the call returns), so it must not wait for it."""
    import mmap
    import os
    import tempfile

    executor = make_executor(key, 1)
    returns = []
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "gate")
        try:
            _start_all(executor, key, 1, 0.0)
            for attempt in range(p["repeats"]):
                if attempt and _over_budget():
                    break
                with open(path, "wb") as file:
                    file.write(b"\0\0\1")
                with open(path, "r+b") as file:
                    gate = mmap.mmap(file.fileno(), 3)
                try:
                    future = executor.submit(workloads.hold_gil_in_c, path)
                    if not _wait_until(lambda: gate[0] == 1, 30):
                        raise AssertionError("the C call never started")
                    t0 = time.perf_counter()
                    cancelled = future.cancel()
                    returns.append(time.perf_counter() - t0)
                    if not cancelled:
                        raise AssertionError("cancel() of a task in a C call returned False")
                finally:
                    gate[2] = 0  # the C call ends; the interruption then reaches the task
                executor.submit(workloads.tiny, 1).result(timeout=60)
                gate.close()
        finally:
            executor.shutdown(wait=True)
    return _record("cancel", "in C", key, "s", returns)


# -- (i) popular pure-Python libraries, cold and warm -------------------------------------------


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
                _na("libraries", case, key, "a new interpreter per call imports the library every time")
                for case in cases
            ]
            continue
        try:
            importlib.import_module(library.module)
            calls = library.calls(p["scale"])
            holder: list[Executor] = []

            def cold() -> list[Any]:
                holder.append(make_executor(key, p["workers"]))
                return _run_batch(holder[0], library.task, calls)

            results, first = timed(cold)
            digest = _digest(results)
            try:

                def again() -> None:
                    if _digest(_run_batch(holder[0], library.task, calls)) != digest:
                        raise AssertionError(
                            f"{library.name}: a warm run gave other results than the cold one"
                        )

                runs = _repeat(again, 0, p["repeats"])
            finally:
                holder[0].shutdown(wait=True)
        except Exception as exc:
            records += [_error("libraries", case, key, exc) for case in cases]
            continue
        extra = {"tasks": len(calls), "workers": p["workers"], "checksum": digest, "what": library.what}
        records.append(
            _record("libraries", cases[0], key, "s", [first.wall_s], cpu=[first.cpu_percent], extra=extra)
        )
        records.append(
            _record(
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


# -- (j) widths: start-up, memory and throughput at 1 to N workers (make bench-scaling) ----------


def _startup_record(executor: Executor, width: int, key: str) -> Record | None:
    """This project's own account of its workers' start-up (``stats()``, read once the pool has
    shut down: every worker has come up by then), or None for the other competitors."""
    stats = getattr(executor, "stats", None)
    if stats is None:
        return None
    ups = [s for s in stats().get("worker_startup") or [] if s]
    if not ups:
        return None
    each = [s["create_s"] + s["bootstrap_s"] for s in ups]
    extra = {
        "workers": width,
        "metric": "interpreter start-up per worker",
        "count": len(ups),
        "create_s": statistics.mean(s["create_s"] for s in ups),
        "bootstrap_s": statistics.mean(s["bootstrap_s"] for s in ups),
        "last_ready_s": max(s["ready_s"] for s in ups),
    }
    return _record(
        "widths",
        f"{width} workers: interpreter start-up per worker",
        key,
        "s",
        [statistics.mean(each)],
        extra=extra,
    )


def _width_cold(key: str, width: int, p: dict[str, Any]) -> tuple[list[Record], Executor]:
    """A new pool of ``width`` workers: first result, all workers busy at once, memory per worker."""
    workload = "widths"
    gc.collect()
    before = tree_memory()
    t0 = time.perf_counter()
    executor = make_executor(key, width)
    try:
        if executor.submit(workloads.tiny, 1).result() != 2:
            raise AssertionError("tiny: wrong result")
        t1 = time.perf_counter()
        # One task per worker, each holding its worker: they all finish together once every
        # worker is up, so the time past the hold is when the slowest worker had started.
        _run_batch(executor, workloads.hold, [(p["hold_s"],)] * width)
        t2 = time.perf_counter()
        after = tree_memory()
    except BaseException:
        executor.shutdown(wait=True)
        raise
    extra = {"workers": width, "metric": "first result"}
    records = [
        _record(workload, f"{width} workers: first result", key, "s", [t1 - t0], extra=extra),
        _record(
            workload,
            f"{width} workers: all started",
            key,
            "s",
            [max(0.0, t2 - t0 - p["hold_s"])],
            extra={**extra, "metric": "all started", "hold_s": p["hold_s"]},
        ),
        _record(
            workload,
            f"{width} workers: memory per worker",
            key,
            "B",
            [(after["pss"] - before["pss"]) / width],
            extra={
                **extra,
                "metric": "memory per worker",
                "rss_per_worker": (after["rss"] - before["rss"]) / width,
            },
        ),
    ]
    return records, executor


def scenario_widths(key: str, p: dict[str, Any]) -> list[Record]:
    """For each width: a cold pool (first result, all started, memory per worker, and this
    project's interpreter start-up per worker), then short and long CPU-bound tasks on it."""
    competitor = by_key(key)
    records: list[Record] = []
    widths = p["widths"] if competitor.can(Ability.PARALLEL) else [1]
    for width in widths:
        if competitor.can(Ability.WORKERS):
            cold, executor = _width_cold(key, width, p)
            records += cold
        else:
            executor = make_executor(key, width)
        try:
            for kind in ("short", "long"):
                size = p[kind]
                tasks = size["tasks_per_worker"] * width
                calls = [(size["n"],)] * tasks
                expected = [size["expected"]] * tasks
                runs = _repeat(
                    lambda: _check(_run_batch(executor, py_factorial, calls), expected, "py_factorial"),
                    1,
                    p["repeats"],
                )
                records.append(
                    _record(
                        "widths",
                        f"{width} workers: {kind} tasks",
                        key,
                        "tasks/s",
                        [tasks / t.wall_s for t in runs],
                        better="higher",
                        cpu=[t.cpu_percent for t in runs],
                        extra={
                            "workers": width,
                            "metric": f"{kind} tasks",
                            "tasks": tasks,
                            "task_s": size["task_s"],
                        },
                    )
                )
        finally:
            executor.shutdown(wait=True)
        startup = _startup_record(executor, width, key)
        if startup is not None:
            records.append(startup)
    return records


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
    global _deadline
    _deadline = time.perf_counter() + params.get("budget_s", float("inf"))
    try:
        return SCENARIOS[workload](key, params)
    except Exception as exc:
        return [_error(workload, "*", key, exc)]
