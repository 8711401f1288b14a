"""Drop-in compatibility with Python 3.14's concurrent.futures.InterpreterPoolExecutor:
the constructor's parameters (thread_name_prefix, stdlib positional order) and
map(..., buffersize=...).

Synchronisation goes through handshakes (queues, counted input), never sleeps; the only
timeouts are failure guards.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import itertools
import os
import sys
import threading

import pytest

import sp_tasks
import subinterpreter_parallelism as sp

GUARD = 60  # seconds: only reached when something is broken


def thread_names() -> dict[str, str]:
    """OS thread names of this process, by thread id."""
    names = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm", encoding="utf-8", errors="replace") as comm:
                names[tid] = comm.read().rstrip("\n")
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return names


def new_thread_names(before: dict[str, str]) -> list[str]:
    return sorted(name for tid, name in thread_names().items() if tid not in before)


class Counted:
    """An iterator over ``items`` that counts how many items were pulled from it."""

    def __init__(self, items):
        self._items = iter(items)
        self.pulled = 0

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._items)
        self.pulled += 1
        return item


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


# -- thread_name_prefix and the constructor's signature ----------------------------------


def test_thread_name_prefix_names_the_worker_threads():
    before = thread_names()
    with sp.InterpreterPoolExecutor(2, thread_name_prefix="spx") as pool:
        names = new_thread_names(before)
        assert {"spx_0", "spx_1"} <= set(names), names
        assert pool.submit(sp_tasks.add, 1, 2).result(timeout=GUARD) == 3
        completion = [t.name for t in threading.enumerate() if t.name.startswith("spx")]
        assert completion == ["spx_completion"]


def test_default_worker_thread_names():
    before = thread_names()
    with sp.InterpreterPoolExecutor(2):
        names = new_thread_names(before)
        assert {"sp-worker-0", "sp-worker-1"} <= set(names), names


@pytest.mark.parametrize("prefix", ["a-very-long-thread-prefix", "\u00e9" * 10])
def test_long_prefixes_keep_the_worker_index(prefix):
    before = thread_names()
    with sp.InterpreterPoolExecutor(2, thread_name_prefix=prefix):
        names = [n for n in new_thread_names(before) if n.endswith(("_0", "_1"))]
    assert len(names) == 2, names
    for name in names:
        assert len(name.encode()) <= 15
        assert prefix.startswith(name[:-2]) and len(name) > 2, name
    assert names[0][:-2] == names[1][:-2]


@pytest.mark.parametrize("prefix", [5, b"spx", ["spx"]])
def test_thread_name_prefix_must_be_a_str(prefix):
    with pytest.raises(TypeError, match="thread_name_prefix"):
        sp.InterpreterPoolExecutor(1, thread_name_prefix=prefix)


def test_thread_name_prefix_none_is_the_default():
    before = thread_names()
    with sp.InterpreterPoolExecutor(1, thread_name_prefix=None):
        assert "sp-worker-0" in new_thread_names(before)


def test_stdlib_positional_order():
    before = thread_names()
    with sp.InterpreterPoolExecutor(1, "pos", sp_tasks.record_init, ("hi",)) as pool:
        assert "pos_0" in new_thread_names(before)
        assert pool.submit(sp_tasks.init_count).result(timeout=GUARD) == ["hi"]
    with pytest.raises(TypeError):
        sp.InterpreterPoolExecutor(1, "", None, (), 5.0)  # task_timeout and later: keywords only


def test_signature_matches_the_stdlib():
    ours = inspect.signature(sp.InterpreterPoolExecutor).parameters
    assert list(ours)[:4] == ["max_workers", "thread_name_prefix", "initializer", "initargs"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in list(ours.values())[:4])
    assert all(p.kind is p.KEYWORD_ONLY for p in list(ours.values())[4:])
    our_map = inspect.signature(sp.InterpreterPoolExecutor.map).parameters
    assert our_map["buffersize"].default is None
    assert our_map["buffersize"].kind is inspect.Parameter.KEYWORD_ONLY
    stdlib = getattr(concurrent.futures, "InterpreterPoolExecutor", None)
    if stdlib is None:
        assert sys.version_info < (3, 14)
        return
    theirs = inspect.signature(stdlib).parameters
    assert [(p.name, p.kind, p.default) for p in theirs.values()] == [
        (p.name, p.kind, p.default) for p in list(ours.values())[: len(theirs)]
    ]
    for name, parameter in inspect.signature(stdlib.map).parameters.items():
        assert name in our_map and our_map[name].kind is parameter.kind, name


# -- map(..., buffersize=...) --------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [None, 3])
def test_buffered_map_over_an_endless_input(pool, chunksize):
    results = pool.map(sp_tasks.square, itertools.count(), buffersize=4, chunksize=chunksize)
    assert list(itertools.islice(results, 10)) == [i * i for i in range(10)]
    results.close()


def test_buffered_map_keeps_order_and_zips_iterables(pool):
    results = pool.map(sp_tasks.add, range(50), itertools.count(1000), buffersize=3, chunksize=4)
    assert list(results) == [i + 1000 + i for i in range(50)]
    assert list(pool.map(sp_tasks.square, [], buffersize=2)) == []
    assert list(pool.map(sp_tasks.square, [7], buffersize=5)) == [49]


@pytest.mark.parametrize(("buffersize", "chunksize"), [(1, None), (3, None), (2, 4)])
def test_buffersize_bounds_what_is_submitted(pool, buffersize, chunksize):
    chunk = chunksize or 1
    source = Counted(range(40))
    results = pool.map(sp_tasks.square, source, buffersize=buffersize, chunksize=chunksize)
    # map() submits the first tasks itself (as the stdlib does) and no more.
    assert source.pulled == buffersize * chunk
    seen = []
    for k, value in enumerate(results):
        # Items pulled but not yet yielded: at most `buffersize` tasks (chunks), counting the
        # chunk being yielded from.
        assert source.pulled <= (k // chunk + buffersize) * chunk, (k, source.pulled)
        if k == 0:
            assert source.pulled <= buffersize * chunk
        seen.append(value)
    assert seen == [i * i for i in range(40)]
    assert source.pulled == 40


@pytest.mark.parametrize("bad", [0, -1])
def test_buffersize_must_be_positive(pool, bad):
    source = Counted(range(5))
    with pytest.raises(ValueError, match="buffersize"):
        pool.map(sp_tasks.square, source, buffersize=bad)
    assert source.pulled == 0


@pytest.mark.parametrize("bad", ["2", 1.5, True])
def test_buffersize_must_be_an_int(pool, bad):
    source = Counted(range(5))
    with pytest.raises(TypeError, match="buffersize"):
        pool.map(sp_tasks.square, source, buffersize=bad)
    assert source.pulled == 0


def test_buffersize_and_progress(pool):
    with pytest.raises(ValueError, match="progress"):
        pool.map(sp_tasks.square, range(5), buffersize=2, progress=True)
    with pytest.raises(ValueError, match="progress"):
        pool.map(sp_tasks.square, range(5), buffersize=2, progress=lambda done, total: None)
    assert list(pool.map(sp_tasks.square, range(5), buffersize=2, progress=False)) == [0, 1, 4, 9, 16]


def test_buffered_map_timeout_interrupts_and_stops_reading(pool):
    report = sp.Queue()
    source = Counted(itertools.repeat(report))
    results = pool.map(sp_tasks.spin_until_interrupted, source, timeout=0.01, buffersize=2)
    # Both tasks run (two workers) and never finish by themselves: the timeout must fire.
    assert [report.get(timeout=GUARD) for _ in range(2)] == ["started", "started"]
    with pytest.raises(TimeoutError):
        next(results)
    assert [report.get(timeout=GUARD) for _ in range(2)] == ["interrupted", "interrupted"]
    assert source.pulled == 2
    assert pool.submit(sp_tasks.add, 1, 1).result(timeout=GUARD) == 2  # workers reused


def test_buffered_map_early_close_cancels_the_rest(pool):
    report = sp.Queue()
    # The first task returns at once; the second sleeps until it is interrupted.
    seconds = Counted(itertools.chain([0], itertools.repeat(3600)))
    results = pool.map(sp_tasks.sleep_until_interrupted, itertools.repeat(report), seconds, buffersize=2)
    assert next(results) is None
    messages = [report.get(timeout=GUARD) for _ in range(3)]
    assert sorted(messages) == ["slept", "started", "started"]  # the second task is sleeping
    results.close()
    assert report.get(timeout=GUARD) == "interrupted"
    assert seconds.pulled == 2  # nothing read after the close
    assert pool.submit(sp_tasks.add, 2, 2).result(timeout=GUARD) == 4


def test_buffered_map_chunk_error_yields_earlier_results_first(pool):
    results = pool.map(sp_tasks.add, [1, 2, "x", 4], [1, 2, 3, 4], chunksize=2, buffersize=1)
    assert next(results) == 2
    assert next(results) == 4
    with pytest.raises(TypeError):
        next(results)


def test_buffered_map_input_error_propagates(pool):
    def source():
        yield 1
        yield 2
        raise LookupError("input failed")

    results = pool.map(sp_tasks.square, source(), buffersize=2)
    assert next(results) == 1
    with pytest.raises(LookupError, match="input failed"):
        next(results)


def test_buffered_map_after_shutdown_refuses_new_tasks():
    pool = sp.InterpreterPoolExecutor(1)
    try:
        results = pool.map(sp_tasks.square, itertools.count(), buffersize=1)
        assert next(results) == 0
        pool.shutdown(wait=True)
        with pytest.raises(RuntimeError, match="shutdown"):
            next(results)
    finally:
        pool.shutdown(wait=True)
