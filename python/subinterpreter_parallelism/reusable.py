"""``get_reusable_executor()``: one process-wide warm pool, reused across calls (loky-style).

Creating a pool costs tens of milliseconds (one interpreter per worker, plus the imports of the
first tasks); a library function that runs a few tasks now and then should not pay that each
time, nor leave pools behind. ``get_reusable_executor()`` hands out one shared
:class:`~subinterpreter_parallelism.InterpreterPoolExecutor` and keeps it warm between calls,
as ``loky.get_reusable_executor`` does for process pools:

- the same arguments (or none) return the same executor;
- a different ``max_workers`` or different options replace it: the old pool is shut down,
  after it has finished the tasks already submitted to it, and a new one is made (loky
  resizes its process pool instead; an interpreter pool has a fixed number of workers);
- an executor that was shut down (``with get_reusable_executor() as pool:`` does that on
  exit) or is broken is replaced by a new one;
- after ``idle_timeout`` seconds (300) without a task, its interpreters end (as loky's workers
  do); the executor stays the same, and its next task starts them again.

``parallel()`` runs on the same pool when it is given no ``executor``: whatever
``get_reusable_executor()`` returned last, if it still runs, else a new default one, which
later ``get_reusable_executor()`` calls with default arguments return.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypedDict, Unpack

from . import _exit, _native
from ._validate import check_count, check_time_limit
from ._versions import default_worker_count
from .executor import InterpreterPoolExecutor

__all__ = ["ExecutorOptions", "get_reusable_executor"]


class ExecutorOptions(TypedDict, total=False):
    """The keyword arguments of :class:`InterpreterPoolExecutor` besides ``max_workers``."""

    thread_name_prefix: str
    initializer: Callable[..., object] | None
    initargs: tuple[Any, ...]
    task_timeout: float | None
    fallback: str | None
    preload: str | Iterable[str]
    forward_logging: bool | int
    forward_warnings: bool
    output: str
    max_tasks_per_worker: int | None


# RLock: an executor's shutdown may run callbacks that call get_reusable_executor() again.
_lock = threading.RLock()
_executor: InterpreterPoolExecutor | None = None
_options: dict[str, Any] = {}
#: Seconds without a task after which the reusable executor's interpreters end (loky's default).
IDLE_TIMEOUT = 300.0


def _usable(executor: InterpreterPoolExecutor | None) -> bool:
    return executor is not None and executor.status == "running"


def option_names() -> set[str]:
    """The names of :class:`InterpreterPoolExecutor`'s options (its parameters but
    ``max_workers``): what ``get_reusable_executor`` and the joblib backend accept."""
    # From the code object, not ``inspect``: importing inspect on the first parallel() call
    # is slow, and a Ctrl-C inside it (building its enums) prints notes after the traceback.
    code = InterpreterPoolExecutor.__init__.__code__
    names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
    return {name for name in names if name != "max_workers"}


def _same(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an option whose __eq__ fails counts as different
        return False


def get_reusable_executor(
    max_workers: int | None = None,
    *,
    reuse: bool | Literal["auto"] = "auto",
    kill_workers: bool = False,
    idle_timeout: float | None = IDLE_TIMEOUT,
    **options: Unpack[ExecutorOptions],
) -> InterpreterPoolExecutor:
    """Returns the process-wide reusable :class:`InterpreterPoolExecutor`, creating it if needed.

    Args:
        max_workers: number of worker interpreters; None: the CPUs this process may use (or,
            with ``reuse=True``, the current executor's count).
        reuse: ``"auto"``: reuse the current executor when ``max_workers`` and ``options``
            equal the ones it was made with, else replace it. True: reuse it whatever its
            options, as long as ``max_workers`` matches. False: always replace it.
        kill_workers: when the executor is replaced, interrupt its running tasks and cancel
            its queued ones instead of waiting for them (like loky's ``kill_workers``).
        idle_timeout: seconds without a task after which the executor's interpreters end, to
            give their memory back (like loky's ``timeout``); its next task starts them again
            (the executor stays the same). None: never. It applies to the executor returned,
            reused or new.
        **options: keyword arguments of :class:`InterpreterPoolExecutor`
            (``initializer``, ``initargs``, ``task_timeout``, ``preload``, ...).

    Returns:
        The shared executor. It stays alive until it is replaced, shut down, or the
        interpreter exits (pools finish their tasks at exit). Calling ``shutdown()`` on it
        is allowed: the next call makes a new one.

    Raises:
        TypeError, ValueError: invalid ``max_workers``, ``reuse`` or ``idle_timeout``, or an
            unknown option name:
            checked first, the current executor is left as it was. Invalid option values
            raise from the executor's constructor, once the current executor has been shut down.
    """
    global _executor, _options
    if reuse not in (True, False, "auto"):
        raise ValueError(f"reuse must be True, False or 'auto', not {reuse!r}")
    max_workers = check_count(max_workers, "max_workers", _native.MAX_WORKERS)
    idle_timeout = check_time_limit(idle_timeout, "idle_timeout")
    unknown = sorted(set(options) - option_names())
    if unknown:
        raise TypeError(f"get_reusable_executor() got unexpected keyword arguments: {', '.join(unknown)}")
    with _lock:
        current = _executor if _usable(_executor) else None
        if current is None and _executor is not None:
            _exit.watch_idle(_executor, None)  # broken or shut down: replaced below
        if max_workers is None:
            max_workers = (
                current.max_workers if current is not None and reuse is True else default_worker_count()
            )
        if (
            current is not None
            and current.max_workers == max_workers
            and (reuse is True or (reuse == "auto" and _same(options, _options)))
        ):
            _exit.watch_idle(current, idle_timeout)
            return current
        if current is not None:
            current.shutdown(wait=True, cancel_futures=kill_workers, interrupt=kill_workers)
        _executor = None
        _options = {}
        executor = InterpreterPoolExecutor(max_workers, **options)
        _exit.watch_idle(executor, idle_timeout)
        _executor, _options = executor, dict(options)
        return executor


def shared_executor() -> InterpreterPoolExecutor:
    """``parallel()``'s pool: the current reusable executor whatever its options, else a new
    default one (which becomes the reusable executor)."""
    with _lock:
        if _usable(_executor):
            assert _executor is not None
            return _executor
        return get_reusable_executor()


def _shutdown_current(wait: bool = True) -> None:
    """Shuts the reusable executor down and forgets it (tests, and ``parallel_calls``)."""
    global _executor, _options
    with _lock:
        executor, _executor, _options = _executor, None, {}
    if executor is not None:
        executor.shutdown(wait=wait)
