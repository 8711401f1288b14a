"""Many callers at once, many tiny tasks, bounded threads (items 8 and 9 of issue 7)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import rel_tasks
import subinterpreter_parallelism as sp
from conftest import eventually
from subinterpreter_parallelism import reusable

pytestmark = pytest.mark.timeout(180)

WAIT = 60


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def run_on_threads(count, body):
    """Runs ``body(i)`` on ``count`` threads released together; returns results, re-raises."""
    barrier = threading.Barrier(count)

    def start(i):
        barrier.wait(timeout=WAIT)
        return body(i)

    with ThreadPoolExecutor(count) as threads:
        return list(threads.map(start, range(count)))


class ThreadCountSampler:
    """Samples the process's native thread count every millisecond while a block runs."""

    def __init__(self):
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(native_threads())
            time.sleep(0.001)

    def __enter__(self):
        self._thread.start()
        eventually(lambda: self.samples)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# -- 8. many callers at once -----------------------------------------------------------


def test_thirty_two_threads_submit_at_once():
    per_thread = 300
    with sp.InterpreterPoolExecutor(2) as pool:

        def submit_many(i):
            futures = [pool.submit(rel_tasks.add, i * 100_000, n) for n in range(per_thread)]
            return [f.result(timeout=WAIT) for f in futures]

        results = run_on_threads(32, submit_many)
        stats = pool.stats()
    for i, values in enumerate(results):
        assert values == [i * 100_000 + n for n in range(per_thread)]
    assert stats["tasks_submitted"] == stats["tasks_completed"] == 32 * per_thread


def test_thirty_two_threads_map_and_fail_at_once():
    with sp.InterpreterPoolExecutor(2) as pool:

        def mixed(i):
            values = list(pool.map(rel_tasks.add, range(200), [i] * 200))
            error = pool.submit(rel_tasks.planned, "raise", i).exception(timeout=WAIT)
            return values, error

        results = run_on_threads(32, mixed)
    for i, (values, error) in enumerate(results):
        assert values == [n + i for n in range(200)]
        assert isinstance(error, rel_tasks.PlannedError) and error.args == (i,)


def test_pools_created_and_shut_down_from_many_threads():
    def make_pools(i):
        seen = []
        for round_ in range(3):
            with sp.InterpreterPoolExecutor(1 + (i + round_) % 2) as pool:
                seen.append(pool.submit(rel_tasks.add, i, round_).result(timeout=WAIT))
        return seen

    results = run_on_threads(8, make_pools)
    assert results == [[i, i + 1, i + 2] for i in range(8)]


def test_parallel_from_several_threads_at_once_shares_one_pool():
    def call(i):
        return sp.parallel(*[["rel_tasks", "add", (i, n)] for n in range(20)])

    results = run_on_threads(12, call)
    assert results == [[i + n for n in range(20)] for i in range(12)]
    pool = reusable._executor
    assert pool is not None and pool.stats()["tasks_submitted"] == 12 * 20


def test_shutdown_while_threads_submit_loses_nothing():
    """Every submit either returns a future that finishes or raises RuntimeError; none hangs."""
    pool = sp.InterpreterPoolExecutor(2)
    accepted: list = []
    refused = []
    started = threading.Barrier(9)

    def submitter(i):
        started.wait(timeout=WAIT)
        for n in range(2000):
            try:
                accepted.append((i, n, pool.submit(rel_tasks.add, i, n)))
            except RuntimeError as exc:
                refused.append(str(exc))
                return

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    started.wait(timeout=WAIT)
    eventually(lambda: accepted)  # the shutdown lands while the submitters are under way
    pool.shutdown(wait=True)
    for thread in threads:
        thread.join(timeout=WAIT)
        assert not thread.is_alive()
    for i, n, future in accepted:
        assert future.result(timeout=WAIT) == i + n
    assert all("shutdown" in text for text in refused)
    assert len(accepted) + len(refused) >= 8


def test_results_from_one_thread_waited_on_in_another():
    with sp.InterpreterPoolExecutor(2) as pool:
        futures = [pool.submit(rel_tasks.nap_then, 0.001 * (i % 5), i) for i in range(400)]
        collected = run_on_threads(16, lambda k: [futures[j].result(timeout=WAIT) for j in range(k, 400, 16)])
    assert sorted(v for chunk in collected for v in chunk) == list(range(400))


# -- 9. many tiny tasks, bounded threads -----------------------------------------------


@pytest.mark.parametrize("max_workers", [1, 3])
def test_hundred_thousand_tiny_tasks_with_bounded_threads(max_workers):
    count = 100_000
    with ThreadCountSampler() as sampler:
        baseline = native_threads()
        with sp.InterpreterPoolExecutor(max_workers) as pool:
            futures = [pool.submit(rel_tasks.add, n, 1) for n in range(count)]
            results = [f.result(timeout=WAIT) for f in futures]
            stats = pool.stats()
        del futures
    assert results == [n + 1 for n in range(count)]
    assert stats["tasks_completed"] == count and stats["tasks_failed"] == 0
    assert stats["alive_workers"] == max_workers
    # max_workers worker threads + 1 completion thread, whatever the number of tasks.
    assert max(sampler.samples) <= baseline + max_workers + 1, (baseline, max(sampler.samples))
    assert len(sampler.samples) > 10


def test_hundred_thousand_items_through_map_and_parallel():
    with ThreadCountSampler() as sampler:
        baseline = native_threads()
        with sp.InterpreterPoolExecutor(2) as pool:
            assert list(pool.map(rel_tasks.add, range(100_000), range(100_000))) == [
                2 * n for n in range(100_000)
            ]
            calls = [["rel_tasks", "add", (n, 1)] for n in range(20_000)]
            assert sp.parallel(*calls, executor=pool) == [n + 1 for n in range(20_000)]
    assert max(sampler.samples) <= baseline + 3
