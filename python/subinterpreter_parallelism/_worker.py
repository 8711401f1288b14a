"""The runner inside every worker interpreter.

The Swift worker (Sources/NativeExtension/TaskRunner.swift) imports this module once
per interpreter, then for each pickled task calls ``decode_call``, ``invoke`` and
``encode_result`` or ``encode_error``, timing each step. A call or a result in the Swift
core's pickle-free format (a module-level function with None, bool, int, float, complex,
str, bytes, tuple, frozenset and frozendict arguments; such a result) never comes here.

Keep it small: its imports are part of every worker's start-up. Pickle (``_pickling``,
``_outcome``, and through them ``_pickle``, ``functools``, ``collections``) loads only when
the first pickled call, result or exception appears: ``decode_call`` and ``encode_result``
are looked up by the Swift worker on first use and load here then (``__getattr__``).
"""

from __future__ import annotations

import sys
import time
from itertools import starmap as _starmap

TYPE_CHECKING = False

from . import _native, _versions  # both imported by the package itself already
from ._native import VALUE_TAG, TaskInterrupted

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "TaskInterrupted",
    "bootstrap",
    "call_by_name",
    "decode_call",
    "encode_bootstrap",
    "encode_error",
    "encode_result",
    "flush_unflushed",
    "follow_sys_path",
    "guard_environment_writes",
    "invoke",
    "run_chunk",
]

# The runner's parts that need pickle, by the name of their implementation in _outcome.
_PICKLING_PARTS = {"decode_call": "decode_call", "encode_result": "encode_value"}


def __getattr__(name: str) -> Any:
    """``decode_call`` and ``encode_result``: imported with pickle on first use (PEP 562)."""
    implementation = _PICKLING_PARTS.get(name)
    if implementation is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _outcome

    value = getattr(_outcome, implementation)
    globals()[name] = value
    return value


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
    """Runs one decoded call."""
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
    """Encodes an exception raised by ``decode_call`` or ``invoke``.

    The runner's own leading frames (``invoke``, ``call_by_name``, ``run_chunk``, and those of
    modules that set ``_SP_RUNNER_FRAMES``) are left out of the traceback: the user's code starts
    the story.
    """
    skip = 0
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_globals.get("_SP_RUNNER_FRAMES"):
        skip += 1
        tb = tb.tb_next
    limit = sys.getrecursionlimit()
    if limit >= _REPORTING_DEPTH:
        from . import _outcome  # pickle loads with the first failure, if not before

        return _outcome.encode_exception(exc, skip_frames=skip)
    # A task set a very low recursion limit: the imports that encoding may need first
    # (pickle, traceback and theirs) need more, and the failure must still be reported.
    sys.setrecursionlimit(_REPORTING_DEPTH)
    try:
        from . import _outcome

        return _outcome.encode_exception(exc, skip_frames=skip)
    finally:
        sys.setrecursionlimit(limit)


# The recursion limit under which ``encode_error`` raises it while it works (CPython's default).
_REPORTING_DEPTH = 1000


def encode_bootstrap(config: dict[str, Any]) -> bytes:
    """Caller side: the ``payload`` of ``bootstrap``. Without an initializer, and when the
    steps' arguments are plain data, it is marshalled, with each step named by its module
    and qualified name, so that a worker starts without importing pickle; otherwise pickled.
    A pickle starts with ``VALUE_TAG`` (its PROTO opcode), which no marshal data does.

    Raises what pickling raises (an initializer or initargs that cannot be pickled)."""
    if config.get("initializer") is None and not config.get("initargs"):
        import marshal

        named = tuple(
            (step.__module__, step.__qualname__, argument) for step, argument in config.get("steps", ())
        )
        try:
            return marshal.dumps((config.get("interruptible_sleep", True), named))
        except Exception:  # an argument marshal cannot hold (a class, a Queue): pickled
            pass
    from . import _pickling

    # For this process's interpreters: a SharedMap in initargs travels as its id (the executor
    # keeps the initializer and initargs, and so the map, while workers may start).
    return _native._encode_for_interpreters(_pickling.dumps, config)


def _decode_bootstrap(payload: bytes) -> dict[str, Any]:
    """Worker side: the configuration ``encode_bootstrap`` encoded."""
    if payload[0] == VALUE_TAG:
        from . import _pickling

        config: dict[str, Any] = _pickling.loads(payload)
        return config
    import marshal

    interruptible_sleep, named = marshal.loads(payload)
    return {
        "interruptible_sleep": interruptible_sleep,
        "steps": [(_by_name(module, qualname), argument) for module, qualname, argument in named],
    }


def _by_name(module: str, qualname: str) -> Any:
    """``module.qualname``, importing the module (dotted qualified names allowed). With
    ``__import__``, not ``importlib.import_module``: a worker's bootstrap need not load the
    ``importlib`` package."""
    __import__(module)
    target: Any = sys.modules[module]
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def bootstrap(payload: bytes | None) -> str | None:
    """Prepares the interpreter: interruptible ``time.sleep``, the pool's ``steps``, then its
    initializer.

    ``steps`` are ``(function, argument)`` pairs, pickled by the pool (forwarding's
    ``install``, preload's ``import_modules``): the runner calls each in order and knows
    none of them. A step that fails raises, as a failing initializer does: the bootstrap
    fails with its traceback, and the pool breaks with that reason. A step that returns False
    says that the pool broke or is going away (preload's gate closed): the bootstrap ends
    there, quietly (the worker gets no task).

    Returns None on success, or the traceback text of the failure.
    """
    try:
        config = _decode_bootstrap(payload) if payload is not None else {}
        guard_environment_writes()
        if config.get("interruptible_sleep", True):
            # So that cancel, timeouts and Ctrl-C end a sleeping task at once.
            time.sleep = _native.sleep
        # An interruption that lands inside a weakref callback (importlib's module locks) or a
        # finalizer would be printed and lost: it is raised again (python/cpython#95959).
        sys.unraisablehook = _native._keep_task_interrupted
        if _versions.PYDATETIME_IN_WORKERS:
            from . import _import_hooks

            _import_hooks.watch("_pydatetime", _present_as_datetime)
        for step, argument in config.get("steps", ()):
            if step(argument) is False:
                return None  # the pool broke or is going away: no task will come
        initializer = config.get("initializer")
        if initializer is not None:
            initializer(*config.get("initargs", ()))
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
    import os

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
    return _by_name(module, function)(*args, **kwargs)


def run_chunk(
    fn: Any, chunk: list[Any], raise_refusals: bool = False, star: bool = True
) -> tuple[bytes, bytes | None]:
    """Runs a ``map`` chunk; returns ``(results, failure)``.

    Each item of ``chunk`` is an argument tuple, ``fn(*args)``, or with ``star=False`` the one
    argument itself, ``fn(item)``: ``map`` over one iterable sends its items bare, whose pickle
    is several times smaller and quicker both ways than one of 1-tuples.

    ``results`` is the pickle of the results in order, up to the first item that raised or
    whose result cannot be pickled; ``failure`` is then that item's outcome, encoded as a
    task's exception is (so an exception that cannot be pickled still arrives, as
    ``ExecutionFailed``), else None. Pickling here rather than in the runner is what lets the
    results before a failing item travel whatever the failure is.

    With ``raise_refusals`` (``fallback="process"``), an import that own-GIL interpreters
    refuse is raised instead: the chunk fails as a whole and runs again in a process.
    """
    from . import _outcome, _pickling

    results: list[Any] = []
    failure: bytes | None = None
    try:
        # The loop runs in C (no Python frame per item); list.extend keeps the results it
        # appended before an item raised.
        results.extend(_starmap(fn, chunk) if star else map(fn, chunk))
    except TaskInterrupted:
        raise
    except BaseException as exc:
        if raise_refusals:
            from ._refusal import find_refusal

            if find_refusal(exc) is not None:
                raise
        failure = encode_error(exc)
    try:
        return _pickling.dumps(results), failure
    except BaseException as exc:
        whole = exc
    # Some result cannot be pickled: the first such item fails, and the ones before it travel.
    for index, value in enumerate(results):
        try:
            _pickling.dumps(value)
        except BaseException as exc:
            _outcome.note_unpicklable_result(exc, value)
            return _pickling.dumps(results[:index]), _outcome.encode_exception(exc)
    return _pickling.dumps([]), _outcome.encode_exception(whole)
