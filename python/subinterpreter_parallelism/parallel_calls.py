"""The seed's interface: ``parallel(["module", "function", (args,)], ...)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, wait
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from . import _worker
from . import fallback as _fallback
from ._validate import check_timeout
from .executor import InterpreterPoolExecutor
from .progress import check_progress, track
from .reusable import shared_executor

__all__ = ["CallOutcome", "parallel"]


@dataclass(frozen=True)
class CallOutcome:
    """What happened to one call of ``parallel()``.

    Attached as ``exc.parallel_outcomes`` (a list in call order) to the exception that
    ``parallel()`` raises, so that the other calls' results are not lost.
    """

    index: int
    """Position of the call in the arguments of ``parallel()``."""
    target: str
    """``"module.function"``."""
    ok: bool
    """True if the call returned."""
    value: Any = None
    """The return value, when ``ok``."""
    exception: BaseException | None = None
    """The exception, when not ``ok`` (``CancelledError`` if it never ran)."""


def _shared_pool() -> InterpreterPoolExecutor:
    """The process-wide pool behind ``parallel()``: the reusable executor
    (``get_reusable_executor()``), created on first use and again once shut down or broken."""
    return shared_executor()


def _check_call(index: int, call: Any) -> tuple[str, str, tuple[Any, ...], dict[str, Any]]:
    if not isinstance(call, (list, tuple)):
        raise TypeError(
            f"call {index}: expected a list or tuple [module, function, (args,)], got {type(call).__name__}"
        )
    if len(call) not in (3, 4):
        raise ValueError(
            f"call {index}: expected [module, function, (args,)] or "
            f"[module, function, (args,), {{kwargs}}], got {len(call)} elements"
        )
    module, function, args = call[0], call[1], call[2]
    kwargs = call[3] if len(call) == 4 else {}
    if not isinstance(module, str) or not module:
        raise TypeError(f"call {index}: the module name must be a non-empty str, got {module!r}")
    if not isinstance(function, str) or not function:
        raise TypeError(f"call {index}: the function name must be a non-empty str, got {function!r}")
    if not isinstance(args, tuple):
        raise TypeError(
            f"call {index}: the arguments must be a tuple, got {type(args).__name__} "
            "(write (x,) for one argument)"
        )
    if not isinstance(kwargs, dict):
        raise TypeError(f"call {index}: the keyword arguments must be a dict, got {type(kwargs).__name__}")
    for key in kwargs:
        if not isinstance(key, str):
            raise TypeError(f"call {index}: keyword argument names must be str, got {key!r}")
    return module, function, args, kwargs


def parallel(
    *calls: Sequence[Any],
    timeout: float | None = None,
    executor: InterpreterPoolExecutor | None = None,
    fallback: str | None = None,
    progress: bool | Callable[[int, int], object] | None = None,
) -> list[Any]:
    """Runs ``module.function(*args, **kwargs)`` for each call in parallel; returns the results in order.

    Each call is ``["module", "function", (arg, ...)]`` with an optional fourth element, a
    dict of keyword arguments. The calls run on ``executor`` when given, else on the process-wide
    warm pool of ``get_reusable_executor()`` (one interpreter per CPU unless it was asked for
    another size).

    Args:
        timeout: seconds to wait for all calls (None or infinity: no limit); when it expires,
            the calls still running are interrupted and ``TimeoutError`` is raised.
        fallback: ``"process"``: a call that fails because a module refuses to load in an
            own-GIL interpreter (numpy, ...) runs again in a process pool, with one
            ``ProcessFallbackWarning`` per module.
        progress: True: a progress bar (tqdm when installed, else a plain one on stderr);
            a callable: called as ``progress(done, total)`` as calls finish.

    Raises:
        TypeError: a call is malformed, or ``timeout``, ``executor``, ``fallback`` or
            ``progress`` has the wrong type (checked before anything runs).
        ValueError: a call, ``timeout``, ``fallback`` or ``progress`` has a wrong value
            (checked before anything runs).
        TimeoutError: ``timeout`` expired; the calls still running were interrupted.
        Exception: the exception of the lowest-index failing call, with its original type and
            args, its remote traceback as ``__cause__``, a note naming the call, and
            ``parallel_outcomes``: a list of ``CallOutcome`` for every call.
    """
    checked = [_check_call(i, call) for i, call in enumerate(calls)]
    timeout = check_timeout(timeout)  # inf means None: the stdlib's wait() would overflow
    if executor is not None and not isinstance(executor, InterpreterPoolExecutor):
        raise TypeError(f"executor must be an InterpreterPoolExecutor or None, not {type(executor).__name__}")
    _fallback.check_fallback(fallback)
    check_progress(progress)
    if not checked:
        return []
    pool = executor if executor is not None else _shared_pool()
    futures: list[Future[Any]] = []
    with pool.process_fallback() if fallback is not None else nullcontext():
        for module, function, args, kwargs in checked:
            try:
                futures.append(pool.submit(_worker.call_by_name, module, function, args, kwargs))
            except (RuntimeError, MemoryError):
                for future in futures:
                    future.cancel()
                raise
            except Exception as exc:  # this call cannot be sent (e.g. an argument does not pickle)
                failed: Future[Any] = Future()
                failed.set_exception(exc)
                futures.append(failed)
    tracker = track(futures, None, progress, "parallel")
    try:
        # In a task, interrupting it ends this wait too (TaskInterrupted; see _future.py).
        _, not_done = wait(futures, timeout)
    except BaseException:  # Ctrl-C, or in a task its interruption: the calls stop too
        for future in futures:
            future.cancel()
        raise
    finally:
        if tracker is not None:  # the bar ends before the results or an error reach the caller
            tracker.finish(sum(1 for future in futures if future.done() and not future.cancelled()))
    if not_done:
        for future in not_done:
            future.cancel()  # interrupts the calls still running
        error = TimeoutError(
            f"parallel() did not finish within {timeout} s; "
            f"{len(not_done)} of {len(futures)} calls were stopped"
        )
        error.parallel_outcomes = _outcomes(checked, futures)  # type: ignore[attr-defined]
        raise error
    outcomes = _outcomes(checked, futures)
    for outcome in outcomes:
        if not outcome.ok:
            failure = outcome.exception
            assert failure is not None
            failure.add_note(f"raised by call {outcome.index}: {outcome.target}")
            module, function = checked[outcome.index][:2]
            if module == "__main__" and isinstance(failure, (AttributeError, ImportError)):
                failure.add_note(_MAIN_BY_NAME.format(function=function))
            failure.parallel_outcomes = outcomes  # type: ignore[attr-defined]
            raise failure
    return [outcome.value for outcome in outcomes]


# A call by name runs in a worker, whose __main__ is not the caller's script: the script's
# functions reach a worker only as objects, which the executor sends by value.
_MAIN_BY_NAME = (
    "parallel() finds functions by name in the worker interpreters, whose __main__ is not your "
    "script: pass the function object to the executor instead, e.g. "
    "`with sp.InterpreterPoolExecutor() as pool: pool.submit({function}, ...)`"
)


def _outcomes(
    checked: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]], futures: list[Future[Any]]
) -> list[CallOutcome]:
    outcomes = []
    for index, ((module, function, _, _), future) in enumerate(zip(checked, futures)):
        target = f"{module}.{function}"
        if future.cancelled() or not future.done():  # stopped, or never ran
            outcomes.append(CallOutcome(index, target, False, exception=CancelledError()))
        elif future.exception() is not None:
            outcomes.append(CallOutcome(index, target, False, exception=future.exception()))
        else:
            outcomes.append(CallOutcome(index, target, True, value=future.result()))
    return outcomes
