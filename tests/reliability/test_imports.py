"""Imports that fail inside a worker, and extension modules that refuse sub-interpreters
(items 6 and 7 of issue 7). Each failure belongs to its task; the worker goes on."""

from __future__ import annotations

import importlib.util
import sys

import pytest

import rel_tasks
import subinterpreter_parallelism as sp
from rel_support import assert_clean_exit, run_python

pytestmark = pytest.mark.timeout(60)

WAIT = 30


def import_module(name):
    import importlib

    return importlib.import_module(name).__name__


def import_twice(name):
    """Imports ``name`` twice in the same task; returns both error types (or names)."""
    import importlib

    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(importlib.import_module(name).__name__)
        except BaseException as exc:  # noqa: BLE001 - reported
            outcomes.append(type(exc).__name__)
    return outcomes


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A folder on sys.path (before the pool starts, so that workers see it too)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("rel_tmp_")]:
        del sys.modules[name]


# -- 6. missing modules and modules that fail at import --------------------------------


def test_missing_module_fails_that_task_only():
    with sp.InterpreterPoolExecutor(1) as pool:
        interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
        futures = [pool.submit(import_module, "json"), pool.submit(import_module, "no_such_module_rel7"),
                   pool.submit(import_module, "no_such_package_rel7.sub"), pool.submit(rel_tasks.add, 1, 2)]
        assert futures[0].result(timeout=WAIT) == "json"
        with pytest.raises(ModuleNotFoundError, match="no_such_module_rel7"):
            futures[1].result(timeout=WAIT)
        with pytest.raises(ModuleNotFoundError, match="no_such_package_rel7"):
            futures[2].result(timeout=WAIT)
        assert futures[3].result(timeout=WAIT) == 3
        assert pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT) == interpreter


@pytest.mark.parametrize(("body", "error"), [
    ("raise ValueError('broken at import')", ValueError),
    ("import no_such_dependency_rel7", ModuleNotFoundError),
    ("def f(:\n    pass", SyntaxError),
    ("raise SystemExit('exit at import')", SystemExit),
    ("import sys\nsys.modules[__name__] = None\nraise ImportError('half initialised')", ImportError),
])
def test_module_that_fails_at_import(module_dir, body, error):
    (module_dir / "rel_tmp_broken.py").write_text(body + "\n")
    with sp.InterpreterPoolExecutor(1) as pool:
        interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
        for _ in range(3):  # a failed import is not cached: it fails the same way each time
            future = pool.submit(import_module, "rel_tmp_broken")
            assert isinstance(future.exception(timeout=WAIT), error)
        assert pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT) == interpreter
        with pytest.raises(error):
            sp.parallel(["rel_tmp_broken", "f", ()], executor=pool)
        assert pool.submit(rel_tasks.add, 1, 1).result(timeout=WAIT) == 2


def test_module_that_imports_in_the_caller_but_not_in_a_worker(module_dir):
    """The function travels by reference; the worker's import fails, so does that task only."""
    (module_dir / "rel_tmp_caller_only.py").write_text(
        "import sys\n"
        "if sys.modules['rel_tasks'].interpreter_id() != 0:\n"
        "    raise ImportError('rel_tmp_caller_only refuses worker interpreters')\n"
        "def triple(x):\n"
        "    return 3 * x\n")
    sys.modules.setdefault("rel_tasks", rel_tasks)
    import rel_tmp_caller_only

    with sp.InterpreterPoolExecutor(1) as pool:
        pool.submit(import_module, "rel_tasks").result(timeout=WAIT)
        interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
        with pytest.raises(ImportError, match="refuses worker interpreters"):
            pool.submit(rel_tmp_caller_only.triple, 2).result(timeout=WAIT)
        assert pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT) == interpreter


def test_parallel_with_a_missing_module_keeps_the_other_results():
    with pytest.raises(ModuleNotFoundError) as info:
        sp.parallel(["rel_tasks", "add", (1, 1)], ["no_such_module_rel7", "f", ()],
                    ["rel_tasks", "add", (2, 2)])
    assert [o.ok for o in info.value.parallel_outcomes] == [True, False, True]
    assert sp.parallel(["rel_tasks", "add", (3, 3)]) == [6]


# -- 7. single-phase extension modules -------------------------------------------------


def assert_refusal(error, module):
    assert isinstance(error, ImportError), error
    text = " ".join([str(error), *getattr(error, "__notes__", [])])
    assert module in text, text
    assert "does not support loading in subinterpreters" in text, text


@pytest.mark.skipif(importlib.util.find_spec("_testsinglephase") is None,
                    reason="this CPython was built without _testsinglephase")
def test_single_phase_extension_is_refused_and_the_pool_survives():
    with sp.InterpreterPoolExecutor(1) as pool:
        interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
        for _ in range(3):
            assert_refusal(pool.submit(import_module, "_testsinglephase").exception(timeout=WAIT),
                           "_testsinglephase")
        assert pool.submit(import_twice, "_testsinglephase").result(timeout=WAIT) == ["ImportError"] * 2
        # Loaded in the caller first: still refused in the workers.
        import _testsinglephase  # noqa: F401

        assert_refusal(pool.submit(import_module, "_testsinglephase").exception(timeout=WAIT),
                       "_testsinglephase")
        with pytest.raises(ImportError) as info:
            sp.parallel(["_testsinglephase", "sum", (1, 2)], executor=pool)
        assert_refusal(info.value, "_testsinglephase")
        # The same worker, still working, and multi-phase extensions still load.
        assert pool.submit(import_module, "_json").result(timeout=WAIT) == "_json"
        assert pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT) == interpreter


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
def test_numpy_refuses_cleanly_in_a_fresh_process():
    """A real third-party single-phase extension: refused, twice, then a clean exit."""
    code = """
    import subinterpreter_parallelism as sp
    import test_imports as t

    with sp.InterpreterPoolExecutor(1) as pool:
        print(pool.submit(t.import_twice, "numpy").result(timeout=60))
        print(pool.submit(pow, 2, 5).result(timeout=60))
    """
    result = run_python(code)
    assert_clean_exit(result)
    assert result.stdout.splitlines() == ["['ImportError', 'ImportError']", "32"]
