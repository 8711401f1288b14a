"""Every stop stops (issue 22): Ctrl-C in the constructor and in the body of ``with pool:``, and
the exit status of a program that Ctrl-C ended.

Each program runs in a fresh process: what failed before was a hang at exit, or an exit status.
The Ctrl-C is a ``KeyboardInterrupt`` raised where a SIGINT handled at that bytecode would raise
it (the random-moment version is tests/sigint_stress.py).
"""

from __future__ import annotations

import signal
import threading

import pytest

import stop_tasks
import subinterpreter_parallelism as sp
from conftest import interpreter_count, os_thread_count, run_python

TIMEOUT = 60


def assert_ended_by_ctrl_c(result, *stdout):
    """The program ended as one that an unhandled Ctrl-C ends: killed by SIGINT, the one
    traceback, nothing after it."""
    assert result.returncode == -signal.SIGINT, (result.returncode, result.stderr[-3000:])
    assert result.stdout.splitlines() == list(stdout)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Traceback") and lines[-1] == "KeyboardInterrupt", result.stderr
    assert sum(line.startswith("Traceback") for line in lines) == 1, result.stderr


# -- the constructor: all or nothing (item 1) -----------------------------------------------


def test_a_constructor_that_cannot_start_its_completion_thread_leaves_nothing(monkeypatch):
    """Before, the exception came out while the native pool's workers still ran, orphaned
    (they ended only when the native pool was collected)."""
    before = interpreter_count(), os_thread_count()
    real_start = threading.Thread.start

    def refuse_completion_thread(thread):
        if thread.name.startswith("sp-completion"):
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", refuse_completion_thread)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        sp.InterpreterPoolExecutor(2)
    assert (interpreter_count(), os_thread_count()) == before  # ended before the exception came out


def test_ctrl_c_right_after_the_completion_thread_started():
    """A Ctrl-C between starting the completion thread and registering the pool for exit used to
    orphan the pool, whose non-daemon completion thread then held exit forever."""
    result = run_python(
        """
        import threading
        import subinterpreter_parallelism as sp
        from conftest import interpreter_count

        real_start = threading.Thread.start

        def start_then_ctrl_c(thread):
            real_start(thread)
            if thread.name.startswith("sp-completion"):
                raise KeyboardInterrupt

        threading.Thread.start = start_then_ctrl_c
        try:
            sp.InterpreterPoolExecutor(2)
        except KeyboardInterrupt:
            print("interrupted; interpreters:", interpreter_count())
        threading.Thread.start = real_start
        print("exiting")
        """,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["interrupted; interpreters: 1", "exiting"]
    assert result.stderr == ""


def test_ctrl_c_in_the_preload_wait_ends_the_workers():
    """Ctrl-C while the constructor waits for the preload imports: the workers have ended when
    the KeyboardInterrupt comes out (before, they went on importing, and the pool was left
    to exit), and nothing is printed after it."""
    result = run_python(
        """
        import os
        import subinterpreter_parallelism as sp
        import stop_blocking_import, stop_tasks
        from conftest import interpreter_count

        report, release = sp.Queue(), sp.Queue()
        os.environ["STOP_REPORT"], os.environ["STOP_RELEASE"] = str(report._id()), str(release._id())
        stop_tasks.ctrl_c_when(lambda: report.get(timeout=60))  # once a worker is in the import
        try:
            sp.InterpreterPoolExecutor(2, preload=["stop_blocking_import"])
        except KeyboardInterrupt:
            print("interrupted; interpreters:", interpreter_count())
        """,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["interrupted; interpreters: 1"]
    assert result.stderr == ""


# -- leaving `with pool:` after Ctrl-C (item 2) ------------------------------------------------


def test_ctrl_c_leaving_a_with_block_interrupts_the_running_tasks():
    """Before, ``__exit__`` waited for the running task, here for ever."""
    result = run_python(
        """
        import subinterpreter_parallelism as sp
        import sp_tasks

        report = sp.Queue()
        try:
            with sp.InterpreterPoolExecutor(2) as pool:
                spinning = pool.submit(sp_tasks.spin_until_interrupted, report)
                assert report.get(timeout=60) == "started"
                raise KeyboardInterrupt  # where a Ctrl-C would
        except KeyboardInterrupt:
            print("left the block:", report.get(timeout=60), spinning.cancelled())
        """,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["left the block: interrupted True"]
    assert result.stderr == ""


def test_ctrl_c_in_a_with_block_ends_the_program_as_ctrl_c_does():
    result = run_python(
        """
        import subinterpreter_parallelism as sp
        import sp_tasks

        report = sp.Queue()
        with sp.InterpreterPoolExecutor(1) as pool:
            pool.submit(sp_tasks.spin_until_interrupted, report)
            report.get(timeout=60)
            print("started", flush=True)
            raise KeyboardInterrupt
        """,
        timeout=TIMEOUT,
    )
    assert_ended_by_ctrl_c(result, "started")


# -- the exit status --------------------------------------------------------------------------


def test_a_program_that_ctrl_c_ended_exits_as_killed_by_sigint():
    """CPython's "ended by Ctrl-C" flag is one for the whole process, and any exec() of a string
    resets it: here the interrupted task's, during exit. The program exited with status 1."""
    result = run_python(
        """
        import subinterpreter_parallelism as sp
        import stop_tasks

        report = sp.Queue()
        pool = sp.InterpreterPoolExecutor(1)
        pool.submit(stop_tasks.exec_when_interrupted, report)
        report.get(timeout=60)
        print("started", flush=True)
        raise KeyboardInterrupt
        """,
        timeout=TIMEOUT,
    )
    assert_ended_by_ctrl_c(result, "started")


def test_an_interrupted_with_block_in_a_task_stops_its_pool():
    """The same rule inside a task: its interruption (TaskInterrupted) leaving ``with`` stops
    the tasks of the inner pool (tests/test_nested_waits.py covers the waits)."""
    report, gate = sp.Queue(), sp.Queue()
    with sp.InterpreterPoolExecutor(1) as outer:
        future = outer.submit(stop_tasks.nested_with_block, report, gate)
        try:
            assert report.get(timeout=TIMEOUT) == "inner started"
            assert future.cancel()
            assert {report.get(timeout=TIMEOUT), report.get(timeout=TIMEOUT)} == {
                "outer interrupted",
                "inner interrupted",
            }
        finally:
            gate.put("release")


def test_a_ctrl_c_that_cpython_could_only_report_is_delivered_again():
    """A KeyboardInterrupt raised inside a weakref callback (or a finalizer) is only printed as
    "Exception ignored" by CPython, and the program goes on (python/cpython#95959): a Ctrl-C
    landing in importlib's module-lock callbacks, as the library's first call imports its
    modules, was lost (1 run in 200 of the stress hung so). Once the package is imported, it
    is delivered again."""
    result = run_python(
        """
        import weakref
        import subinterpreter_parallelism

        class Thing:
            pass

        def ctrl_c_here(reference):
            raise KeyboardInterrupt  # where a SIGINT handled inside the callback would

        thing = Thing()
        reference = weakref.ref(thing, ctrl_c_here)
        try:
            del thing
            for _ in range(1000):
                pass
            print("lost")
        except KeyboardInterrupt:
            print("delivered")
        """,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["delivered"]
    assert result.stderr == ""


def test_an_interruption_that_cpython_could_only_report_is_raised_again(capsys):
    """The same in a worker: TaskInterrupted inside a weakref callback (an import's module lock,
    say, while an initializer or a warm import is interrupted) was printed as "Exception
    ignored" and lost, and the interrupted code went on."""
    with sp.InterpreterPoolExecutor(1) as pool:
        error = pool.submit(stop_tasks.lose_an_interruption).exception(timeout=TIMEOUT)
    assert error is not None and "TaskInterrupted" in repr(error), error  # not "lost"
    assert "Exception ignored" not in capsys.readouterr().err
