"""How a program ends while pools are alive (item 11 of issue 7).

Each case runs in a fresh process with stdout on a pipe (block-buffered, so that output lost
at exit shows). None may print a CPython fatal error, crash or hang; output must be flushed;
the exit status must be the program's. Modelled on CPython's test_concurrent_futures
test_shutdown.py (interpreter shutdown with live executors, submit after shutdown from atexit).
"""

from __future__ import annotations

import pytest

from rel_support import assert_clean_exit, run_python

pytestmark = pytest.mark.timeout(120)

PRELUDE = """
import atexit, os, sys, threading, time
import subinterpreter_parallelism as sp
import rel_tasks
"""
# For the programs that wait for a state nothing signals (a mark file, a task's phase).
EVENTUALLY = """
from conftest import eventually
"""


def run_program(body: str, timeout: float = 90, helpers: str = ""):
    import textwrap

    return run_python(PRELUDE + helpers + textwrap.dedent(body), timeout=timeout)


def test_exit_with_an_idle_pool_alive():
    result = run_program("""
    pool = sp.InterpreterPoolExecutor(2)
    print("answer", pool.submit(rel_tasks.add, 40, 2).result())
    print("end of main")
    """)
    assert_clean_exit(result)
    assert result.stdout == "answer 42\nend of main\n"
    assert result.stderr == ""


def test_exit_waits_for_queued_and_running_tasks(tmp_path):
    """As with the stdlib executors, tasks submitted before exit still run."""
    marks = tmp_path / "marks"
    marks.mkdir()
    result = run_program(f"""
    def work(i):
        import time
        time.sleep(0.2)
        open(os.path.join({str(marks)!r}, str(i)), "w").close()

    pool = sp.InterpreterPoolExecutor(2)
    for i in range(6):
        pool.submit(work, i)
    print("submitted")
    """)
    assert_clean_exit(result)
    assert result.stdout == "submitted\n"
    assert sorted(p.name for p in marks.iterdir()) == [str(i) for i in range(6)]


def test_sys_exit_while_a_task_runs():
    result = run_program(
        helpers=EVENTUALLY,
        body="""
    pool = sp.InterpreterPoolExecutor(1)
    future = pool.submit(rel_tasks.spin, 0.5)
    eventually(future.running)  # a worker has it (exit must wait for it either way)
    print("exiting with 3")
    sys.exit(3)
    """,
    )
    assert_clean_exit(result, 3)
    assert result.stdout == "exiting with 3\n"
    assert result.stderr == ""


def test_exception_in_the_main_thread_with_a_pool_alive():
    result = run_program("""
    pool = sp.InterpreterPoolExecutor(2)
    print("result", pool.submit(rel_tasks.add, 1, 2).result())
    pool.submit(rel_tasks.spin, 0.3)
    print("unflushed line before the error")
    raise LookupError("raised in main")
    """)
    assert_clean_exit(result, 1)
    assert result.stdout == "result 3\nunflushed line before the error\n"
    assert result.stderr.rstrip().endswith("LookupError: raised in main")
    assert "Traceback (most recent call last)" in result.stderr


def test_exception_in_main_while_a_failed_task_is_pending():
    result = run_program("""
    pool = sp.InterpreterPoolExecutor(1)
    future = pool.submit(rel_tasks.planned, "slow_raise", "from a task", 0.2)
    raise KeyError("main fails first")
    """)
    assert_clean_exit(result, 1)
    assert "KeyError: 'main fails first'" in result.stderr
    assert "PlannedError" not in result.stderr  # an exception nobody asked for stays silent


def test_sys_exit_in_a_done_callback_on_the_completion_thread():
    """The callback runs on the pool's completion thread: its SystemExit is reported as
    unraisable (like an exception in a thread), the pool keeps working, the program goes on."""
    result = run_program("""
    pool = sp.InterpreterPoolExecutor(1)
    seen = []
    future = pool.submit(rel_tasks.nap_then, 0.2, "value")
    future.add_done_callback(lambda f: sys.exit(4))
    print("result", future.result(timeout=30))
    print("later", pool.submit(rel_tasks.add, 2, 2).result(timeout=30))
    print("end of main")
    """)
    assert_clean_exit(result, 0)
    assert result.stdout == "result value\nlater 4\nend of main\n"
    assert "SystemExit: 4" in result.stderr


def test_sys_exit_in_a_done_callback_on_the_main_thread():
    """A callback added to a finished future runs at once, in the caller: its exit is real."""
    result = run_program("""
    pool = sp.InterpreterPoolExecutor(2)
    future = pool.submit(rel_tasks.add, 1, 1)
    future.result(timeout=30)
    pool.submit(rel_tasks.spin, 0.3)
    print("before the callback")
    future.add_done_callback(lambda f: sys.exit(6))
    print("never printed")
    """)
    assert_clean_exit(result, 6)
    assert result.stdout == "before the callback\n"


def test_submit_from_atexit_is_refused_cleanly():
    result = run_program("""
    pool = sp.InterpreterPoolExecutor(1)
    print("in main", pool.submit(rel_tasks.add, 1, 1).result())

    def late():
        try:
            pool.submit(rel_tasks.add, 1, 2)
        except RuntimeError as exc:
            print("atexit submit refused:", exc)

    atexit.register(late)
    """)
    assert_clean_exit(result)
    assert result.stdout.splitlines() == [
        "in main 2",
        "atexit submit refused: cannot schedule new futures after shutdown",
    ]


@pytest.mark.parametrize("how", ["pool", "parallel"])
def test_new_pools_from_atexit_are_refused_cleanly(how):
    """At atexit time the pools have been shut down and the interpreter is finalizing: a new
    pool started then would still run while the main interpreter is torn down (this crashed
    with "free(): invalid pointer" about one run in twenty before it was refused)."""
    body = """
    import subinterpreter_parallelism.executor  # already imported, as in any program using pools
    sp.parallel(["rel_tasks", "add", (1, 1)])

    def late():
        try:
            if HOW == "pool":
                pool = sp.InterpreterPoolExecutor(2)
                pool.submit(rel_tasks.spin, 0.5)
                print("started a pool at exit")
            else:
                print("parallel at exit:", sp.parallel(["rel_tasks", "spin", (0.2,)], ["rel_tasks", "add", (1, 2)]))
        except RuntimeError as exc:
            print("refused:", exc)

    atexit.register(late)
    """.replace("HOW", repr(how))
    for _ in range(3):
        result = run_program(body)
        assert_clean_exit(result)
        assert result.stdout.startswith("refused: ") and "shutdown" in result.stdout, result.stdout


def test_exit_after_dropping_a_pool_with_a_running_task(tmp_path):
    mark = tmp_path / "done"
    result = run_program(f"""
    def work():
        import time
        time.sleep(0.3)
        open({str(mark)!r}, "w").close()

    def drop():
        pool = sp.InterpreterPoolExecutor(1)
        pool.submit(work)

    drop()
    import gc
    gc.collect()
    print("dropped")
    """)
    assert_clean_exit(result)
    assert result.stdout == "dropped\n"
    assert mark.exists(), "the task of a dropped pool did not finish before exit"


def test_exit_with_pools_made_in_other_threads_and_a_broken_pool():
    result = run_program("""
    pools = []
    def make():
        pool = sp.InterpreterPoolExecutor(1, task_timeout=30)
        pool.submit(rel_tasks.spin, 0.2)
        pools.append(pool)

    threads = [threading.Thread(target=make) for _ in range(3)]
    for t in threads: t.start()
    for t in threads: t.join()
    broken = sp.InterpreterPoolExecutor(1, initializer=rel_tasks.planned, initargs=("raise", "init"))
    try:
        broken.submit(rel_tasks.add, 1, 1).result(timeout=30)
    except sp.BrokenInterpreterPool:
        print("broken as expected")
    print("pools", len(pools))
    """)
    assert_clean_exit(result)
    assert result.stdout == "broken as expected\npools 3\n"


def test_exit_while_a_daemon_thread_keeps_submitting():
    result = run_program(
        helpers=EVENTUALLY,
        body="""
    pool = sp.InterpreterPoolExecutor(2)
    count = [0]

    def keep_submitting():
        while True:
            try:
                pool.submit(rel_tasks.add, 1, 1).result()
                count[0] += 1
            except RuntimeError:
                time.sleep(0.001)

    threading.Thread(target=keep_submitting, daemon=True).start()
    eventually(lambda: count[0] >= 100)
    print("exiting")
    """,
    )
    assert_clean_exit(result)
    assert result.stdout == "exiting\n"


def test_exit_while_a_task_is_blocked_in_c():
    """A task blocked inside C (here select()) cannot be interrupted: exit waits for it."""
    result = run_program(
        helpers=EVENTUALLY,
        body="""
    def blocked():
        import select
        select.select([], [], [], 0.5)
        return "unblocked"

    pool = sp.InterpreterPoolExecutor(1)
    future = pool.submit(blocked)
    eventually(future.running)  # a worker has it (exit must wait for it either way)
    print("exiting")
    """,
    )
    assert_clean_exit(result)
    assert result.stdout == "exiting\n"


def test_exit_from_an_interactive_session_with_a_live_pool():
    session = "\n".join(
        [
            "import subinterpreter_parallelism as sp, rel_tasks",
            "pool = sp.InterpreterPoolExecutor(2)",
            "print('REPL', pool.submit(rel_tasks.add, 20, 22).result())",
            "f = pool.submit(rel_tasks.spin, 0.2)",
            "",
        ]
    )
    result = run_python("", "-i", stdin=session, env={"PYTHONSTARTUP": ""})
    assert_clean_exit(result)
    assert "REPL 42" in result.stdout


# -- Initializers that never return (issue 13, item 2) ------------------------------------------
# They are interruptible like tasks: exit (when no task waits for them), Ctrl-C and
# shutdown(cancel_futures=True) stop them. Before, exit waited forever and Ctrl-C did not help.


@pytest.mark.parametrize("how", ["python", "sleep"])
def test_exit_interrupts_an_initializer_that_never_returns(tmp_path, how):
    mark = str(tmp_path / "started")
    result = run_program(
        helpers=EVENTUALLY,
        body=f"""
    pool = sp.InterpreterPoolExecutor(1, initializer=rel_tasks.never_return, initargs=({how!r}, {mark!r}))
    eventually(lambda: os.path.exists({mark!r}), message="never started")
    print("exiting")
    """,
        timeout=60,
    )
    assert_clean_exit(result)
    assert result.stdout == "exiting\n"
    assert result.stderr == ""  # an initializer stopped on purpose is not reported as a failure


def test_ctrl_c_at_exit_interrupts_an_initializer_that_never_returns(tmp_path):
    """A task waits for the initializer, so exit waits; the first Ctrl-C stops it."""
    mark = str(tmp_path / "started")
    result = run_program(
        helpers=EVENTUALLY,
        body=f"""
    import sp_tasks
    pool = sp.InterpreterPoolExecutor(1, initializer=rel_tasks.never_return, initargs=("python", {mark!r}))
    future = pool.submit(rel_tasks.add, 1, 2)
    eventually(lambda: os.path.exists({mark!r}), message="never started")
    threading.Thread(target=sp_tasks.signal_when_waiting, args=(pool._state.ended._cond,), daemon=True).start()
    print("exiting")
    """,
        timeout=60,
    )
    assert "Fatal Python error" not in result.stderr, result.stderr
    assert result.stdout == "exiting\n"
    assert result.returncode in (0, 130, -2), result.stderr


def test_shutdown_cancel_futures_interrupts_initializers_that_never_return(tmp_path):
    mark = str(tmp_path / "started")
    result = run_program(
        helpers=EVENTUALLY,
        body=f"""
    pool = sp.InterpreterPoolExecutor(2, initializer=rel_tasks.never_return, initargs=("sleep", {mark!r}))
    future = pool.submit(rel_tasks.add, 1, 2)
    eventually(lambda: os.path.exists({mark!r}), message="never started")
    pool.shutdown(wait=True, cancel_futures=True)
    print("shut down; cancelled:", future.cancelled(), "alive workers:", pool._state.native.alive_workers())
    """,
        timeout=60,
    )
    assert_clean_exit(result)
    assert result.stdout == "shut down; cancelled: True alive workers: 0\n"
    assert result.stderr == ""


# -- Ctrl-C at exit never hangs and never aborts (issue 13, items 3 and 4) ----------------------
# The first Ctrl-C interrupts everything and exit waits for what can still end; a worker whose
# interpreter can only wait for a thread its task left running is given up (with a message),
# and a second Ctrl-C gives up on everything. Before: 3.13 hung for good (the main thread ends
# up in C, in threading's shutdown, where Ctrl-C cannot reach it) and 3.12 aborted with
# "Fatal Python error: PyInterpreterState_Delete: remaining subinterpreters".

GAVE_UP = "subinterpreter_parallelism: exit gave up on worker interpreters after"


def assert_gave_up(result, *reasons):
    assert "Fatal Python error" not in result.stderr, result.stderr[-4000:]
    assert result.returncode in (-2, 130), (result.returncode, result.stderr[-4000:])
    assert result.stdout == "exiting\n", result.stdout
    assert GAVE_UP in result.stderr, result.stderr[-4000:]
    for reason in reasons:
        assert reason in result.stderr, result.stderr[-4000:]


def test_ctrl_c_at_exit_gives_up_on_a_thread_a_task_left_running():
    result = run_program(
        """
    import sp_tasks
    pool = sp.InterpreterPoolExecutor(1)
    pool.submit(rel_tasks.leave_a_thread_that_never_ends).result(timeout=60)
    threading.Thread(target=sp_tasks.signal_when_waiting, args=(pool._state.ended._cond,), daemon=True).start()
    print("exiting")
    """,
        timeout=90,
    )
    assert_gave_up(result, "Ctrl-C:", "waits for threads that its tasks started")


def test_ctrl_c_that_lands_just_before_exit_blocks_is_not_lost():
    """CPython handles a signal in the main thread at its next bytecode, or when the signal
    interrupts a blocked wait; one that lands between the two interrupts nothing, so it is
    handled only when the wait ends. Under load that happened to a Ctrl-C sent as exit began
    to wait for a worker that can never end: exit then waited for good. Here the main thread
    blocks SIGINT, so another thread always takes the signal and the main thread's wait is
    never interrupted: that case, every time. Exit must still act on the Ctrl-C."""
    result = run_program(
        """
    import signal, sp_tasks
    pool = sp.InterpreterPoolExecutor(1)
    pool.submit(rel_tasks.leave_a_thread_that_never_ends).result(timeout=60)
    # Started before the main thread blocks SIGINT: a thread inherits its creator's mask.
    threading.Thread(target=sp_tasks.signal_when_waiting, args=(pool._state.ended._cond,), daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    print("exiting")
    """,
        timeout=60,
    )
    assert_gave_up(result, "Ctrl-C:", "waits for threads that its tasks started")


# Raises KeyboardInterrupt in the main thread where a SIGINT handled at that bytecode would:
# inside the first Condition.wait on `condition`, just after it has released its lock. (A trace
# function that raises is unset, so this works once.)
CTRL_C_AFTER_RELEASE = """
def ctrl_c_after_release(condition):
    def tracer(frame, event, arg):
        if event != "call" or frame.f_code is not threading.Condition._release_save.__code__ \\
                or frame.f_locals.get("self") is not condition:
            return None
        def on_return(frame, event, arg):
            if event == "return":
                raise KeyboardInterrupt
            return on_return
        return on_return
    sys.settrace(tracer)
"""


@pytest.mark.parametrize("which", ["first", "second"])
def test_ctrl_c_inside_the_exit_wait_after_it_released_its_lock(which):
    """Condition.wait interrupted there makes Event.wait raise RuntimeError ("release unlocked
    lock") with the KeyboardInterrupt as its context. Exit must take it as the Ctrl-C it is:
    the first one (in the wait for the pools), or the second one (in the wait after the first:
    here the program itself ends with KeyboardInterrupt). Before, the RuntimeError escaped
    the exit hook and the process went on to finalize with a live worker."""
    result = run_program(
        helpers=CTRL_C_AFTER_RELEASE,
        body=f"""
    pool = sp.InterpreterPoolExecutor(1)
    pool.submit(rel_tasks.leave_a_thread_that_never_ends).result(timeout=60)
    ctrl_c_after_release(pool._state.ended._cond)
    print("exiting")
    if {which!r} == "second":
        raise KeyboardInterrupt
    """,
        timeout=60,
    )
    assert_gave_up(result, "Ctrl-C:" if which == "first" else "a second Ctrl-C")


@pytest.mark.parametrize("stuck", ["task in C", "initializer in C", "thread left running"])
def test_second_ctrl_c_at_exit_ends_the_process_without_a_fatal_error(tmp_path, stuck):
    mark = str(tmp_path / "started")
    result = run_program(
        helpers=EVENTUALLY,
        body=f"""
    import sp_tasks
    STUCK = {stuck!r}
    if STUCK == "initializer in C":
        pool = sp.InterpreterPoolExecutor(1, initializer=rel_tasks.never_return, initargs=("c", {mark!r}))
        pool.submit(rel_tasks.add, 1, 2)
    else:
        pool = sp.InterpreterPoolExecutor(1)
        if STUCK == "task in C":
            pool.submit(rel_tasks.never_return, "c", {mark!r})
        else:
            pool.submit(rel_tasks.leave_a_thread_that_never_ends, {mark!r}).result(timeout=60)
    eventually(lambda: os.path.exists({mark!r}), message="never started")
    threading.Thread(target=sp_tasks.signal_when_waiting, args=(pool._state.ended._cond, 2), daemon=True).start()
    print("exiting")
    """,
        timeout=90,
    )
    if stuck == "thread left running":  # the first Ctrl-C may already give up on it
        assert_gave_up(result)
    else:
        assert_gave_up(result, "a second Ctrl-C", "has not returned")
