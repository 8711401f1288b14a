"""The runner inside every worker interpreter.

The Swift worker (Sources/NativeExtension/TaskRunner.swift) imports this module once per
interpreter and binds its functions by name. A task crosses into Python once: the Swift
worker decodes the Call (``_wire``'s records), calls the function (a Python function or a
class directly, anything else through ``invoke``) and encodes what it returned; ``_wire``'s
``decode_call`` and ``encode_value``, and ``encode_error`` here, take only what Swift cannot
do (out-of-band arguments, results that are lent, refer to ``__main__`` or cannot be pickled,
exceptions). ``bootstrap`` prepares the interpreter; ``run_chunk`` runs a ``map`` chunk.

Keep it small: its imports are part of every worker's start-up. Pickle (``_pickling``, and
through it ``_pickle``, ``functools``, ``collections``) loads only when a record first needs
it (see ``_wire``).
"""

from __future__ import annotations

import os
import sys
import time
from itertools import starmap as _starmap

from . import _import_hooks, _native, _versions, _wire  # _native, _versions: the package has them
from ._native import TaskInterrupted

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (worker start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "TaskInterrupted",
    "bootstrap",
    "call_by_name",
    "encode_error",
    "flush_unflushed",
    "follow_sys_path",
    "guard_environment_writes",
    "invoke",
    "run_chunk",
]


# The frames of modules that set this lead into the user's code: they are left out of task
# tracebacks (an integration's evaluator sets it too, e.g. dask_support.expressions).
_SP_RUNNER_FRAMES = True


# Forwarded output a call left without a newline (see forwarding.py): flushed when the call
# ends, so that it reaches the caller before the result. Features beside the runner register here.
unflushed: list[Any] = []


# The caller's sys.path as this interpreter last took it: the Swift worker sets sys.path to
# the caller's just before it imports this module, and calls follow_sys_path when it changes.
_caller_path: list[str] = list(sys.path)


def follow_sys_path(entries: list[str]) -> None:
    """Makes ``sys.path`` the caller's ``entries`` (its ``sys.path`` as of a later submit).

    Entries this interpreter added itself (its initializer's, a task's) stay: those it put
    before the caller's entries stay in front, the others follow them.
    """
    global _caller_path
    previous = _caller_path
    current = sys.path
    cut = 0
    while cut < len(current) and current[cut] not in previous:
        cut += 1
    front = [entry for entry in current[:cut] if entry not in entries]
    back = [entry for entry in current[cut:] if entry not in previous and entry not in entries]
    sys.path[:] = front + entries + back
    _caller_path = list(entries)


def invoke(call: tuple[Any, tuple[Any, ...], dict[str, Any]]) -> Any:
    """Runs one decoded call whose function is not a Python function or class (a builtin, a
    ``functools.partial``, a bound method): builtins such as ``eval`` or ``vars`` read the
    calling Python frame, which is this one."""
    fn, args, kwargs = call
    try:
        return fn(*args, **kwargs)
    finally:
        if unflushed:
            flush_unflushed()


def flush_unflushed() -> None:
    """Sends what forwarded streams still hold (end of a task or of the bootstrap)."""
    while unflushed:
        try:
            unflushed.pop().flush()
        except Exception:
            pass


def encode_error(exc: BaseException) -> bytes:
    """Encodes an exception raised by a task (its Error record, see ``_wire``).

    The runner's own leading frames (``invoke``, ``call_by_name``, ``run_chunk``, and those of
    modules that set ``_SP_RUNNER_FRAMES``) are left out of the traceback: the user's code starts
    the story.
    """
    return _reporting(lambda: _wire.encode_error(exc, skip_frames=_runner_frames(exc)))


def _error_of(exc: BaseException) -> _wire.Error:
    """The Error record of a task's exception, as ``encode_error`` makes it."""
    return _reporting(lambda: _wire.Error.of(exc, skip_frames=_runner_frames(exc)))


def _reporting[T](encode: Callable[[], T]) -> T:
    """``encode()``; when a task set a very low recursion limit, with ``_REPORTING_DEPTH`` while
    it runs: the imports that encoding may need first (pickle, traceback and theirs) need more,
    and the failure must still be reported."""
    limit = sys.getrecursionlimit()
    if limit >= _REPORTING_DEPTH:
        return encode()
    sys.setrecursionlimit(_REPORTING_DEPTH)
    try:
        return encode()
    finally:
        sys.setrecursionlimit(limit)


def _runner_frames(exc: BaseException) -> int:
    """How many of the leading frames of ``exc``'s traceback are the runner's."""
    skip = 0
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_globals.get("_SP_RUNNER_FRAMES"):
        skip += 1
        tb = tb.tb_next
    return skip


# The recursion limit under which ``encode_error`` raises it while it works (CPython's default).
_REPORTING_DEPTH = 1000


def bootstrap(payload: bytes | None) -> str | None:
    """Prepares the interpreter: interruptible ``time.sleep``, the pool's ``steps``, then its
    initializer.

    ``payload`` is a ``_wire.Bootstrap``. Its ``steps`` are ``(function, argument)`` pairs
    (forwarding's ``install``, preload's ``import_modules``): the runner calls each in order
    and knows none of them. A step that fails raises, as a failing initializer does: the
    bootstrap fails with its traceback, and the pool breaks with that reason. A step that
    returns False says that the pool broke or is going away (preload's gate closed): the
    bootstrap ends there, quietly (the worker gets no task).

    Returns None on success, or the traceback text of the failure.
    """
    try:
        config = _wire.Bootstrap.decode(payload) if payload is not None else _wire.Bootstrap()
        guard_environment_writes()
        if config.interruptible_sleep:
            # So that cancel, timeouts and Ctrl-C end a sleeping task at once.
            time.sleep = _native.sleep
        # An interruption that lands inside a weakref callback (importlib's module locks) or a
        # finalizer would be printed and lost: it is raised again (python/cpython#95959).
        sys.unraisablehook = _native._keep_task_interrupted
        if _versions.PYDATETIME_IN_WORKERS:
            _import_hooks.watch("_pydatetime", _present_as_datetime)
        for step, argument in config.steps:
            if step(argument) is False:
                return None  # the pool broke or is going away: no task will come
        if config.initializer is not None:
            config.initializer(*config.initargs)
    except BaseException as exc:
        import traceback

        return "".join(traceback.format_exception(exc))
    finally:
        flush_unflushed()
    return None


def guard_environment_writes() -> None:
    """Makes this interpreter's ``os.putenv`` and ``os.unsetenv`` (and so the writes of
    ``os.environ``, which call them) take the process-wide lock under which
    ``fallback="process"`` starts its processes. A process start reads the C environment while
    the other threads go on, and fails, silently, when one of them removes a variable meanwhile:
    numpy's import, refused here and so run again in every task that needs numpy, adds and
    removes one (EnvironmentLock.swift tells the whole story)."""
    for name in ("putenv", "unsetenv"):
        original = getattr(os, name)
        if getattr(original, "__wrapped__", None) is None:  # not guarded yet
            setattr(os, name, _under_environment_lock(original))


def _under_environment_lock(original: Any) -> Any:
    def guarded(*args: Any, **kwargs: Any) -> Any:  # the original's own errors for bad arguments
        return _native.with_environment_lock(original, *args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = original.__name__
    guarded.__doc__ = original.__doc__
    guarded.__wrapped__ = original  # type: ignore[attr-defined]
    return guarded


def _present_as_datetime(module: Any) -> None:
    """Python 3.12 refuses the C ``_datetime`` in own-GIL interpreters, so ``datetime`` there is
    ``_pydatetime``. Naming its classes ``datetime.*`` (which they are, in this interpreter)
    makes their pickles load as the caller's own ``datetime`` types instead of ``_pydatetime``
    ones that never compare equal to them."""
    for name in ("date", "datetime", "time", "timedelta", "timezone"):
        cls = getattr(module, name, None)
        if cls is not None:
            cls.__module__ = "datetime"
    timezone = getattr(module, "timezone", None)
    if timezone is not None:
        # The pure-Python timezone pickles its slots as state, which the C type cannot take;
        # its constructor arguments are all it needs.
        timezone.__reduce__ = lambda self: (timezone, self.__getinitargs__())


def call_by_name(module: str, function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The seed's call: ``module.function(*args, **kwargs)`` by name (dotted names allowed)."""
    return _wire.by_name(module, function)(*args, **kwargs)


def run_chunk(
    fn: Any, chunk: list[Any], raise_refusals: bool = False, star: bool = True
) -> tuple[bytes, bytes | None]:
    """Runs a ``map`` chunk; returns its ``_wire.Chunk``, encoded.

    Each item of ``chunk`` is an argument tuple, ``fn(*args)``, or with ``star=False`` the one
    argument itself, ``fn(item)``: ``map`` over one iterable sends its items bare, whose pickle
    is several times smaller and quicker both ways than one of 1-tuples. An item that raises
    ends the chunk: its Error follows the results before it (so an exception that cannot be
    pickled still arrives, as ``ExecutionFailed``).

    With ``raise_refusals`` (``fallback="process"``), an import that own-GIL interpreters
    refuse is raised instead: the chunk fails as a whole and runs again in a process.
    """
    results: list[Any] = []
    failure = None
    try:
        # The loop runs in C (no Python frame per item); list.extend keeps the results it
        # appended before an item raised.
        results.extend(_starmap(fn, chunk) if star else map(fn, chunk))
    except TaskInterrupted:
        raise
    except BaseException as exc:
        if raise_refusals:
            from ._refusal import find_refusal  # only with fallback="process", on a failure

            if find_refusal(exc) is not None:
                raise
        failure = _error_of(exc)
    return _wire.Chunk(results, failure).encode()
