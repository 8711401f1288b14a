"""Idle pools step aside (issue 22, item 13): before a fork, and the reusable pool after a while
without tasks, an idle pool ends its interpreters and makes new ones for its next task.

CPython cannot run a child forked while sub-interpreters exist, so a pool left running (the one
``parallel()`` starts, say) used to break a later ``ProcessPoolExecutor`` with the "fork" start
method. A pool with tasks at the fork still refuses the child, with the message
(tests/reliability/test_process_and_threads.py).
"""

from __future__ import annotations

import time

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from conftest import interpreter_count, run_python

TIMEOUT = 60


def eventually(condition, what):
    """Polls ``condition`` (a failure detector: it returns as soon as the condition holds)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_parallel_then_a_process_pool_that_forks():
    """The issue's report: parallel(), then a default ProcessPoolExecutor on 3.12/3.13 (fork)."""
    result = run_python(
        """
        import multiprocessing
        import concurrent.futures as cf
        import subinterpreter_parallelism as sp

        print(sp.parallel(["math", "factorial", (5,)]), flush=True)
        with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as processes:
            print(list(processes.map(abs, [-1, -2])), flush=True)
        print(sp.parallel(["math", "factorial", (4,)]), flush=True)
        """,
        "-W",
        "ignore::DeprecationWarning",
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["[120]", "[1, 2]", "[24]"]
    assert result.stderr == ""


def test_an_idle_pool_steps_aside_at_fork_and_comes_back_in_both_processes():
    result = run_python(
        """
        import os
        import subinterpreter_parallelism as sp
        import sp_tasks
        from conftest import interpreter_count

        pool = sp.InterpreterPoolExecutor(2)
        print("before", pool.submit(sp_tasks.add, 1, 1).result(timeout=60), interpreter_count() > 1, flush=True)
        pid = os.fork()
        if pid == 0:
            print("child", pool.submit(sp_tasks.add, 2, 2).result(timeout=60), flush=True)
            pool.shutdown()
            os._exit(0)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        print("child status", status, interpreter_count(), pool.status, flush=True)
        print("after", pool.submit(sp_tasks.add, 3, 3).result(timeout=60), interpreter_count() > 1, flush=True)
        """,
        "-W",
        "ignore::DeprecationWarning",
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        "before 2 True",
        "child 4",
        "child status 0 1 running",
        "after 6 True",
    ]
    assert result.stderr == ""


def test_a_busy_pool_does_not_step_aside():
    from subinterpreter_parallelism import _exit

    with sp.InterpreterPoolExecutor(1) as pool:
        gate = sp.Queue()
        busy = pool.submit(sp_tasks.wait_on_queue, gate)
        assert not _exit.step_aside(pool)
        gate.put("done")
        assert busy.result(timeout=TIMEOUT) == "done"
        assert pool.submit(sp_tasks.add, 1, 2).result(timeout=TIMEOUT) == 3


def test_a_pool_that_stepped_aside_then_shut_down_stays_down():
    from subinterpreter_parallelism import _exit

    before = interpreter_count()
    pool = sp.InterpreterPoolExecutor(2)
    assert pool.submit(sp_tasks.add, 1, 2).result(timeout=TIMEOUT) == 3
    assert _exit.step_aside(pool)
    assert interpreter_count() == before and pool.status == "running"
    pool.shutdown()
    assert pool.status == "shut down"
    with pytest.raises(RuntimeError):
        pool.submit(sp_tasks.add, 1, 2)
    assert interpreter_count() == before


def test_map_and_parallel_bring_a_pool_back():
    from subinterpreter_parallelism import _exit

    pool = sp.InterpreterPoolExecutor(2)
    try:
        assert _exit.step_aside(pool)
        assert list(pool.map(sp_tasks.square, range(50))) == [i * i for i in range(50)]
        assert _exit.step_aside(pool)
        assert sp.parallel(["sp_tasks", "square", (3,)], executor=pool) == [9]
    finally:
        pool.shutdown()


def test_the_reusable_pool_steps_aside_when_idle():
    before = interpreter_count()
    pool = sp.get_reusable_executor(2, idle_timeout=0.2)
    assert pool.submit(sp_tasks.add, 1, 1).result(timeout=TIMEOUT) == 2
    assert interpreter_count() > before
    eventually(lambda: interpreter_count() == before, "the idle pool's interpreters did not end")
    assert pool.status == "running" and sp.get_reusable_executor(2, idle_timeout=0.2) is pool
    assert pool.submit(sp_tasks.add, 2, 2).result(timeout=TIMEOUT) == 4  # it comes back
    assert interpreter_count() > before


def test_idle_timeout_is_checked():
    with pytest.raises(ValueError, match="idle_timeout"):
        sp.get_reusable_executor(idle_timeout=0)
    with pytest.raises(TypeError, match="idle_timeout"):
        sp.get_reusable_executor(idle_timeout="soon")
