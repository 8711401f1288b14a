"""The encoding of a task's outcome, made in the worker and read in the caller.

A returned value is its pickle, whose first byte is ``VALUE_TAG`` (pickle's PROTO opcode), or,
when it is made only of None, bool, int, float, complex, str, bytes and tuples, frozensets
and frozendicts of them, the Swift core's
pickle-free encoding (first byte ``SHAREABLE_TAG``, made and read in Swift: the worker and the
caller's completion path never call Python for it); a
raised exception is ``ERROR_TAG`` followed by the pickle of ``(type name, message, traceback
text, pickled exception or None)``, so that the caller can rebuild an ``ExecutionFailed`` when
the exception itself cannot travel. Both tags are the Swift core's (``WireFormat``), which
reads them too.
"""

from __future__ import annotations

from . import _pickling
from ._native import (
    ERROR_TAG,
    OUT_OF_BAND_BYTEARRAY,
    OUT_OF_BAND_BYTES,
    OUT_OF_BAND_NO,
    SHAREABLE_TAG,
    VALUE_TAG,
    LentBuffer,
    decode_shareable,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (worker start-up time)
if TYPE_CHECKING:
    from typing import Any

_ERROR_MARK = bytes((ERROR_TAG,))


def decode_call(buffer: Any, extras: list[memoryview] | None) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """Worker side (the runner's ``decode_call``): unpickles a call; ``extras`` are views of
    its out-of-band binary arguments, in the caller's memory: those of ``bytes`` (valid during
    this call only) are copied here once each, a lent memoryview goes to the task as it is
    (see ``_pickling.OutOfBand``)."""
    fn, args, kwargs = _pickling.loads(buffer)
    if extras:
        OutOfBand = _pickling.OutOfBand
        args = tuple(a.rebuild(extras[a.index]) if type(a) is OutOfBand else a for a in args)
        kwargs = {k: v.rebuild(extras[v.index]) if type(v) is OutOfBand else v for k, v in kwargs.items()}
    return fn, args, kwargs


def encode_value(value: Any) -> bytes | tuple[bytes]:
    """Worker side: the outcome of a call that returned ``value``.

    A result that ``out_of_band_kind`` picks is not pickled: ``(value,)`` tells the Swift core
    to lend its buffer to the caller, which copies it once (see ``LentBytes`` in ResultLending.swift).
    A ``bytearray`` goes as ``(value, True)``, rebuilt as a bytearray (the core lends a snapshot
    if anything else still references it). A ``memoryview`` comes back as ``bytes`` (what
    pickling it would give, if pickle could): lent when the memory behind it cannot change
    (``bytes``, or the caller's own lent memory), else snapshotted here first.
    """
    kind = _pickling.out_of_band_kind(value)
    if kind != OUT_OF_BAND_NO:
        if kind == OUT_OF_BAND_BYTES:
            return (value,)
        if kind == OUT_OF_BAND_BYTEARRAY:
            return (value, True)
        try:
            stable = value.c_contiguous and type(value.obj) in (bytes, LentBuffer)
            return (value,) if stable else (value.tobytes(),)
        except ValueError as exc:  # a released memoryview
            note_unpicklable_result(exc, value)
            return encode_exception(exc)
    try:
        return _pickling.dumps(value)
    except BaseException as exc:  # the result cannot be pickled: the task fails with that error
        note_unpicklable_result(exc, value)
        return encode_exception(exc)


def note_unpicklable_result(exc: BaseException, value: Any) -> None:
    """Worker side: says on ``exc`` (raised by pickling ``value``) which result it was."""
    exc.add_note(
        f"while pickling the result ({type(value).__module__}.{type(value).__qualname__}) "
        "to send it back from the worker interpreter"
    )


def encode_exception(exc: BaseException, skip_frames: int = 0) -> bytes:
    """Worker side: the outcome of a call that raised ``exc``. Never raises."""
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
            pickled: bytes | None = _pickling.dumps(exc)
        except BaseException:
            pickled = None
        return _ERROR_MARK + _pickling._dumps((type_name, message, text, pickled), _pickling.PROTOCOL)
    except BaseException:
        return _ERROR_MARK + _pickling._dumps(
            ("RuntimeError", "the worker could not encode the task's exception", "", None),
            _pickling.PROTOCOL,
        )


def decode(buffer: Any) -> tuple[bool, Any]:
    """Caller side: ``(True, value)`` or ``(False, exception)`` from an encoded outcome.

    The exception keeps its original type and args, with a ``RemoteTraceback`` as its
    ``__cause__``; one that cannot be rebuilt here becomes ``ExecutionFailed``.
    Raises only if the value itself cannot be unpickled here.
    """
    view = memoryview(buffer)
    if view[0] == VALUE_TAG:
        return True, _pickling.loads(view)
    if view[0] == SHAREABLE_TAG:
        return True, decode_shareable(view)
    from .errors import ExecutionFailed, RemoteTraceback

    type_name, message, text, pickled = _pickling.loads(view[1:])
    exc: Any = None
    if pickled is not None:
        try:
            exc = _pickling.loads(pickled)
        except BaseException:  # even SystemExit from a __reduce__: the future must still fail
            exc = None
    if not isinstance(exc, BaseException):
        exc = ExecutionFailed(type_name, message, text)
    exc.__cause__ = RemoteTraceback(text)
    from . import _refusal

    if _refusal.mentions_refusal(text):
        _refusal.note_refusal(exc)  # names the module, points to `check` and fallback
    return False, exc


def failure_from_unpickling(error: BaseException) -> BaseException:
    """Caller side: the exception for a value that came back but cannot be unpickled here."""
    import traceback

    from .errors import ExecutionFailed

    failed = ExecutionFailed(
        f"{type(error).__module__}.{type(error).__qualname__}",
        f"the task's result could not be unpickled in the caller: {error}",
        "".join(traceback.format_exception(error)),
    )
    failed.__cause__ = error
    return failed
