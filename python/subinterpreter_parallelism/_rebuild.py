"""Unpickling what travels by value: functions, their code and cells, the modules they use.

``_pickling`` sends functions that pickle cannot send by reference (those of ``__main__``,
lambdas, closures) with cloudpickle, whose pickles name cloudpickle's own helpers to rebuild
them. Loading those would import cloudpickle in every worker interpreter, and with it about
sixty modules (``dataclasses``, ``inspect``, ``typing``, ``logging``, ``platform``, ...): about
3 MiB more per interpreter that CPython never gives back when the interpreter ends (see
docs/executor.md, "Fresh interpreters: max_tasks_per_worker"), and as much start-up time. So ``_pickling``'s
pickler names the helpers of this module instead, which import nothing. What it does not
cover (a class sent by value, a module made at run time) still names cloudpickle's, and a
worker imports cloudpickle for those alone.

The states these helpers take are those cloudpickle's reducers make (the function's
``__dict__``, and its other attributes by name); ``tests/test_pickling.py`` pins them.
"""

from __future__ import annotations

import builtins
import sys

from ._native import worker_index

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CellType",
    "code_with_source",
    "import_module",
    "is_main_definition",
    "main_globals",
    "make_cell",
    "make_code",
    "make_function",
    "set_function_state",
    "set_main_function_state",
]


def _function() -> None:
    pass


# The types, without importing `types` (a worker loads this module while it unpickles a task).
_FunctionType: Any = type(_function)
_CodeType: Any = type(_function.__code__)
CellType = type((lambda value: lambda: value)(None).__closure__[0])  # type: ignore[index]

# Attributes of a function's state that are no attributes to set: the globals and cells it
# needs (set in place), and the submodules it uses (imported by unpickling the state itself).
_NOT_ATTRIBUTES = frozenset({"__globals__", "__closure__", "_cloudpickle_submodules"})


def make_function(code: Any, globals: dict[str, Any], name: Any, defaults: Any, closure: Any) -> Any:
    """A function of ``code`` (its cells still empty: ``set_function_state`` fills them)."""
    globals.setdefault("__builtins__", builtins.__dict__)
    return _FunctionType(code, globals, name, defaults, closure)


def make_code(*args: Any) -> Any:
    """A code object, from the arguments of ``CodeType`` in this Python's order."""
    return _CodeType(*args)


def make_cell(*contents: Any) -> Any:
    """A closure cell: empty, or holding ``contents[0]``."""
    return CellType(*contents)


def import_module(name: str) -> Any:
    """The module ``name``, imported (a submodule itself, not its package)."""
    __import__(name)
    return sys.modules[name]


def set_function_state(func: Any, state: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Unpickling a function sent by value (not from ``__main__``): its attributes, the globals
    its code names (in its own new namespace) and its cells' contents."""
    attributes, slots = state
    func.__globals__.update(slots["__globals__"])
    _set_rest(func, attributes, slots)


def main_globals() -> dict[str, Any]:
    """Unpickling: the globals of ``__main__`` functions that came by value.

    In a pool worker, its ``__main__`` module's namespace, the same for the initializer and
    every task (CPython's test_init_with___main___global). Anywhere else (the caller, a
    fallback process): a new dict, as cloudpickle gives, so that nothing the worker sends back
    changes the caller's own ``__main__``.
    """
    if worker_index() is None:
        return {"__name__": "__main__"}
    namespace: dict[str, Any] = sys.modules["__main__"].__dict__
    return namespace


def set_main_function_state(func: Any, state: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Unpickling a ``__main__`` function: as ``set_function_state``, except that the globals it
    refers to join its namespace without undoing what the worker did there.

    A name the namespace lacks gets the sender's value; a name it has keeps its value (what the
    initializer or an earlier task set), as in a process pool whose workers have their own
    ``__main__``; functions and classes of ``__main__`` take the sender's latest definition, so
    that a REPL's redefinition reaches the workers. Pass values that change as arguments.
    """
    attributes, slots = state
    namespace = func.__globals__
    for name, value in slots["__globals__"].items():
        if name not in namespace or is_main_definition(value):
            namespace[name] = value
    _set_rest(func, attributes, slots)
    namespace["__builtins__"] = builtins  # a module's namespace holds the module


def _set_rest(func: Any, attributes: dict[str, Any], slots: dict[str, Any]) -> None:
    func.__dict__.update(attributes)
    sent = slots["__closure__"]
    if sent is not None:
        for own, cell in zip(func.__closure__, sent):
            try:
                own.cell_contents = cell.cell_contents
            except ValueError:  # sent empty (a name not bound yet): stays empty
                pass
    for name, value in slots.items():
        if name not in _NOT_ATTRIBUTES:
            setattr(func, name, value)


def is_main_definition(value: Any) -> bool:
    """Whether ``value`` is a function or class of ``__main__`` (which travels by value)."""
    return (isinstance(value, type) or type(value) is _FunctionType) and getattr(
        value, "__module__", None
    ) == "__main__"


def code_with_source(rebuild: Any, args: tuple[Any, ...], filename: str, lines: list[str]) -> Any:
    """Unpickling code from ``python -c`` or a REPL: makes its source lines known to this
    interpreter's linecache, so that tracebacks and warnings show them."""
    import linecache

    if filename not in linecache.cache:
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    return rebuild(*args)
