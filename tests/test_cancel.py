"""Stopping running tasks: cancel(), timeouts and Ctrl-C."""

from __future__ import annotations

import math
import threading
from concurrent.futures import CancelledError, as_completed

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from conftest import eventually, run_python
from subinterpreter_parallelism import _native


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


def test_cancel_running_task_interrupts_it(pool):
    report = sp.Queue()
    future = pool.submit(sp_tasks.spin_until_interrupted, report)
    assert report.get(timeout=10) == "started"
    assert future.cancel()  # that it returns at once: test_cancel_returns_while_..._in_c
    assert future.cancelled() and future.done()
    with pytest.raises(CancelledError):
        future.result(timeout=0)
    # The interruption really reached the task's Python code.
    assert report.get(timeout=10) == "interrupted"
    # The worker takes the next task.
    assert pool.submit(sp_tasks.add, 2, 3).result(timeout=10) == 5


def test_cancel_wakes_a_waiting_caller(pool):
    import threading

    future = pool.submit(sp_tasks.spin, 60)
    eventually(future.running, message="the task never started")
    outcome = []

    def waiter():
        try:
            future.result()
        except CancelledError:
            outcome.append("cancelled")

    thread = threading.Thread(target=waiter)
    thread.start()
    sp_tasks.wait_until_waiting(future._condition)  # the waiter is inside result()
    future.cancel()
    thread.join(10)
    assert outcome == ["cancelled"]
    assert list(as_completed([future], timeout=1)) == [future]


def test_cancel_pending_and_finished(pool):
    # Both workers hold a blocker until the gate opens, so the third task surely still waits.
    gate = sp.Queue()
    blockers = [pool.submit(sp_tasks.gated, i, gate, {0, 1}) for i in range(2)]
    pending = pool.submit(sp_tasks.add, 1, 1)
    assert pending.cancel() and pending.cancelled()
    gate.put("go")
    gate.put("go")
    assert [b.result(timeout=60) for b in blockers] == [0, 1]
    done = pool.submit(sp_tasks.add, 1, 1)
    assert done.result(timeout=10) == 2
    assert not done.cancel()
    assert done.result() == 2


def test_a_cancelled_task_lets_go_of_its_inputs_while_the_pool_is_busy():
    """Issue 22, item 8: the inputs of a task cancelled before it ran (a large `bytes` sent out
    of band, a lent memoryview, its pickle) are released when the cancel wins, not when a
    worker reaches the task."""
    import sys

    gate = sp.Queue()
    with sp.InterpreterPoolExecutor(1) as pool:
        busy = pool.submit(sp_tasks.wait_on_queue, gate)  # the only worker: busy until the end
        try:
            data = bytes(1 << 20)  # sent out of band: the queued tasks hold the object itself
            before = sys.getrefcount(data)
            futures = [pool.submit(sp_tasks.echo, data) for _ in range(50)]
            lent = bytearray(1 << 16)  # a memoryview of it is lent: resizing it is refused
            futures.append(pool.submit(sp_tasks.echo, memoryview(lent)))
            assert sys.getrefcount(data) == before + 50
            with pytest.raises(BufferError):
                lent.append(0)
            assert all(future.cancel() for future in futures)
            assert sys.getrefcount(data) == before
            lent.append(0)  # the export is released
            assert not busy.done()
        finally:
            gate.put("done")
        assert busy.result(timeout=60) == "done"


def test_a_cancelled_task_lets_go_of_a_queue_it_was_sent():
    """A queue whose only handle travels in a task cancelled before it ran ends with the cancel."""
    gate = sp.Queue()
    with sp.InterpreterPoolExecutor(1) as pool:
        busy = pool.submit(sp_tasks.wait_on_queue, gate)
        queue = sp.Queue()
        queue.put(bytes(1 << 20))
        queue_id = queue.__reduce__()[1][0]
        pending = pool.submit(sp_tasks.wait_on_queue, queue)
        del queue
        try:
            attached = _native._attach_queue(queue_id)  # still there: the queued task pins it
            del attached
            assert pending.cancel()
            with pytest.raises(LookupError, match="no longer exists"):
                _native._attach_queue(queue_id)
            assert not busy.done()
        finally:
            gate.put("done")
        assert busy.result(timeout=60) == "done"


def test_sleep_in_a_task_is_interruptible(pool):
    report = sp.Queue()
    # A sleep that ignored the interruption would outlast the get() below by far.
    future = pool.submit(sp_tasks.sleep_until_interrupted, report, 300)
    assert report.get(timeout=60) == "started"
    future.cancel()
    assert report.get(timeout=60) == "interrupted"


# Values time.sleep refuses at once: a worker's interruptible sleep must refuse them the same way
# (inf slept forever there).
BAD_SLEEPS = [math.inf, -math.inf, math.nan, -1, -0.5, 1e300, 2**70, -(2**70), "1", None]


def test_sleep_in_a_task_refuses_what_time_sleep_refuses():
    import time as stdlib_time

    expected = []
    for value in BAD_SLEEPS:
        with pytest.raises((ValueError, OverflowError, TypeError)) as info:
            stdlib_time.sleep(value)
        expected.append((type(info.value).__name__, str(info.value)))
    # task_timeout ends a sleep that would never end, so that a regression fails instead of hanging.
    with sp.InterpreterPoolExecutor(2, task_timeout=60) as pool:
        futures = [pool.submit(sp_tasks.sleep_error, value) for value in BAD_SLEEPS]
        assert [f.result(timeout=90) for f in futures] == expected
        assert pool.submit(sp_tasks.sleep_error, 0).result(timeout=30) is None
        assert pool.submit(sp_tasks.sleep_error, 0.001).result(timeout=30) is None


def test_cancel_interrupts_a_task_blocked_in_queue_get(pool):
    queue = sp.Queue()
    future = pool.submit(sp_tasks.wait_on_queue, queue)
    eventually(future.running, message="the task never started")
    assert future.cancel()
    # The worker is free again, and the queue lost nothing: a later item goes to a later get.
    queue.put("for the next task")
    assert pool.submit(sp_tasks.wait_on_queue, queue).result(timeout=10) == "for the next task"


def test_finished_tasks_leave_no_task_timeout_entries():
    # A finished task's deadline must cost nothing: task_timeout=3600 used to keep one entry per
    # task for an hour (1.2M tasks: 1.2M entries, +302 MB). Submitted in waves, as a stream of
    # work is: each new submission may drop the entries of tasks that have finished.
    waves, per_wave = 100, 30
    with sp.InterpreterPoolExecutor(2, task_timeout=3600) as pool:
        for wave in range(waves):
            futures = [pool.submit(sp_tasks.add, wave, i) for i in range(per_wave)]
            assert [f.result(timeout=60) for f in futures] == [wave + i for i in range(per_wave)]
        # Without dropping, 3,000 entries would wait here for an hour.
        assert pool.stats()["timeout_entries"] <= 128


@pytest.mark.parametrize("endless", [math.inf, 1e300])
def test_infinite_timeouts_mean_no_limit(endless):
    # parallel() sent its calls, then raised OverflowError with the calls still running.
    assert sp.parallel(["sp_tasks", "add", (1, 2)], timeout=endless) == [3]
    # task_timeout=inf killed the timeout thread with a traceback: it is no limit now.
    with sp.InterpreterPoolExecutor(2, task_timeout=endless) as pool:
        assert pool._state.task_timeout is None
        future = pool.submit(sp_tasks.add, 2, 3)
        assert future.result(timeout=endless) == 5
        assert future.exception(timeout=endless) is None
        for ordered in (True, False):
            for chunksize in (1, 2):
                assert sorted(
                    pool.map(
                        sp_tasks.add,
                        [1, 2, 3],
                        [1, 1, 1],
                        timeout=endless,
                        chunksize=chunksize,
                        ordered=ordered,
                    )
                ) == [2, 3, 4]
        q = sp.Queue()
        q.put("x", timeout=endless)
        assert q.get(timeout=endless) == "x"


def test_nan_and_negative_timeouts_are_refused_before_anything_runs():
    with sp.InterpreterPoolExecutor(1) as pool:
        for bad in (math.nan, -1, -math.inf):
            with pytest.raises(ValueError, match="timeout"):
                pool.map(sp_tasks.add, [1], [1], timeout=bad)
            with pytest.raises(ValueError, match="timeout"):
                sp.parallel(["sp_tasks", "add", (1, 2)], timeout=bad, executor=pool)
            with pytest.raises(ValueError, match="task_timeout"):
                sp.InterpreterPoolExecutor(1, task_timeout=bad)
        with pytest.raises(TypeError, match="timeout"):
            pool.map(sp_tasks.add, [1], [1], timeout="1")
        assert pool.stats()["tasks_submitted"] == 0


def test_check_modules_takes_an_infinite_timeout():
    from subinterpreter_parallelism import compat

    assert [r.result for r in compat.check_modules(["json"], timeout=math.inf)] == ["works"]


# task_timeout counts from submission, worker start-up included. The tests below give their pools
# an hour, which every quick task meets on any machine, and once the task under test runs they
# move the deadlines of the tasks submitted so far an hour closer (Swift's DeadlineTimer
# fastForward): no waiting for a short limit, and no bet that a loaded machine meets one (at
# 0.5 s, an endless task was cancelled there before it started).
TASK_TIMEOUT = 3600


def expire_task_timeouts(pool):
    """The task_timeout of every task submitted to ``pool`` so far passes now."""
    assert pool._state.native._fast_forward_deadlines(TASK_TIMEOUT) >= 1


def test_task_timeout_expires_on_the_real_clock():
    # The one wait for a real deadline: whether the endless task was still queued (cancelled)
    # or running (interrupted) when it came, its future fails with TimeoutError.
    report = sp.Queue()
    with sp.InterpreterPoolExecutor(1, task_timeout=0.5) as pool:
        error = pool.submit(sp_tasks.spin_until_interrupted, report).exception(timeout=120)
        assert isinstance(error, TimeoutError) and "within 0.5 s" in str(error), error


def test_task_timeout_stops_running_tasks():
    report = sp.Queue()
    with sp.InterpreterPoolExecutor(1, task_timeout=TASK_TIMEOUT) as pool:
        assert pool.submit(sp_tasks.add, 1, 1).result(timeout=60) == 2  # the worker is up
        slow = pool.submit(sp_tasks.spin_until_interrupted, report)
        assert report.get(timeout=60) == "started"
        expire_task_timeouts(pool)
        # exception() raises TimeoutError if the future is not done; the task's own is returned.
        assert isinstance(slow.exception(timeout=120), TimeoutError)
        assert report.get(timeout=60) == "interrupted"
        assert pool.submit(sp_tasks.add, 1, 2).result(timeout=60) == 3  # worker reused
        assert pool.stats()["tasks_interrupted"] == 1


def test_task_timeout_on_a_sleeping_task():
    report = sp.Queue()
    with sp.InterpreterPoolExecutor(1, task_timeout=TASK_TIMEOUT) as pool:
        assert pool.submit(sp_tasks.add, 1, 1).result(timeout=60) == 2  # the worker is up
        sleeping = pool.submit(sp_tasks.sleep_until_interrupted, report, 300)
        assert report.get(timeout=60) == "started"
        expire_task_timeouts(pool)
        error = sleeping.exception(timeout=120)
        assert isinstance(error, TimeoutError), error
        assert report.get(timeout=60) == "interrupted"
        assert pool.submit(sp_tasks.sleep_then, 0.01, "ok").result(timeout=60) == "ok"


def test_interrupted_task_can_clean_up_and_see_the_exception(pool):
    report = sp.Queue()
    future = pool.submit(sp_tasks.spin_until_interrupted, report)
    assert report.get(timeout=10) == "started"
    future.cancel()
    assert report.get(timeout=10) == "interrupted"
    assert issubclass(sp.TaskInterrupted, BaseException)
    assert not issubclass(sp.TaskInterrupted, Exception)


CTRL_C = """
import os, signal, sys, threading, time
import subinterpreter_parallelism as sp, sp_tasks

mode = sys.argv[1]
pool = sp.InterpreterPoolExecutor(2)
report = sp.Queue()
fired = []

# Handshakes, not timers: SIGINT goes once the main thread waits (result, shutdown), or once
# both tasks have started (parallel, map: the main thread is then inside the call).
def fire(condition=None):
    if condition is not None:
        sp_tasks.wait_until_waiting(condition)
    else:
        assert [report.get(timeout=60) for _ in range(2)] == ["started"] * 2
    fired.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)

def arm(condition=None):
    global firer
    firer = threading.Thread(target=fire, args=(condition,), daemon=True)
    firer.start()

try:
    if mode in ("result", "shutdown", "uncaught"):
        future = pool.submit(sp_tasks.spin_until_interrupted, report)
        assert report.get(timeout=30) == "started"
        if mode == "shutdown":
            arm(pool._state.ended._cond)
            pool.shutdown(wait=True)
        else:
            arm(future._condition)
            future.result()
    elif mode == "parallel":
        arm()
        call = ["sp_tasks", "spin_until_interrupted", (report,)]
        sp.parallel(call, call, executor=pool)
    elif mode == "map":
        arm()
        list(pool.map(sp_tasks.spin_until_interrupted, [report, report], chunksize=1))
except KeyboardInterrupt:
    latency = time.monotonic()
    firer.join()
    print(f"KeyboardInterrupt after {latency - fired[0]:.2f} s", flush=True)
remaining = 2 if mode in ("parallel", "map") else 1  # the "started"s were read already
seen = sorted(report.get(timeout=10) for _ in range(remaining))
print("tasks saw", seen, flush=True)
"""


@pytest.mark.parametrize("mode", ["result", "parallel", "map", "shutdown"])
def test_ctrl_c_while_waiting(mode):
    result = run_python(CTRL_C, argv=[mode], timeout=60)
    assert "Fatal Python error" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    line = next(text for text in result.stdout.splitlines() if text.startswith("KeyboardInterrupt"))
    # The tasks never end by themselves: a Ctrl-C that waited for them would hang. The margin
    # holds on a loaded machine; the benchmark measures the real latency.
    assert float(line.split()[2]) < 10.0, line
    expected = ["interrupted"] * 2 if mode in ("parallel", "map") else ["interrupted"]
    assert f"tasks saw {expected}" in result.stdout, result.stdout


def test_uncaught_ctrl_c_exits_cleanly():
    code = CTRL_C.replace("except KeyboardInterrupt:", "except ZeroDivisionError:")
    result = run_python(code, argv=["result"], timeout=60)
    assert "Fatal Python error" not in result.stderr, result.stderr
    assert "KeyboardInterrupt" in result.stderr
    assert result.returncode in (-2, 130, 1), result.returncode


# -- Stopping only requests the interruption (issue 13, item 1) ---------------------------------
# A task inside a C call that holds its GIL (sum(range(10**8)), a big sort, ...) sees an
# interruption only when the call returns. cancel(), task_timeout and Ctrl-C must not wait for
# that: `hold_gil_in_c` holds the worker's GIL until the test lets it go, and each test checks
# that the caller got control back while the C call still ran.


def test_cancel_returns_while_the_task_holds_its_gil_in_c(pool, tmp_path):
    import threading

    gate = sp_tasks.CGate(tmp_path)
    future = pool.submit(sp_tasks.hold_gil_in_c, gate.path)
    returned = threading.Event()
    verdicts = []

    def cancel():
        verdicts.append(future.cancel())
        returned.set()

    gate.wait_started()
    canceller = threading.Thread(target=cancel)
    canceller.start()
    try:
        assert returned.wait(20), "cancel() waited for the task's C call to end"
        assert not gate.finished
        assert verdicts == [True]
        assert future.cancelled() and future.done()
        with pytest.raises(CancelledError):
            future.result(timeout=0)
    finally:
        gate.release()
        canceller.join(60)
    # Once the C call returns, the interruption reaches it and the worker is free again.
    assert pool.submit(sp_tasks.add, 2, 3).result(timeout=60) == 5
    # The other worker may have run add(): the interrupted one counts once its call returned.
    eventually(lambda: pool.stats()["tasks_interrupted"] == 1, message=pool.stats)


def test_task_timeout_fires_while_the_task_holds_its_gil_in_c(tmp_path):
    gate = sp_tasks.CGate(tmp_path)
    with sp.InterpreterPoolExecutor(1, task_timeout=TASK_TIMEOUT) as pool:
        assert pool.submit(sp_tasks.add, 1, 1).result(timeout=60) == 2  # the worker is up
        future = pool.submit(sp_tasks.hold_gil_in_c, gate.path)
        guard = gate.release_after(120)  # a timeout that waits for the C call would hang here
        try:
            gate.wait_started()
            expire_task_timeouts(pool)
            error = future.exception(timeout=90)  # raises TimeoutError if the future is not done
            assert isinstance(error, TimeoutError), error
            assert not gate.finished
        finally:
            gate.release()
            guard.cancel()
            guard.join()
        assert pool.submit(sp_tasks.add, 1, 2).result(timeout=60) == 3


CTRL_C_IN_C = """
import os, signal, sys, tempfile, threading
import subinterpreter_parallelism as sp, sp_tasks

gate = sp_tasks.CGate(tempfile.mkdtemp())
pool = sp.InterpreterPoolExecutor(1)
future = pool.submit(sp_tasks.hold_gil_in_c, gate.path)
gate.wait_started()
interrupted = threading.Event()

def fire():
    sp_tasks.signal_when_waiting(future._condition)  # the main thread waits in result()
    if not interrupted.wait(20):
        gate.release()  # so that a Ctrl-C stuck behind the C call still ends

threading.Thread(target=fire, daemon=True).start()
try:
    future.result()
except KeyboardInterrupt:
    interrupted.set()
    print("KeyboardInterrupt; the C call had finished:", gate.finished, flush=True)
gate.release()
pool.shutdown()
print("cancelled:", future.cancelled())
"""


def test_ctrl_c_returns_while_the_task_holds_its_gil_in_c():
    result = run_python(CTRL_C_IN_C, timeout=120)
    assert "Fatal Python error" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "KeyboardInterrupt; the C call had finished: False",
        "cancelled: True",
    ], result.stdout + result.stderr


def test_wait_and_as_completed_see_a_running_task_cancelled(pool):
    """Cancelling a running task notifies ``wait`` and ``as_completed`` waiters through the
    public ``Future`` API (``set_running_or_notify_cancel``), as the stdlib's executors do."""
    from concurrent.futures import FIRST_COMPLETED, wait

    report = sp.Queue()
    future = pool.submit(sp_tasks.spin_until_interrupted, report)
    assert report.get(timeout=10) == "started"
    seen = {}

    def by_wait():
        done, _ = wait([future], timeout=60, return_when=FIRST_COMPLETED)
        seen["wait"] = done

    def by_as_completed():
        seen["as_completed"] = list(as_completed([future], timeout=60))

    threads = [threading.Thread(target=by_wait), threading.Thread(target=by_as_completed)]
    for thread in threads:
        thread.start()
    # Both waiters are installed on the future (each registers one before it blocks).
    eventually(lambda: len(future._waiters) >= 2, message="the waiters never installed themselves")
    assert future.running()
    assert future.cancel()
    for thread in threads:
        thread.join(60)
    assert seen == {"wait": {future}, "as_completed": [future]}
    assert future.cancelled() and not future.running()
    assert report.get(timeout=10) == "interrupted"
    assert pool.submit(sp_tasks.add, 1, 2).result(timeout=10) == 3
    assert not pool._state.futures  # the canceller took it out of the table


def test_cancel_racing_the_completion_settles_each_future_once(pool):
    """A cancel sent as the task returns races the completion thread: Swift's verdict lets
    exactly one of them settle the future, so it is either cancelled or has its value, and no
    ``InvalidStateError`` is raised on either side (the completion thread's would be
    reported as unraisable)."""
    import collections
    import sys
    from concurrent.futures import wait

    report = sp.Queue()
    unraisable = []
    previous, sys.unraisablehook = sys.unraisablehook, unraisable.append
    outcomes = collections.Counter()
    try:
        for i in range(300):
            future = pool.submit(sp_tasks.report_then_return, report, i)
            assert report.get(timeout=10) == "started"
            if future.cancel():
                assert future.cancelled()
                with pytest.raises(CancelledError):
                    future.result(timeout=0)
                outcomes["cancelled"] += 1
            else:
                assert future.result(timeout=10) == i
                outcomes["finished"] += 1
            done, _ = wait([future], timeout=10)
            assert done == {future}
            assert future.cancel() is future.cancelled()  # a second cancel agrees with the first
        assert pool.submit(sp_tasks.add, 2, 3).result(timeout=10) == 5  # every event delivered
    finally:
        sys.unraisablehook = previous
    assert not unraisable, [u.exc_value for u in unraisable]
    assert sum(outcomes.values()) == 300, outcomes
    assert not pool._state.futures
    stats = pool.stats()
    assert stats["tasks_submitted"] == 301
