"""``preload="auto"``: idle workers import the modules of submitted functions ahead of the
tasks that need them (preload.py's ``AutoWarm``, the Swift pool's warm list)."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
import warm_blocking
import warm_broken
import warm_recorded
import warm_tasks
from conftest import run_python
from subinterpreter_parallelism import _native

TIMEOUT = 60  # a safety net only: every wait below ends on a handshake


@pytest.fixture(autouse=True)
def warm_at_once(monkeypatch):
    """Modules are warmed as their first task is submitted, on 3.12 too (where they otherwise
    wait for that task's success: see the last test). None of these modules is refused."""
    from subinterpreter_parallelism import _versions

    monkeypatch.setattr(_versions, "ONE_WORKER_FIRST", False)


def _reports(queue, n):
    return [queue.get(timeout=TIMEOUT) for _ in range(n)]


def _eventually(condition):
    """Polls ``condition`` until it holds (a failure detector, not a delay)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_one_task_warms_its_module_in_every_worker():
    report = sp.Queue()
    with sp.InterpreterPoolExecutor(
        4, preload="auto", initializer=warm_tasks.set_queues, initargs=(report,)
    ) as pool:
        assert pool.submit(warm_recorded.double, 21).result(timeout=TIMEOUT) == 42
        # Every worker imports the module once: the one that ran the task for it, the three
        # others while idle, in a warm import.
        imports = _reports(report, 4)
        assert sorted(worker for _, worker, _ in imports) == [0, 1, 2, 3]
        assert {module for module, _, _ in imports} == {"warm_recorded"}
        assert sum(warm for _, _, warm in imports) >= 3
        stats = pool.stats()
        assert stats["tasks_submitted"] == 1
        assert stats["warm_modules"] == ["warm_recorded"]
        assert stats["warm_failures"] == {}
        # Each worker gets through its warm list: the module, imported (or found imported).
        # (Waited for here: leaving the block interrupts a warm import still running.)
        _eventually(lambda: pool.stats()["warmed_modules"] == [["warm_recorded"]] * 4)


def test_without_auto_nothing_is_warmed():
    report = sp.Queue()
    with sp.InterpreterPoolExecutor(4, initializer=warm_tasks.set_queues, initargs=(report,)) as pool:
        assert pool.submit(warm_recorded.double, 1).result(timeout=TIMEOUT) == 2
    # The pool has ended: only the worker that ran the task imported the module.
    assert len(_reports(report, 1)) == 1
    assert report.empty()
    stats = pool.stats()
    assert stats["warm_modules"] == [] and stats["warmed_modules"] == [[]] * 4


def test_a_failing_warm_import_breaks_nothing(caplog):
    caplog.set_level(logging.WARNING, logger="subinterpreter_parallelism")
    warned = threading.Event()

    class Flag(logging.Handler):
        def emit(self, record):
            if "warm_broken" in record.getMessage():
                warned.set()

    flag = Flag()
    logging.getLogger("subinterpreter_parallelism").addHandler(flag)
    report = sp.Queue()
    try:
        with sp.InterpreterPoolExecutor(
            3, preload="auto", initializer=warm_tasks.set_queues, initargs=(report,)
        ) as pool:
            # The task that needs the module gets its own error, as without warming.
            with pytest.raises(RuntimeError, match="warm_broken refuses worker interpreters"):
                pool.submit(warm_broken.never, 1).result(timeout=TIMEOUT)
            assert warned.wait(TIMEOUT)
            # Warm lists are taken in order: once each worker has imported the next module,
            # each has tried (and failed) the broken one before.
            assert pool.submit(warm_recorded.double, 2).result(timeout=TIMEOUT) == 4
            assert sorted(worker for _, worker, _ in _reports(report, 3)) == [0, 1, 2]
            assert pool.status == "running"
            assert [
                f.result(timeout=TIMEOUT) for f in [pool.submit(sp_tasks.add, i, 1) for i in range(6)]
            ] == list(range(1, 7))
            stats = pool.stats()
            assert (
                "RuntimeError: warm_broken refuses worker interpreters"
                in stats["warm_failures"]["warm_broken"]
            )
            assert list(stats["warm_failures"]) == ["warm_broken"]
            assert all("warm_broken" not in warmed for warmed in stats["warmed_modules"])
    finally:
        logging.getLogger("subinterpreter_parallelism").removeHandler(flag)
    # Said once for the pool, not once per worker.
    warnings = [r for r in caplog.records if "warm_broken" in r.getMessage()]
    assert len(warnings) == 1
    assert "could not import module 'warm_broken' ahead of its tasks" in warnings[0].getMessage()


def test_a_blocked_warm_import_holds_no_task_back():
    report, release = sp.Queue(), sp.Queue()
    with sp.InterpreterPoolExecutor(
        2, preload="auto", initializer=warm_tasks.set_queues, initargs=(report, release)
    ) as pool:
        # The task is queued before its module is warmed: one worker takes it (its import of
        # the module does not block), the other warms the module and blocks inside the import.
        first = pool.submit(warm_blocking.triple, 1)
        module, blocked, in_warm = report.get(timeout=TIMEOUT)
        assert (module, in_warm) == ("warm_blocking", True)
        assert first.result(timeout=TIMEOUT) == 3
        assert pool._state.native.worker_activities()[blocked] == _native.WORKER_WARMING
        # Tasks submitted while that import blocks run on the other worker.
        ran_on = {pool.submit(warm_tasks.worker_index).result(timeout=TIMEOUT) for _ in range(3)}
        assert ran_on == {1 - blocked}
        assert pool.submit(warm_blocking.triple, 2).result(timeout=TIMEOUT) == 6
        assert pool._state.native.worker_activities()[blocked] == _native.WORKER_WARMING
        release.put(None)
        # Waited for: leaving the block would interrupt the import if it still ran.
        _eventually(lambda: "warm_blocking" in pool.stats()["warmed_modules"][blocked])
    stats = pool.stats()
    assert "warm_blocking" in stats["warmed_modules"][blocked]
    assert stats["warm_failures"] == {}


def test_a_waiting_task_goes_before_the_next_warm_import():
    """A worker warms one module at a time and takes a waiting task before the next one."""
    report, release, held = sp.Queue(), sp.Queue(), sp.Queue()
    with sp.InterpreterPoolExecutor(
        2, preload="auto", initializer=warm_tasks.set_queues, initargs=(report, release)
    ) as pool:
        assert pool.submit(warm_blocking.triple, 1).result(timeout=TIMEOUT) == 3
        _, blocked, _ = report.get(timeout=TIMEOUT)  # this worker is inside the warm import
        hold = pool.submit(warm_tasks.hold, held)  # the other worker is busy from here
        assert report.get(timeout=TIMEOUT) == ("hold", 1 - blocked, False)
        # Queued while no worker is free; its module joins the warm list behind the blocked one.
        task = pool.submit(warm_recorded.double, 3)
        assert pool.stats()["warm_modules"] == ["warm_blocking", "warm_tasks", "warm_recorded"]
        release.put(None)
        # The freed worker runs the task (importing its module for it) before warming more.
        assert report.get(timeout=TIMEOUT) == ("warm_recorded", blocked, False)
        assert task.result(timeout=TIMEOUT) == 6
        held.put("done")
        assert hold.result(timeout=TIMEOUT) == "done"


def test_shutdown_interrupts_a_blocked_warm_import():
    report, release = sp.Queue(), sp.Queue()
    pool = sp.InterpreterPoolExecutor(
        2, preload="auto", initializer=warm_tasks.set_queues, initargs=(report, release)
    )
    assert pool.submit(warm_blocking.triple, 1).result(timeout=TIMEOUT) == 3
    _, blocked, _ = report.get(timeout=TIMEOUT)
    # Never released: cancel_futures stops what is not a task (initializers, warm imports).
    pool.shutdown(wait=True, cancel_futures=True)
    assert pool._state.native.alive_workers() == 0
    stats = pool.stats()
    assert "warm_blocking" not in stats["warmed_modules"][blocked]
    assert stats["warm_failures"] == {}  # stopped on request: no failure of the module


def test_a_fresh_interpreter_warms_the_list_again():
    """With max_tasks_per_worker, each new interpreter of a worker starts its warm list over."""
    report = sp.Queue()
    with sp.InterpreterPoolExecutor(
        1, preload="auto", max_tasks_per_worker=1, initializer=warm_tasks.set_queues, initargs=(report,)
    ) as pool:
        assert pool.submit(warm_recorded.double, 1).result(timeout=TIMEOUT) == 2
        # The task's interpreter imported it for the task, then ended; the next one warms it.
        assert _reports(report, 2) == [("warm_recorded", 0, False), ("warm_recorded", 0, True)]


def test_which_module_is_warmed():
    with sp.InterpreterPoolExecutor(2, preload="auto") as pool:
        calls = [
            (print, ("from a builtin",)),  # builtins: never
            (functools.partial(sp_tasks.add, 1), (2,)),  # the partial's function
            (warm_recorded.Doubler().apply, (3,)),  # a bound method's class
            (json.dumps, ([1],)),  # a stdlib module
        ]
        for fn, args in calls:
            pool.submit(fn, *args).result(timeout=TIMEOUT)
        assert list(pool.map(warm_blocking.triple, range(100))) == [3 * i for i in range(100)]
        assert pool.stats()["warm_modules"] == ["sp_tasks", "warm_recorded", "json", "warm_blocking"]


def test_explicit_modules_with_auto():
    with sp.InterpreterPoolExecutor(2, preload=["warm_recorded", "auto"]) as pool:
        # Preloaded in every worker before the constructor returned, so never warmed; the
        # other modules of submitted functions are.
        assert pool.submit(warm_recorded.double, 5).result(timeout=TIMEOUT) == 10
        assert pool.submit(sp_tasks.module_loaded, "warm_recorded").result(timeout=TIMEOUT) is True
        assert pool.stats()["warm_modules"] == ["sp_tasks"]


def test_functions_of_main_are_not_warmed():
    result = run_python("""
        import subinterpreter_parallelism as sp

        def square(x):
            return x * x

        with sp.InterpreterPoolExecutor(2, preload="auto") as pool:
            print(pool.submit(square, 7).result(), pool.submit(lambda: 1).result(),
                  list(pool.map(square, range(40))) == [x * x for x in range(40)])
            print(pool.stats()["warm_modules"])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "49 1 True\n[]\n"


@pytest.mark.parametrize(
    "preload, message",
    [
        (3, 'preload must be a module name, "auto", or an iterable of them, not int'),
        (None, "not NoneType"),
        (b"json", "not bytes"),
        (["auto", ""], "got ''"),
        (["json", None], "got None"),
    ],
)
def test_bad_preload_values(preload, message):
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sp.InterpreterPoolExecutor(1, preload=preload)


def test_one_worker_first_warms_after_a_task_succeeded(monkeypatch):
    """3.12 (a module refused in one interpreter crashes the process when another one tries
    it): a module is warmed only once a task of it has succeeded in some worker."""
    from subinterpreter_parallelism import preload

    monkeypatch.setattr(preload._versions, "ONE_WORKER_FIRST", True)
    report = sp.Queue()
    with sp.InterpreterPoolExecutor(
        3, preload="auto", initializer=warm_tasks.set_queues, initargs=(report,)
    ) as pool:
        with pytest.raises(RuntimeError, match="warm_broken refuses"):
            pool.submit(warm_broken.never, 1).result(timeout=TIMEOUT)
        assert pool.submit(warm_recorded.double, 4).result(timeout=TIMEOUT) == 8
        assert sorted(worker for _, worker, _ in _reports(report, 3)) == [0, 1, 2]
        stats = pool.stats()
        # The failed task's module was never tried by another worker.
        assert stats["warm_modules"] == ["warm_recorded"] and stats["warm_failures"] == {}


@pytest.mark.parametrize("how", ["shutdown()", "with"])
def test_a_plain_shutdown_interrupts_a_warm_import_no_task_needs(how):
    """Issue 22, item 4: ``shutdown()`` and leaving ``with`` used to wait for a speculative warm
    import (19.5 s in the report; here for ever, since it is never released)."""
    report, release = sp.Queue(), sp.Queue()
    pool = sp.InterpreterPoolExecutor(
        2, preload="auto", initializer=warm_tasks.set_queues, initargs=(report, release)
    )
    assert pool.submit(warm_blocking.triple, 1).result(timeout=TIMEOUT) == 3
    _, blocked, _ = report.get(timeout=TIMEOUT)  # a worker is inside the warm import

    def stop():
        if how == "with":
            with pool:
                pass
        else:
            pool.shutdown()

    stopping = threading.Thread(target=stop)
    stopping.start()
    stopping.join(TIMEOUT)
    hung = stopping.is_alive()
    if hung:  # the failure: let the import end, so that the test can
        release.put(None)
        stopping.join()
    assert not hung and pool._state.native.alive_workers() == 0
    assert "warm_blocking" not in pool.stats()["warmed_modules"][blocked]
    assert pool.stats()["warm_failures"] == {}  # stopped on request: no failure of the module
