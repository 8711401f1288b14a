"""The profile function of ``crossings.py``, importable by name in every interpreter (the
worker installs it from its initializer; the caller's threads get it from the script).

Per thread it counts Python-level calls (``calls``) and crossings between Python and the
Swift core (``crossings``): a Python function entered with no Python caller on its thread
(a worker's or the completion thread's call from Swift) or called while a ``_native`` function
is the innermost call (Swift calling back into Python), and every call of a ``_native``
function or method from Python.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

NATIVE = "subinterpreter_parallelism._native"

# Per thread (by ident): [calls, crossings, into_swift, from_swift].
counts: dict[int, list[int]] = {}
_local = threading.local()


def _is_native(function: Any) -> bool:
    owner = getattr(function, "__self__", None)
    return getattr(function, "__module__", None) == NATIVE or type(owner).__module__ == NATIVE


def profile(frame: Any, event: str, arg: Any) -> None:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
        _local.counts = counts.setdefault(threading.get_ident(), [0, 0, 0, 0])
    mine = _local.counts
    if event == "call":
        mine[0] += 1
        if not stack or stack[-1]:
            mine[1] += 1
            mine[3] += 1
        stack.append(False)
    elif event == "c_call":
        native = _is_native(arg)
        if native:
            mine[1] += 1
            mine[2] += 1
        stack.append(native)
    elif stack:  # return, c_return, c_exception (the first ones after installing have no entry)
        stack.pop()


def install() -> None:
    """A worker's initializer: counts from now on, on this thread."""
    sys.setprofile(profile)


def snapshot(thread: int | None = None) -> tuple[int, ...]:
    """The counts so far, of one thread or of all, as a tuple (travels without pickle: no
    encoding frame)."""
    rows = [counts.get(thread, [0, 0, 0, 0])] if thread is not None else list(counts.values())
    return tuple(sum(column) for column in zip([0, 0, 0, 0], *rows))
