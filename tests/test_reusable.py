"""sp.get_reusable_executor(): one process-wide warm pool, loky-style."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from subinterpreter_parallelism import reusable

WAIT = 60


def test_exported_and_lazy():
    assert "get_reusable_executor" in sp.__all__ and "ExecutorOptions" in sp.__all__
    assert sp.get_reusable_executor is reusable.get_reusable_executor


def test_same_arguments_same_executor():
    pool = sp.get_reusable_executor()
    assert isinstance(pool, sp.InterpreterPoolExecutor)
    assert pool.max_workers == sp.default_worker_count()
    assert sp.get_reusable_executor() is pool
    assert sp.get_reusable_executor(sp.default_worker_count()) is pool
    assert pool.submit(sp_tasks.add, 1, 2).result(timeout=WAIT) == 3
    assert sp.get_reusable_executor(2, preload=("json",)) is sp.get_reusable_executor(2, preload=("json",))


def test_parallel_shares_the_reusable_executor():
    sp.parallel(["math", "gcd", (12, 18)])
    pool = sp.get_reusable_executor()
    assert reusable._executor is pool
    before = pool.stats()["tasks_submitted"]
    assert sp.parallel(["math", "factorial", (5,)]) == [120]
    assert pool.stats()["tasks_submitted"] == before + 1
    # parallel() takes whatever reusable pool is current, whatever its size.
    other = sp.get_reusable_executor(1)
    assert sp.parallel(["math", "factorial", (4,)]) == [24]
    assert other.stats()["tasks_submitted"] == 1 and reusable._executor is other


def test_other_max_workers_replaces_after_the_old_tasks_finish():
    old = sp.get_reusable_executor(2)
    future = old.submit(sp_tasks.sleep_then, 0.3, "done")
    new = sp.get_reusable_executor(1)
    assert new is not old and new.max_workers == 1
    assert old.status == "shut down"
    assert future.done() and future.result() == "done"  # shutdown waited for it
    with pytest.raises(RuntimeError):
        old.submit(sp_tasks.add, 1)
    assert new.submit(sp_tasks.add, 2, 3).result(timeout=WAIT) == 5


def test_other_options_replace_unless_reuse_is_true():
    first = sp.get_reusable_executor(1)
    second = sp.get_reusable_executor(1, initializer=sp_tasks.record_init, initargs=("x",))
    assert second is not first and first.status == "shut down"
    assert second.submit(sp_tasks.init_count).result(timeout=WAIT) == ["x"]
    assert sp.get_reusable_executor(1, initializer=sp_tasks.record_init, initargs=("x",)) is second
    assert sp.get_reusable_executor(1, reuse=True) is second  # options ignored
    assert sp.get_reusable_executor(reuse=True) is second  # and its size kept
    third = sp.get_reusable_executor(1, initializer=sp_tasks.record_init, initargs=("x",), reuse=False)
    assert third is not second and second.status == "shut down"


def test_shut_down_executor_is_replaced():
    with sp.get_reusable_executor(1) as pool:
        assert pool.submit(sp_tasks.add, 1, 1).result(timeout=WAIT) == 2
    assert pool.status == "shut down"
    again = sp.get_reusable_executor(1)
    assert again is not pool
    assert again.submit(sp_tasks.add, 2, 2).result(timeout=WAIT) == 4


def test_broken_executor_is_replaced():
    broken = sp.get_reusable_executor(1, initializer=sp_tasks.init_fails)
    with pytest.raises(sp.BrokenInterpreterPool):
        broken.submit(sp_tasks.add, 1).result(timeout=WAIT)
    replacement = sp.get_reusable_executor(1, initializer=sp_tasks.init_fails)
    assert replacement is not broken
    fine = sp.get_reusable_executor(1)
    assert fine.submit(sp_tasks.add, 1, 1).result(timeout=WAIT) == 2


def test_kill_workers_interrupts_the_old_tasks():
    old = sp.get_reusable_executor(1)
    report = sp.Queue()
    running = old.submit(sp_tasks.spin_until_interrupted, report)
    queued = old.submit(sp_tasks.add, 1, 2)
    assert report.get(timeout=WAIT) == "started"
    new = sp.get_reusable_executor(2, kill_workers=True)
    assert new is not old and old.status == "shut down"
    assert report.get(timeout=WAIT) == "interrupted"
    with pytest.raises(CancelledError):
        running.result(timeout=WAIT)
    with pytest.raises(CancelledError):
        queued.result(timeout=WAIT)


def test_invalid_arguments_keep_the_current_executor():
    pool = sp.get_reusable_executor(1)
    with pytest.raises(ValueError):
        sp.get_reusable_executor(0)
    with pytest.raises(TypeError):
        sp.get_reusable_executor(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sp.get_reusable_executor(1, reuse="sometimes")  # type: ignore[arg-type]
    assert sp.get_reusable_executor(1) is pool
    with pytest.raises(TypeError, match="no_such_option"):
        sp.get_reusable_executor(1, no_such_option=True)  # type: ignore[call-arg]
    assert sp.get_reusable_executor(1) is pool
    with pytest.raises(ValueError):  # a bad value: the old pool is gone, no new one is made
        sp.get_reusable_executor(1, task_timeout=-1)
    assert reusable._executor is None
    assert sp.get_reusable_executor(1).submit(sp_tasks.add, 1).result(timeout=WAIT) == 1


def test_threads_asking_at_once_get_one_executor():
    got: list[sp.InterpreterPoolExecutor] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait(timeout=WAIT)
        got.append(sp.get_reusable_executor(2))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(got) == 8 and all(pool is got[0] for pool in got)
