"""``fallback="process"``: the tasks that a worker interpreter cannot run go to a process pool.

A task fails in a worker because a module it imports refuses own-GIL interpreters
(``_refusal.find_refusal``); ``ProcessFallback`` runs it again, from its start, in a
``ProcessPoolExecutor`` and settles the task's future with that outcome. One
``ProcessFallbackWarning`` per package and pool says so, attributed to the line of the
caller's code that submitted the task.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from concurrent.futures import Future, InvalidStateError
from types import FrameType
from typing import Any

from . import _native, _pickling, _wire
from ._refusal import Refusal, find_refusal

__all__ = ["ProcessFallback", "ProcessFallbackWarning", "check_fallback"]


class ProcessFallbackWarning(RuntimeWarning):
    """A module cannot load in a sub-interpreter, so its tasks now run in a process pool."""


def check_fallback(fallback: object) -> str | None:
    """Validates a ``fallback=`` argument; returns it.

    Raises:
        TypeError: not a str or None.
        ValueError: a str other than ``"process"``.
    """
    if fallback is None:
        return None
    if not isinstance(fallback, str):
        raise TypeError(f'fallback must be None or "process", not {type(fallback).__name__}')
    if fallback != "process":
        raise ValueError(f'fallback must be None or "process", not {fallback!r}')
    return fallback


class ProcessFallback:
    """Runs, in a process pool, the tasks that failed because a module refused to load.

    Owned by one interpreter pool; its ``ProcessPoolExecutor`` (start method ``spawn``: the
    caller has worker threads, so ``fork`` could deadlock) is created on the first refusal
    and shut down with the interpreter pool. A refused task runs again from its start in a
    process, so whatever it did before the failing import happens twice. As with any
    ``spawn`` pool, a script's main module is imported again in the processes (keep the
    ``if __name__ == "__main__":`` guard), and a task already running in a process cannot be
    interrupted: its ``cancel()`` returns False, and ``task_timeout`` fails its future
    without stopping it.

    Args:
        max_workers: size of the process pool.
        automatic: cover every task of the pool (``fallback="process"`` on the executor); when
            False, only tasks submitted inside ``covering()`` (``parallel(fallback=...)``).
    """

    def __init__(self, max_workers: int, automatic: bool) -> None:
        self.max_workers = max_workers
        self.automatic = automatic
        self._local = threading.local()
        self._lock = threading.Lock()
        self._processes: Any = None  # ProcessPoolExecutor, created on first use
        self._closed = False
        self._warned: set[str] = set()

    def covers(self) -> bool:
        """Whether a task submitted now, from this thread, may fall back."""
        return self.automatic or getattr(self._local, "depth", 0) > 0

    def covering(self) -> _Covering:
        """Context manager: tasks submitted inside it from this thread may fall back."""
        return _Covering(self._local)

    @staticmethod
    def remember(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """What a task that may fall back keeps: its call, and where the caller submitted it
        (called by ``submit``, in the caller's thread)."""
        return Call(fn, args, kwargs, _CallSite.here())

    def take_over(self, call: Call, future: Future[Any], exc: BaseException) -> Future[Any] | None:
        """Moves a task that failed with ``exc`` to the process pool, if ``exc`` is a refusal.

        ``call`` is what ``remember`` gave for the task, ``future`` the task's future: it gets
        the process's outcome (or, from a script without the ``__main__`` guard, an error that
        says so), through its public methods only. Returns the future that now stands for the
        task (cancel it to cancel the task), or None (the caller then fails the task with
        ``exc``) when ``exc`` is not a refusal or the pool has shut down. Never raises: it runs
        on the pool's completion thread.
        """
        try:
            return self._take_over(call, future, exc)
        except Exception as error:
            logging.getLogger("subinterpreter_parallelism").exception('fallback="process" failed')
            exc.add_note(f'fallback="process" failed: {error!r}')
            return None

    def _take_over(self, call: Call, future: Future[Any], exc: BaseException) -> Future[Any] | None:
        refusal = find_refusal(exc)
        if refusal is None:
            return None
        unguarded = _unguarded_script(call.site)
        if unguarded is not None:
            # The spawned processes would run the script's pool again, and break: say why.
            error = RuntimeError(_GUARD_MESSAGE.format(script=unguarded, package=refusal.describe()))
            error.__cause__ = exc
            failed: Future[Any] = Future()
            failed.set_exception(error)
            failed.add_done_callback(lambda done: _settle(future, done))
            return failed
        with self._lock:
            if self._closed:
                return None
            first = refusal.package not in self._warned
            self._warned.add(refusal.package)
        if first:
            try:
                call.site.warn(_warning_text(refusal), ProcessFallbackWarning)
            except Exception as error:  # warnings turned into errors: no silent fallback then
                with self._lock:
                    self._warned.discard(refusal.package)
                exc.add_note(f'fallback="process" did not run the task in a process: {error!r}')
                return None
        try:
            payload = _pickling.dumps((call.fn, call.args, call.kwargs))
            # Creating the pool (which starts multiprocessing's resource tracker) and submitting
            # (which starts a process while fewer than max_workers run) start processes: under the
            # environment lock, so that no worker's os.putenv/os.unsetenv (numpy's import, refused
            # in the workers and so run again by each task) breaks the start (EnvironmentLock.swift).
            with self._lock:
                # Checked again: close() may have run since the check above (mypy keeps the
                # narrowing of that check across the calls in between).
                if self._closed:
                    return None  # type: ignore[unreachable]
                if self._processes is None:
                    # Here, not at import: ~15 ms of imports (multiprocessing, its queues and
                    # connections) that parallel() and a pool pay only once a task falls back.
                    import multiprocessing
                    from concurrent.futures import ProcessPoolExecutor

                    self._processes = _native.with_environment_lock(
                        ProcessPoolExecutor, self.max_workers, mp_context=multiprocessing.get_context("spawn")
                    )
                moved: Future[Any] = _native.with_environment_lock(
                    self._processes.submit, _run_pickled_call, payload
                )
        except Exception as error:  # cannot move it: the task fails, with the reason in a note
            exc.add_note(f'fallback="process" could not run the task in a process: {error!r}')
            return None
        moved.add_done_callback(lambda done: _settle(future, done))
        return moved

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Shuts the process pool down (if it was started); later refusals are not moved."""
        with self._lock:
            self._closed = True
            processes = self._processes
        if processes is not None:
            processes.shutdown(wait=wait, cancel_futures=cancel_futures)

    @property
    def started(self) -> bool:
        """Whether the process pool was started (some task fell back)."""
        return self._processes is not None


def _warning_text(refusal: Refusal) -> str:
    return (
        f"{refusal.describe()} cannot be imported in an own-GIL sub-interpreter "
        f"({refusal.reason}); tasks that need it run in a process pool instead "
        '(fallback="process")'
    )


class Call:
    """A task that may fall back: its call, and where the caller's code submitted it."""

    __slots__ = ("args", "fn", "kwargs", "site")

    def __init__(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], site: _CallSite) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.site = site


# Frames of these modules lead to the user's call: warnings name the line that called them.
_LIBRARY_MODULES = ("subinterpreter_parallelism", "concurrent.futures", "joblib", "asyncio", "threading")


class _CallSite:
    """The caller's line that submitted a task (past this library's frames and the stdlib's
    executor frames), and the line of the script's top-level code that led there."""

    __slots__ = ("filename", "lineno", "main_lineno", "module_globals")

    def __init__(
        self, filename: str, lineno: int, module_globals: dict[str, Any] | None, main_lineno: int | None
    ) -> None:
        self.filename = filename
        self.lineno = lineno
        self.module_globals = module_globals
        self.main_lineno = main_lineno

    @classmethod
    def here(cls) -> _CallSite:
        frame = sys._getframe(1)
        while frame.f_back is not None:
            name = frame.f_globals.get("__name__")
            if not (isinstance(name, str) and name.startswith(_LIBRARY_MODULES)):
                break
            frame = frame.f_back
        site = frame
        walk: FrameType | None = frame
        main = sys.modules.get("__main__")
        main_lineno = None
        if hasattr(main, "__file__"):  # a script, which spawned processes would run again
            # The script's top-level code, when the call came from there (the outermost frame
            # of this thread; sys._current_frames() could find the main thread's, but reading
            # other threads' frames is unsafe while sub-interpreters run).
            main_dict = main.__dict__
            while walk is not None:
                if walk.f_globals is main_dict and walk.f_code.co_name == "<module>":
                    main_lineno = walk.f_lineno
                walk = walk.f_back
        return cls(site.f_code.co_filename, site.f_lineno, site.f_globals, main_lineno)

    def warn(self, text: str, category: type[Warning]) -> None:
        module_globals = self.module_globals or {}
        registry = (
            module_globals.setdefault("__warningregistry__", {}) if self.module_globals is not None else None
        )
        # No module_globals: its loader would be asked for the source (python -c: ImportError).
        warnings.warn_explicit(
            text,
            category,
            self.filename,
            self.lineno,
            module=str(module_globals.get("__name__", "")) or None,
            registry=registry,
        )


_GUARD_MESSAGE = (
    '{package} cannot be imported in an own-GIL sub-interpreter, and fallback="process" cannot '
    'run the task in a process: processes started with "spawn" import the script {script} '
    "again, and its pool is started at the top level of the script, not under "
    '`if __name__ == "__main__":` - each process would start it again. Put the code that '
    "starts the pool (and submits tasks) under that guard."
)

_guard_lock = threading.Lock()
_guarded_lines: dict[str, Any] = {}  # script -> the line ranges under `if __name__ == "__main__":`


def _unguarded_script(site: _CallSite) -> str | None:
    """The script's path when the task came from its top-level code outside the ``__main__``
    guard and spawned processes would run that code again; else None."""
    if site.main_lineno is None:
        return None
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str):
        return None  # -c or a REPL: the processes have nothing to import again
    with _guard_lock:
        ranges = _guarded_lines.get(path)
        if ranges is None:
            ranges = _guarded_lines[path] = _guard_ranges(path)
    if ranges is None:  # cannot read or parse it: do not guess
        return None
    return None if any(first <= site.main_lineno <= last for first, last in ranges) else path


def _guard_ranges(path: str) -> list[tuple[int, int]] | None:
    """The line ranges of the script's top-level ``if __name__ == "__main__":`` blocks."""
    import ast  # here, not at import: ~10 ms, and only a task that falls back needs it

    def is_main_test(test: Any) -> bool:
        """``__name__ == "__main__"`` (either way round)."""
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
            return False
        sides = [test.left, test.comparators[0]]
        names = [side for side in sides if isinstance(side, ast.Name) and side.id == "__name__"]
        values = [side for side in sides if isinstance(side, ast.Constant) and side.value == "__main__"]
        return len(names) == 1 and len(values) == 1

    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    return [
        (node.lineno, node.end_lineno or node.lineno)
        for node in tree.body
        if isinstance(node, ast.If) and is_main_test(node.test)
    ]


class _Covering:
    def __init__(self, local: threading.local) -> None:
        self._local = local

    def __enter__(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def __exit__(self, *exc_info: object) -> None:
        self._local.depth -= 1


def _settle(future: Any, moved: Any) -> None:
    """Copies the process's outcome into the task's future."""
    if moved.cancelled():
        # The stdlib's own cancel (the task's cancel() would cancel `moved` again), then
        # notify the waiters of wait()/as_completed() as an executor does.
        if Future.cancel(future):
            future.set_running_or_notify_cancel()
        return
    error = moved.exception()
    if error is None:
        try:
            ok, value = _wire.decode_outcome(moved.result())
        except BaseException as unpickling:  # even SystemExit from a __reduce__: settle the future
            ok, value = False, _wire.failure_from_unpickling(unpickling)
    else:  # the process pool itself failed (a crashed process, ...)
        ok, value = False, error
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except InvalidStateError:
        pass  # cancelled or timed out meanwhile


def _run_pickled_call(payload: bytes) -> bytes:
    """Process side of the fallback: runs a call pickled by ``_pickling.dumps`` and returns its
    outcome encoded as a worker's is (``_wire``'s Value or Error): pickled the way the call came, so that a
    result or exception whose class came by value (defined in the caller's ``__main__``, which
    the process re-imported as another module) goes back by value too, and an exception that
    cannot be pickled still arrives, as ``ExecutionFailed``."""
    fn, args, kwargs = _pickling.loads(payload)
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:
        return _wire.encode_error(exc, skip_frames=1)  # from the user's code on
    try:
        return _pickling.dumps(value)
    except BaseException as exc:
        _wire.note_unpicklable_result(exc, value)
        return _wire.encode_error(exc)
