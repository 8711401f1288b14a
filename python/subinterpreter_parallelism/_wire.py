"""Every record that crosses between interpreters, written once on the Python side.

The Swift side is ``Sources/NativeExtension/Wire.swift``, under the same names; it exports
the tags and rules (``VALUE_TAG``, ``ERROR_TAG``, ``SHAREABLE_TAG``, ``PICKLE_PROTOCOL``,
``MAIN_MARKER``, ``OUT_OF_BAND_*``, ``out_of_band_kind``) through ``_native``, and takes the
common cases of each record itself. CPython's ``concurrent/futures/process.py`` has
``_CallItem`` and ``_ResultItem``; these are ours:

``Call``
    ``fn(*args, **kwargs)`` for a worker. Swift sends it by name in the ``Shareable`` format
    (a function pickle sends by reference, shareable arguments), else as the C pickle of the
    tuple ``(fn, args, kwargs)``; :func:`encode_call` takes the rest (functions of
    ``__main__``, cloudpickle, arguments that travel out of band as ``OutOfBand`` markers).
    The worker's Swift decodes it; :func:`decode_call` takes a call with out-of-band arguments.
``Value``
    What a task returned: its pickle (first byte ``VALUE_TAG``, pickle's PROTO opcode).
``Shareable``
    What a task returned, made only of what the Swift core shares without pickle (first byte
    ``SHAREABLE_TAG``; made and read in Swift, ``_native.decode_shareable`` here).
``Lent``
    A large binary result lent to the caller instead of pickled (:class:`Lent`).
``Error``
    What a task raised (:class:`Error`; first byte ``ERROR_TAG``).
``Chunk``
    A ``map`` chunk's outcome (:class:`Chunk`), returned by the runner's ``run_chunk``.
``Bootstrap``
    What a worker interpreter runs before its first task (:class:`Bootstrap`).

One task, as it crosses (the Swift core takes the common case of each step; what it cannot
do, it hands to the function named here)::

    caller  submit ── Call ──────────────► Pool.submit: by name, or C pickle | encode_call
    worker  TaskRunner: Shareable call, or C unpickle | decode_call; calls the function
            └── Shareable, or C pickle (Value) | encode_value: Lent, __main__, unpicklable
                Error: the runner's encode_error ─────────────┐
    caller  Pool.deliver: Shareable, Value, Lent into the future | decode_outcome (Error, ...)

A worker imports this module at start (its runner reads the Bootstrap), so it imports no
pickle machinery at module level: ``_pickling`` loads the first time a record needs it.
"""

from __future__ import annotations

import marshal
import sys

from . import _native
from ._native import (
    ERROR_TAG,
    OUT_OF_BAND_BYTEARRAY,
    OUT_OF_BAND_BYTES,
    OUT_OF_BAND_MEMORYVIEW,
    OUT_OF_BAND_NO,
    SHAREABLE_TAG,
    VALUE_TAG,
    LentBuffer,
    decode_shareable,
    out_of_band_kind,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (worker start-up time)
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

__all__ = [
    "Bootstrap",
    "Chunk",
    "Error",
    "Lent",
    "OutOfBand",
    "by_name",
    "decode_call",
    "decode_outcome",
    "encode_call",
    "encode_error",
    "encode_value",
    "failure_from_unpickling",
    "pickling",
]

_pickling: ModuleType | None = None


def pickling() -> ModuleType:
    """``_pickling``, imported the first time a record needs pickle: a worker whose calls and
    results are all pickle-free, and whose Bootstrap is marshalled, never loads it. The worker
    half's other modules (``_worker_features``) take pickle from here too."""
    global _pickling
    if _pickling is None:
        from . import _pickling as module  # the one lazy import: see the docstring

        _pickling = module
    return _pickling


# -- Call ---------------------------------------------------------------------------------------


class OutOfBand:
    """Stands in a pickled call for a binary argument sent beside the pickle.

    ``kind`` says what the worker makes of it: ``"bytes"`` or ``"bytearray"`` (a copy of the
    bytes sent), ``"lent"`` (the caller's memoryview, lent: the view itself, no copy) or
    ``"memoryview"`` (a non-contiguous view's snapshot; ``layout`` is its
    ``(format, shape, readonly)``).

    What each kind costs: ``bytes`` are copied once, by the worker, straight from the caller's
    object; a ``bytearray`` is snapshotted as ``bytes`` at submit (a task sees its argument as
    it was at submit, as with a process pool), then copied once more; a C-contiguous
    ``memoryview`` is lent (BufferLend.swift), a non-contiguous one copied (a snapshot).
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


def encode_call(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bytes | tuple[bytes, list[bytes | memoryview]]:
    """Caller side (the pool's encoder, for what Swift's encoders leave): the Call
    ``fn(*args, **kwargs)``; on failure, a note names the culprit.

    Arguments that ``out_of_band_kind`` picks are not pickled: the result is then
    ``(pickle, [bytes or memoryview, ...])``, the pickle holding ``OutOfBand`` markers in their
    places (see :func:`decode_call`); the Swift core lends each memoryview to the worker.
    Raises ValueError for a released memoryview.
    """
    extras: list[bytes | memoryview] = []
    call_args, call_kwargs = args, kwargs
    # The common case, nothing out of band, checked without a Python frame per argument.
    if not (
        _IN_BAND.issuperset(map(out_of_band_kind, args))
        and _IN_BAND.issuperset(map(out_of_band_kind, kwargs.values()))
    ):
        call_args = tuple(_out_of_band(value, f"argument {i}", extras) for i, value in enumerate(args))
        call_kwargs = {
            key: _out_of_band(value, f"keyword argument {key!r}", extras) for key, value in kwargs.items()
        }
    module = _pickling or pickling()
    try:
        data: bytes = module.dumps_to_worker(fn, call_args, call_kwargs)
    except Exception as exc:
        exc.add_note(_culprit(module, fn, args, kwargs))
        raise
    return (data, extras) if extras else data


_IN_BAND = frozenset((OUT_OF_BAND_NO,))


def _out_of_band(value: Any, label: str, extras: list[bytes | memoryview]) -> Any:
    """``value`` as the Call carries it: itself, or an ``OutOfBand`` marker of what it put in
    ``extras``."""
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
        # Non-contiguous: a snapshot, rebuilt with the same format and shape (a copy, so the
        # task's writes do not reach the caller).
        extras.append(value.tobytes())
        return OutOfBand(len(extras) - 1, "memoryview", (value.format, value.shape, value.readonly))
    extras.append(bytes(value) if kind == OUT_OF_BAND_BYTEARRAY else value)
    return OutOfBand(len(extras) - 1, "bytearray" if kind == OUT_OF_BAND_BYTEARRAY else "bytes")


def decode_call(buffer: Any, extras: list[memoryview] | None) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """Worker side (for Swift, when arguments travel out of band): the Call as the tuple
    ``(fn, args, kwargs)``; ``extras`` are views of its out-of-band arguments, in the caller's
    memory: those of ``bytes`` (valid during this call only) are copied here once each, a lent
    memoryview goes to the task as it is."""
    fn, args, kwargs = pickling().loads(buffer)
    if extras:
        args = tuple(a.rebuild(extras[a.index]) if type(a) is OutOfBand else a for a in args)
        kwargs = {k: v.rebuild(extras[v.index]) if type(v) is OutOfBand else v for k, v in kwargs.items()}
    return fn, args, kwargs


def _culprit(pickling: ModuleType, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Finds which part of a call cannot be pickled (run only after a failure)."""
    parts: list[tuple[str, Any]] = [(f"the function {_describe(fn)}", fn)]
    parts += [(f"argument {i}", value) for i, value in enumerate(args)]
    parts += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
    for label, value in parts:
        try:
            pickling.dumps(value)
        except Exception:
            return (
                f"{label} ({type(value).__module__}.{type(value).__qualname__}) cannot be "
                "pickled, so it cannot be sent to a worker interpreter"
            )
    return "the call cannot be pickled, so it cannot be sent to a worker interpreter"


def _describe(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return f"{name!s}" if name else repr(fn)


def by_name(module: str, qualname: str) -> Any:
    """``module.qualname``, importing the module (dotted qualified names allowed), as unpickling
    a reference does. With ``__import__``, not ``importlib.import_module``: a worker's
    bootstrap need not load the ``importlib`` package."""
    __import__(module)
    target: Any = sys.modules[module]
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


# -- Value, Shareable, Lent: what a task returned ---------------------------------------------


class Lent:
    """A binary result lent to the caller instead of pickled: the caller copies it once.

    ``value`` is a ``bytes``, a ``bytearray`` (``as_bytearray``: the caller makes its copy a
    ``bytearray``) or a C-contiguous ``memoryview`` whose memory cannot change. The Swift
    worker takes a buffer export of it (``ResultLending``), lending a snapshot of a
    ``bytearray`` that something else still references.
    """

    __slots__ = ("as_bytearray", "value")

    def __init__(self, value: Any, as_bytearray: bool = False) -> None:
        self.value = value
        self.as_bytearray = as_bytearray


def encode_value(value: Any) -> bytes | Lent:
    """Worker side (for Swift, when it cannot encode a result itself): the outcome of a call
    that returned ``value``: a ``Lent``, its pickle (a Value; cloudpickle for what refers to
    ``__main__``), or the Error of pickling it.

    A result that ``out_of_band_kind`` picks is lent. A ``memoryview`` comes back as ``bytes``
    (what pickling it would give, if pickle could): lent when the memory behind it cannot
    change (``bytes``, or the caller's own lent memory), else snapshotted here first.
    """
    kind = out_of_band_kind(value)
    if kind != OUT_OF_BAND_NO:
        if kind == OUT_OF_BAND_BYTES:
            return Lent(value)
        if kind == OUT_OF_BAND_BYTEARRAY:
            return Lent(value, as_bytearray=True)
        try:
            stable = value.c_contiguous and type(value.obj) in (bytes, LentBuffer)
            return Lent(value if stable else value.tobytes())
        except ValueError as exc:  # a released memoryview
            note_unpicklable_result(exc, value)
            return encode_error(exc)
    try:
        data: bytes = pickling().dumps(value)
    except BaseException as exc:  # the result cannot be pickled: the task fails with that error
        note_unpicklable_result(exc, value)
        return encode_error(exc)
    return data


def note_unpicklable_result(exc: BaseException, value: Any) -> None:
    """Worker side: says on ``exc`` (raised by pickling ``value``) which result it was."""
    exc.add_note(
        f"while pickling the result ({type(value).__module__}.{type(value).__qualname__}) "
        "to send it back from the worker interpreter"
    )


# -- Error: what a task raised -------------------------------------------------------------------


class Error:
    """What a task raised, as the caller needs it even when the exception cannot travel: its
    type's name, its message, its traceback's text, and its pickle (None when it cannot be
    pickled). On the wire: ``ERROR_TAG``, then the pickle of those four as a tuple."""

    __slots__ = ("message", "pickled", "traceback", "type_name")

    def __init__(self, type_name: str, message: str, traceback: str, pickled: bytes | None) -> None:
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        self.pickled = pickled

    @classmethod
    def of(cls, exc: BaseException, skip_frames: int = 0) -> Error:
        """Worker side: the record of ``exc``, its traceback without its first ``skip_frames``
        frames (the runner's). Never raises."""
        try:
            import traceback  # only on failures: it is a noticeable part of a worker's start-up

            tb = exc.__traceback__
            for _ in range(skip_frames):
                if tb is not None:
                    tb = tb.tb_next
            text = "".join(traceback.format_exception(type(exc), exc, tb))
            type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
            if type_name.startswith("builtins."):
                type_name = type_name[len("builtins.") :]
            try:
                message = str(exc)
            except Exception:
                message = "<str() failed>"
            try:
                pickled: bytes | None = pickling().dumps(exc)
            except BaseException:
                pickled = None
            return cls(type_name, message, text, pickled)
        except BaseException:
            return cls("RuntimeError", "the worker could not encode the task's exception", "", None)

    def encode(self) -> bytes:
        module = pickling()
        fields = (self.type_name, self.message, self.traceback, self.pickled)
        return bytes((ERROR_TAG,)) + module._dumps(fields, module.PROTOCOL)  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, buffer: Any) -> Error:
        """The record in ``buffer``, which starts with ``ERROR_TAG``."""
        view = memoryview(buffer)
        if view[0] != ERROR_TAG:
            raise ValueError(f"not an Error record (first byte {view[0]:#x})")
        return cls(*pickling().loads(view[1:]))

    def exception(self) -> BaseException:
        """Caller side: the exception to raise: the original, with its type and args, when it
        unpickles here, else ``ExecutionFailed``; a ``RemoteTraceback`` as its ``__cause__``,
        and a note when an import refused to load in an own-GIL interpreter."""
        # Caller-side modules, never needed in a worker: imported on the first failure.
        from . import _refusal
        from .errors import ExecutionFailed, RemoteTraceback

        exc: Any = None
        if self.pickled is not None:
            try:
                exc = pickling().loads(self.pickled)
            except BaseException:  # even SystemExit from a __reduce__: the future must still fail
                exc = None
        if not isinstance(exc, BaseException):
            exc = ExecutionFailed(self.type_name, self.message, self.traceback)
        exc.__cause__ = RemoteTraceback(self.traceback)
        if _refusal.mentions_refusal(self.traceback):
            _refusal.note_refusal(exc)  # names the module, points to `check` and fallback
        return exc  # type: ignore[no-any-return]


def encode_error(exc: BaseException, skip_frames: int = 0) -> bytes:
    """Worker side: the outcome of a call that raised ``exc`` (see ``Error.of``). Never raises."""
    return Error.of(exc, skip_frames).encode()


def decode_outcome(buffer: Any) -> tuple[bool, Any]:
    """Caller side: ``(True, value)`` or ``(False, exception)`` from a Value, a Shareable value
    or an Error. Raises only if the value itself cannot be unpickled here."""
    view = memoryview(buffer)
    if view[0] == VALUE_TAG:
        return True, pickling().loads(view)
    if view[0] == SHAREABLE_TAG:
        return True, decode_shareable(view)
    return False, Error.decode(view).exception()


def failure_from_unpickling(error: BaseException) -> BaseException:
    """Caller side: the exception for a value that came back but cannot be unpickled here."""
    import traceback  # caller side, on a failure only

    from .errors import ExecutionFailed  # caller side, on a failure only

    failed = ExecutionFailed(
        f"{type(error).__module__}.{type(error).__qualname__}",
        f"the task's result could not be unpickled in the caller: {error}",
        "".join(traceback.format_exception(error)),
    )
    failed.__cause__ = error
    return failed


# -- Chunk: a map chunk's outcome ---------------------------------------------------------------


class Chunk:
    """A ``map`` chunk's outcome: the results of its items in order, up to the first item that
    raised or whose result cannot be pickled, and then that item's ``Error`` (else None).

    It crosses as what the chunk's task returns: the tuple ``(pickle of the results, the
    Error's bytes or None)``, which the Swift core carries in the Shareable format. Pickling
    the results in the worker's runner rather than as the task's value is what lets the
    results before a failing item travel whatever the failure is.
    """

    __slots__ = ("failure", "results")

    def __init__(self, results: list[Any], failure: Error | None) -> None:
        self.results = results
        self.failure = failure

    def encode(self) -> tuple[bytes, bytes | None]:
        """Worker side. Some result that cannot be pickled: that item fails, with the Error of
        pickling it, and the ones before it travel."""
        module = pickling()
        failure = None if self.failure is None else self.failure.encode()
        try:
            return module.dumps(self.results), failure
        except BaseException as exc:
            whole = exc
        for index, value in enumerate(self.results):
            try:
                module.dumps(value)
            except BaseException as exc:
                note_unpicklable_result(exc, value)
                return module.dumps(self.results[:index]), encode_error(exc)
        return module.dumps([]), encode_error(whole)

    @classmethod
    def decode(cls, wire: tuple[bytes, bytes | None]) -> Chunk:
        """Caller side; raises ``failure_from_unpickling``'s exception when the results do not
        unpickle here."""
        data, failure = wire
        try:
            results = pickling().loads(data)
        except BaseException as error:
            raise failure_from_unpickling(error) from None
        return cls(results, None if failure is None else Error.decode(failure))


# -- Bootstrap: what a worker runs before its first task ----------------------------------------


class Bootstrap:
    """A worker interpreter's preparation: whether ``time.sleep`` is made interruptible, the
    pool's ``steps`` (``(function, argument)`` pairs: forwarding's ``install``, preload's
    ``import_modules``), then ``initializer(*initargs)``. The runner's ``bootstrap`` runs it.

    On the wire: without an initializer, and when the steps' arguments are plain data, the
    marshal of ``(interruptible_sleep, ((module, qualname, argument), ...))``, each step named
    by its module and qualified name, so that a worker starts without importing pickle;
    otherwise the pickle of the four fields as a tuple, which starts with ``VALUE_TAG`` (its
    PROTO opcode), which no marshal data does.
    """

    __slots__ = ("initargs", "initializer", "interruptible_sleep", "steps")

    def __init__(
        self,
        steps: list[tuple[Any, Any]] | tuple[tuple[Any, Any], ...] = (),
        initializer: Any = None,
        initargs: tuple[Any, ...] = (),
        interruptible_sleep: bool = True,
    ) -> None:
        self.steps = steps
        self.initializer = initializer
        self.initargs = initargs
        self.interruptible_sleep = interruptible_sleep

    def encode(self) -> bytes:
        """Caller side. Raises what pickling raises (an initializer or initargs that cannot be
        pickled)."""
        if self.initializer is None and not self.initargs:
            named = tuple((step.__module__, step.__qualname__, argument) for step, argument in self.steps)
            try:
                return marshal.dumps((self.interruptible_sleep, named))
            except Exception:  # an argument marshal cannot hold (a class, a Queue): pickled
                pass
        fields = (self.interruptible_sleep, tuple(self.steps), self.initializer, tuple(self.initargs))
        # For this process's interpreters: a SharedMap in initargs travels as its id (the executor
        # keeps the initializer and initargs, and so the map, while workers may start).
        return _native._encode_for_interpreters(pickling().dumps, fields)

    @classmethod
    def decode(cls, payload: bytes) -> Bootstrap:
        """Worker side (the runner's ``bootstrap``)."""
        if payload[0] == VALUE_TAG:
            interruptible_sleep, steps, initializer, initargs = pickling().loads(payload)
            return cls(steps, initializer, initargs, interruptible_sleep)
        interruptible_sleep, named = marshal.loads(payload)
        steps = [(by_name(module, qualname), argument) for module, qualname, argument in named]
        return cls(steps, interruptible_sleep=interruptible_sleep)
