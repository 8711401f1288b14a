"""Tasks of tests/test_task_views.py: a call whose unpickling reaches for the memoryview that
the worker made over the caller's bytes (the runner never hands it to user code; when
arguments travel out of band, the runner's ``decode_call`` unpickles it in Python, where a
reconstructor that walks the stack can still find it)."""

from __future__ import annotations

import sys

kept: list[object] = []


def _grab() -> int:
    """Called by the unpickler: keeps the view the call is read from, and a buffer exported from
    it (a ``PickleBuffer`` holds one), which makes the worker's ``view.release()`` fail."""
    from pickle import PickleBuffer

    frame = sys._getframe(1)
    while frame is not None:
        views = [v for v in frame.f_locals.values() if type(v) is memoryview and v.obj is None]
        if views:
            kept.append(views[0])
            kept.append(PickleBuffer(views[0]))
            return 0
        frame = frame.f_back
    raise LookupError("no memoryview over the caller's bytes on the stack")


class Grabber:
    """Unpickles by calling ``_grab``."""

    def __reduce__(self):
        return (_grab, ())


def identity(value, *_):
    return value


def references_to_kept_view() -> int:
    """References to the kept view besides ``kept``, the ``PickleBuffer``'s export and this
    call's argument."""
    return sys.getrefcount(kept[0]) - 3


def forget() -> int:
    """Drops what ``_grab`` kept, the export first: left to the interpreter's end, the view
    would meet its garbage collection with a buffer still exported (Python 3.12 crashes)."""
    kept.pop().release()
    kept.clear()
    return 0
