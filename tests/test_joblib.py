"""The joblib backend "subinterpreters" (subinterpreter_parallelism.joblib_backend)."""

from __future__ import annotations

import inspect
import threading

import pytest

joblib = pytest.importorskip("joblib")
from joblib import Parallel, delayed, parallel_config

import sp_tasks
import subinterpreter_parallelism as sp
from conftest import run_python
from subinterpreter_parallelism import reusable

WAIT = 60


@pytest.fixture(autouse=True)
def registered():
    sp.register_joblib_backend()


def main_interpreter() -> int:
    return sp_tasks.identify()[0]


def test_registered_on_import_only_when_joblib_is_imported_first():
    done = run_python("""
        import joblib, subinterpreter_parallelism as sp
        from joblib.parallel import BACKENDS
        print("subinterpreters" in BACKENDS)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True\n"
    done = run_python("""
        import subinterpreter_parallelism as sp
        import joblib
        from joblib.parallel import BACKENDS
        print("subinterpreters" in BACKENDS)
        sp.register_joblib_backend()
        print("subinterpreters" in BACKENDS)
        with joblib.parallel_config(backend="subinterpreters", n_jobs=2):
            print(joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(5)))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False\nTrue\n[0, 1, 2, 3, 4]\n"


@pytest.mark.parametrize("n_jobs", [2, -1, None])
def test_parallel_and_delayed(n_jobs):
    with parallel_config(backend="subinterpreters"):
        results = Parallel(n_jobs=n_jobs)(delayed(sp_tasks.square)(i) for i in range(50))
    assert results == [i * i for i in range(50)]
    where = Parallel(n_jobs=n_jobs, backend="subinterpreters")(delayed(sp_tasks.identify)() for _ in range(8))
    assert all(interp != main_interpreter() for interp, _ in where)
    expected = sp.default_worker_count() if n_jobs in (-1, None) else n_jobs
    assert reusable._executor is not None and reusable._executor.max_workers == expected


def test_n_jobs_1_runs_sequentially_in_the_caller():
    where = Parallel(n_jobs=1, backend="subinterpreters")(delayed(sp_tasks.identify)() for _ in range(3))
    assert {interp for interp, _ in where} == {main_interpreter()}
    assert reusable._executor is None  # no pool was made


def test_keyword_arguments_lambdas_and_the_shared_pool():
    with parallel_config(backend="subinterpreters", n_jobs=2):
        assert Parallel()(delayed(sp_tasks.add)(i, b=10) for i in range(4)) == [10, 11, 12, 13]
        assert Parallel()(delayed(lambda x: x + 1)(i) for i in range(3)) == [1, 2, 3]
        pool = reusable._executor
        Parallel()(delayed(sp_tasks.square)(i) for i in range(3))
        assert reusable._executor is pool  # warm between calls
    assert sp.get_reusable_executor(2) is pool
    assert sp.parallel(["math", "gcd", (12, 18)]) == [6]  # parallel() shares it too


def test_return_as_generator_yields_in_order():
    gen = Parallel(n_jobs=2, backend="subinterpreters", return_as="generator")(
        delayed(sp_tasks.sleep_then)(0.01 * (5 - i), i) for i in range(5)
    )
    assert inspect.isgenerator(gen)
    assert list(gen) == [0, 1, 2, 3, 4]


def test_return_as_generator_unordered_yields_as_they_finish():
    gen = Parallel(n_jobs=2, backend="subinterpreters", return_as="generator_unordered", batch_size=1)(
        delayed(sp_tasks.sleep_then)(delay, value) for delay, value in [(1.0, "slow"), (0.0, "a"), (0.0, "b")]
    )
    results = list(gen)
    assert sorted(results) == ["a", "b", "slow"]
    assert results[-1] == "slow"


@pytest.mark.parametrize("kind, exc_type", [("key", KeyError), ("value", ValueError), ("type", TypeError)])
def test_exceptions_keep_their_type_and_remote_traceback(kind, exc_type):
    with pytest.raises(exc_type) as info:
        Parallel(n_jobs=2, backend="subinterpreters")(
            delayed(sp_tasks.fail)(kind, "boom") if i == 3 else delayed(sp_tasks.square)(i) for i in range(8)
        )
    assert info.value.args == ("boom",)
    assert isinstance(info.value.__cause__, sp.RemoteTraceback)
    assert "in fail" in info.value.__cause__.traceback


def test_an_error_interrupts_the_running_tasks():
    report = sp.Queue()
    with pytest.raises(RuntimeError, match="stop"):
        Parallel(n_jobs=2, backend="subinterpreters", batch_size=1)(
            [
                delayed(sp_tasks.spin_until_interrupted)(report),
                delayed(sp_tasks.sleep_then)(0.2, None),
                delayed(sp_tasks.fail)("runtime", "stop"),
            ]
        )
    assert report.get(timeout=WAIT) == "started"
    assert report.get(timeout=WAIT) == "interrupted"


def test_timeout_interrupts_the_task():
    import multiprocessing

    report = sp.Queue()
    # Workers started first, and a timeout of seconds: the endless task surely starts before
    # the timeout on a loaded machine (it reports that it started, then that it was stopped).
    assert Parallel(n_jobs=2, backend="subinterpreters")(delayed(sp_tasks.square)(i) for i in range(2)) == [
        0,
        1,
    ]
    with pytest.raises((TimeoutError, multiprocessing.TimeoutError)):  # joblib raises the latter
        Parallel(n_jobs=2, backend="subinterpreters", timeout=5)(
            [delayed(sp_tasks.spin_until_interrupted)(report), delayed(sp_tasks.square)(2)]
        )
    assert report.get(timeout=WAIT) == "started"
    assert report.get(timeout=WAIT) == "interrupted"


def test_executor_options_after_the_backend_name():
    with parallel_config(
        backend="subinterpreters", n_jobs=2, initializer=sp_tasks.record_init, initargs=("j",)
    ):
        inits = Parallel()(delayed(sp_tasks.init_count)() for _ in range(2))
    assert inits == [["j"], ["j"]]
    assert reusable._options == {"initializer": sp_tasks.record_init, "initargs": ("j",)}
    with (
        pytest.raises(TypeError, match="no_such_option"),
        parallel_config(backend="subinterpreters", no_such_option=1),
    ):
        pass


def test_nested_calls_from_threads_share_the_pool():
    def inner(k):
        return sum(
            Parallel(n_jobs=2, backend="subinterpreters")(delayed(sp_tasks.add)(k, i) for i in range(10))
        )

    results = Parallel(n_jobs=4, backend="threading")(delayed(inner)(k) for k in range(8))
    assert results == [10 * k + 45 for k in range(8)]
    assert threading.active_count() >= 1


def test_nested_call_inside_a_task():
    try:
        with parallel_config(backend="subinterpreters", n_jobs=2):
            results = Parallel()(delayed(sp_tasks.joblib_nested)(3) for _ in range(2))
    except ImportError as exc:
        # joblib imports modules that refuse own-GIL interpreters: faulthandler (3.13 to 3.15),
        # and on 3.12 _ctypes first. The error names the refusing module.
        assert "does not support loading in subinterpreters" in str(exc)
        assert "faulthandler" in str(exc) or "_ctypes" in str(exc)
        return
    assert results == [([0, 1, 4], "sequential")] * 2
