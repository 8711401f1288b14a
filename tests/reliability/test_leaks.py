"""Leaks (item 10 of issue 7): memory over many tasks and many pools, and objects freed.

The memory measurements run in a fresh process (rel_leaks.py) and are marked slow; the
reference checks with weakrefs run here, in a second or so.

Bounds, and why (numbers measured on this 2-core machine, CPython 3.13.0 and 3.12.1):
- 100,000 tiny tasks after 30,000 warm-up tasks: RSS may grow by at most 4 MiB. Measured:
  +0.0 to +1.6 MiB, and no more after 400,000 tasks (allocator and container high-water
  marks, not growth per task). A task that leaked even its smallest native part (the Swift
  Task object with its lifecycle, about 100 bytes) or one small Python object (28+ bytes)
  would add 2.8 to 10 MiB per 100,000 tasks.
- The same with a 4 KiB argument and result, 500 tasks in flight: at most 16 MiB. Measured
  +0.0 to +1.5 MiB (3.12, 3.13, load 5); leaking the payload once per task would add 400 MiB.
  With 5,000 in flight, RSS swung up and down by up to 18 MiB between marks (allocators keep
  what a burst freed, timing decides how much), and CI failed on that noise once.
- Pools: CPython 3.12 and 3.13 do not give back a sub-interpreter's memory when it ends if
  any block of it is still allocated (python/cpython#110411, gh-113055), which is always the
  case: every interpreter created and destroyed costs about 1.7 MiB bare, 3.4 MiB with the
  modules a worker loads. That is not ours to fix, so the test compares: per worker, a pool
  may leave at most 512 KiB more than a bare interpreter importing the same modules through
  CPython's own _interpreters API. Measured: 3.2 MiB per worker vs 3.4 MiB per bare
  interpreter, i.e. the pool adds nothing measurable.
"""

from __future__ import annotations

import gc
import json
import weakref

import pytest

import rel_tasks
import subinterpreter_parallelism as sp
from conftest import eventually
from rel_support import HERE, assert_clean_exit, run_python

pytestmark = pytest.mark.timeout(300)

MiB = 1 << 20
WAIT = 30


def measure(*args: str) -> dict:
    result = run_python("", str(HERE / "rel_leaks.py"), *args, timeout=280)
    assert_clean_exit(result)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_rss_is_flat_over_a_hundred_thousand_tiny_tasks():
    result = measure("tasks", "100000", "30000")
    assert result["completed"] == 130_000
    growth = max(result["marks"]) - result["marks"][0]
    assert growth <= 4 * MiB, f"RSS grew by {growth / MiB:.1f} MiB over 100,000 tasks: {result}"


@pytest.mark.slow
def test_rss_is_flat_over_a_hundred_thousand_tasks_with_4k_payloads():
    result = measure("payload", "100000", "30000")
    growth = max(result["marks"]) - result["marks"][0]
    assert growth <= 16 * MiB, f"RSS grew by {growth / MiB:.1f} MiB over 100,000 tasks: {result}"


@pytest.mark.slow
def test_two_hundred_pools_leak_no_more_than_cpython_itself():
    pools = measure("pools", "200", "10", "1")
    bare = measure_bare()
    per_worker = pools["growth"] / pools["interpreters"]
    per_bare_interpreter = bare["growth"] / bare["interpreters"]
    assert per_worker <= per_bare_interpreter + 512 * 1024, (
        f"{per_worker / MiB:.2f} MiB per worker vs {per_bare_interpreter / MiB:.2f} MiB per bare "
        f"interpreter: {pools} {bare}"
    )


def measure_bare() -> dict:
    """CPython's own leak per interpreter. On 3.12.1 the process that measured it may abort at
    exit (a CPython bug when interpreters are the first to import some modules): the numbers,
    printed before, still count."""
    result = run_python("", str(HERE / "rel_leaks.py"), "bare", "200", "10", timeout=280)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stderr[-3000:]
    return json.loads(lines[-1])


# -- objects are freed once their future is done ---------------------------------------


def dead(*refs: weakref.ref) -> bool:
    """Whether every one of ``refs`` is dead once a collection has run (the completion thread
    may still hold a reference for a moment after the result is set)."""
    gc.collect()
    return all(ref() is None for ref in refs)


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


def test_arguments_results_and_futures_are_freed(pool):
    argument = rel_tasks.Payload(1)
    method_owner = rel_tasks.Payload(10)
    future = pool.submit(rel_tasks.bump, argument, k=2)
    bound = pool.submit(method_owner.bump, 5)
    result = future.result(timeout=WAIT)
    assert result == rel_tasks.Payload(3)
    assert bound.result(timeout=WAIT) == rel_tasks.Payload(15)
    refs = {
        "argument": weakref.ref(argument),
        "result": weakref.ref(result),
        "future": weakref.ref(future),
        "bound method owner": weakref.ref(method_owner),
        "second future": weakref.ref(bound),
    }
    del argument, result, future, method_owner, bound
    for name, ref in refs.items():
        eventually(
            lambda ref=ref: dead(ref),
            message=lambda name=name, ref=ref: f"the {name} is still alive: {gc.get_referrers(ref())}",
        )
    assert not pool._state.futures


def test_exceptions_and_failed_futures_are_freed(pool):
    future = pool.submit(rel_tasks.raise_payload, 7)
    error = future.exception(timeout=WAIT)
    assert isinstance(error, rel_tasks.PlannedError) and error.args[0] == rel_tasks.Payload(7)
    refs = [weakref.ref(error), weakref.ref(error.args[0]), weakref.ref(future)]
    unpicklable = pool.submit(rel_tasks.raise_lock_payload, "x")
    refs.append(weakref.ref(unpicklable.exception(timeout=WAIT)))
    refs.append(weakref.ref(unpicklable))
    del future, error, unpicklable
    eventually(lambda: dead(*refs))
    assert not pool._state.futures


def test_arguments_of_cancelled_and_refused_submissions_are_freed(pool):
    blockers = [pool.submit(rel_tasks.nap_then, 0.3) for _ in range(2)]
    argument = rel_tasks.Payload(1)
    queued = pool.submit(rel_tasks.echo, argument)
    assert queued.cancel()
    refused = rel_tasks.Payload(2)
    with pytest.raises(TypeError):
        pool.submit(rel_tasks.echo, refused, rel_tasks.make_lock())
    refs = [weakref.ref(argument), weakref.ref(refused), weakref.ref(queued)]
    del argument, refused, queued
    for blocker in blockers:
        blocker.result(timeout=WAIT)
    eventually(lambda: dead(*refs))
    assert not pool._state.futures


def test_a_dropped_pool_is_freed_and_its_workers_end():
    pool = sp.InterpreterPoolExecutor(2)
    assert pool.submit(rel_tasks.add, 1, 1).result(timeout=WAIT) == 2
    state = weakref.ref(pool._state)
    ref = weakref.ref(pool)
    del pool
    eventually(lambda: dead(ref), message="an executor without shutdown() was not collected")
    # Its finalizer closes the native pool: the workers end (the autouse fixture checks the
    # threads and interpreters), and then its shared state goes too.
    eventually(lambda: dead(state))


def test_map_results_are_freed_as_they_are_consumed(pool):
    refs = []
    for value in pool.map(rel_tasks.bump, [rel_tasks.Payload(n) for n in range(50)], chunksize=5):
        refs.append(weakref.ref(value))
        del value
    eventually(lambda: dead(*refs))


def test_a_large_bytes_result_is_freed_in_the_worker_once_the_caller_has_it():
    """Issue 13, item 7: a large ``bytes`` result is lent to the caller, which copies it; the
    worker's reference must go then, not when that worker runs another task (a 400 MB result
    kept 400 MB alive while the pool was idle). Measured in a fresh process: RSS must come
    back to one copy (the caller's) while the worker stays idle."""
    code = """
    import os
    import subinterpreter_parallelism as sp
    import rel_tasks
    from conftest import eventually

    SIZE = 200 << 20
    PAGE = os.sysconf("SC_PAGE_SIZE")

    def rss():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE

    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(rel_tasks.add, 1, 1).result(timeout=60) == 2
        before = rss()
        value = pool.submit(rel_tasks.big_bytes, SIZE).result(timeout=60)
        assert len(value) == SIZE
        # The pool is idle from here on; the worker's copy must go by itself.
        eventually(lambda: rss() - before <= SIZE * 1.05, message=lambda: (rss() - before) / SIZE)
        print("copies alive:", round((rss() - before) / SIZE, 1))
    """
    result = run_python(code, timeout=120)
    assert_clean_exit(result)
    assert result.stdout == "copies alive: 1.0\n", result.stdout
