"""The extension: self-contained, exports only PyInit, loads in isolated own-GIL interpreters."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import subinterpreter_parallelism
from subinterpreter_parallelism import _native


def test_no_swift_runtime_needed():
    if shutil.which("ldd") is None:
        pytest.skip("ldd is not installed")
    out = subprocess.run(["ldd", _native.__file__], capture_output=True, text=True, check=True).stdout
    assert "swift" not in out.lower(), out
    assert "not found" not in out, out


def test_exports_only_pyinit():
    if shutil.which("nm") is None:
        pytest.skip("nm is not installed")
    out = subprocess.run(
        ["nm", "-D", "--defined-only", _native.__file__], capture_output=True, text=True, check=True
    ).stdout
    exported = [
        line.split()[-1] for line in out.splitlines() if len(line.split()) == 3 and line.split()[1].isupper()
    ]
    assert exported == ["PyInit__native"], exported


def test_build_info():
    info = _native.build_info()
    assert info["python_compiled"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert info["swift"]


ISOLATED_IMPORT = """
import subinterpreter_parallelism as sp
from subinterpreter_parallelism import _native
q = sp.Queue()
q.put({"hello": [1, 2, 3]})
assert q.get() == {"hello": [1, 2, 3]}
assert _native.factorial_mod(10) == 3628800
"""


def test_import_inside_isolated_interpreter():
    if sys.version_info >= (3, 13):
        import _interpreters

        interp = _interpreters.create("isolated")
        try:
            failure = _interpreters.exec(interp, ISOLATED_IMPORT)
            assert failure is None, failure
        finally:
            _interpreters.destroy(interp)
    else:
        import _xxsubinterpreters

        interp = _xxsubinterpreters.create(isolated=True)
        try:
            _xxsubinterpreters.run_string(interp, ISOLATED_IMPORT)
        finally:
            _xxsubinterpreters.destroy(interp)


def test_native_factorial_matches_python():
    from sp_tasks import py_factorial

    for n in (0, 1, 2, 10, 1000, 12345):
        assert _native.factorial_mod(n) == py_factorial(n)


def test_public_names():
    for name in (
        "parallel",
        "InterpreterPoolExecutor",
        "BrokenInterpreterPool",
        "ExecutionFailed",
        "Queue",
        "QueueClosed",
        "TaskInterrupted",
        "CallOutcome",
    ):
        assert hasattr(subinterpreter_parallelism, name), name
    from concurrent.futures import BrokenExecutor, Executor

    assert issubclass(subinterpreter_parallelism.BrokenInterpreterPool, BrokenExecutor)
    assert issubclass(subinterpreter_parallelism.InterpreterPoolExecutor, Executor)
