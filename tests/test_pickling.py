"""How calls travel (``_pickling``): here, where code sent by value says it came from."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import run_script

# A task defined in the script itself: cloudpickle sends it by value.
SCRIPT = textwrap.dedent('''\
    import warnings
    import subinterpreter_parallelism as sp


    def helper(x):
        warnings.warn(f"careful with {x}")  # WARN-HERE
        return 1 / (x - 3)  # RAISE-HERE


    def task(x):
        return [helper(y) for y in (x,)][0]  # CALL-HERE


    if __name__ == "__main__":
        with sp.InterpreterPoolExecutor(1) as pool:
            pool.submit(task, 3).result(timeout=60)
    ''')


def _line_of(source: str, marker: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if marker in line)


@pytest.mark.timeout(120)
def test_traceback_and_warning_of_a_script_task_name_the_file_and_show_the_source(tmp_path):
    script = tmp_path / "user_script.py"
    done = run_script(script, SCRIPT, timeout=100)
    assert done.returncode == 1
    err = done.stderr
    assert "<dynamic-code>" not in err
    # The remote traceback: the file, the line, and the source text of each of the task's frames
    # (the list comprehension's own code object too, on 3.12).
    for marker, text in (("CALL-HERE", "return [helper(y) for y in (x,)][0]"),
                         ("RAISE-HERE", "return 1 / (x - 3)")):
        assert f'File "{script}", line {_line_of(SCRIPT, marker)}' in err, err
        assert f"    {text}  # {marker}" in err, err
    # The warning, forwarded to the caller, names the file and shows its line.
    assert f"{script}:{_line_of(SCRIPT, 'WARN-HERE')}: UserWarning: careful with 3" in err, err
    assert 'warnings.warn(f"careful with {x}")  # WARN-HERE' in err, err
    assert err.rstrip().endswith("ZeroDivisionError: division by zero")


COMMAND = textwrap.dedent('''\
    import subinterpreter_parallelism as sp
    def task(x):
        return 1 / x  # FROM-THE-COMMAND
    with sp.InterpreterPoolExecutor(1) as pool:
        pool.submit(task, 0).result(timeout=60)
    ''')


@pytest.mark.timeout(120)
def test_traceback_of_a_python_c_task_shows_its_source_line():
    done = subprocess.run([sys.executable, "-c", COMMAND], capture_output=True, text=True, timeout=100)
    assert done.returncode == 1
    assert f'File "<string>", line {_line_of(COMMAND, "FROM-THE-COMMAND")}, in task' in done.stderr
    if sys.version_info >= (3, 13):  # 3.12 keeps no source for -c, in the caller either
        assert "    return 1 / x  # FROM-THE-COMMAND" in done.stderr, done.stderr
