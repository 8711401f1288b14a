"""The executor's lighter Future (_future.LightFuture): same behaviour as the stdlib's, with
its condition built only when something waits (issue 15). Races are driven with barriers and
events; the only timeouts are hang guards, which a correct future never reaches."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import (
    FIRST_COMPLETED,
    CancelledError,
    Future,
    InvalidStateError,
    ThreadPoolExecutor,
    as_completed,
    wait,
)
from concurrent.futures import (
    TimeoutError as FuturesTimeoutError,
)

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from subinterpreter_parallelism._future import LightFuture

HANG_GUARD = 60.0  # seconds: only a hang reaches it
ROUNDS = 300


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


def _run_threads(*targets):
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_GUARD)
        assert not t.is_alive(), "a thread hung"


def test_is_a_future_and_settles_without_a_condition():
    future = LightFuture()
    assert isinstance(future, Future)
    assert not future.done() and not future.cancelled() and not future.running()
    future.set_result(42)
    assert "_condition" not in vars(future) and not future._sp_has_condition  # nobody waited: none built
    assert future.done() and future.result() == 42 and future.exception() is None
    with pytest.raises(InvalidStateError):  # with no condition yet (it once deadlocked here)
        future.set_result(1)
    assert "returned int" in repr(future)
    with pytest.raises(InvalidStateError):
        future.set_result(1)
    with pytest.raises(InvalidStateError):
        future.set_exception(ValueError())
    assert not future.cancel()
    assert future.result() == 42


def test_exception_and_cancel_behave_as_the_stdlib():
    for make in (Future, LightFuture):
        failed = make()
        failed.set_exception(ValueError("x"))
        assert isinstance(failed.exception(), ValueError)
        with pytest.raises(ValueError):
            failed.result()
        called = []
        cancelled = make()
        cancelled.add_done_callback(called.append)
        assert cancelled.cancel() and cancelled.cancelled() and cancelled.done()
        assert called == [cancelled]
        with pytest.raises(CancelledError):
            cancelled.result(timeout=0)
        with pytest.raises(CancelledError):
            cancelled.exception(timeout=0)
        with pytest.raises(InvalidStateError):
            cancelled.set_result(1)
        assert not cancelled.set_running_or_notify_cancel()


def test_result_times_out_only_when_the_time_is_up():
    future = LightFuture()
    with pytest.raises(FuturesTimeoutError):
        future.result(timeout=0)
    with pytest.raises(FuturesTimeoutError):
        future.exception(timeout=0.01)
    assert not future.done()
    # Other users of the condition while a waiter waits do not wake it early: it gets the value.
    got = []
    waiting = threading.Event()

    def waiter():
        waiting.set()
        got.append(future.result(timeout=HANG_GUARD))

    def meddler():
        waiting.wait()
        sp_tasks.wait_until_waiting(future._condition)
        for _ in range(50):
            future.add_done_callback(lambda f: None)
            wait([future], timeout=0)
            repr(future)
        future.set_result("value")

    _run_threads(waiter, meddler)
    assert got == ["value"]


def test_two_threads_wait_on_one_future():
    for round_ in range(ROUNDS):
        _two_waiters_and_a_setter(round_)


def _two_waiters_and_a_setter(round_):
    future = LightFuture()
    start = threading.Barrier(3)
    got = []

    def waiter():
        start.wait()
        got.append(future.result(timeout=HANG_GUARD))

    def setter():
        start.wait()  # races the waiters building the condition
        future.set_result(round_)

    _run_threads(waiter, waiter, setter)
    assert got == [round_, round_]


def test_callback_added_while_the_result_is_set_runs_once():
    for round_ in range(ROUNDS):
        _callback_against_set_result(round_)


def _callback_against_set_result(round_):
    future = LightFuture()
    start = threading.Barrier(2)
    calls = []

    def adder():
        start.wait()
        future.add_done_callback(calls.append)

    def setter():
        start.wait()
        future.set_result(round_)

    _run_threads(adder, setter)
    assert calls == [future]


def test_pool_futures_are_light_and_work_with_wait_and_as_completed(pool):
    gate = sp.Queue()
    with ThreadPoolExecutor(2) as threads:
        released = threading.Event()
        ours = [pool.submit(sp_tasks.add, i, 1) for i in range(10)]
        blocked = pool.submit(sp_tasks.wait_on_queue, gate)
        theirs = [threads.submit(pow, 2, i) for i in range(10)]
        held = threads.submit(released.wait, HANG_GUARD)
        assert isinstance(blocked, LightFuture)
        done, pending = wait(ours + theirs, timeout=HANG_GUARD)
        assert not pending
        assert sorted(f.result() for f in as_completed(ours + theirs)) == sorted(
            [i + 1 for i in range(10)] + [2**i for i in range(10)]
        )
        # FIRST_COMPLETED on two pending futures, one of each kind: ours finishes first.
        finisher = threading.Thread(target=gate.put, args=("go",))
        finisher.start()
        done, pending = wait([blocked, held], timeout=HANG_GUARD, return_when=FIRST_COMPLETED)
        finisher.join()
        assert blocked in done and blocked.result() == "go"
        released.set()
        assert held.result(timeout=HANG_GUARD) is True


def test_pool_future_callbacks_and_asyncio(pool):
    gate = sp.Queue()
    future = pool.submit(sp_tasks.wait_on_queue, gate)
    called = threading.Event()
    seen = []
    future.add_done_callback(lambda f: (seen.append(f.result()), called.set()))

    async def main():
        waiting = asyncio.wrap_future(pool.submit(sp_tasks.add, 20, 22))
        return await waiting

    assert asyncio.run(main()) == 42
    gate.put("x")
    assert called.wait(HANG_GUARD) and seen == ["x"]
    done_first = pool.submit(sp_tasks.add, 1, 1)
    assert done_first.result(timeout=HANG_GUARD) == 2
    late = []
    done_first.add_done_callback(late.append)  # already done: runs at once, here
    assert late == [done_first]


def test_two_threads_wait_on_one_pool_future(pool):
    for round_ in range(ROUNDS):
        future = pool.submit(sp_tasks.add, round_, 1)
        start = threading.Barrier(2)
        got = []

        def waiter(start=start, got=got, future=future):  # this round's (the threads end in it)
            start.wait()
            got.append(future.result(timeout=HANG_GUARD))

        _run_threads(waiter, waiter)
        assert got == [round_ + 1, round_ + 1]


def test_a_future_settled_by_its_user_keeps_its_value(pool, monkeypatch):
    """``set_result`` is public: when the user settles a pool future first, the task's own
    value is dropped, the completion thread reports the refusal as unraisable, and goes on
    delivering (the values' path, which Swift hands straight to ``set_result``)."""
    import sys

    reported = []
    seen = threading.Event()

    def hook(unraisable):
        reported.append(unraisable.exc_type)
        seen.set()

    monkeypatch.setattr(sys, "unraisablehook", hook)
    gate = sp.Queue()
    future = pool.submit(sp_tasks.wait_on_queue, gate)
    future.set_result("mine")
    gate.put("the task's")
    assert seen.wait(HANG_GUARD)
    assert reported == [InvalidStateError]
    assert future.result() == "mine"
    assert pool.submit(sp_tasks.add, 2, 3).result(timeout=HANG_GUARD) == 5
    assert not pool._state.futures
