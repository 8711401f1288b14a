"""Done-callbacks never hold results back (issue 22, item 3).

The completion thread is the one thread that settles futures from worker events. Callbacks of
the futures it settles run on the pool's callback thread, in order; before, they ran on the
completion thread, so a callback that waited on another future of the same pool waited for
ever (no future could settle meanwhile), where ``ThreadPoolExecutor`` runs the same code fine.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed, wait

import pytest

import sp_tasks
import subinterpreter_parallelism as sp

TIMEOUT = 60


@pytest.mark.parametrize("kind", ["interpreters", "threads"])
def test_a_callback_may_wait_on_another_future_of_the_same_pool(kind):
    make = (
        (lambda: sp.InterpreterPoolExecutor(2)) if kind == "interpreters" else (lambda: ThreadPoolExecutor(2))
    )
    first_gate, second_gate = sp.Queue(), sp.Queue()
    seen: queue.Queue[object] = queue.Queue()
    with make() as pool:
        first = pool.submit(sp_tasks.wait_on_queue, first_gate)
        second = pool.submit(sp_tasks.wait_on_queue, second_gate)
        first.add_done_callback(lambda done: seen.put(second.result(timeout=TIMEOUT)))  # first is pending
        first_gate.put("first")
        assert first.result(timeout=TIMEOUT) == "first"
        second_gate.put("second")
        assert second.result(timeout=TIMEOUT) == "second"
        assert seen.get(timeout=TIMEOUT) == "second"


def test_a_blocking_callback_delays_no_result_and_no_wait():
    release = threading.Event()
    entered = threading.Event()

    def blocking(done):
        entered.set()
        release.wait()  # until the test ends (its `finally`), passed or failed

    with sp.InterpreterPoolExecutor(2) as pool:
        gate = sp.Queue()
        held = pool.submit(sp_tasks.wait_on_queue, gate)
        held.add_done_callback(blocking)
        gate.put("go")
        assert held.result(timeout=TIMEOUT) == "go"
        assert entered.wait(TIMEOUT)
        try:
            # The callback blocks; results, wait() and as_completed() go on.
            futures = [pool.submit(sp_tasks.square, i) for i in range(20)]
            assert [f.result(timeout=TIMEOUT) for f in futures] == [i * i for i in range(20)]
            done, _ = wait([pool.submit(sp_tasks.square, 3)], timeout=TIMEOUT)
            assert [f.result() for f in done] == [9]
            assert sorted(f.result() for f in as_completed(futures[:3], timeout=TIMEOUT)) == [0, 1, 4]
            assert sorted(pool.map(sp_tasks.square, range(4), ordered=False)) == [0, 1, 4, 9]
        finally:
            release.set()


def test_callbacks_run_in_order_off_the_completion_thread():
    ran: list[tuple[int, str]] = []
    with sp.InterpreterPoolExecutor(1, thread_name_prefix="cb") as pool:
        gate = sp.Queue()
        first = pool.submit(sp_tasks.wait_on_queue, gate)  # one worker: they finish in order
        futures = [first] + [pool.submit(sp_tasks.square, i) for i in range(5)]
        for index, future in enumerate(futures):
            future.add_done_callback(
                lambda done, index=index: ran.append((index, threading.current_thread().name))
            )
        gate.put("go")
    # shutdown(wait=True) returns once the callbacks have run.
    assert ran == [(i, "cb_callbacks") for i in range(6)]


def test_a_callback_added_to_a_finished_future_runs_at_once_in_the_caller():
    with sp.InterpreterPoolExecutor(1) as pool:
        future = pool.submit(sp_tasks.square, 3)
        future.result(timeout=TIMEOUT)
        names = []
        future.add_done_callback(lambda done: names.append(threading.current_thread().name))
        assert names == [threading.current_thread().name]


def test_a_failing_callback_is_logged_and_the_next_ones_run(caplog):
    ran = []

    def fails(done):
        raise SystemExit("from a callback")

    with sp.InterpreterPoolExecutor(1) as pool:
        gate = sp.Queue()
        future = pool.submit(sp_tasks.wait_on_queue, gate)
        future.add_done_callback(fails)
        future.add_done_callback(lambda done: ran.append("second"))
        later = pool.submit(sp_tasks.square, 2)
        later.add_done_callback(lambda done: ran.append("later"))
        gate.put("go")
    assert ran == ["second", "later"]
    assert any("exception calling callback" in r.getMessage() for r in caplog.records)


def test_the_callback_thread_ends_with_the_pool():
    pool = sp.InterpreterPoolExecutor(1)
    future = pool.submit(sp_tasks.wait_on_queue, gate := sp.Queue())
    future.add_done_callback(lambda done: None)
    gate.put("go")
    future.result(timeout=TIMEOUT)
    pool.shutdown(wait=True)
    thread = pool._state.callbacks.thread  # started for the callback, ended with the pool
    assert thread is not None and not thread.is_alive()
