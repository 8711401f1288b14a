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
        futures = [
            pool.submit(rel_tasks.import_module, "json"),
            pool.submit(rel_tasks.import_module, "no_such_module_rel7"),
            pool.submit(rel_tasks.import_module, "no_such_package_rel7.sub"),
            pool.submit(rel_tasks.add, 1, 2),
        ]
        assert futures[0].result(timeout=WAIT) == "json"
        with pytest.raises(ModuleNotFoundError, match="no_such_module_rel7"):
            futures[1].result(timeout=WAIT)
        with pytest.raises(ModuleNotFoundError, match="no_such_package_rel7"):
            futures[2].result(timeout=WAIT)
        assert futures[3].result(timeout=WAIT) == 3
        assert pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT) == interpreter


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("raise ValueError('broken at import')", ValueError),
        ("import no_such_dependency_rel7", ModuleNotFoundError),
        ("def f(:\n    pass", SyntaxError),
        ("raise SystemExit('exit at import')", SystemExit),
        ("import sys\nsys.modules[__name__] = None\nraise ImportError('half initialised')", ImportError),
    ],
)
def test_module_that_fails_at_import(module_dir, body, error):
    (module_dir / "rel_tmp_broken.py").write_text(body + "\n")
    with sp.InterpreterPoolExecutor(1) as pool:
        interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
        for _ in range(3):  # a failed import is not cached: it fails the same way each time
            future = pool.submit(rel_tasks.import_module, "rel_tmp_broken")
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
        "    return 3 * x\n"
    )
    sys.modules.setdefault("rel_tasks", rel_tasks)
    import rel_tmp_caller_only

    with sp.InterpreterPoolExecutor(1) as pool:
        pool.submit(rel_tasks.import_module, "rel_tasks").result(timeout=WAIT)
        interpreter = pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT)
        with pytest.raises(ImportError, match="refuses worker interpreters"):
            pool.submit(rel_tmp_caller_only.triple, 2).result(timeout=WAIT)
        assert pool.submit(rel_tasks.interpreter_id).result(timeout=WAIT) == interpreter


def test_parallel_with_a_missing_module_keeps_the_other_results():
    with pytest.raises(ModuleNotFoundError) as info:
        sp.parallel(
            ["rel_tasks", "add", (1, 1)], ["no_such_module_rel7", "f", ()], ["rel_tasks", "add", (2, 2)]
        )
    assert [o.ok for o in info.value.parallel_outcomes] == [True, False, True]
    assert sp.parallel(["rel_tasks", "add", (3, 3)]) == [6]


# -- 7. single-phase extension modules -------------------------------------------------
#
# These run in a fresh process: on CPython 3.12 a refused single-phase module can corrupt the
# process's memory (see test_single_phase_module_refused_then_imported_again_on_312).

needs_testsinglephase = pytest.mark.skipif(
    importlib.util.find_spec("_testsinglephase") is None,
    reason="this CPython was built without _testsinglephase",
)

SINGLE_PHASE_PROGRAM = """
import sys
import subinterpreter_parallelism as sp
import rel_tasks

if MAIN_FIRST:
    import _testsinglephase  # the documented workaround on 3.12: the caller imports it first

with sp.InterpreterPoolExecutor(2) as pool:
    interpreters = {pool.submit(rel_tasks.interpreter_id).result(timeout=60) for _ in range(8)}
    print("worker", pool.submit(rel_tasks.try_import, "_testsinglephase", 3).result(timeout=60))
    error = pool.submit(rel_tasks.import_module, "_testsinglephase").exception(timeout=60)
    print("error", type(error).__name__, "_testsinglephase" in str(error),
          "does not support loading in subinterpreters" in " ".join([str(error), *getattr(error, "__notes__", [])]))
    try:
        sp.parallel(["_testsinglephase", "sum", (1, 2)], executor=pool)
    except ImportError as exc:
        print("parallel ImportError")
    print("json", pool.submit(rel_tasks.import_module, "_json").result(timeout=60))
    print("add", pool.submit(rel_tasks.add, 2, 3).result(timeout=60))
if AGAIN:
    with sp.InterpreterPoolExecutor(1) as pool:  # a new interpreter imports it again
        print("again", pool.submit(rel_tasks.try_import, "_testsinglephase").result(timeout=60))
print("end")
"""


def run_single_phase(main_first: bool, again: bool):
    code = SINGLE_PHASE_PROGRAM.replace("MAIN_FIRST", repr(main_first)).replace("AGAIN", repr(again))
    return run_python(code)


CPYTHON_312_SINGLE_PHASE = pytest.mark.xfail(
    sys.version_info < (3, 13),
    strict=True,
    reason="CPython 3.12 bug (python/cpython#116510, #119450): a single-phase module's init runs "
    "in the worker before the refusal, and the next interpreter that tries it crashes the "
    "process (double free); importing it in the caller first avoids that",
)


@needs_testsinglephase
@pytest.mark.parametrize(
    "main_first",
    [pytest.param(False, marks=CPYTHON_312_SINGLE_PHASE), True],
    ids=["workers-first", "caller-first"],
)
def test_single_phase_extension_is_refused_and_the_pool_survives(main_first):
    """Refused in every worker, every time, with CPython's message; the workers go on; a new
    pool's worker is refused again."""
    result = run_single_phase(main_first, again=True)
    assert_clean_exit(result)
    assert result.stdout.splitlines() == [
        "worker ['refused', 'refused', 'refused']",
        "error ImportError True True",
        "parallel ImportError",
        "json _json",
        "add 5",
        "again ['refused']",
        "end",
    ]


@pytest.mark.parametrize(
    "module",
    [
        "datetime",
        "calendar",
        "zoneinfo",
        "email.utils",
        "http.client",
        "sqlite3",
        "tomllib",  # 3.13.0
        "asyncio",
        "hashlib",
        "ssl",
        "decimal",  # 3.12.1
    ],
)
def test_first_import_in_workers_is_safe(module):
    """CPython bugs: when worker interpreters were the first to import these (the caller had
    not), the process crashed: on 3.13.0 as soon as two interpreters imported _datetime
    (python/cpython#136423), on 3.12.1 at exit or at a second import of _asyncio, hashlib,
    ssl, _datetime, _decimal (python/cpython#116510, #119450), with "double free",
    "free(): invalid pointer" or a segfault. The executor now imports those extension
    modules in the caller before starting workers."""
    result = run_python(f"""
    import sys
    import subinterpreter_parallelism as sp
    import rel_tasks

    for _ in range(2):
        with sp.InterpreterPoolExecutor(2) as pool:
            busy = [pool.submit(rel_tasks.nap_then, 0.1) for _ in range(2)]
            imports = [pool.submit(rel_tasks.try_import, {module!r}) for _ in range(2)]
            print([f.result(timeout=60) for f in imports])
    print("end")
    """)
    assert_clean_exit(result)
    lines = result.stdout.splitlines()
    assert lines[-1] == "end" and len(lines) == 3, result.stdout
    # zoneinfo fails to import in a 3.12 sub-interpreter (AttributeError), but must not crash.
    assert all(
        line in (f"[['{module}'], ['{module}']]", "[['AttributeError'], ['AttributeError']]")
        for line in lines[:2]
    ), result.stdout


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
def test_numpy_refuses_cleanly_in_a_fresh_process():
    """A real third-party single-phase extension: refused, three times, then a clean exit."""
    code = """
    import subinterpreter_parallelism as sp
    import rel_tasks

    with sp.InterpreterPoolExecutor(1) as pool:
        print(pool.submit(rel_tasks.try_import, "numpy", 3).result(timeout=60))
        print(pool.submit(pow, 2, 5).result(timeout=60))
    """
    result = run_python(code)
    assert_clean_exit(result)
    assert result.stdout.splitlines() in (
        ["['refused', 'refused', 'refused']", "32"],
        ["['ImportError', 'ImportError', 'ImportError']", "32"],
    )
