"""Deep recursion inside tasks: RecursionError, never a crash (item 4 of issue 7).

Worker threads get ``_native.WORKER_STACK_SIZE`` bytes of stack (32 MiB, four times a main
thread's usual 8 MiB), so that CPython's C recursion limit trips long before the stack ends,
even after a task raises ``sys.setrecursionlimit``. The risky cases run in a fresh process
(tests/reliability/rel_deep.py) so that a crash fails one test instead of killing pytest.
"""

from __future__ import annotations

import ctypes
import json
import pickle
import sys
from pathlib import Path

import pytest

import rel_tasks
import subinterpreter_parallelism as sp
from rel_support import assert_clean_exit, run_python
from subinterpreter_parallelism import _native, _versions

pytestmark = pytest.mark.timeout(180)

HERE = Path(__file__).resolve().parent


def run_deep(case: str, where: str, limit: str = "high"):
    """Runs rel_deep.py's ``case`` in a new process; returns (completed process, JSON or None)."""
    result = run_python("", str(HERE / "rel_deep.py"), case, where, limit, timeout=150)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result, (json.loads(lines[-1]) if lines else None)


def assert_no_crash(result, line):
    assert_clean_exit(result)
    assert line is not None, result.stdout + result.stderr


def test_worker_threads_have_the_promised_stack_size():
    assert _native.WORKER_STACK_SIZE >= 16 << 20
    pthread_getattr_np = ctypes.CDLL(None, use_errno=True).pthread_getattr_np
    libc = ctypes.CDLL(None)
    attr = ctypes.create_string_buffer(256)  # pthread_attr_t is 56 bytes on x86-64 glibc
    size = ctypes.c_size_t()
    with sp.InterpreterPoolExecutor(2) as pool:
        idents = {pool.submit(rel_tasks.where).result(timeout=30)[1] for _ in range(20)}
        # Ask while the workers are alive (they are, until shutdown).
        for ident in idents:
            assert pthread_getattr_np(ctypes.c_ulong(ident), attr) == 0
            try:
                assert libc.pthread_attr_getstacksize(attr, ctypes.byref(size)) == 0
            finally:
                libc.pthread_attr_destroy(attr)
            assert size.value >= _native.WORKER_STACK_SIZE, (hex(ident), size.value)


def test_plain_recursion_raises_recursion_error_and_the_worker_goes_on():
    def forever(n):
        return forever(n + 1) + 1

    with sp.InterpreterPoolExecutor(1) as pool:
        interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=30)
        with pytest.raises(RecursionError) as info:
            pool.submit(forever, 0).result(timeout=60)
        assert "forever" in info.value.__cause__.traceback
        assert pool.submit(rel_tasks.interpreter_id).result(timeout=30) == interpreter
        # The worker's recursion limit is untouched by the failure.
        assert pool.submit(sys.getrecursionlimit).result(timeout=30) == sys.getrecursionlimit()


def test_recursion_limit_set_in_a_task_stays_in_that_worker():
    """sys is per interpreter: a task's setrecursionlimit affects later tasks of that worker
    only, never the caller (as with a process pool)."""

    def set_limit(limit):
        import sys

        old = sys.getrecursionlimit()
        sys.setrecursionlimit(limit)
        return old

    mine = sys.getrecursionlimit()
    with sp.InterpreterPoolExecutor(1) as pool:
        pool.submit(set_limit, 50_000).result(timeout=30)
        assert pool.submit(sys.getrecursionlimit).result(timeout=30) == 50_000
        assert sys.getrecursionlimit() == mine
        # Even a very low limit leaves the worker able to report a failure.
        pool.submit(set_limit, 40).result(timeout=30)
        with pytest.raises(rel_tasks.PlannedError):
            pool.submit(rel_tasks.planned, "raise", "low limit").result(timeout=30)
        pool.submit(set_limit, 1000).result(timeout=30)


# Each case recurses 200,000 levels deep with sys.setrecursionlimit(1_000_000) in the task.
# What must come out: RecursionError (or the listed error), never a crash.
DEEP_CASES = {
    "python": {"RecursionError", "int"},  # pure Python calls use no C stack: may just return
    "repr_list": {"RecursionError"},
    "pickle_list": {"RecursionError", "PicklingError"},
    "json_dumps": {"RecursionError"},
    "json_loads": {"RecursionError"},
    "compare_lists": {"RecursionError"},
    "deepcopy": {"RecursionError", "bool"},  # copy.deepcopy is Python: may just finish
    "repr_nodes": {"RecursionError"},
    "compare_nodes": {"RecursionError"},
    "getattr_nodes": {"RecursionError"},
    "map": {"RecursionError"},
    "sorted_key": {"RecursionError"},
    "eval_nested": {"SyntaxError", "RecursionError", "MemoryError"},
    "isinstance_nested": {"RecursionError"},
    "return_nested": {"RecursionError", "PicklingError"},  # pickling the result must fail cleanly
    "dealloc_chain": {"str"},  # freeing a million-long chain of objects (CPython's trashcan)
}


# The type each case returns when it completes (getattr_nodes ends in AttributeError at its
# last node). From 3.14 on, CPython guards C recursion by
# the real stack left instead of a fixed depth, so in a worker's 32 MiB stack many cases now
# complete correctly instead of raising: the promise is RecursionError or the right result.
RETURNED = {
    "python": "int",
    "repr_list": "int",
    "pickle_list": "int",
    "json_dumps": "int",
    "json_loads": "bool",
    "compare_lists": "bool",
    "deepcopy": "bool",
    "repr_nodes": "int",
    "compare_nodes": "bool",
    "getattr_nodes": "AttributeError",
    "map": "int",
    "sorted_key": "int",
    "eval_nested": "bool",
    "isinstance_nested": "bool",
    "return_nested": "list",
    "dealloc_chain": "str",
}


def allowed(case: str, expected: set[str]) -> set[str]:
    """What may come out of ``case`` on this Python."""
    return expected | {RETURNED[case]} if _versions.STACK_BASED_RECURSION_LIMIT else expected


# return_nested used to abort the process at exit on 3.12.1 (munmap_chunk(): invalid pointer)
# after cloudpickle failed on the nested value in the worker: the same bug as a first keyword
# call of _pickle in a worker (python/cpython#119213), which the executor now avoids.
@pytest.mark.parametrize("case", sorted(DEEP_CASES))
def test_deep_recursion_with_a_raised_limit_never_crashes(case):
    result, line = run_deep(case, "worker", "high")
    assert_no_crash(result, line)
    assert line["type"] in allowed(case, DEEP_CASES[case]), line
    assert line["same_worker"], "the worker interpreter was replaced after the failure"


@pytest.mark.parametrize("case", ["repr_list", "json_loads", "compare_nodes", "map"])
def test_deep_recursion_with_the_default_limit(case):
    result, line = run_deep(case, "worker", "default")
    assert_no_crash(result, line)
    assert line["type"] in allowed(case, {"RecursionError"}), line


def test_unchecked_c_recursion_fits_in_a_worker_stack():
    """hash() of nested tuples recurses in C without any recursion check. 250,000 levels
    overflow the main thread's 8 MiB stack but fit in a worker's 32 MiB."""
    result, line = run_deep("hash_tuple", "worker")
    assert_no_crash(result, line)
    assert line["outcome"] == "returned" and line["message"] == "True", line


def test_deeply_nested_argument_fails_at_submit():
    with sp.InterpreterPoolExecutor(1) as pool:
        nested: list = []
        for _ in range(200_000):
            nested = [nested]
        with pytest.raises((RecursionError, pickle.PicklingError), match="recursion") as info:
            pool.submit(rel_tasks.echo, nested)
        assert any("argument 0" in note for note in info.value.__notes__)
        assert pool.stats()["tasks_submitted"] == 0
        assert pool.submit(rel_tasks.add, 1, 1).result(timeout=30) == 2
