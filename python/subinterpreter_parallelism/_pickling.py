"""How calls, results and queue items become bytes and back.

Plain ``pickle`` (protocol 5) is tried first because it is fast; ``cloudpickle`` takes over
when plain pickle fails (lambdas, closures, local classes) or when the pickle refers to
``__main__``: the worker's ``__main__`` is not the caller's, so functions and classes
defined in a script, in ``python -c`` or in a REPL travel by value.
"""

from __future__ import annotations

# The C pickler directly: `import pickle` would add `re` and `enum` to every worker's start-up.
from _pickle import dumps as _dumps
from _pickle import loads as _loads

# The wire format's rules are written once, in the Swift core (WireFormat in Pickling.swift),
# which exports them:
# - PICKLE_PROTOCOL: the protocol of every pickle that crosses interpreters;
# - MAIN_MARKER: a plain pickle that contains it may refer to `__main__`, which a worker cannot
#   resolve, so it is made again by cloudpickle (by value);
# - out_of_band_kind(value): which arguments and results travel beside the pickle, never
#   pickled (`bytes` and `bytearray` from OUT_OF_BAND_MIN bytes, every `memoryview`). What each
#   kind costs, for an argument: `bytes` are copied once, by the worker, straight from the
#   caller's object; a `bytearray` is snapshotted as `bytes` at submit (a task sees its argument
#   as it was at submit, as with a process pool), then copied once more; a C-contiguous
#   `memoryview` is lent: the task gets a memoryview of the caller's memory, no copy (see
#   BufferLend.swift), and a non-contiguous one is copied as before (a snapshot).
from ._native import MAIN_MARKER as _MAIN_MARKER
from ._native import OUT_OF_BAND_BYTEARRAY, OUT_OF_BAND_MEMORYVIEW, OUT_OF_BAND_NO
from ._native import PICKLE_PROTOCOL as PROTOCOL
from ._native import out_of_band_kind

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any


class OutOfBand:
    """Stands in a pickled call for a binary argument sent beside the pickle.

    ``kind`` says what the worker makes of it: ``"bytes"`` or ``"bytearray"`` (a copy of the
    bytes sent), ``"lent"`` (the caller's memoryview, lent: the view itself, no copy) or
    ``"memoryview"`` (a non-contiguous view's snapshot; ``layout`` is its
    ``(format, shape, readonly)``).
    """

    __slots__ = ("index", "kind", "layout")

    def __init__(self, index: int, kind: str = "bytes", layout: tuple[Any, ...] | None = None) -> None:
        self.index = index
        self.kind = kind
        self.layout = layout

    def __reduce__(self) -> tuple[type[OutOfBand], tuple[Any, ...]]:
        return OutOfBand, (self.index, self.kind, self.layout)

    def rebuild(self, view: memoryview) -> Any:
        """Worker side: the argument, made from ``view`` (the caller's memory): the view itself
        when lent, else with one copy."""
        if self.kind == "lent":
            return view
        if self.kind == "bytes":
            return bytes(view)
        if self.kind == "bytearray":
            return bytearray(view)
        format, shape, readonly = self.layout  # type: ignore[misc]
        copy = memoryview(bytes(view) if readonly else bytearray(view))
        return copy if format == "B" and len(shape) == 1 else copy.cast(format, shape)


def dumps(obj: Any) -> bytes:
    """Pickles ``obj`` for another interpreter of this process.

    Raises the error pickle raised (``TypeError``, ``pickle.PicklingError``, ...) when the
    object cannot be pickled at all, e.g. a lock or an open file.
    """
    try:
        data = _dumps(obj, PROTOCOL)
    except Exception:
        return _cloudpickle_dumps(obj)
    # A by-reference pickle of something in __main__ would not load in a worker.
    if _MAIN_MARKER in data:
        return _cloudpickle_dumps(obj)
    return data


def loads(data: Any) -> Any:
    """Unpickles bytes (or any buffer) made by :func:`dumps`."""
    return _loads(data)


def _cloudpickle_dumps(obj: Any) -> bytes:
    import io

    with io.BytesIO() as file:
        _main_aware_pickler()(file, PROTOCOL).dump(obj)
        return file.getvalue()


# -- functions of __main__ -------------------------------------------------------------------
#
# cloudpickle sends a function of __main__ by value, with the globals it refers to, and gives
# it a new globals dict in the receiver: an initializer's `global X` then lands in a dict that
# no task sees. Ours points such functions, in a worker, at that worker's own `__main__`
# module instead: one namespace per worker, shared by the initializer and every task.

_MainAwarePickler: Any = None
_FunctionType = type(_cloudpickle_dumps)


def _main_aware_pickler() -> Any:
    """``cloudpickle.Pickler``, except that functions of ``__main__`` sent by value resolve their
    globals in the receiving worker's ``__main__`` (see ``main_globals``)."""
    global _MainAwarePickler
    if _MainAwarePickler is None:
        import cloudpickle

        from collections import ChainMap

        class MainAwarePickler(cloudpickle.Pickler):  # type: ignore[misc]
            _sp_main: MainGlobals | None = None
            dispatch_table = ChainMap({_CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)

            def _dynamic_function_reduce(self, func: Any) -> Any:
                reduced = super()._dynamic_function_reduce(func)
                if func.__globals__.get("__name__") != "__main__":
                    return reduced
                make, (code, _, name, argdefs, closure), state = reduced[:3]
                if self._sp_main is None:
                    self._sp_main = MainGlobals()  # one per pickle: its functions share one dict
                return make, (code, self._sp_main, name, argdefs, closure), state, None, None, set_main_function_state

        _MainAwarePickler = MainAwarePickler
    return _MainAwarePickler


class MainGlobals:
    """Stands, in a pickle, for the globals of the ``__main__`` functions it carries by value."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return main_globals, ()


def main_globals() -> dict[str, Any]:
    """Unpickling: the globals of ``__main__`` functions that came by value.

    In a pool worker, its ``__main__`` module's namespace, the same for the initializer and
    every task (CPython's test_init_with___main___global). Anywhere else (the caller, a
    fallback process): a new dict, as cloudpickle gives, so that nothing the worker sends back
    changes the caller's own ``__main__``.
    """
    from ._native import worker_index

    if worker_index() is None:
        return {"__name__": "__main__"}
    import sys

    return sys.modules["__main__"].__dict__


def set_main_function_state(func: Any, state: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Unpickling a ``__main__`` function: cloudpickle's ``_function_setstate``, except that the
    globals it refers to join its namespace without undoing what the worker did there.

    A name the namespace lacks gets the sender's value; a name it has keeps its value (what the
    initializer or an earlier task set), as in a process pool whose workers have their own
    ``__main__``; functions and classes of ``__main__`` take the sender's latest definition, so
    that a REPL's redefinition reaches the workers. Pass values that change as arguments.
    """
    from cloudpickle import cloudpickle as _cloudpickle

    own_state, slots = state
    namespace = func.__globals__
    for name, value in slots["__globals__"].items():
        if name not in namespace or _is_main_definition(value):
            namespace[name] = value
    _cloudpickle._function_setstate(func, (own_state, {**slots, "__globals__": {}}))
    # cloudpickle put its builtins dict there; a module's namespace holds the module.
    import builtins

    namespace["__builtins__"] = builtins


# -- where code sent by value came from -------------------------------------------------------
#
# cloudpickle names every code object it sends "<dynamic-code>" (for byte-identical pickles),
# so a task defined in a script said `File "<dynamic-code>", line 9` in its traceback and
# warnings, with no source line. Ours keeps the real file name: the worker's traceback module
# reads the line from that file, as for functions imported from modules. Code with no file
# (`python -c`, the REPL) carries its source lines when the caller's linecache holds them.

_CodeType = type(_cloudpickle_dumps.__code__)
_DYNAMIC = "<dynamic-code>"


def _code_reduce(code: Any) -> Any:
    import cloudpickle

    rebuild, args = cloudpickle.Pickler.dispatch_table[_CodeType](code)[:2]
    if _DYNAMIC not in args:  # a cloudpickle that keeps the file name itself
        return rebuild, args
    args = list(args)
    args[args.index(_DYNAMIC)] = code.co_filename  # nothing before it is a str
    filename = code.co_filename
    if filename.startswith("<") and filename.endswith(">"):
        lines = _pseudo_file_lines(code)
        if lines:
            return code_with_source, (rebuild, tuple(args), filename, lines)
    return rebuild, tuple(args)


def _pseudo_file_lines(code: Any) -> list[str] | None:
    """The source lines the caller's linecache holds for code without a file (``-c``, REPL)."""
    import sys

    linecache = sys.modules.get("linecache")
    if linecache is None:
        return None
    entry = linecache.cache.get(code.co_filename)
    if entry is not None and len(entry) == 4:
        return entry[2]  # type: ignore[no-any-return]
    from_code = getattr(linecache, "_getlines_from_code", None)  # 3.14: kept per code object
    return from_code(code) if from_code is not None else None


def code_with_source(rebuild: Any, args: tuple[Any, ...], filename: str, lines: list[str]) -> Any:
    """Unpickling code from ``python -c`` or a REPL: makes its source lines known to this
    interpreter's linecache, so that tracebacks and warnings show them."""
    import linecache

    if filename not in linecache.cache:
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    return rebuild(*args)


def _is_main_definition(value: Any) -> bool:
    return (isinstance(value, type) or type(value) is _FunctionType) and \
        getattr(value, "__module__", None) == "__main__"


def encode_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes | tuple[bytes, list[bytes]]:
    """Pickles one call ``fn(*args, **kwargs)``; on failure, a note names the culprit.

    Arguments that ``out_of_band_kind`` picks are not pickled: the result is then
    ``(pickle, [bytes or memoryview, ...])``, the pickle holding ``OutOfBand`` markers in their
    places (see ``_worker.decode_call``); the Swift core lends each memoryview to the worker.
    Raises ValueError for a released memoryview.
    """
    extras: list[bytes | memoryview] = []

    def out_of_band(value: Any, label: str) -> Any:
        kind = out_of_band_kind(value)
        if kind == OUT_OF_BAND_NO:
            return value
        if kind == OUT_OF_BAND_MEMORYVIEW:
            try:
                lendable = value.c_contiguous
            except ValueError as exc:  # released
                exc.add_note(f"{label} is a released memoryview: it cannot be sent to a worker")
                raise
            if lendable:
                extras.append(value)
                return OutOfBand(len(extras) - 1, "lent")
            # Non-contiguous: a snapshot, rebuilt with the same format and shape (a copy, so
            # the task's writes do not reach the caller).
            extras.append(value.tobytes())
            return OutOfBand(len(extras) - 1, "memoryview", (value.format, value.shape, value.readonly))
        extras.append(bytes(value) if kind == OUT_OF_BAND_BYTEARRAY else value)
        return OutOfBand(len(extras) - 1, "bytearray" if kind == OUT_OF_BAND_BYTEARRAY else "bytes")

    call_args = tuple(out_of_band(value, f"argument {i}") for i, value in enumerate(args))
    call_kwargs = {key: out_of_band(value, f"keyword argument {key!r}") for key, value in kwargs.items()}
    try:
        data = dumps((fn, call_args, call_kwargs))
    except Exception as exc:
        exc.add_note(_culprit(fn, args, kwargs))
        raise
    return (data, extras) if extras else data


def _culprit(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Finds which part of a call cannot be pickled (run only after a failure)."""
    parts: list[tuple[str, Any]] = [(f"the function {_describe(fn)}", fn)]
    parts += [(f"argument {i}", value) for i, value in enumerate(args)]
    parts += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
    for label, value in parts:
        try:
            dumps(value)
        except Exception:
            return (
                f"{label} ({type(value).__module__}.{type(value).__qualname__}) cannot be "
                "pickled, so it cannot be sent to a worker interpreter"
            )
    return "the call cannot be pickled, so it cannot be sent to a worker interpreter"


def _describe(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return f"{name!s}" if name else repr(fn)
