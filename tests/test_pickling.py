"""How calls travel (``_pickling``): here, where code sent by value says it came from."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import run_script

# A task defined in the script itself: cloudpickle sends it by value.
SCRIPT = textwrap.dedent("""\
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
    """)


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
    for marker, text in (
        ("CALL-HERE", "return [helper(y) for y in (x,)][0]"),
        ("RAISE-HERE", "return 1 / (x - 3)"),
    ):
        assert f'File "{script}", line {_line_of(SCRIPT, marker)}' in err, err
        assert f"    {text}  # {marker}" in err, err
    # The warning, forwarded to the caller, names the file and shows its line.
    assert f"{script}:{_line_of(SCRIPT, 'WARN-HERE')}: UserWarning: careful with 3" in err, err
    assert 'warnings.warn(f"careful with {x}")  # WARN-HERE' in err, err
    assert err.rstrip().endswith("ZeroDivisionError: division by zero")


COMMAND = textwrap.dedent("""\
    import subinterpreter_parallelism as sp
    def task(x):
        return 1 / x  # FROM-THE-COMMAND
    with sp.InterpreterPoolExecutor(1) as pool:
        pool.submit(task, 0).result(timeout=60)
    """)


@pytest.mark.timeout(120)
def test_traceback_of_a_python_c_task_shows_its_source_line():
    done = subprocess.run([sys.executable, "-c", COMMAND], capture_output=True, text=True, timeout=100)
    assert done.returncode == 1
    assert f'File "<string>", line {_line_of(COMMAND, "FROM-THE-COMMAND")}, in task' in done.stderr
    if sys.version_info >= (3, 13):  # 3.12 keeps no source for -c, in the caller either
        assert "    return 1 / x  # FROM-THE-COMMAND" in done.stderr, done.stderr


# Functions and classes of __main__ are pickled once (in the caller) and unpickled once per
# worker; each test below runs a real script, so that they are truly __main__'s.
ONCE_SCRIPT = textwrap.dedent("""\
    import gc
    import subinterpreter_parallelism as sp
    from subinterpreter_parallelism import _pickling

    LIMIT = 10


    def helper():
        return "v1"


    def task(x):
        return x, helper(), LIMIT


    def leaf():
        return "leaf1"


    def middle():
        return leaf()


    def top():
        return middle()


    class Point:
        def __init__(self, x):
            self.x = x


    def norm(p):
        return p.x


    def unit():
        return "m"


    class Meter:
        scale = 1

        def __init__(self, value):
            self.value = value

        def show(self):
            return f"{self.value * self.scale}{unit()}"


    def show(meter):
        return meter.show()


    def show_new(value):  # makes its Meter itself: the class travels inside this function's pickle
        return Meter(value).show()


    def closure():
        k = 1

        def read():
            return k

        def bump():
            nonlocal k
            k += 1

        return read, bump


    def in_worker(pool, expression):
        # eval runs in the worker, with the runner's globals: nothing of __main__ travels
        return pool.submit(eval, expression).result(timeout=60)


    LOADED = "__import__('subinterpreter_parallelism._pickling', fromlist=['_']).loaded_definitions"

    if __name__ == "__main__":
        with sp.InterpreterPoolExecutor(1) as pool:
            print("results", [pool.submit(task, i).result(timeout=60) for i in range(20)] == [(i, "v1", 10) for i in range(20)])
            print("loaded after 20 tasks", in_worker(pool, LOADED))
            print("map", list(pool.map(task, range(40), chunksize=4)) == [(i, "v1", 10) for i in range(40)])
            print("loaded after map", in_worker(pool, LOADED))
            print("points", [pool.submit(norm, Point(i)).result(timeout=60) for i in range(5)])
            print("loaded after points", in_worker(pool, LOADED))

            def helper():  # a new definition, as a REPL or a notebook cell makes
                return "v2"
            print("redefined", pool.submit(task, 0).result(timeout=60), in_worker(pool, LOADED))
            LIMIT = 20  # the worker has LIMIT already: it keeps its own (set_main_function_state)
            print("rebound", pool.submit(task, 0).result(timeout=60), in_worker(pool, LOADED))

            print("deep", pool.submit(top).result(timeout=60))
            def leaf():  # two __main__ functions away from the task
                return "leaf2"
            print("deep redefined", pool.submit(top).result(timeout=60))

            read, bump = closure()
            print("cell", pool.submit(read).result(timeout=60))
            bump()
            print("cell set", pool.submit(read).result(timeout=60))

            print("class", pool.submit(show, Meter(2)).result(timeout=60))
            def unit():  # called by a method of the argument's class
                return "cm"
            Meter.scale = 100  # a class attribute rebound
            print("class changed", pool.submit(show, Meter(2)).result(timeout=60))
            print("class inside", pool.submit(show_new, 3).result(timeout=60))
            Meter.scale = 1000
            print("class inside changed", pool.submit(show_new, 3).result(timeout=60))

            many = [eval(f"lambda: {i}") for i in range(300)]
            print("many", [pool.submit(f).result(timeout=60) for f in many] == list(range(300)))
            print("bounded", len(_pickling._definitions) <= _pickling._MAX_DEFINITIONS,
                  in_worker(pool, LOADED.replace("loaded_definitions", "_loaded.__len__()"))
                  <= _pickling._MAX_DEFINITIONS)
            kept = len(_pickling._definitions)
            del many
            gc.collect()
            print("forgotten", kept - len(_pickling._definitions) >= 200)

            class Gone:
                pass
            pool.submit(Gone).result(timeout=60)
            gone = id(Gone)
            print("class kept", gone in _pickling._definitions)
            del Gone
            gc.collect()
            print("class forgotten", gone not in _pickling._definitions)

        # Workers replaced after each task, each with a fresh interpreter: every one gets the
        # definition, as the caller has it now.
        with sp.InterpreterPoolExecutor(1, max_tasks_per_worker=1) as pool:
            print("fresh", [pool.submit(task, i).result(timeout=60) for i in range(3)])
    """)


@pytest.mark.timeout(200)
def test_main_definitions_are_unpickled_once_per_worker_and_follow_redefinitions(tmp_path):
    script = tmp_path / "once.py"
    script.write_text(ONCE_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        "results True",
        "loaded after 20 tasks 1",  # task (with helper inside its pickle): once
        "map True",
        "loaded after map 1",  # map's chunks carry the same definition
        "points [0, 1, 2, 3, 4]",
        "loaded after points 3",  # norm, and Point (the arguments' class) once
        "redefined (0, 'v2', 10) 4",
        "rebound (0, 'v2', 10) 5",  # a new pickle; the worker keeps its LIMIT
        "deep leaf1",
        "deep redefined leaf2",
        "cell 1",
        "cell set 2",
        "class 2m",
        "class changed 200cm",
        "class inside 300cm",
        "class inside changed 3000cm",
        "many True",
        "bounded True True",
        "forgotten True",
        "class kept True",
        "class forgotten True",
        "fresh [(0, 'v2', 20), (1, 'v2', 20), (2, 'v2', 20)]",
    ], done.stdout + done.stderr


# Functions sent by value in every form that ``_rebuild`` covers: a script's function with a
# global and a default, a closure (with a cell set later, and one not set yet), a recursive
# function, a lambda, a function that uses a module and a submodule, code from `python -c`.
BY_VALUE_SCRIPT = textwrap.dedent("""\
    import os.path
    import sys
    import subinterpreter_parallelism as sp
    from subinterpreter_parallelism import _native

    LIMIT = 10


    def clamp(x, *, by=2):
        \"\"\"A script's function.\"\"\"
        return min(x * by, LIMIT)


    def counter():
        later = None
        start = 5

        def count(n):
            return start + n + (0 if later is None else later)

        count.tag = "counted"
        return count


    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)


    def uses_modules(path):
        return os.path.basename(path), sys.maxsize > 0


    def worker_has(name):
        import sys

        return name in sys.modules


    if __name__ == "__main__":
        with sp.InterpreterPoolExecutor(1, max_tasks_per_worker=7) as pool:
            count = counter()
            results = [
                pool.submit(clamp, 3).result(timeout=60),
                pool.submit(clamp, 3, by=5).result(timeout=60),
                pool.submit(count, 1).result(timeout=60),
                pool.submit(fact, 6).result(timeout=60),
                pool.submit(lambda x: x * 3, 4).result(timeout=60),
                pool.submit(uses_modules, "/a/b.txt").result(timeout=60),
            ]
            print(results, clamp.__doc__ == pool.submit(getattr, clamp, "__doc__").result(timeout=60))
            print("cloudpickle", pool.submit(worker_has, "cloudpickle").result(timeout=60))
    """)


def test_functions_sent_by_value_load_without_cloudpickle(tmp_path):
    """A worker rebuilds functions sent by value with ``_rebuild``'s helpers: it does not import
    cloudpickle (and its sixty modules, about 3 MiB per interpreter that CPython never frees
    when the interpreter ends; issue 22, item 9)."""
    done = run_script(tmp_path / "by_value.py", BY_VALUE_SCRIPT, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[6, 10, 6, 720, 12, ('b.txt', True)] True",
        "cloudpickle False",
    ]
