"""Tasks of tests/test_lending.py: what a worker does with a memoryview it was lent."""

from __future__ import annotations

kept: list[memoryview] = []


def first_byte_after_handshake(view, ready, go):
    """Reads ``view[0]`` after the caller changed it: only the caller's own memory shows that."""
    ready.put(view[0])
    go.get(timeout=60)
    return view[0]


def write(view, offset, data):
    view[offset : offset + len(data)] = data
    return view.readonly


def layout(view):
    return type(view).__name__, view.format, view.shape, view.readonly, view.c_contiguous, view.tolist()


def keep(view):
    """Keeps a slice of the lent view beyond the task."""
    kept.append(view[1:])
    return len(kept)


def keep_and_report(view):
    kept.append(view)
    return view[0]


def drop_kept():
    kept.clear()
    return "dropped"


def first_kept_byte():
    return kept[0][0] if kept else None


def total(view):
    return sum(view.cast("B")) if view.format != "B" else sum(view)


def slice_of(view, start, stop):
    return view[start:stop]


def shared_bytearray(size):
    """Returns a bytearray that the worker keeps referencing (and may change later)."""
    global shared
    shared = bytearray(b"s" * size)
    return shared


def grow_shared():
    shared.extend(b"more")  # refused (BufferError) if the caller still had it lent
    return len(shared)
