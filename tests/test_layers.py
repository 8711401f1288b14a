"""The package's modules stand in layers and import only downward, never in a circle (issue 14).

Every module of the package is placed on one layer of ``LAYERS`` (the architecture page of the
docs draws them); a module imports modules of its own layer or below. Imports are read from the
source with ``ast``, function-local ones and those under ``TYPE_CHECKING`` included: a lazy
import is a dependency all the same. Names taken by text (``importlib.import_module`` of a
computed name, the call-adapter table of ``_adapters``) are late bindings, not imports.

The benchmark suite (``_suite/benchmarks``) is not part of the library's layers: it is a
program of its own, shipped beside it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = "subinterpreter_parallelism"
SOURCE = Path(__file__).resolve().parent.parent / "python" / PACKAGE

#: From the ground up. A name ending in ``.*`` stands for every module of that subpackage.
LAYERS: list[tuple[str, set[str]]] = [
    (
        "base: version facts, errors, import hooks, refusal detection, argument rules, the shared map",
        {"_versions", "errors", "_import_hooks", "_refusal", "_validate", "shared_map"},
    ),
    ("wire format: pickling, the records that cross", {"_pickling", "_rebuild", "_wire"}),
    ("worker-side runner", {"_worker", "_joblib_tasks"}),
    ("worker-side streams", {"_streams"}),
    ("worker-side features: the worker halves of forwarding and preload", {"_worker_features"}),
    ("features beside the executor", {"forwarding", "preload", "progress", "fallback", "check", "_adapters"}),
    ("the executor's future", {"_future"}),
    (
        "the executor's rooms: start-up, task future, completion, map, exit",
        {"_startup", "_task_future", "_completion", "_map", "_exit"},
    ),
    ("the executor", {"executor"}),
    ("on the executor: parallel(), the reusable pool", {"parallel_calls", "reusable"}),
    ("integrations", {"dask_support", "dask_support.*", "joblib_backend"}),
    (
        "the package's face and commands",
        {
            "__init__",
            "__main__",
            "cli",
            "demo",
            "_demo_sections",
            "_demo_table",
            "_demo_plot",
            "bench",
            "info",
            "compat",
            "_probe",
        },
    ),
]

#: Rule breaks that remain, each with the work that removes it. The test fails when one of
#: them is gone, so that the entry goes too: empty this, never grow it.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}
KNOWN_PRIVATE: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    """Module name (relative to the package; a subpackage by its name) -> its file."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        if parts[0] == "_suite":
            continue
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _package_of(name: str, path: Path) -> list[str]:
    """The package a module's relative imports start from, as parts ([] = the top package)."""
    parts = [] if name == "__init__" else name.split(".")
    return parts if path.name == "__init__.py" and parts else parts[:-1]


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source.

    A package's ``__init__`` counts only when a name is taken from it: Python imports every
    module's parent packages before the module, so they are no dependency of its own.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = _package_of(name, path)
    own = name.split(".") if name != "__init__" else []
    ancestors = {"__init__"} | {".".join(own[:end]) for end in range(1, len(own))}
    compiled = {p.stem for p in SOURCE.glob("*.pyi")}  # _native: the Swift core, below every layer
    found: set[str] = set()

    def add(parts: list[str]) -> None:
        for end in range(0, len(parts) + 1):
            candidate = ".".join(parts[:end]) or "__init__"
            if candidate in modules | {"__init__"} and candidate not in ancestors:
                found.add(candidate)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, *rest = alias.name.split(".")
                if top == PACKAGE:
                    add(rest)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == PACKAGE:
                target = node.module.split(".")[1:]
            else:
                continue
            add(target[:-1])
            for alias in node.names:
                submodule = ".".join([*target, alias.name])
                if submodule in modules:  # `from . import forwarding` imports a module
                    add([*target, alias.name])
                elif not (target == [] and alias.name in compiled):  # a name taken from target
                    add(target)
                    if ".".join(target) in modules or not target:  # even from a parent package
                        found.add(".".join(target) or "__init__")
    found.discard(name)
    return found


def _layer_of(name: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        if name in members or any(m.endswith(".*") and name.startswith(m[:-1]) for m in members):
            return index
    raise LookupError(name)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    unplaced = []
    for name in _modules():
        try:
            _layer_of(name)
        except LookupError:
            unplaced.append(name)
    assert not unplaced, f"place these modules on a layer of LAYERS: {unplaced}"


def test_imports_run_only_downward():
    upward = []
    for name, targets in _graph().items():
        for target in sorted(targets):
            if _layer_of(target) > _layer_of(name) and (name, target) not in KNOWN_UPWARD:
                upward.append(
                    f"{name} ({LAYERS[_layer_of(name)][0]}) imports {target} ({LAYERS[_layer_of(target)][0]})"
                )
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_known_upward_imports_still_exist():
    graph = _graph()
    gone = [pair for pair in KNOWN_UPWARD if pair[1] not in graph.get(pair[0], set())]
    assert not gone, f"fixed: remove these entries from KNOWN_UPWARD: {gone}"


def test_no_import_cycles():
    graph = _graph()
    for name, target in KNOWN_UPWARD:
        graph[name].discard(target)
    cycles = _cycles(graph)
    assert not cycles, "modules that import each other in a circle:\n" + "\n".join(map(str, cycles))


def test_the_executor_knows_no_dask():
    """Neither executor.py nor its rooms (the layer below it) mention Dask."""
    rooms = next(members for title, members in LAYERS if title.startswith("the executor's rooms"))
    mentions = [
        f"{name}.py line {n}: {line.strip()}"
        for name in sorted({"executor"} | rooms)
        for n, line in enumerate((SOURCE / f"{name}.py").read_text(encoding="utf-8").splitlines(), 1)
        if re.search("dask", line, re.IGNORECASE)
    ]
    assert not mentions, "the executor mentions Dask (integrations sit above it):\n" + "\n".join(mentions)


def _executor_private_names() -> set[str]:
    """Underscore names of the executor module and of the module of its task future: their
    private functions and classes, and the private attributes and methods that their classes
    define."""
    names = set()
    for module in ("executor", "_task_future"):
        names |= _private_names_of(ast.parse((SOURCE / f"{module}.py").read_text(encoding="utf-8")))
    return names


def _private_names_of(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("_"):
            names.add(node.name)
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for node in ast.walk(cls):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                names.add(node.attr)
    return {name for name in names if name.startswith("_") and not name.endswith("__")}


#: Modules that are parts of the executor, split off its file: they share its private names.
EXECUTOR_ROOMS = {"executor", "_startup", "_task_future", "_completion", "_exit"}


def test_only_the_executor_touches_its_private_names():
    private = _executor_private_names()
    assert {"_state", "_completion", "_sp_task_id"} <= private  # the check sees what it guards
    touches = set()
    assert EXECUTOR_ROOMS <= set(_modules())  # the exemption names modules that exist
    for name, path in _modules().items():
        if name in EXECUTOR_ROOMS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                touches.add((name, node.attr, node.lineno))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").endswith("executor"):
                touches.update((name, a.name, node.lineno) for a in node.names if a.name in private)
    found = sorted(t for t in touches if t[:2] not in KNOWN_PRIVATE)
    assert not found, "modules that reach into the executor's private names:\n" + "\n".join(
        f"{_modules()[name].relative_to(SOURCE)} line {line}: {attr}" for name, attr, line in found
    )
    still = {t[:2] for t in touches}
    gone = [pair for pair in KNOWN_PRIVATE if pair not in still]
    assert not gone, f"fixed: remove these entries from KNOWN_PRIVATE: {gone}"


def test_call_adapters_name_functions_of_the_integrations():
    """The executor reaches integrations only through ``_adapters.ADAPTERS``, by name: each
    name must be a function defined in a module of the integrations layer."""
    from subinterpreter_parallelism import _adapters

    integrations = next(i for i, (title, _) in enumerate(LAYERS) if title == "integrations")
    modules = _modules()
    for wrapper_module, target in _adapters.ADAPTERS.items():
        module, _, function = target.partition(":")
        assert module.startswith(PACKAGE + "."), (wrapper_module, target)
        relative = module[len(PACKAGE) + 1 :]
        assert _layer_of(relative) == integrations, (wrapper_module, target)
        tree = ast.parse(modules[relative].read_text(encoding="utf-8"))
        assert any(isinstance(node, ast.FunctionDef) and node.name == function for node in tree.body), target


def _future_private_names() -> set[str]:
    """The stdlib ``Future``'s private attributes and methods (``_state``, ``_waiters``, ...)."""
    from concurrent.futures import Future

    names = set(vars(Future())) | set(vars(Future))
    return {name for name in names if name.startswith("_") and not name.endswith("__")}


# The one module whose job is the future itself: its lazily built condition cannot be made
# from Future's public methods, which all take the condition (see its docstring; issue 15).
FUTURE_MODULE = "_future"


def test_no_module_touches_future_internals():
    """Who settles a future is decided by Swift's task lifecycle; the package settles futures
    only through ``Future``'s public methods (issue 14): it neither reads nor writes the
    stdlib's ``_state``, ``_waiters``, ``_condition``... of a future, nor imports
    ``concurrent.futures._base``. The executor's own ``self._state`` (its ``PoolState``)
    is not a future's, so ``_state`` is checked on futures: inside ``Future`` subclasses and
    on names that hold one. Only ``FUTURE_MODULE``, which implements the future, may."""
    private = _future_private_names()
    assert {"_state", "_waiters", "_condition", "_invoke_callbacks"} <= private  # it sees what it guards
    found = []
    modules = _modules()
    assert FUTURE_MODULE in modules  # the exemption names a module that exists
    for name, path in modules.items():
        if name == FUTURE_MODULE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        future_classes = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            and any(isinstance(base, ast.Name) and base.id.endswith("Future") for base in node.bases)
        ]
        inside = {id(node) for cls in future_classes for node in ast.walk(cls)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "concurrent.futures._base":
                found.append((name, node.lineno, "imports concurrent.futures._base"))
            if not isinstance(node, ast.Attribute) or node.attr not in private:
                continue
            holder = node.value.id if isinstance(node.value, ast.Name) else ""
            if node.attr != "_state" or id(node) in inside or "future" in holder.lower() or holder == "f":
                found.append((name, node.lineno, node.attr))
    assert not found, "Future internals touched:\n" + "\n".join(
        f"{_modules()[name].relative_to(SOURCE)} line {line}: {what}" for name, line, what in found
    )
