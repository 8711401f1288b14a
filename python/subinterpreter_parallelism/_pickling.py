"""How calls, results and queue items become bytes and back: pickle, for ``_wire``'s records.

Plain ``pickle`` (protocol 5) is tried first because it is fast; ``cloudpickle`` takes over
when plain pickle fails (lambdas, closures, local classes) or when the pickle refers to
``__main__``: the worker's ``__main__`` is not the caller's, so functions and classes
defined in a script, in ``python -c`` or in a REPL travel by value.
"""

from __future__ import annotations

import copyreg
import io
import itertools
import operator
import os
import sys
import weakref

# The C pickler directly: `import pickle` would add `re` and `enum` to every worker's start-up.
from _pickle import Pickler
from _pickle import dumps as _dumps
from _pickle import loads as _loads
from collections import ChainMap

# The rules of what crosses are written once, in the Swift core (WireFormat in Wire.swift),
# which exports them: PICKLE_PROTOCOL, the protocol of every pickle that crosses interpreters;
# MAIN_MARKER: a plain pickle that contains it may refer to `__main__`, which a worker cannot
# resolve, so it is made again by cloudpickle (by value). The records themselves are _wire's.
from . import _rebuild
from ._native import MAIN_MARKER as _MAIN_MARKER
from ._native import PICKLE_PROTOCOL as PROTOCOL
from ._rebuild import is_main_definition as _is_main_definition

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, ClassVar


def dumps(obj: Any) -> bytes:
    """Pickles ``obj`` for another interpreter of this process.

    Raises the error pickle raised (``TypeError``, ``pickle.PicklingError``, ...) when the
    object cannot be pickled at all, e.g. a lock or an open file.
    """
    # Each retry runs outside the except clause: when it fails too, its error is the one the
    # user sees, without "During handling of the above exception" and the first attempt's.
    try:
        data = _dumps(obj, PROTOCOL)
    except Exception:
        data = None
    if data is None:
        return _cloudpickle_dumps(obj)
    # A by-reference pickle of something in __main__ would not load in a worker.
    if _MAIN_MARKER in data:
        return _cloudpickle_dumps(obj)
    return data


def loads(data: Any) -> Any:
    """Unpickles bytes (or any buffer) made by :func:`dumps`."""
    return _loads(data)


def _cloudpickle() -> Any:
    """cloudpickle's module (``cloudpickle.cloudpickle``, where its helpers are), imported the
    first time something needs it: it is slow to import, and a worker needs it only to send
    back what refers to its ``__main__``."""
    import cloudpickle.cloudpickle as module

    return module


def _cloudpickle_dumps(obj: Any) -> bytes:
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
    globals in the receiving worker's ``__main__`` (see ``_rebuild.main_globals``), and that
    functions, their code and cells and the modules they use name ``_rebuild``'s helpers, not
    cloudpickle's: a worker then loads them without importing cloudpickle (see ``_rebuild``)."""
    global _MainAwarePickler
    if _MainAwarePickler is None:
        cloudpickle: Any = _cloudpickle()
        own = {_CodeType: _code_reduce, _rebuild.CellType: _cell_reduce, type(sys): _module_reduce}

        class MainAwarePickler(cloudpickle.Pickler):  # type: ignore[misc]
            _sp_main: MainGlobals | None = None
            dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(own, cloudpickle.Pickler.dispatch_table)

            def _dynamic_function_reduce(self, func: Any) -> Any:
                _, (code, globals, name, argdefs, closure), state = super()._dynamic_function_reduce(func)[:3]
                setstate = _rebuild.set_function_state
                if func.__globals__.get("__name__") == "__main__":
                    if self._sp_main is None:
                        self._sp_main = MainGlobals()  # one per pickle: its functions share one dict
                    globals, setstate = self._sp_main, _rebuild.set_main_function_state
                args = (code, globals, name, argdefs, closure)
                return (_rebuild.make_function, args, state, None, None, setstate)

        _MainAwarePickler = MainAwarePickler
    return _MainAwarePickler


class MainGlobals:
    """Stands, in a pickle, for the globals of the ``__main__`` functions it carries by value."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _rebuild.main_globals, ()


def _cell_reduce(cell: Any) -> Any:
    try:
        return _rebuild.make_cell, (cell.cell_contents,)
    except ValueError:  # empty
        return _rebuild.make_cell, ()


def _module_reduce(module: Any) -> Any:
    cloudpickle = _cloudpickle()
    if cloudpickle._should_pickle_by_reference(module):
        return _rebuild.import_module, (module.__name__,)
    return cloudpickle._module_reduce(module)  # made at run time: sent whole, by cloudpickle


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
    args = _cloudpickle().Pickler.dispatch_table[_CodeType](code)[1]  # CodeType's arguments
    if _DYNAMIC in args:  # else a cloudpickle that keeps the file name itself
        args = list(args)
        args[args.index(_DYNAMIC)] = code.co_filename  # nothing before it is a str
        args = tuple(args)
    filename = code.co_filename
    if filename.startswith("<") and filename.endswith(">"):
        lines = _pseudo_file_lines(code)
        if lines:
            return _rebuild.code_with_source, (_rebuild.make_code, args, filename, lines)
    return _rebuild.make_code, args


def _pseudo_file_lines(code: Any) -> list[str] | None:
    """The source lines the caller's linecache holds for code without a file (``-c``, REPL)."""
    linecache = sys.modules.get("linecache")
    if linecache is None:
        return None
    entry = linecache.cache.get(code.co_filename)
    if entry is not None and len(entry) == 4:
        return entry[2]  # type: ignore[no-any-return]
    from_code = getattr(linecache, "_getlines_from_code", None)  # 3.14: kept per code object
    return from_code(code) if from_code is not None else None


# -- each definition of __main__ pickled once --------------------------------------------------
#
# cloudpickle runs in Python: pickling a __main__ function by value with every call cost about
# 100 us per task, and each worker built the function again per task. Instead, a definition of
# __main__ (function or class) is pickled once, by cloudpickle, in the sender; in a call's
# pickle it is a `definition(key, data)` reference: the key and those bytes. A worker unpickles
# the bytes the first time it meets the key and keeps what they made; later tasks with the key
# only carry the bytes along (copied with the call, never unpickled again). Carrying them is
# what keeps this simple and race-free: a worker started late or replaced (max_tasks_per_worker,
# a crash) has the definition in the very task that needs it, and no task can miss it.
#
# When is a kept pickle still right? cloudpickle captures by value the code, the defaults, the
# closure's cells and the globals the code names (cloudpickle's `_extract_code_globals`), and
# so on for the functions among them. The sender keeps, per function object, the identity of
# each of those values, down through the __main__ functions it refers to, and holds them (so
# that no identity is reused): rebinding any of them gives a new pickle with a new key. So a
# function or class redefined (a REPL or notebook re-running a cell), a global assigned, a
# closure cell set, a referenced __main__ function redefined: the next call sends the new
# definition; for a class, the same holds for its attributes (and its __main__ bases') and
# for what its methods capture. Not seen: a value changed in place (a list appended to, an
# attribute set on the function): the pickle keeps the value as it was when it was made, and
# that is what a worker that loads it gets. (A worker that already has a global keeps its own
# value anyway: see _rebuild.set_main_function_state.) Pass values that change as arguments.

_MAX_DEFINITIONS = 256  # kept per interpreter, in the sender and in each receiver (oldest go first)
_MAX_DEFINITION_BYTES = 4 << 20  # a larger pickle is not kept: it is made again for each call
_definitions: dict[int, MainDefinition] = {}  # sender: id(function or class) -> its pickle
_loaded: dict[int, Any] = {}  # receiver: key -> the definition its bytes made
_names_by_code: dict[int, tuple[Any, tuple[str, ...]]] = {}  # id(code) -> (code, global names)
_keys: Any = None  # itertools.count: keys, unique in the process (a random start per interpreter)
loaded_definitions = 0  # how many definitions this interpreter unpickled (the tests read it)
_MISSING = object()  # a captured global that the namespace lacks, or an empty cell
_SELF = object()  # the function itself among what it captures (recursion): not held, or it never dies


class _Slotted:
    __slots__ = ("slot",)


_CLASS_OWN = (
    type(type.__dict__["__dict__"]),
    type(_Slotted.__dict__["slot"]),
)  # getset and member descriptors


class MainDefinition:
    """A definition of ``__main__`` pickled once: stands for it in calls' pickles (see above)."""

    __slots__ = ("captured", "ids", "markers", "reduced", "target")

    def __init__(self, target: Any, captured: tuple[Any, ...], data: bytes) -> None:
        self.target = target  # a weak reference to the function or class
        self.captured = captured  # what the pickle captured, held so that `ids` stay theirs
        self.ids = tuple(map(id, captured))
        global _keys
        if _keys is None:
            _keys = itertools.count(int.from_bytes(os.urandom(6), "little") << 24)
            # The C pickler then reduces it without a Python frame (__reduce__ stays for
            # picklers with a dispatch table of their own).
            copyreg.pickle(MainDefinition, operator.attrgetter("reduced"))
        self.reduced = (definition, (next(_keys), data))
        self.markers = data.count(_MAIN_MARKER)  # what the bytes say of __main__ themselves

    def __reduce__(self) -> tuple[Any, tuple[int, bytes]]:
        return self.reduced


def definition(key: int, data: bytes) -> Any:
    """Unpickling a reference to a definition of ``__main__``: the one this interpreter made
    from ``data`` when it first met ``key``; made now if it has not."""
    made = _loaded.get(key)
    if made is None:
        global loaded_definitions
        made = _loads(data)
        loaded_definitions += 1
        if len(_loaded) >= _MAX_DEFINITIONS:
            _drop_oldest(_loaded)
        _loaded[key] = made
    return made


def _definition_of(obj: Any) -> MainDefinition:
    """The sender's pickle of a function or class of ``__main__``: the kept one while nothing it
    captured was rebound, else a new one (cloudpickle's errors propagate)."""
    captured = _captured(obj)
    kept = _definitions.get(id(obj))
    if kept is not None and kept.target() is obj and kept.ids == tuple(map(id, captured)):
        return kept
    data = _cloudpickle_dumps(obj)
    made = MainDefinition(weakref.ref(obj, _forgetter(id(obj))), captured, data)
    if len(data) <= _MAX_DEFINITION_BYTES:
        _definitions.pop(id(obj), None)
        if len(_definitions) >= _MAX_DEFINITIONS:
            _drop_oldest(_definitions)
        _definitions[id(obj)] = made
    return made


def _drop_oldest(cache: dict[int, Any]) -> None:
    try:
        cache.pop(next(iter(cache)), None)
    except (RuntimeError, StopIteration):
        pass  # changed meanwhile (another thread submitting, a weak reference's callback)


def _forgetter(key: int) -> Any:
    """The weak reference's callback: when a kept definition's function or class dies, its
    pickle goes too."""

    def forget(ref: Any) -> None:
        kept = _definitions.get(key)
        if kept is not None and kept.target is ref:
            _definitions.pop(key, None)

    return forget


def _captured(root: Any) -> tuple[Any, ...]:
    """What cloudpickle captures of a function or class of ``__main__`` by value (see above), as
    a flat tuple of values: a function's code, defaults, globals and cells; a class's attributes
    and those of its ``__main__`` bases; and so on through the functions and classes of
    ``__main__`` among them."""
    out: list[Any] = []
    pending = [root]
    seen = {id(root)}
    while pending:
        obj = pending.pop()
        if type(obj) is _FunctionType:
            code = obj.__code__
            names = _names_by_code.get(id(code))
            if names is None or names[0] is not code:
                if len(_names_by_code) >= 4 * _MAX_DEFINITIONS:
                    _names_by_code.clear()
                names = _names_by_code[id(code)] = (code, tuple(_cloudpickle()._extract_code_globals(code)))
            out += (code, obj.__defaults__, obj.__kwdefaults__)
            namespace = obj.__globals__
            values = [namespace.get(name, _MISSING) for name in names[1]]
            for cell in obj.__closure__ or ():
                try:
                    values.append(cell.cell_contents)
                except ValueError:  # not set yet
                    values.append(_MISSING)
        else:
            values = []
            for klass in obj.__mro__:
                if klass.__module__ == "__main__":
                    values.append(klass)
                    # not the slots' and __dict__'s descriptors: they hold the class, which
                    # then would never die (and they cannot be rebound)
                    values += [value for value in vars(klass).values() if type(value) not in _CLASS_OWN]
        for value in values:
            if value is root:
                out.append(_SELF)
                continue
            out.append(value)
            kind = type(value)  # what may lead to more of __main__: functions, classes, methods
            if kind is _FunctionType or isinstance(value, type):
                inner: tuple[Any, ...] = (value,)
            elif kind is staticmethod or kind is classmethod:
                inner = (value.__func__,)
            elif kind is property:
                inner = (value.fget, value.fset, value.fdel)
            else:
                continue
            for item in inner:
                if id(item) not in seen and _is_main_definition(item):
                    seen.add(id(item))
                    pending.append(item)
    return tuple(out)


def dumps_to_worker(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Pickles the call ``(fn, args, kwargs)`` for a worker: as :func:`dumps`, except that the
    functions and classes of ``__main__`` in it travel as ``definition(key, data)`` references,
    pickled once (see above).

    The common case, ``fn`` of ``__main__`` and plain arguments, is one C pickle; arguments that
    refer to ``__main__`` (instances of its classes, its functions) take a pickler that swaps
    every definition of ``__main__`` it meets; what that cannot do, cloudpickle does whole.
    """
    call = (fn, args, kwargs)
    if getattr(fn, "__module__", None) == "__main__" and _is_main_definition(fn):
        try:
            made = _definition_of(fn)
        except Exception:
            made = None
        if made is None:
            return dumps(call)  # cloudpickle's own error, and the culprit's note, follow
        try:
            data = _dumps((made, args, kwargs), PROTOCOL)
        except Exception:
            data = None
        # Nothing else in the pickle names __main__: done.
        if data is not None and data.count(_MAIN_MARKER) == made.markers:
            return data
    else:
        try:
            data = _dumps(call, PROTOCOL)
        except Exception:
            data = None
        if data is not None and _MAIN_MARKER not in data:
            return data
    with io.BytesIO() as file:
        pickler = _definitions_pickler()(file, PROTOCOL)
        try:
            pickler.dump(call)
            data = file.getvalue()
        except Exception:
            data = None
    if data is None:
        return _cloudpickle_dumps(call)
    markers = pickler.sp_markers
    # Something of __main__ that is neither a function nor a class (a module-level object
    # pickled by name): cloudpickle knows what to do.
    return data if data.count(_MAIN_MARKER) == markers else _cloudpickle_dumps(call)


_DefinitionsPickler: Any = None


def _definitions_pickler() -> Any:
    """``_pickle.Pickler`` that pickles every function and class of ``__main__`` it meets as a
    ``definition(key, data)`` reference, counting what their bytes say of ``__main__``."""
    global _DefinitionsPickler
    if _DefinitionsPickler is None:

        class DefinitionsPickler(Pickler):
            sp_markers = 0

            def reducer_override(self, obj: Any) -> Any:
                if _is_main_definition(obj):
                    made = _definition_of(obj)
                    self.sp_markers += made.markers
                    return made.reduced
                return NotImplemented

        _DefinitionsPickler = DefinitionsPickler
    return _DefinitionsPickler
