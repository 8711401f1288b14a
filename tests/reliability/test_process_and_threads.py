"""What isolated worker interpreters refuse: fork, exec, daemon threads, signals (item 5).

Worker interpreters are created with CPython's isolated configuration (``allow_fork=0``,
``allow_exec=0``, ``allow_daemon_threads=0``): these must fail as ``RuntimeError`` inside the
task, and the worker must go on. What is allowed (subprocesses, ordinary threads) must work.
"""

from __future__ import annotations

import sys

import pytest

import rel_tasks
import subinterpreter_parallelism as sp
from rel_support import assert_clean_exit, run_python

pytestmark = pytest.mark.timeout(60)

WAIT = 30


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(1) as executor:
        yield executor


def assert_same_worker(pool, interpreter):
    assert pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT) == interpreter
    assert pool.submit(rel_tasks.add, 2, 3).result(timeout=WAIT) == 5


@pytest.mark.parametrize("fn", [rel_tasks.do_fork, rel_tasks.do_forkpty])
def test_fork_raises_runtime_error(pool, fn):
    interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
    with pytest.raises(RuntimeError, match="fork not supported"):
        pool.submit(fn).result(timeout=WAIT)
    assert_same_worker(pool, interpreter)


@pytest.mark.parametrize("which", ["execv", "execve", "execvp"])
def test_exec_raises_runtime_error(pool, which):
    interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
    with pytest.raises(RuntimeError, match="exec not supported"):
        pool.submit(rel_tasks.do_exec, which).result(timeout=WAIT)
    assert_same_worker(pool, interpreter)


@pytest.mark.parametrize("how", ["daemon=True", "thread.daemon = True"])
def test_daemon_threads_raise_runtime_error(pool, how):
    interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
    with pytest.raises(RuntimeError, match="daemon threads are disabled"):
        pool.submit(rel_tasks.do_daemon_thread, how).result(timeout=WAIT)
    assert_same_worker(pool, interpreter)


def test_multiprocessing_fork_raises_runtime_error(pool):
    with pytest.raises(RuntimeError, match="fork"):
        pool.submit(rel_tasks.do_multiprocessing_fork).result(timeout=WAIT)
    assert pool.submit(rel_tasks.add, 1, 1).result(timeout=WAIT) == 2


def test_signal_handlers_cannot_be_set_in_a_worker(pool):
    with pytest.raises(ValueError, match="main thread"):
        pool.submit(rel_tasks.do_signal).result(timeout=WAIT)
    assert pool.submit(rel_tasks.add, 1, 1).result(timeout=WAIT) == 2


def test_ordinary_threads_and_subprocesses_work(pool):
    assert pool.submit(rel_tasks.do_plain_threads).result(timeout=WAIT) == [0, 1, 2, 3]
    assert pool.submit(rel_tasks.do_subprocess).result(timeout=WAIT) == "from a worker\n"


def test_shutdown_waits_for_threads_a_task_left_running(tmp_path):
    """A worker interpreter ends only after the threads its tasks started (as Python waits
    for non-daemon threads at exit)."""
    mark = tmp_path / "mark"
    with sp.InterpreterPoolExecutor(1) as pool:
        pool.submit(rel_tasks.start_thread_that_outlives_the_task, str(mark), 0.3).result(timeout=WAIT)
        assert not mark.exists()
    assert mark.read_text() == "written by a thread of a finished task"


def test_fork_exec_and_threads_in_a_fresh_process_leave_clean_output():
    """The same refusals end to end: nothing on stderr, no crash at exit."""
    code = """
    import subinterpreter_parallelism as sp
    import rel_tasks as t

    with sp.InterpreterPoolExecutor(2) as pool:
        for fn, args in [(t.do_fork, ()), (t.do_exec, ("execv",)), (t.do_daemon_thread, ("daemon=True",))]:
            error = pool.submit(fn, *args).exception(timeout=30)
            print(fn.__name__, type(error).__name__)
        print("threads", pool.submit(t.do_plain_threads).result(timeout=30))
    print("done")
    """
    result = run_python(code)
    assert_clean_exit(result)
    assert result.stdout.splitlines() == [
        "do_fork RuntimeError",
        "do_exec RuntimeError",
        "do_daemon_thread RuntimeError",
        "threads [0, 1, 2, 3]",
        "done",
    ]
    assert result.stderr == "", result.stderr


@pytest.mark.xfail(
    sys.version_info < (3, 13),
    strict=True,
    reason="CPython 3.12.1 bug: a ThreadPoolExecutor used inside an isolated "
    "sub-interpreter makes the process abort at exit (double free), with "
    "_xxsubinterpreters alone too",
)
def test_thread_pool_inside_a_task_then_exit():
    result = run_python("""
    import subinterpreter_parallelism as sp
    import rel_tasks

    with sp.InterpreterPoolExecutor(1) as pool:
        print(pool.submit(rel_tasks.do_threads).result(timeout=30))
    """)
    assert_clean_exit(result)
    assert result.stdout == "([0, 1, 2, 3], [0, 1, 4, 9, 16])\n"


def test_os_exit_in_a_task_ends_the_whole_process():
    """No isolation from deliberate exits: os._exit in a task ends the process, as documented."""
    code = """
    import subinterpreter_parallelism as sp

    def leave():
        import os
        os._exit(17)

    pool = sp.InterpreterPoolExecutor(1)
    print("before", flush=True)
    pool.submit(leave).result(timeout=30)
    print("never printed")
    """
    result = run_python(code)
    assert result.returncode == 17
    assert result.stdout == "before\n"


@pytest.mark.skipif(sys.platform != "linux", reason="Linux signals")
def test_abort_in_a_task_ends_the_whole_process():
    """A crash in any interpreter ends the process: the one guarantee a process pool has and
    an interpreter pool does not (README, "Guarantees and caveats")."""
    code = """
    import subinterpreter_parallelism as sp

    def crash():
        import os
        os.abort()

    pool = sp.InterpreterPoolExecutor(1)
    print("before", flush=True)
    pool.submit(crash).result(timeout=30)
    print("never printed")
    """
    result = run_python(code)
    assert result.returncode == -6  # SIGABRT
    assert result.stdout == "before\n"


# -- Forking the caller while a pool exists (issue 13, item 6; issue 22, item 13) ---------------
# CPython 3.12/3.13 cannot run Python in a child forked while own-GIL interpreters exist (the
# child aborted with "Fatal Python error: PyThreadState_Get" on 3.13.0, hung on 3.12.1). An
# idle pool steps aside before the fork (its interpreters end; its next task makes new ones),
# so the child runs. A pool with a task at the fork stays: the native fork guard makes such a
# child say why and exit with FORK_REFUSED_STATUS; where the child survives, it runs with the
# inherited pool marked broken.

FORK_PROGRAM = """
import multiprocessing, os, sys
import concurrent.futures as cf
import subinterpreter_parallelism as sp
import rel_tasks, sp_tasks

pool = sp.InterpreterPoolExecutor(1)
print("pool", pool.submit(rel_tasks.add, 1, 1).result(timeout=60), flush=True)
if sys.argv[2] == "busy":
    gate = sp.Queue()
    busy = pool.submit(sp_tasks.wait_on_queue, gate)
if sys.argv[1] == "os.fork":
    pid = os.fork()
    if pid == 0:
        print("the child runs Python", flush=True)
        os._exit(0)
    print("child exit status", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
else:
    context = multiprocessing.get_context("fork")
    with cf.ProcessPoolExecutor(1, mp_context=context) as processes:
        try:
            print("process pool", processes.submit(abs, -2).result(timeout=60), flush=True)
        except Exception as error:
            print("process pool failed:", type(error).__name__, flush=True)
if sys.argv[2] == "busy":
    gate.put("done")
    busy.result(timeout=60)
pool.shutdown()
pid = os.fork()  # no interpreter left: an ordinary fork
if pid == 0:
    os._exit(5)
print("after shutdown, child exit status", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


@pytest.mark.parametrize("state", ["idle", "busy"])
@pytest.mark.parametrize("how", ["os.fork", "multiprocessing fork"])
def test_fork_while_a_pool_exists_never_shows_a_fatal_error(how, state):
    # (CPython 3.12+ warns that forking a multi-threaded process may deadlock the child.)
    result = run_python("", "-W", "ignore::DeprecationWarning", "-c", FORK_PROGRAM, how, state, timeout=90)
    assert_clean_exit(result)
    lines = result.stdout.splitlines()
    assert lines[0] == "pool 2"
    assert lines[-1] == "after shutdown, child exit status 5"
    if state == "idle" or not sp._versions.FORK_CHILD_ABORTS:
        assert "this process was forked" not in result.stderr, result.stderr
        if how == "os.fork":
            assert lines[1:-1] == ["the child runs Python", "child exit status 0"]
        else:
            assert lines[1:-1] == ["process pool 2"]
    else:
        assert "this process was forked" in result.stderr and "exits with status 70" in result.stderr, (
            result.stderr
        )
        if how == "os.fork":
            assert lines[1:-1] == [f"child exit status {sp._native.FORK_REFUSED_STATUS}"]
        else:
            assert lines[1:-1] == ["process pool failed: BrokenProcessPool"]
