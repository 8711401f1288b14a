"""The library's own waits inside a task end when the task is interrupted (issue 22, item 5).

A task that waits on a pool of its own (``result()``, ``exception()``, ``wait``,
``as_completed``, ``map``) or on ``parallel()`` is stopped by ``cancel()`` or ``task_timeout``
at once, as ``time.sleep`` and ``Queue.get`` in a task are; the inner task stops with it.
Before, the wait went on in a lock nothing could end, and the worker stayed busy (here until
the test gave up after ``TIMEOUT`` and released the inner task).
"""

from __future__ import annotations

import pytest

import stop_tasks
import subinterpreter_parallelism as sp

TIMEOUT = 60

WAYS = ["result", "exception", "wait", "as_completed", "map", "map unordered", "parallel"]


@pytest.mark.parametrize("how", WAYS)
def test_cancel_ends_a_wait_on_a_nested_pool(how):
    report, gate = sp.Queue(), sp.Queue()
    with sp.InterpreterPoolExecutor(1) as outer:
        future = outer.submit(stop_tasks.wait_on_nested, report, gate, how)
        try:
            assert report.get(timeout=TIMEOUT) == "inner started"
            assert future.cancel()
            seen = {report.get(timeout=TIMEOUT), report.get(timeout=TIMEOUT)}
            assert seen == {"outer interrupted", "inner interrupted"}
        finally:
            gate.put("release")  # a failed test must not leave the tasks waiting
    assert future.cancelled()


def test_task_timeout_ends_a_wait_on_a_nested_pool():
    report, gate = sp.Queue(), sp.Queue()
    with sp.InterpreterPoolExecutor(1, task_timeout=3) as outer:
        future = outer.submit(stop_tasks.wait_on_nested, report, gate, "result")
        try:
            with pytest.raises(TimeoutError):
                future.result(timeout=TIMEOUT)
            seen = {report.get(timeout=TIMEOUT) for _ in range(3)}
            assert seen == {"inner started", "outer interrupted", "inner interrupted"}
        finally:
            gate.put("release")


def test_waits_in_a_task_still_return_their_results():
    """The interruptible waits are the same waits: values, timeouts and exceptions as before."""
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(_nested_results).result(timeout=TIMEOUT) == [
            "value 4",
            "timeout",
            "exception ValueError",
            "wait 2 done",
            "as_completed [1, 4]",
            "map [0, 1, 4]",
            "map unordered [0, 1, 4]",
            "parallel [6]",
        ]


def _nested_results():
    from concurrent import futures as cf

    import sp_tasks
    import subinterpreter_parallelism as sp

    seen = []
    with sp.InterpreterPoolExecutor(2) as inner:
        seen.append(f"value {inner.submit(sp_tasks.square, 2).result()}")
        gate = sp.Queue()
        blocked = inner.submit(sp_tasks.wait_on_queue, gate)
        try:
            blocked.result(timeout=0.01)
        except TimeoutError:
            seen.append("timeout")
        gate.put("go")
        error = inner.submit(sp_tasks.fail, "value", "x").exception()
        seen.append(f"exception {type(error).__name__}")
        done, _ = cf.wait([inner.submit(sp_tasks.square, 1), blocked])
        seen.append(f"wait {len(done)} done")
        seen.append(
            f"as_completed {sorted(f.result() for f in cf.as_completed([inner.submit(sp_tasks.square, i) for i in (1, 2)]))}"
        )
        seen.append(f"map {list(inner.map(sp_tasks.square, range(3)))}")
        seen.append(f"map unordered {sorted(inner.map(sp_tasks.square, range(3), ordered=False))}")
    seen.append(f"parallel {sp.parallel(['math', 'factorial', (3,)])}")
    return seen
