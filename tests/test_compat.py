"""Modules that refuse own-GIL interpreters: recognising the refusal, ``check``, fallback to processes.

``_testsinglephase`` (a single-phase module shipped with CPython 3.12 and 3.13) and numpy
(the ``test`` extra) are the real refusing modules used throughout.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import CancelledError, wait
from pathlib import Path

import pytest

import subinterpreter_parallelism as sp
from conftest import reset_shared_pool
from subinterpreter_parallelism import _worker, compat
from subinterpreter_parallelism.errors import ExecutionFailed

ROOT = Path(__file__).resolve().parent.parent

# A worker's refused numpy import still dlopens numpy's extension, whose BLAS starts its native
# threads in this process; importing numpy here first keeps them out of the leftover check.
numpy = pytest.importorskip("numpy")

# Task functions live in a module written for this test session (and on sys.path), so that
# worker interpreters and fallback processes import it by name.
HELPERS = """
import os
import time


def singlephase_sum(a, b):
    import _testsinglephase
    return _testsinglephase.sum(a, b), os.getpid()


def numpy_double(x):
    import numpy
    return int(numpy.int64(x) * 2)


def numpy_double_and_pid(x):
    import numpy
    return int(numpy.int64(x) * 2), os.getpid()


def numpy_sleep(seconds):
    import numpy
    time.sleep(seconds)
    return seconds


def numpy_then_fail(message):
    import numpy
    raise ValueError(message)


def array_total(array):
    return int(array.sum())


def plain_fail(message):
    raise ValueError(message)


def pid():
    return os.getpid()
"""

# Modules for `check`, beyond the real ones.
CHECK_MODULES = {
    "spc_aborts": "import os\nos.abort()\n",
    "spc_sleeps": "import time\ntime.sleep(60)\n",
    "spc_noisy": "print('noise on stdout while importing')\nVALUE = 1\n",
    "spc_not_in_subinterpreters": textwrap.dedent("""\
        import sys
        try:
            import _interpreters as _i
        except ImportError:
            import _xxsubinterpreters as _i
        if _i.get_current() != _i.get_main():
            raise RuntimeError("this module works only in the main interpreter")
        """),
}


@pytest.fixture(scope="session", autouse=True)
def helper_modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compat_helpers")
    (folder / "spc_helpers.py").write_text(HELPERS)
    for name, source in CHECK_MODULES.items():
        (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture
def helpers():
    import spc_helpers

    return spc_helpers


def _no_children_left() -> None:
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []


# -- recognising a refusal ---------------------------------------------------------------


def test_find_refusal_in_message_chain_and_remote_traceback():
    direct = ImportError("module numpy._core._multiarray_umath does not support loading in subinterpreters")
    found = compat.find_refusal(direct)
    assert found == compat.Refusal(
        "numpy",
        "numpy._core._multiarray_umath",
        "module numpy._core._multiarray_umath does not support loading in subinterpreters",
    )
    assert compat.is_refusal(direct) and compat.refused_module(direct) == "numpy._core._multiarray_umath"

    wrapper = ImportError("the C extension failed")
    wrapper.__cause__ = ImportError("module _foo does not support loading in subinterpreters")
    assert compat.find_refusal(wrapper).extension == "_foo"

    # Chained exceptions do not survive pickling; the remote traceback text does.
    remote = ImportError("pkg failed to import")
    remote.__cause__ = sp.RemoteTraceback(
        "Traceback...\nImportError: module pkg._speedups does not support loading in subinterpreters\n"
    )
    assert compat.find_refusal(remote).module == "pkg"

    failed = ExecutionFailed(
        "ImportError", "x", "ImportError: module _bar does not support loading in subinterpreters"
    )
    assert compat.find_refusal(failed).extension == "_bar"


def test_find_refusal_ignores_other_errors():
    assert compat.find_refusal(ImportError("No module named 'x'")) is None
    not_import = RuntimeError("module _foo does not support loading in subinterpreters")
    assert compat.find_refusal(not_import) is None and not compat.is_refusal(not_import)
    assert (
        compat.find_refusal(
            ExecutionFailed("ValueError", "module _foo does not support loading in subinterpreters")
        )
        is None
    )


def test_refusal_message_names_module_check_and_fallback():
    text = compat.refusal_message(
        "numpy", "module numpy._core._multiarray_umath does not support loading in subinterpreters"
    )
    assert text.startswith("numpy cannot be imported in an own-GIL sub-interpreter")
    assert "python -m subinterpreter_parallelism check numpy" in text
    assert 'fallback="process"' in text


# -- check -------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_check_modules_verdicts():
    results = compat.check_modules(
        [
            "_testsinglephase",
            "numpy",
            "json",
            "decimal",
            "no_such_module_xyz",
            "spc_noisy",
            "spc_not_in_subinterpreters",
            "not a name",
        ],
        timeout=90,
    )
    by_name = {r.module: r for r in results}
    assert [r.module for r in results][:3] == ["_testsinglephase", "numpy", "json"]

    single = by_name["_testsinglephase"]
    assert not single.ok and single.refused_module == "_testsinglephase"
    if sys.version_info >= (3, 13):
        assert single.result == "refused"
        assert single.reason == "module _testsinglephase does not support loading in subinterpreters"
    else:  # its init ran in the first interpreter; a second worker that tries it crashes 3.12
        assert single.result == "crashed"
        assert single.reason.startswith(
            "module _testsinglephase does not support loading in subinterpreters; "
            "then another interpreter that tried it crashed the process"
        )

    numpy_check = by_name["numpy"]
    assert numpy_check.result == "refused"
    assert numpy_check.refused_module.startswith("numpy.")
    assert "does not support loading in subinterpreters" in numpy_check.reason

    works = ("json", "decimal", "spc_noisy") if sys.version_info >= (3, 13) else ("json", "spc_noisy")
    for name in works:
        assert by_name[name].result == "works" and by_name[name].ok and by_name[name].reason == ""
        assert 0 <= by_name[name].import_time_s < 30
    if sys.version_info < (3, 13):  # 3.12 refuses _decimal in workers: decimal is _pydecimal there
        assert by_name["decimal"].result == "works, degraded"
        assert by_name["decimal"].degraded == ("_decimal",)

    missing = by_name["no_such_module_xyz"]
    assert missing.result == "import error"
    assert "ModuleNotFoundError" in missing.reason and "no_such_module_xyz" in missing.reason

    # Fails only in sub-interpreters, without CPython's refusal: still "refused".
    only_main = by_name["spc_not_in_subinterpreters"]
    assert only_main.result == "refused"
    assert "works only in the main interpreter" in only_main.reason

    assert by_name["not a name"].result == "import error"


@pytest.mark.timeout(120)
def test_check_datetime_differs_between_312_and_313():
    """_datetime became isolated in 3.13; 3.12 refuses it."""
    (result,) = compat.check_modules(["_datetime"])
    if sys.version_info >= (3, 13):
        assert result.result == "works"
    else:  # refused; a pool imports it in the caller first, so no worker crashes on it
        assert result.result == "refused"
        assert result.reason == "module _datetime does not support loading in subinterpreters"


@pytest.mark.timeout(120)
def test_check_survives_a_crash_and_a_hang():
    started = time.monotonic()
    crashed, hung, fine = compat.check_modules(["spc_aborts", "spc_sleeps", "json"], timeout=5)
    assert crashed.result == "crashed" and "SIGABRT" in crashed.reason
    assert hung.result == "timed out" and "5 s" in hung.reason
    assert fine.result == "works"
    assert time.monotonic() - started < 60


def test_check_modules_rejects_bad_arguments():
    with pytest.raises(TypeError):
        compat.check_modules([42])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        compat.check_modules(["json"], timeout=0)
    with pytest.raises(ValueError):
        compat.check_modules(["json"], jobs=0)
    assert compat.check_modules([]) == []


def test_format_table_has_one_row_per_module():
    rows = [
        compat.ModuleCheck("json", "works", "", 0.0123),
        compat.ModuleCheck(
            "numpy", "refused", "module numpy.x does not support loading in subinterpreters", 0.02, "numpy.x"
        ),
    ]
    lines = compat.format_table(rows).splitlines()
    assert lines[0].split() == ["module", "result", "import", "time", "reason"]
    assert lines[2].split()[:4] == ["json", "works", "12.3", "ms"]
    assert lines[3].startswith("numpy") and "refused" in lines[3] and "numpy.x" in lines[3]


# -- fallback="process" ----------------------------------------------------------------------


def test_fallback_argument_is_checked():
    with pytest.raises(ValueError, match="fallback"):
        sp.InterpreterPoolExecutor(1, fallback="bogus")
    with pytest.raises(TypeError, match="fallback"):
        sp.InterpreterPoolExecutor(1, fallback=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fallback"):
        sp.parallel(["math", "gcd", (4, 6)], fallback="threads")


# numpy runs in this process: it refuses safely in any number of interpreters. _testsinglephase
# runs in fresh processes with one worker on 3.12, where a second interpreter that tries it
# crashes the process (CPython gh-117953; `check` reports it).


@pytest.mark.timeout(120)
def test_without_fallback_the_error_names_the_module(helpers):
    with sp.InterpreterPoolExecutor(1) as pool:
        with pytest.raises(ImportError) as info:
            pool.submit(helpers.numpy_double, 2).result(timeout=60)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "numpy cannot be imported in an own-GIL sub-interpreter: module numpy._core." in notes
    assert "python -m subinterpreter_parallelism check numpy" in notes
    assert 'fallback="process"' in notes


@pytest.mark.timeout(180)
def test_fallback_runs_refused_tasks_in_a_process_with_one_warning(helpers):
    main_pid = os.getpid()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sp.InterpreterPoolExecutor(2, fallback="process") as pool:
            futures = [pool.submit(helpers.numpy_double_and_pid, i) for i in range(6)]
            results = [f.result(timeout=120) for f in futures]
            assert [value for value, _ in results] == [0, 2, 4, 6, 8, 10]
            assert all(pid != main_pid for _, pid in results)  # ran in another process
            # Tasks that work in sub-interpreters stay there.
            assert pool.submit(helpers.pid).result(timeout=60) == main_pid
            assert pool._state.fallback.started
    fallback_warnings = [w for w in caught if issubclass(w.category, sp.ProcessFallbackWarning)]
    assert len(fallback_warnings) == 1
    assert str(fallback_warnings[0].message).startswith(
        "numpy cannot be imported in an own-GIL sub-interpreter"
    )
    _no_children_left()


@pytest.mark.timeout(180)
def test_fallback_with_numpy_calls_arguments_and_map(helpers):
    with pytest.warns(sp.ProcessFallbackWarning, match="numpy"):
        with sp.InterpreterPoolExecutor(2, fallback="process") as pool:
            assert pool.submit(helpers.numpy_double, 21).result(timeout=120) == 42
            # The argument itself cannot be unpickled in a worker interpreter.
            assert pool.submit(helpers.array_total, numpy.arange(10)).result(timeout=120) == 45
            # The function itself lives in numpy: unpickling it in a worker fails.
            assert pool.submit(numpy.sum, [1, 2, 3]).result(timeout=120) == 6
            seen = []
            assert list(
                pool.map(
                    helpers.numpy_double, range(40), progress=lambda done, total: seen.append((done, total))
                )
            ) == [2 * x for x in range(40)]
            assert seen[0] == (0, 40) and seen[-1] == (40, 40)
            assert list(pool.map(helpers.numpy_double, range(5), chunksize=1)) == [0, 2, 4, 6, 8]
    _no_children_left()


@pytest.mark.timeout(120)
def test_fallback_keeps_other_errors_and_the_process_errors(helpers):
    with sp.InterpreterPoolExecutor(1, fallback="process") as pool:
        with pytest.raises(ValueError, match="plain"):
            pool.submit(helpers.plain_fail, "plain").result(timeout=60)
        assert not pool._state.fallback.started  # not a refusal: no process pool
        with pytest.warns(sp.ProcessFallbackWarning):
            future = pool.submit(helpers.numpy_then_fail, "from the process")
            with pytest.raises(ValueError, match="from the process"):
                future.result(timeout=120)
    _no_children_left()


@pytest.mark.timeout(120)
def test_cancel_a_task_waiting_in_the_process_pool(helpers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sp.ProcessFallbackWarning)
        with sp.InterpreterPoolExecutor(1, fallback="process") as pool:
            futures = [pool.submit(helpers.numpy_sleep, 0.5) for _ in range(4)]
            deadline = time.monotonic() + 60
            while futures[-1]._sp_moved is None and time.monotonic() < deadline:
                time.sleep(0.01)
            last = futures[-1]
            assert last._sp_moved is not None
            assert last.cancel()  # still queued in the one-process pool
            assert last.cancelled()
            done, not_done = wait(futures, timeout=90)
            assert not not_done
            with pytest.raises(CancelledError):
                last.result()
            assert [f.result() for f in futures[:-1]] == [0.5] * 3
    _no_children_left()


@pytest.mark.timeout(180)
def test_parallel_fallback(helpers):
    with pytest.warns(sp.ProcessFallbackWarning, match="numpy"):
        results = sp.parallel(["numpy", "add", (2, 3)], ["math", "gcd", (12, 18)], fallback="process")
    assert results == [5, 6]
    # The shared pool's fallback covers only the calls that asked for it.
    with pytest.raises(ImportError) as info:
        sp.parallel(["numpy", "add", (2, 3)], ["math", "gcd", (12, 18)])
    notes = "\n".join(info.value.__notes__)
    assert "raised by call 0: numpy.add" in notes
    assert "check numpy" in notes
    # With an executor of one's own.
    with sp.InterpreterPoolExecutor(1) as pool:
        with pytest.warns(sp.ProcessFallbackWarning):
            assert sp.parallel(["numpy", "multiply", (4, 5)], executor=pool, fallback="process") == [20]
        with pytest.raises(ImportError):
            pool.submit(_worker.call_by_name, "numpy", "add", (1, 1), {}).result(timeout=60)
        with pool.process_fallback():  # what parallel(fallback="process") does
            assert pool.submit(_worker.call_by_name, "numpy", "add", (1, 1), {}).result(timeout=60) == 2
    reset_shared_pool()  # the shared pool's shutdown ends its process pool too
    _no_children_left()


def test_fallback_error_becomes_a_note_when_warnings_are_errors(helpers):
    with warnings.catch_warnings():
        warnings.simplefilter("error", sp.ProcessFallbackWarning)
        with sp.InterpreterPoolExecutor(1, fallback="process") as pool:
            with pytest.raises(ImportError) as info:
                pool.submit(helpers.numpy_double, 1).result(timeout=60)
            assert not pool._state.fallback.started
    assert any("did not run the task in a process" in note for note in info.value.__notes__)


MAIN_CLASSES_SCRIPT = """
import dataclasses, warnings
import subinterpreter_parallelism as sp


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Oops(Exception):
    pass


def make_point(x):
    import numpy
    return Point(int(numpy.int64(x)), 2 * x)


def fail(x):
    import numpy
    raise Oops(f"oops {x}")


if __name__ == "__main__":
    warnings.simplefilter("ignore", sp.ProcessFallbackWarning)
    with sp.InterpreterPoolExecutor(1, fallback="process") as pool:
        p = pool.submit(make_point, 3).result(timeout=120)
        print("point", type(p) is Point, p)
        try:
            pool.submit(fail, 4).result(timeout=120)
        except Oops as exc:
            print("oops", exc, type(exc.__cause__).__name__)
        print("map", list(pool.map(make_point, [1, 2], chunksize=1)) == [Point(1, 2), Point(2, 4)])
"""


@pytest.mark.timeout(180)
def test_fallback_results_and_exceptions_of_classes_from_main(tmp_path):
    # A dataclass defined in the script came back from the process with PicklingError
    # "it's not the same object as __main__.Point".
    script = tmp_path / "fallback_script.py"
    script.write_text(MAIN_CLASSES_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "point True Point(x=3, y=6)" in lines
    assert "oops oops 4 RemoteTraceback" in lines
    assert "map True" in lines


SINGLEPHASE_SCENARIO = """
import json, os, sys, warnings
import subinterpreter_parallelism as sp
import spc_helpers

workers = 1 if sys.version_info < (3, 13) else 2
report = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if sys.argv[1] == "fallback":
        with sp.InterpreterPoolExecutor(workers, fallback="process") as pool:
            results = [f.result(timeout=120) for f in [pool.submit(spc_helpers.singlephase_sum, i, 10) for i in range(4)]]
        report["sums"] = [total for total, _ in results]
        report["other_process"] = all(pid != os.getpid() for _, pid in results)
    elif sys.argv[1] == "parallel":
        with sp.InterpreterPoolExecutor(workers) as pool:
            report["results"] = sp.parallel(["_testsinglephase", "sum", (2, 3)], ["math", "gcd", (12, 18)],
                                            executor=pool, fallback="process")
    else:
        with sp.InterpreterPoolExecutor(1) as pool:
            try:
                pool.submit(spc_helpers.singlephase_sum, 1, 2).result(timeout=60)
            except ImportError as exc:
                report["notes"] = getattr(exc, "__notes__", [])
report["warnings"] = [str(w.message) for w in caught if issubclass(w.category, sp.ProcessFallbackWarning)]
print(json.dumps(report))
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("scenario", ["fallback", "parallel", "no_fallback"])
def test_singlephase_module_in_a_fresh_process(helper_modules, scenario):
    done = subprocess.run(
        [sys.executable, "-c", SINGLEPHASE_SCENARIO, scenario],
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "PYTHONPATH": str(helper_modules)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if scenario == "no_fallback":
        assert report["warnings"] == []
        notes = "\n".join(report["notes"])
        assert (
            "_testsinglephase cannot be imported in an own-GIL sub-interpreter: module _testsinglephase does "
            "not support loading in subinterpreters" in notes
        )
        assert "check _testsinglephase" in notes and 'fallback="process"' in notes
        return
    assert len(report["warnings"]) == 1 and report["warnings"][0].startswith(
        "_testsinglephase cannot be imported"
    )
    if scenario == "fallback":
        assert report["sums"] == [10, 11, 12, 13] and report["other_process"]
    else:
        assert report["results"] == [5, 6]


@pytest.mark.timeout(120)
def test_check_cli_numpy_json_decimal():
    done = subprocess.run(
        [sys.executable, "-m", "subinterpreter_parallelism", "check", "numpy", "json", "decimal"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 1, done.stderr
    rows = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[2:5]}
    decimal = "works" if sys.version_info >= (3, 13) else "works,"  # 3.12: "works, degraded" (_pydecimal)
    assert rows == {"numpy": "refused", "json": "works", "decimal": decimal}
    assert 'fallback="process"' in done.stdout


# -- Python < 3.12 -----------------------------------------------------------------------


def _python311() -> str | None:
    for candidate in [
        shutil.which("python3.11"),
        *sorted(glob.glob("/root/.pyenv/versions/3.11*/bin/python3.11")),
    ]:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.mark.timeout(240)
def test_python_311_gets_a_clear_error(tmp_path):
    python311 = _python311()
    if python311 is None:
        pytest.skip("no Python 3.11 interpreter found")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    # Importing the package source.
    imported = subprocess.run(
        [python311, "-c", "import subinterpreter_parallelism"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_env, "PYTHONPATH": str(ROOT / "python")},
    )
    assert imported.returncode != 0
    assert "ImportError: subinterpreter_parallelism needs Python 3.12 or newer" in imported.stderr
    # pip install . into a throwaway 3.11 venv (a copy of the source: no build output in the tree).
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "python", source / "python", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([python311, "-m", "venv", str(venv)], check=True, timeout=120, env=clean_env)
    installed = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-build-isolation",
            "--no-index",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
    )
    output = installed.stdout + installed.stderr
    assert installed.returncode != 0
    assert "needs Python 3.12 or newer" in output
    assert "swift" not in output.lower() and "linker" not in output.lower()
