"""The seed's interface: parallel(["module", "function", (args,)], ...)."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import subinterpreter_parallelism as sp
from conftest import os_thread_count


def test_results_in_call_order():
    calls = [["sp_tasks", "sleep_then", (0.05 * (5 - i), i)] for i in range(5)]
    assert sp.parallel(*calls) == [0, 1, 2, 3, 4]


def test_seed_example_and_keyword_arguments():
    assert sp.parallel(["math", "factorial", (10,)], ["sp_tasks", "add", (1,), {"b": 41}]) == [3628800, 42]


def test_list_and_tuple_calls_and_dotted_function():
    assert sp.parallel(("os.path", "join", ("a", "b")), ["sp_tasks", "Accumulator.__name__.upper", ()]) == [
        "a/b",
        "ACCUMULATOR",
    ]


def test_no_calls():
    assert sp.parallel() == []


def test_runs_in_other_interpreters():
    main_interp, _ = __import__("sp_tasks").identify()
    results = sp.parallel(*[["sp_tasks", "identify", ()] for _ in range(4)])
    assert all(interp != main_interp for interp, _ in results)


def test_bounded_by_worker_count():
    before = os_thread_count()
    sp.parallel(*[["sp_tasks", "echo", (i,)] for i in range(200)])
    workers = sp.default_worker_count()
    # worker threads, the completion thread and the idle watch (reusable.py), never one
    # thread per call
    assert os_thread_count() - before <= workers + 2


def test_lowest_failing_index_raised_with_cause_note_and_outcomes():
    calls = [
        ["sp_tasks", "add", (1, 2)],
        ["sp_tasks", "fail", ("key", "second")],
        ["sp_tasks", "fail", ("value", "third")],
        ["sp_tasks", "add", (3, 4)],
    ]
    with pytest.raises(KeyError) as info:
        sp.parallel(*calls)
    exc = info.value
    assert exc.args == ("second",)
    assert isinstance(exc.__cause__, sp.RemoteTraceback)
    text = exc.__cause__.traceback
    assert "sp_tasks.py" in text and "in fail" in text and "line" in text
    assert any("call 1" in note and "sp_tasks.fail" in note for note in exc.__notes__)
    outcomes = exc.parallel_outcomes
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert outcomes[0].value == 3 and outcomes[3].value == 7
    assert isinstance(outcomes[2].exception, ValueError)
    assert outcomes[1].target == "sp_tasks.fail"


def test_remote_traceback_names_inner_function():
    with pytest.raises(ZeroDivisionError) as info:
        sp.parallel(["sp_tasks", "fail_deep", ()])
    assert "in inner" in info.value.__cause__.traceback
    assert "_worker.py" not in info.value.__cause__.traceback


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        ("not a list", TypeError, "list or tuple"),
        (["sp_tasks", "add"], ValueError, "got 2 elements"),
        (["sp_tasks", "add", (1,), {}, "extra"], ValueError, "got 5 elements"),
        ([1, "add", (1,)], TypeError, "module name"),
        (["sp_tasks", None, (1,)], TypeError, "function name"),
        (["sp_tasks", "", (1,)], TypeError, "function name"),
        (["sp_tasks", "add", [1, 2]], TypeError, "must be a tuple"),
        (["sp_tasks", "add", 1], TypeError, "must be a tuple"),
        (["sp_tasks", "add", (1,), [("b", 2)]], TypeError, "must be a dict"),
        (["sp_tasks", "add", (1,), {2: 3}], TypeError, "must be str"),
    ],
)
def test_bad_input_rejected_before_anything_runs(call, error, words):
    with pytest.raises(error, match=words):
        sp.parallel(["sp_tasks", "add", (1, 1)], call)


@pytest.mark.parametrize("executor", [5, "pool", ThreadPoolExecutor])
def test_executor_that_is_not_an_interpreter_pool_is_a_type_error(executor):
    from subinterpreter_parallelism import reusable

    with pytest.raises(TypeError, match="executor must be an InterpreterPoolExecutor"):
        sp.parallel(["sp_tasks", "add", (1, 1)], executor=executor)
    assert reusable._executor is None  # checked before the shared pool was even made


def test_missing_module_and_function_fail_that_call_only():
    with pytest.raises(ModuleNotFoundError) as info:
        sp.parallel(["sp_tasks", "add", (1, 1)], ["no_such_module_xyz", "f", ()])
    assert info.value.parallel_outcomes[0].value == 2
    with pytest.raises(AttributeError):
        sp.parallel(["sp_tasks", "no_such_function", ()])
    assert sp.parallel(["sp_tasks", "add", (2, 2)]) == [4]  # the pool is still usable


def test_unpicklable_argument_fails_with_pickle_error():
    lock = threading.Lock()
    with pytest.raises(TypeError, match="pickle") as info:
        sp.parallel(["sp_tasks", "echo", (lock,)], ["sp_tasks", "add", (1, 2)])
    assert info.value.parallel_outcomes[1].value == 3
    assert any("argument" in note for note in info.value.__notes__)


def test_unpicklable_result_fails_with_pickle_error():
    with pytest.raises(TypeError, match="pickle") as info:
        sp.parallel(["sp_tasks", "return_unpicklable", ()])
    assert any("pickling the result" in note for note in info.value.__notes__)
    assert sp.parallel(["sp_tasks", "add", (2, 3)]) == [5]


def test_values_round_trip_exactly():
    values = [
        b"a\x00b\x00\x00c",
        2**4000 + 17,
        -(2**200),
        {"nested": [1, (2, 3), {4, 5}, frozenset({6})], "none": None, "f": 1.5e300},
        "ünïcødé \x00 text",
        bytearray(b"\x00\xff" * 10),
        [[[[[]]]]],
        (),
        complex(1, -2),
    ]
    assert sp.parallel(*[["sp_tasks", "echo", (v,)] for v in values]) == values


def test_hundred_megabytes_round_trip():
    blob = bytes(range(256)) * (100 * 1024 * 1024 // 256)
    (result,) = sp.parallel(["sp_tasks", "echo", (blob,)])
    assert result == blob


def test_timeout_interrupts_running_calls_and_pool_is_reused():
    # Workers started first, so that add() surely finishes within the timeout on a loaded
    # machine; the other call never ends unless interrupted, and reports that it was.
    assert sp.parallel(["sp_tasks", "add", (0, 0)], ["sp_tasks", "add", (0, 0)]) == [0, 0]
    report = sp.Queue()
    with pytest.raises(TimeoutError) as info:
        sp.parallel(["sp_tasks", "spin_until_interrupted", (report,)], ["sp_tasks", "add", (1, 1)], timeout=5)
    outcomes = info.value.parallel_outcomes
    assert outcomes[1].value == 2
    assert not outcomes[0].ok
    assert [report.get(timeout=60) for _ in range(2)] == ["started", "interrupted"]
    assert sp.parallel(["sp_tasks", "add", (5, 5)], timeout=10) == [10]


def test_exceptions_keep_type_and_args_through_pickle():
    with pytest.raises(sp.ExecutionFailed) as info:
        sp.parallel(["sp_tasks", "raise_bad_init", ()])
    assert info.value.type_name == "sp_tasks.BadInitError"
    assert info.value.message == "1-2"
    assert "raise_bad_init" in info.value.traceback
    pickle.loads(pickle.dumps(info.value))  # ExecutionFailed itself pickles
