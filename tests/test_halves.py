"""Caller half and worker half (issue 24): what the package loads in a worker, and in the caller.

A worker interpreter imports the package's worker half only: the runner (``_worker``), the
records (``_wire``), the worker halves of forwarding and preload (``_worker_features``) and
what they import; pickle's modules and ``shared_map`` join them only when a task needs them.
``WORKER_START`` and ``EXTRA`` name those modules exactly, so that a new import into the worker
half fails here, and the caller's own modules are named too (``CALLER_*``).

The modules are read from ``sys.modules`` in real interpreters: a script run in a fresh process
(so that its functions are ``__main__``'s and the caller starts clean) starts one pool per kind
of task and asks the worker, after that task, which modules of the package it has. The import
graph is checked too: the worker half's module-level imports stay inside it.

Function-local imports are counted here as well: each one that remains is listed in
``LOCAL_IMPORTS`` with its reason, and a new one fails the test (move the import to the top of
a caller-half module instead; this test guards what the lazy import used to).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PACKAGE = "subinterpreter_parallelism"
SOURCE = TESTS.parent / "python" / PACKAGE

#: What a worker has loaded after its first task, whatever the task: the runner and what it
#: imports at module level, through the package's ``__init__``.
WORKER_START = {"_import_hooks", "_native", "_streams", "_versions", "_wire", "_worker", "_worker_features"}

#: What each kind of task adds to ``WORKER_START`` in a fresh worker.
PICKLE = {"_pickling", "_rebuild"}
EXTRA = {
    "by name": set(),
    "pickled": set(),
    "__main__": PICKLE,  # a definition of __main__ travels by value, pickled once
    "map chunks": PICKLE,  # a chunk's results are pickled by the runner
    "Queue": set(),
    "SharedMap": {"shared_map"},  # its unpickling attaches through shared_map._attach
    "error": PICKLE,  # the exception is pickled in its Error record
    "warning": PICKLE,  # forwarded warnings and log records are pickled
    "log record": PICKLE,
    "preload": set(),  # preload=[...] and "auto": _worker_features imports them
}

#: Every module of the package a worker may load: the worker half.
WORKER_HALF = WORKER_START.union(*EXTRA.values())

#: The caller after ``import subinterpreter_parallelism``.
CALLER_AT_IMPORT = {"_native", "_versions"}
#: The caller after it ran the pools below: the executor and the features beside it (which
#: import the worker half's modules they share: tags, streams, the records).
CALLER_AFTER_USE = WORKER_HALF | {
    "_adapters",
    "_completion",
    "_exit",
    "_future",
    "_map",
    "_refusal",
    "_startup",
    "_task_future",
    "_validate",
    "errors",
    "executor",
    "fallback",
    "forwarding",
    "preload",
    "progress",
}

SCRIPT = r"""
import json
import re
import sys
from collections import OrderedDict

import halves_tasks as tasks
import subinterpreter_parallelism as sp

def of_main(value):
    return value + 1

def queue_task(pool):
    queue = sp.Queue()
    pool.submit(tasks.put, queue, "x").result(timeout=60)
    assert queue.get() == "x"

def error_task(pool):
    try:
        pool.submit(tasks.raises, "no").result(timeout=60)
    except ValueError:
        return
    raise AssertionError("the task did not raise")

KINDS = {
    "by name": lambda pool: pool.submit(tasks.double, 4).result(timeout=60) == 8,
    "pickled": lambda pool: pool.submit(tasks.identity, OrderedDict(a=1)).result(timeout=60) == {"a": 1},
    "__main__": lambda pool: pool.submit(of_main, 1).result(timeout=60) == 2,
    "map chunks": lambda pool: list(pool.map(tasks.double, range(6), chunksize=2)) == [0, 2, 4, 6, 8, 10],
    "Queue": lambda pool: queue_task(pool) is None,
    "SharedMap": lambda pool: pool.submit(tasks.look_up, sp.SharedMap({"k": 1}), "k").result(timeout=60) == 1,
    "error": lambda pool: error_task(pool) is None,
    "warning": lambda pool: pool.submit(tasks.warns, "forwarded").result(timeout=60) is None,
    "log record": lambda pool: pool.submit(tasks.logs, "forwarded").result(timeout=60) is None,
}
OPTIONS = {"preload": {"preload": ["json", "auto"]}}

record = {"caller at import": tasks.package_modules(), "workers": {}}
for kind in [*KINDS, *OPTIONS]:
    with sp.InterpreterPoolExecutor(1, **OPTIONS.get(kind, {})) as pool:
        if kind in KINDS:
            assert KINDS[kind](pool), kind
        else:
            assert pool.submit(tasks.double, 1).result(timeout=60) == 2  # preload="auto" warms it
        record["workers"][kind] = pool.submit(tasks.package_modules).result(timeout=60)
record["caller"] = tasks.package_modules()
sys.__stdout__.write("\n" + json.dumps(record) + "\n")
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """What the script recorded: the caller's modules, and each worker's after its task."""
    script = tmp_path_factory.mktemp("halves") / "halves_script.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", EXTRA)
def test_a_worker_loads_only_the_worker_half(loaded, kind):
    assert set(loaded["workers"][kind]) == WORKER_START | EXTRA[kind]


def test_the_caller_loads_what_it_uses(loaded):
    assert set(loaded["caller at import"]) == CALLER_AT_IMPORT
    assert set(loaded["caller"]) == CALLER_AFTER_USE


# -- the import graph ----------------------------------------------------------------------------


def _module_level_imports(name: str) -> set[str]:
    """The package's modules that module ``name`` imports when it is imported: at module level,
    outside ``if TYPE_CHECKING:``, with the parent packages Python imports first."""
    path = SOURCE / (name.replace(".", "/") + ".py")
    if not path.exists():
        path = SOURCE / name.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {"__init__"}
    here = name.split(".")[:-1]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == PACKAGE and len(parts) > 1:
                        found.add(".".join(parts[1:]))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    target = [*base, *(node.module.split(".") if node.module else [])]
                elif node.module and node.module.split(".")[0] == PACKAGE:
                    target = node.module.split(".")[1:]
                else:
                    continue
                for alias in node.names:
                    candidate = ".".join([*target, alias.name])
                    if (SOURCE / (candidate.replace(".", "/") + ".py")).exists():
                        found.add(candidate)  # `from . import _wire`: a module
                    elif target:
                        found.add(".".join(target))

    visit(tree.body)
    found.discard(name)
    compiled = {path.stem for path in SOURCE.glob("*.pyi")}  # _native: the Swift core
    return found - {"__init__"} - compiled | ({"__init__"} if name != "__init__" else set())


def _closure(start: set[str]) -> set[str]:
    seen: set[str] = set()
    pending = list(start)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending += _module_level_imports(name)
    return seen


def test_the_worker_half_imports_only_the_worker_half():
    """What a worker imports at start, read from the source: the runner and its records, the
    features' worker halves, and the modules they import at module level. Each module a task
    may add imports nothing outside the worker half either."""
    entry = {"_worker", "_wire", "_worker_features"}  # what the Swift worker imports by name
    assert _closure(entry) - {"__init__"} == WORKER_START - {"_native"}
    assert _closure(WORKER_HALF - {"_native"}) - {"__init__"} <= WORKER_HALF


# -- function-local imports ----------------------------------------------------------------------

_ON_FAILURE = "on a failure only: a worker's start-up would pay for it"
_WORKER = "worker interpreters import this module: "

#: Every function-local import of the package (without the benchmark suite, a program of its
#: own), as (module, statement): why it is not at the top. Empty this, never grow it.
LOCAL_IMPORTS: dict[tuple[str, str], tuple[int, str]] = {
    ("__init__", "import importlib"): (1, _WORKER + "the importlib package stays out of them"),
    ("__init__", "from .joblib_backend import register_joblib_backend as register"): (
        1,
        "needs joblib, an optional dependency",
    ),
    ("_demo_sections", "from concurrent.futures import InterpreterPoolExecutor"): (
        1,
        "the stdlib's pool: 3.14+ only, and it loads the stdlib's interpreters modules",
    ),
    ("_pickling", "import cloudpickle.cloudpickle as module"): (
        1,
        "slow to import; a worker seldom needs it",
    ),
    ("_probe", "from .errors import BrokenInterpreterPool"): (1, _WORKER + "the probed worker stays clean"),
    ("_probe", "from .executor import InterpreterPoolExecutor"): (
        1,
        _WORKER + "the probed worker stays clean",
    ),
    ("_rebuild", "import linecache"): (1, "only for code sent from -c or a REPL; loads tokenize and re"),
    ("_versions", "import _interpreters"): (1, "3.13+ only"),
    ("_versions", "import _xxsubinterpreters"): (1, "3.12 only"),
    ("_wire", "from . import _pickling as module"): (1, "pickle loads only when a record needs it"),
    ("_wire", "import traceback"): (2, _ON_FAILURE),
    ("_wire", "from . import _refusal"): (1, "caller side, on a failure; _wire is in the worker half"),
    ("_wire", "from .errors import ExecutionFailed, RemoteTraceback"): (
        1,
        "caller side, on a failure; errors imports concurrent.futures",
    ),
    ("_wire", "from .errors import ExecutionFailed"): (1, "caller side, on a failure"),
    ("_worker", "import traceback"): (1, _ON_FAILURE),
    ("_worker", "from ._refusal import find_refusal"): (1, 'fallback="process" only, on a failure'),
    ("_worker_features", "import traceback"): (1, _ON_FAILURE),
    ("dask_support", "from .local import submit_batch"): (1, _WORKER + "dask must not load there"),
    ("dask_support", "from .cluster import submit_task"): (1, _WORKER + "distributed must not load there"),
    ("dask_support.expressions", "from dask import _task_spec as spec"): (
        1,
        _WORKER + "for evaluate; lower, the caller's, needs dask",
    ),
    ("demo", "from ._demo_plot import plot"): (1, "imports matplotlib, an optional dependency: --plot only"),
    ("executor", "import asyncio"): (1, "slow to import; a coroutine that runs has it already"),
    ("fallback", "import multiprocessing"): (1, "~15 ms of imports, paid once a task falls back"),
    ("fallback", "from concurrent.futures import ProcessPoolExecutor"): (1, "as multiprocessing"),
    ("fallback", "import ast"): (1, "~10 ms, paid once a task falls back"),
    ("progress", "from tqdm.auto import tqdm"): (1, "tqdm is an optional dependency"),
    ("shared_map", "import tempfile"): (1, "only when a map is sent to another process"),
}

#: At most this many remain (issue 24).
LOCAL_IMPORT_BUDGET = 30


def _local_imports() -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        if parts[0] == "_suite":
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)
        _visit(name, ast.parse(path.read_text(encoding="utf-8")), False, found)
    return found


def _visit(module: str, node: ast.AST, in_function: bool, found: Counter[tuple[str, str]]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            _visit(module, child, True, found)
        elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            _visit(module, ast.Module(body=child.orelse, type_ignores=[]), in_function, found)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            if in_function:
                found[(module, ast.unparse(child))] += 1
        else:
            _visit(module, child, in_function, found)


def test_function_local_imports_are_few_and_each_has_its_reason():
    found = _local_imports()
    listed = Counter({key: count for key, (count, _) in LOCAL_IMPORTS.items()})
    new = sorted((found - listed).elements())
    assert not new, (
        "function-local imports without a reason in LOCAL_IMPORTS (move them to the top):\n"
        + "\n".join(map(str, new))
    )
    gone = sorted((listed - found).elements())
    assert not gone, f"gone: remove these entries from LOCAL_IMPORTS: {gone}"
    assert sum(found.values()) <= LOCAL_IMPORT_BUDGET


# -- the picture at the top of the package -------------------------------------------------------


def _picture() -> list[str]:
    """The lines of the data-flow picture in the package's docstring (its literal block)."""
    docstring = ast.get_docstring(ast.parse((SOURCE / "__init__.py").read_text(encoding="utf-8"))) or ""
    _, found, block = docstring.partition("How one task travels")
    assert found, "the package's docstring has no data-flow picture"
    return block.split("::\n", 1)[1].splitlines()


def _halves_listed(lines: list[str]) -> dict[str, list[str]]:
    """The picture's ``caller half:`` and ``worker half:`` lists (a list may go on over lines)."""
    halves: dict[str, list[str]] = {}
    current = None
    for line in lines:
        head, colon, rest = line.strip().partition(":")
        if colon and head in ("caller half", "worker half"):
            current = halves.setdefault(head, [])
            line = rest
        elif current is None or not line.startswith(" " * 8):
            current = None
            continue
        current += [name.strip() for name in line.split(",") if name.strip()]
    return halves


def test_the_picture_names_modules_and_functions_that_exist():
    """Every ``module.name`` the picture draws resolves in the package, every bare ``_module``
    is one of its modules, every ``Name (Swift)`` a Swift file of the core; its two lists of
    modules are the halves this file checks."""
    import importlib

    lines = _picture()
    text = "\n".join(lines)
    modules = {
        ".".join(path.relative_to(SOURCE).with_suffix("").parts)
        for path in SOURCE.glob("*.py")
        if path.stem != "__init__"
    } | {"_native"}
    dotted = re.findall(r"(?<![\w./])([a-z_][a-z0-9_]*)((?:\.[A-Za-z_]\w*)+)", text)
    assert len(dotted) >= 10  # the check sees what it guards
    for module, attributes in dotted:
        assert module in modules, f"the picture names a module that does not exist: {module}"
        target = importlib.import_module(f"{PACKAGE}.{module}")
        for attribute in attributes.strip(".").split("."):
            assert hasattr(target, attribute), f"the picture names {module}{attributes}, which does not exist"
            target = getattr(target, attribute)
    for name in re.findall(r"(?<![\w.])(_[a-z][a-z0-9_]*)\b(?!\.)", text):
        assert name in modules, f"the picture names a module that does not exist: {name}"
    for name in re.findall(r"(?<![\w.])([A-Z]\w*) \(Swift\)", text):
        assert (TESTS.parent / "Sources" / "NativeExtension" / f"{name}.swift").exists(), name
    halves = _halves_listed(lines)
    assert set(halves["worker half"]) == WORKER_HALF
    assert set(halves["caller half"]) <= modules - WORKER_HALF
