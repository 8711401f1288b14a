"""The version layer (_versions): its helpers work on this Python, and builds it refuses fail
with a clear error at import."""

from __future__ import annotations

import sys

import sp_tasks
import subinterpreter_parallelism as sp
from conftest import run_python
from subinterpreter_parallelism import _versions


def test_facts_match_this_python():
    assert _versions.VERSION == sys.version_info[:2]
    assert _versions.STACK_BASED_RECURSION_LIMIT == (sys.version_info >= (3, 14))
    assert _versions.STDLIB_INTERPRETER_POOL == (sys.version_info >= (3, 14))
    if _versions.STDLIB_INTERPRETER_POOL:
        from concurrent.futures import InterpreterPoolExecutor  # noqa: F401
    import multiprocessing

    assert _versions.DEFAULT_START_METHOD_FORKS == (multiprocessing.get_start_method() == "fork")


def test_interpreter_helpers():
    before = _versions.interpreter_count()
    assert _versions.current_interpreter_id() == 0
    with sp.InterpreterPoolExecutor(2) as pool:
        pool.submit(sp_tasks.add, 1, 2).result(timeout=60)
        assert _versions.interpreter_count() == before + 2
        worker_ids = {pool.submit(sp_tasks.identify).result(timeout=60)[0] for _ in range(8)}
        assert 0 not in worker_ids
    assert _versions.run_in_fresh_interpreter("x = 1 + 1") is None
    failure = _versions.run_in_fresh_interpreter("raise ValueError('from the fresh one')")
    assert failure is not None and "from the fresh one" in failure
    assert _versions.interpreter_count() == before


def test_free_threaded_build_is_refused_at_import():
    """A build without a GIL (3.13t, 3.14t) gets one clear ImportError pointing at threads.

    No free-threaded CPython is available here, so its ABI flag ("t", as in 3.13t) is faked
    before import.
    """
    result = run_python("""
        import sys
        sys.abiflags += "t"
        try:
            import subinterpreter_parallelism
        except ImportError as exc:
            print("ImportError:", exc)
        else:
            print("imported")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ImportError:"), result.stdout
    assert "free-threaded" in result.stdout and "ThreadPoolExecutor" in result.stdout


def test_free_threaded_fact_and_a_light_worker_start_up():
    import sysconfig

    assert _versions.FREE_THREADED == bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    # sys.abiflags answers it: a worker's bootstrap does not import sysconfig (with its data
    # module and threading, a noticeable part of every worker's start-up).
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(sp_tasks.module_loaded, "sysconfig").result(timeout=60) is False
