"""``fallback="process"`` (fallback.py): tasks that fail because a module refuses own-GIL
interpreters run again in a process pool; what its warnings and errors say, and where.

numpy (the ``test`` extra) is the refusing module in this process: it refuses safely in any
number of interpreters. ``_testsinglephase`` (a single-phase module shipped with CPython 3.12
and 3.13) runs in fresh processes with one worker on 3.12, where a second interpreter that
tries it crashes the process (CPython gh-117953; ``check`` reports it).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import CancelledError, wait

import pytest

import subinterpreter_parallelism as sp
from conftest import eventually, importable, reset_shared_pool, run_script
from subinterpreter_parallelism import _worker

# A worker's refused numpy import still dlopens numpy's extension, whose BLAS starts its native
# threads in this process; importing numpy here first keeps them out of the leftover check.
numpy = pytest.importorskip("numpy")

# Task functions live in a module written for this test module (and on sys.path), so that
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


MODULES = {
    # A package of the user's that needs a refusing dependency (jsonschema needs rpds).
    "spf_wrapper/__init__.py": "import numpy\nVALUE = 1\n",
    "spf_tasks.py": textwrap.dedent("""\
        import os


        def uses_wrapper(x):
            import spf_wrapper
            return x + spf_wrapper.VALUE, os.getpid()


        def uses_zoneinfo(key):
            import zoneinfo
            return str(zoneinfo.ZoneInfo(key)), os.getpid()
        """),
    "spc_helpers.py": HELPERS,
}


@pytest.fixture(scope="module", autouse=True)
def modules(tmp_path_factory):
    with importable(tmp_path_factory.mktemp("fallback_modules"), MODULES) as folder:
        yield folder


@pytest.fixture
def helpers():
    import spc_helpers

    return spc_helpers


def _no_children_left() -> None:
    eventually(lambda: not multiprocessing.active_children(), message=multiprocessing.active_children)


@pytest.mark.timeout(180)
def test_warning_names_the_users_package_and_points_at_the_submitting_line():
    import spf_tasks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sp.InterpreterPoolExecutor(1, fallback="process") as pool:
            submitted_at = sys._getframe().f_lineno + 1
            value, pid = pool.submit(spf_tasks.uses_wrapper, 1).result(timeout=120)
            assert value == 2 and pid != os.getpid()
            # map and its chunks: the same package, no second warning.
            assert [v for v, _ in pool.map(spf_tasks.uses_wrapper, range(4))] == [1, 2, 3, 4]
    [warning] = [w for w in caught if issubclass(w.category, sp.ProcessFallbackWarning)]
    assert warning.filename == __file__ and warning.lineno == submitted_at
    assert str(warning.message).startswith(
        "spf_wrapper (needs numpy, which refuses own-GIL sub-interpreters) cannot be imported in an own-GIL "
        "sub-interpreter (module numpy._core."
    )


@pytest.mark.timeout(180)
def test_warning_of_a_map_points_at_the_map_call():
    import spf_tasks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sp.InterpreterPoolExecutor(2, fallback="process") as pool:
            mapped_at = sys._getframe().f_lineno + 1
            results = list(pool.map(spf_tasks.uses_wrapper, range(6), chunksize=2))
    assert [v for v, _ in results] == [1, 2, 3, 4, 5, 6]
    [warning] = [w for w in caught if issubclass(w.category, sp.ProcessFallbackWarning)]
    assert (warning.filename, warning.lineno) == (__file__, mapped_at)


NO_GUARD = textwrap.dedent("""\
    import subinterpreter_parallelism as sp


    def uses_numpy(x):
        import numpy
        return int(numpy.int64(x))


    with sp.InterpreterPoolExecutor(1, fallback="process") as pool:
        print(pool.submit(uses_numpy, 3).result(timeout=120))
    """)


@pytest.mark.timeout(180)
def test_a_script_without_the_main_guard_gets_one_clear_error(tmp_path):
    script = tmp_path / "no_guard.py"
    done = run_script(script, NO_GUARD, timeout=150)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "RuntimeError: numpy cannot be imported in an own-GIL sub-interpreter, and "
        'fallback="process" cannot run the task in a process'
    ), done.stderr[-3000:]
    assert f"import the script {script} again" in last
    assert 'if __name__ == "__main__":' in last
    assert "BrokenProcessPool" not in done.stderr
    # Under the guard (or in a function called from there), the same script works.
    guarded = NO_GUARD.replace("with sp.", "def main():\n    with sp.").replace(
        "    print(", "        print("
    )
    guarded += '\n\nif __name__ == "__main__":\n    main()\n'
    done = run_script(script, guarded, "-W", "ignore", timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "3"


@pytest.mark.timeout(180)
@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.12 workers have the pure-Python datetime")
def test_zoneinfo_falls_back_on_312():
    """`import zoneinfo` (dateutil.tz) fails in 3.12 workers without CPython's refusal
    (AttributeError: module 'datetime' has no attribute 'datetime_CAPI'); fallback takes it."""
    import spf_tasks

    with (
        sp.InterpreterPoolExecutor(1) as pool,
        pytest.raises(AttributeError, match="datetime_CAPI") as info,
    ):
        pool.submit(spf_tasks.uses_zoneinfo, "UTC").result(timeout=60)
    assert any('fallback="process"' in note for note in info.value.__notes__)
    with (
        pytest.warns(sp.ProcessFallbackWarning, match="zoneinfo"),
        sp.InterpreterPoolExecutor(1, fallback="process") as pool,
    ):
        name, pid = pool.submit(spf_tasks.uses_zoneinfo, "UTC").result(timeout=120)
    assert name == "UTC" and pid != os.getpid()


# -- refused tasks in processes: results, errors, cancel, map, parallel() -------------------------


def test_fallback_argument_is_checked():
    with pytest.raises(ValueError, match="fallback"):
        sp.InterpreterPoolExecutor(1, fallback="bogus")
    with pytest.raises(TypeError, match="fallback"):
        sp.InterpreterPoolExecutor(1, fallback=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fallback"):
        sp.parallel(["math", "gcd", (4, 6)], fallback="threads")


@pytest.mark.timeout(120)
def test_without_fallback_the_error_names_the_module(helpers):
    with sp.InterpreterPoolExecutor(1) as pool, pytest.raises(ImportError) as info:
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
    with (
        pytest.warns(sp.ProcessFallbackWarning, match="numpy"),
        sp.InterpreterPoolExecutor(2, fallback="process") as pool,
    ):
        assert pool.submit(helpers.numpy_double, 21).result(timeout=120) == 42
        # The argument itself cannot be unpickled in a worker interpreter.
        assert pool.submit(helpers.array_total, numpy.arange(10)).result(timeout=120) == 45
        # The function itself lives in numpy: unpickling it in a worker fails.
        assert pool.submit(numpy.sum, [1, 2, 3]).result(timeout=120) == 6
        seen = []
        assert list(
            pool.map(helpers.numpy_double, range(40), progress=lambda done, total: seen.append((done, total)))
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
            last = futures[-1]
            eventually(lambda: last._sp_moved is not None, message="the task never moved to a process")
            assert last.cancel()  # still queued in the one-process pool
            assert last.cancelled()
            _, not_done = wait(futures, timeout=90)
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
def test_singlephase_module_in_a_fresh_process(modules, scenario):
    done = subprocess.run(
        [sys.executable, "-c", SINGLEPHASE_SCENARIO, scenario],
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "PYTHONPATH": str(modules)},
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


def _documented_example() -> str:
    """The documented fallback example (``uses_numpy`` over 100 chunks, once in the README, now
    in docs/compatibility.md), printing whether its total is right."""
    from test_readme import ALL_BLOCKS

    code = next(block.code for _, block in ALL_BLOCKS if "def uses_numpy(chunk)" in block.code)
    return code + "    print(sum(totals) == sum(range(100_000)))\n"  # in its __main__ block


def _run_documented_example(tmp_path, times: int) -> None:
    """Runs the documented example ``times`` times, each in a fresh process, as a user would (issue
    22, item 7: 1 run in 25 failed a task with ``BrokenPipeError`` after multiprocessing's
    "resource_tracker: process died unexpectedly" warning)."""
    code = _documented_example()
    failures = []
    for run in range(times):
        done = run_script(tmp_path / f"fallback_example_{run}.py", code, "-W", "default", timeout=300)
        problems = [
            word for word in ("resource_tracker", "BrokenPipe", "Broken", "Traceback") if word in done.stderr
        ]
        if done.returncode != 0 or done.stdout.split()[-1:] != ["True"] or problems:
            failures.append(f"run {run}: exit {done.returncode} {problems}\n{done.stderr[-2000:]}")
    assert not failures, f"{len(failures)} of {times} runs failed:\n" + "\n".join(failures[:3])


@pytest.mark.timeout(300)
def test_the_documented_example_runs_cleanly(tmp_path):
    _run_documented_example(tmp_path, 3)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_documented_example_runs_cleanly_100_times(tmp_path):
    _run_documented_example(tmp_path, 100)
