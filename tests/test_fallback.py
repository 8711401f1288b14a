"""``fallback="process"`` (fallback.py): what its warnings and errors say, and where.

The scenarios of running refused tasks in processes are in test_compat.py; numpy is the
refusing module (the ``test`` extra).
"""

from __future__ import annotations

import os
import sys
import textwrap
import warnings

import pytest

import subinterpreter_parallelism as sp
from conftest import importable, run_script

pytest.importorskip("numpy")

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
}


@pytest.fixture(scope="module", autouse=True)
def modules(tmp_path_factory):
    with importable(tmp_path_factory.mktemp("fallback_modules"), MODULES) as folder:
        yield folder


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

    with sp.InterpreterPoolExecutor(1) as pool:
        with pytest.raises(AttributeError, match="datetime_CAPI") as info:
            pool.submit(spf_tasks.uses_zoneinfo, "UTC").result(timeout=60)
    assert any('fallback="process"' in note for note in info.value.__notes__)
    with pytest.warns(sp.ProcessFallbackWarning, match="zoneinfo"):
        with sp.InterpreterPoolExecutor(1, fallback="process") as pool:
            name, pid = pool.submit(spf_tasks.uses_zoneinfo, "UTC").result(timeout=120)
    assert name == "UTC" and pid != os.getpid()


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
