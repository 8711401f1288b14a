"""Bad input and failures on the way in and out of a worker (items 1, 2, 3 and 12 of issue 7).

Modelled on CPython's Lib/test/test_concurrent_futures/test_deadlock.py, which checks every
place a task can fail to pickle or unpickle, in both directions. Here pickling the call happens
in ``submit`` (so it fails there), unpickling the call and pickling the outcome happen in the
worker interpreter, and unpickling the outcome happens on the completion thread. Each failure
must reach exactly the future it belongs to, and the same worker must go on serving.
"""

from __future__ import annotations

import math
import os
import pickle
import socket
import sys
import threading
import types

import pytest

import rel_tasks
import subinterpreter_parallelism as sp
from rel_support import assert_clean_exit, run_python

pytestmark = pytest.mark.timeout(60)

WAIT = 30  # seconds: no single future here should take more than a fraction of this


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(1) as executor:
        yield executor


def assert_healthy(pool, interpreter=None):
    """The pool still runs tasks (on the same worker interpreter, when given)."""
    futures = [pool.submit(rel_tasks.add, i, 1) for i in range(20)]
    assert [f.result(timeout=WAIT) for f in futures] == list(range(1, 21))
    if interpreter is not None:
        assert pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT) == interpreter
    assert not pool._state.futures, "a finished future was left in the pool's table"


# -- 1. cannot be pickled at submit ----------------------------------------------------


@pytest.mark.parametrize(
    "make_bad",
    [
        pytest.param(threading.Lock, id="lock"),
        pytest.param(lambda: (i for i in range(3)), id="generator"),
        pytest.param(lambda: socket.socket(), id="socket"),
        pytest.param(rel_tasks.FailsToPickle, id="reduce-raises"),
        pytest.param(lambda: open(os.devnull, "rb"), id="open-file"),  # noqa: SIM115 (the bad argument)
    ],
)
def test_unpicklable_argument_fails_at_submit(pool, make_bad):
    interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
    bad = make_bad()
    try:
        with pytest.raises((TypeError, pickle.PicklingError, ValueError)) as info:
            pool.submit(rel_tasks.echo, 1, bad)
        notes = getattr(info.value, "__notes__", [])
        assert any("argument 1" in note for note in notes), notes
        with pytest.raises((TypeError, pickle.PicklingError, ValueError)) as info:
            pool.submit(rel_tasks.add, 1, b=bad)
        assert any("keyword argument 'b'" in note for note in info.value.__notes__)
    finally:
        if hasattr(bad, "close"):
            bad.close()
    assert_healthy(pool, interpreter)


def test_unpicklable_callable_fails_at_submit(pool):
    lock = threading.Lock()
    with pytest.raises((TypeError, pickle.PicklingError)) as info:
        pool.submit(lock.acquire)  # a bound method of a lock
    assert any("the function" in note for note in info.value.__notes__)

    def closure_over_a_lock():
        return lock.locked()

    with pytest.raises((TypeError, pickle.PicklingError)) as info:
        pool.submit(closure_over_a_lock)
    assert any("closure_over_a_lock" in note for note in info.value.__notes__)
    with pytest.raises(TypeError, match="not callable"):
        pool.submit("not a function")
    assert_healthy(pool)


def test_base_exception_while_pickling_at_submit(pool):
    """SystemExit raised by a __reduce__ comes out of submit as it is; nothing is queued."""
    with pytest.raises(SystemExit, match="ExitsAtPickle"):
        pool.submit(rel_tasks.echo, rel_tasks.ExitsAtPickle())
    assert pool.stats()["tasks_submitted"] == 0
    assert_healthy(pool)


def test_parallel_with_an_unpicklable_argument_runs_the_other_calls():
    with pytest.raises((TypeError, pickle.PicklingError)) as info:
        sp.parallel(
            ["rel_tasks", "add", (1, 2)],
            ["rel_tasks", "echo", (threading.Lock(),)],
            ["rel_tasks", "add", (3, 4)],
        )
    outcomes = info.value.parallel_outcomes
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[0].value == 3 and outcomes[2].value == 7
    assert sp.parallel(["rel_tasks", "add", (5, 5)]) == [10]


# -- 2. pickles, but fails on the way -------------------------------------------------


def test_argument_that_fails_to_unpickle_in_the_worker(pool):
    interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
    good_before = pool.submit(rel_tasks.add, 1, 1)
    bad = pool.submit(rel_tasks.echo, rel_tasks.FailsToUnpickle())
    good_after = pool.submit(rel_tasks.add, 2, 2)
    with pytest.raises(ValueError, match="refuses to be unpickled") as info:
        bad.result(timeout=WAIT)
    assert isinstance(info.value.__cause__, sp.RemoteTraceback)
    assert good_before.result(timeout=WAIT) == 2 and good_after.result(timeout=WAIT) == 4
    assert_healthy(pool, interpreter)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (rel_tasks.ExitsAtUnpickle(), SystemExit),
        (rel_tasks.InterruptsAtUnpickle(), KeyboardInterrupt),
    ],
)
def test_base_exception_while_unpickling_in_the_worker_stays_in_the_future(pool, value, error):
    interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
    future = pool.submit(rel_tasks.echo, value)
    assert isinstance(future.exception(timeout=WAIT), error)
    assert_healthy(pool, interpreter)


def test_function_from_a_module_the_worker_cannot_import(pool):
    """A function pickled by reference to a module that exists only in the caller.

    This is what makes the stdlib backport's pool hang forever; here the future fails.
    """
    module = types.ModuleType("only_in_the_caller")
    exec("def triple(x):\n    return 3 * x\n", module.__dict__)
    sys.modules["only_in_the_caller"] = module
    try:
        interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
        assert module.triple(2) == 6
        with pytest.raises(ModuleNotFoundError, match="only_in_the_caller"):
            pool.submit(module.triple, 2).result(timeout=WAIT)
        assert_healthy(pool, interpreter)
    finally:
        del sys.modules["only_in_the_caller"]


@pytest.mark.parametrize(
    ("maker", "words"),
    [
        ("make_lock", "lock"),
        ("return_generator", "generator"),
    ],
)
def test_result_that_fails_to_pickle_in_the_worker(pool, maker, words):
    interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
    futures = [
        pool.submit(rel_tasks.add, 1, 1),
        pool.submit(getattr(rel_tasks, maker)),
        pool.submit(rel_tasks.add, 2, 2),
    ]
    with pytest.raises((TypeError, pickle.PicklingError), match=words) as info:
        futures[1].result(timeout=WAIT)
    assert any("while pickling the result" in note for note in info.value.__notes__)
    assert futures[0].result(timeout=WAIT) == 2 and futures[2].result(timeout=WAIT) == 4
    assert_healthy(pool, interpreter)


@pytest.mark.parametrize("name", ["FailsToPickle", "ExitsAtPickle"])
def test_result_whose_pickling_raises(pool, name):
    interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
    error = pool.submit(rel_tasks.make, name).exception(timeout=WAIT)
    assert isinstance(error, ValueError if name == "FailsToPickle" else SystemExit)
    assert name in str(error)
    assert_healthy(pool, interpreter)


def test_result_that_fails_to_unpickle_in_the_caller(pool):
    interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
    with pytest.raises(sp.ExecutionFailed) as info:
        pool.submit(rel_tasks.make, "FailsToUnpickle").result(timeout=WAIT)
    assert "could not be unpickled in the caller" in info.value.message
    assert "refuses to be unpickled" in info.value.message
    with pytest.raises(sp.ExecutionFailed) as info:
        pool.submit(rel_tasks.return_worker_only).result(timeout=WAIT)
    assert "only_in_a_worker_values" in info.value.message
    assert_healthy(pool, interpreter)


@pytest.mark.parametrize("name", ["ExitsAtUnpickle", "InterruptsAtUnpickle"])
def test_base_exception_while_unpickling_the_result_in_the_caller(pool, name):
    """Unpickling runs on the completion thread: a SystemExit there must fail this future
    (not leave it pending forever, not stop the completion thread)."""
    future = pool.submit(rel_tasks.make, name)
    error = future.exception(timeout=WAIT)
    assert isinstance(error, sp.ExecutionFailed), error
    assert name in error.message
    assert_healthy(pool)


# -- 3. exceptions that cannot come back as themselves ---------------------------------


def test_exception_with_an_unpicklable_payload(pool):
    with pytest.raises(sp.ExecutionFailed) as info:
        pool.submit(rel_tasks.raise_lock_payload, "carried a lock").result(timeout=WAIT)
    error = info.value
    assert error.type_name == "rel_tasks.LockCarrier"
    assert "carried a lock" in error.message
    assert "raise_lock_payload" in error.traceback and "rel_tasks.py" in error.traceback
    assert isinstance(error.__cause__, sp.RemoteTraceback)
    assert str(error).startswith("rel_tasks.LockCarrier: ")
    assert_healthy(pool)


def test_exception_class_that_the_caller_cannot_import(pool):
    with pytest.raises(sp.ExecutionFailed) as info:
        pool.submit(rel_tasks.raise_worker_only, "from a worker-only class").result(timeout=WAIT)
    error = info.value
    assert error.type_name == "only_in_a_worker.WorkerOnlyError"
    assert error.message == "from a worker-only class"
    assert "raise_worker_only" in error.traceback
    assert "only_in_a_worker" not in sys.modules
    assert_healthy(pool)


@pytest.mark.parametrize("name", ["RebuildFails", "RebuildExits"])
def test_exception_that_fails_to_rebuild_in_the_caller(pool, name):
    future = pool.submit(rel_tasks.raise_named, name, "message of " + name)
    error = future.exception(timeout=WAIT)
    assert isinstance(error, sp.ExecutionFailed), error
    assert error.type_name == f"rel_tasks.{name}"
    assert error.message == "message of " + name
    assert "raise_named" in error.traceback
    assert_healthy(pool)


def test_exception_whose_str_fails(pool):
    error = pool.submit(rel_tasks.raise_named, "StrFails", "x").exception(timeout=WAIT)
    # It pickles, so it comes back as itself; its traceback text still made it.
    assert type(error) is rel_tasks.StrFails
    assert "raise_named" in error.__cause__.traceback


def test_chained_and_grouped_exceptions(pool):
    with pytest.raises(ValueError, match="outer") as info:
        pool.submit(rel_tasks.raise_chained, "outer").result(timeout=WAIT)
    text = info.value.__cause__.traceback
    assert "LockCarrier" in text and "direct cause" in text
    with pytest.raises(sp.ExecutionFailed) as info:
        pool.submit(rel_tasks.raise_group).result(timeout=WAIT)
    assert info.value.type_name == "ExceptionGroup"
    assert "ValueError: one" in info.value.traceback
    assert_healthy(pool)


def test_execution_failed_from_parallel_keeps_the_other_results():
    with pytest.raises(sp.ExecutionFailed) as info:
        sp.parallel(["rel_tasks", "add", (1, 1)], ["rel_tasks", "raise_worker_only", ("p",)])
    assert info.value.type_name == "only_in_a_worker.WorkerOnlyError"
    assert info.value.parallel_outcomes[0].value == 2


def test_many_mixed_failures_each_reach_their_own_future(pool):
    kinds = ["ok", "unpickle_arg", "pickle_result", "unpicklable_exc", "raise"] * 40
    futures = []
    for i, kind in enumerate(kinds):
        if kind == "ok":
            futures.append(pool.submit(rel_tasks.add, i, 0))
        elif kind == "unpickle_arg":
            futures.append(pool.submit(rel_tasks.echo, rel_tasks.FailsToUnpickle()))
        elif kind == "pickle_result":
            futures.append(pool.submit(rel_tasks.make_lock))
        elif kind == "unpicklable_exc":
            futures.append(pool.submit(rel_tasks.raise_lock_payload, str(i)))
        else:
            futures.append(pool.submit(rel_tasks.planned, "raise", i))
    for i, (kind, future) in enumerate(zip(kinds, futures)):
        error = future.exception(timeout=WAIT)
        if kind == "ok":
            assert error is None and future.result() == i
        elif kind == "unpickle_arg":
            assert isinstance(error, ValueError)
        elif kind == "pickle_result":
            assert isinstance(error, (TypeError, pickle.PicklingError))
        elif kind == "unpicklable_exc":
            assert isinstance(error, sp.ExecutionFailed) and error.message.startswith(f"('{i}'")
        else:
            assert isinstance(error, rel_tasks.PlannedError) and error.args == (i,)
    stats = pool.stats()
    assert stats["tasks_completed"] + stats["tasks_failed"] == len(kinds)
    assert_healthy(pool)


# -- 12. bad constructor arguments -----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_workers": 0}, ValueError),
        ({"max_workers": -1}, ValueError),
        ({"max_workers": -(2**70)}, ValueError),
        ({"max_workers": 10**9}, ValueError),  # the core refuses more than 4096 workers
        ({"max_workers": "2"}, TypeError),
        ({"max_workers": 2.0}, TypeError),
        ({"max_workers": math.nan}, TypeError),
        ({"max_workers": True}, TypeError),
        ({"max_workers": [2]}, TypeError),
        ({"max_workers": 1, "initializer": "not callable"}, TypeError),
        ({"max_workers": 1, "initargs": 5}, TypeError),
        ({"max_workers": 1, "initializer": rel_tasks.echo, "initargs": (threading.Lock(),)}, TypeError),
        ({"max_workers": 1, "task_timeout": 0}, ValueError),
        ({"max_workers": 1, "task_timeout": -1}, ValueError),
        ({"max_workers": 1, "task_timeout": math.nan}, ValueError),
        ({"max_workers": 1, "task_timeout": "1"}, TypeError),
    ],
)
def test_bad_constructor_arguments_raise_and_start_nothing(kwargs, error):
    with pytest.raises(error):
        sp.InterpreterPoolExecutor(**kwargs)
    # (the autouse fixture checks that no thread or interpreter was started)


def test_parallel_rejects_bad_timeout_and_a_shut_down_executor():
    with pytest.raises(ValueError):
        sp.parallel(["rel_tasks", "add", (1, 1)], timeout=-1)
    with pytest.raises(ValueError):
        sp.parallel(["rel_tasks", "add", (1, 1)], timeout=math.nan)
    pool = sp.InterpreterPoolExecutor(1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shutdown"):
        sp.parallel(["rel_tasks", "add", (1, 1)], executor=pool)


@pytest.mark.parametrize("task", ["make_lock", "pickle_with_keywords"])
def test_result_pickling_in_the_worker_then_exit_in_a_fresh_process(task):
    """Issue 13, item 5. On CPython 3.12 before 3.12.4 (python/cpython#119213), the first call
    with keyword arguments of a function of an extension module loaded from a shared library
    caches its keyword names in static memory, allocated by the calling interpreter. A result
    that plain pickle refuses goes to cloudpickle in the worker, which constructs
    ``_pickle.Pickler(file, protocol=..., buffer_callback=...)``: made there first, that cache
    was freed by the main interpreter at exit ("free(): invalid pointer", 3 runs of 3). The
    executor now makes the ``_pickle`` calls with keywords in the caller first."""
    code = f"""
    import subinterpreter_parallelism as sp
    import rel_tasks

    with sp.InterpreterPoolExecutor(1) as pool:
        future = pool.submit(rel_tasks.{task})
        error = future.exception(timeout=60)
        print(type(error).__name__ if error else future.result())
    print("end")
    """
    expected = "TypeError" if task == "make_lock" else "[[1, 2], [3], [1, 2]]"
    for _ in range(3):
        result = run_python(code)
        assert_clean_exit(result)
        assert result.stdout.splitlines() == [expected, "end"], result.stdout
