"""Errors that tell a stuck user what to do: one clean error for an argument that cannot be
pickled, and a pointer to the executor for ``parallel()`` calls of the script's functions."""

from __future__ import annotations

import threading

import pytest

import subinterpreter_parallelism as sp
from conftest import run_python


def _chained(exc: BaseException) -> list[BaseException]:
    seen = []
    while (exc.__context__ is not None and not exc.__suppress_context__) or exc.__cause__ is not None:
        exc = exc.__cause__ or exc.__context__
        seen.append(exc)
    return seen


@pytest.mark.timeout(60)
def test_unpicklable_argument_raises_one_error_without_a_chain():
    with sp.InterpreterPoolExecutor(1) as pool:
        with pytest.raises(TypeError, match=r"cannot pickle '_thread\.lock' object") as info:
            pool.submit(len, threading.Lock())
        assert _chained(info.value) == []
        assert "argument 0 (_thread.lock) cannot be pickled" in "\n".join(info.value.__notes__)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("function", ["f", "lambda x: x"], ids=["main-function", "lambda"])
def test_script_shows_one_traceback_for_an_unpicklable_argument(function: str):
    # A function of __main__ and a lambda take the by-value paths (definitions, cloudpickle).
    done = run_python(
        f"""
        import threading
        import subinterpreter_parallelism as sp

        def f(x):
            return x

        with sp.InterpreterPoolExecutor(1) as pool:
            pool.submit({function}, threading.Lock())
        """,
        timeout=100,
    )
    assert done.returncode == 1
    assert "During handling of the above exception" not in done.stderr, done.stderr
    assert done.stderr.count("Traceback (most recent call last)") == 1, done.stderr
    assert "TypeError: cannot pickle '_thread.lock' object" in done.stderr
    assert "argument 0 (_thread.lock) cannot be pickled" in done.stderr


@pytest.mark.timeout(120)
def test_parallel_of_a_main_function_points_to_the_executor():
    done = run_python(
        """
        import subinterpreter_parallelism as sp

        def f(x):
            return x

        sp.parallel(["__main__", "f", (1,)])
        """,
        timeout=100,
    )
    assert done.returncode == 1
    assert "AttributeError" in done.stderr
    assert "pass the function object to the executor instead" in done.stderr, done.stderr
    assert "pool.submit(f, ...)" in done.stderr, done.stderr
