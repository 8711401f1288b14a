"""``preload``: modules that every worker interpreter imports before its first task.

    caller: InterpreterPoolExecutor(preload=...)          worker interpreter k (bootstrap)
    ────────────────────────────────────────────          ────────────────────────────────
    check_preload(names); PreloadWatch(workers, names)
      worker_config() ─── in the bootstrap ─────────────► import_modules(spec)
                                                            [3.12: worker 0 first, through
                                                             the gate Queue; the others wait]
      on_message ◄──────── TAG_PRELOAD: b"ok" or the ──────  importlib.import_module(name)
                           failing module and its error
      wait(): returns once every worker is ready, or the
      error the constructor raises (a refusal gets the
      message of ``python -m subinterpreter_parallelism check``)

``preload="auto"`` (alone, or as an entry beside module names): the modules of the functions
submitted, warmed in every worker while the first tasks run.

    caller: submit(fn) / map(fn)                          Swift pool / each worker
    ────────────────────────────                          ────────────────────────
    AutoWarm.note(fn) the first time fn's module M ─────► warm list (append-only, per pool)
      is seen (one set lookup per submit; on 3.12,        an idle worker imports the names past
      once that task has succeeded)                       its cursor, one at a time, taking any
                                                          waiting task first: warm_module(M)
    on_failure ◄──── TAG_WARM_FAILED, once per module ─── (a failure is recorded, never raised;
      (a warning in the log)                               the task needing M gets its error)
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time

from . import _native, _pickling, _refusal, _versions, _wire
from ._worker_features import PRELOAD_OK, TAG_PRELOAD, import_modules, warm_module
from .errors import BrokenInterpreterPool, RemoteTraceback

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future
    from typing import Any

# The worker side (import_modules, warm_module) is in _worker_features: a worker interpreter
# imports that module, never this one.

__all__ = [
    "AUTO",
    "PRELOAD_TIMEOUT",
    "TAG_PRELOAD",
    "TAG_WARM_FAILED",
    "AutoWarm",
    "PreloadWatch",
    "check_preload",
    "import_modules",
    "warm_module",
]

#: The ``preload`` entry that turns on warming the modules of submitted functions.
AUTO = "auto"

# The message of a module that could not be warmed (posted by the Swift worker, once per module
# and pool: ``MessageTag.warmFailed``): ``b"module\ntext"``.
TAG_WARM_FAILED = _native.TAG_WARM_FAILED

# How long the pool's constructor waits for its workers to import ``preload`` modules.
PRELOAD_TIMEOUT = 300.0


# ─── caller side ────────────────────────────────────────────────────────────────────────────


def check_preload(preload: object) -> tuple[tuple[str, ...], bool]:
    """Caller side: ``preload`` as a tuple of module names (one name alone is allowed), and
    whether ``"auto"`` was among them (taken out of the names).

    Raises:
        TypeError: ``preload`` is neither a str nor an iterable of str, or an entry is not a
            non-empty str.
    """
    if isinstance(preload, str):
        entries: tuple[Any, ...] = (preload,)
    elif isinstance(preload, (bytes, bytearray)) or not hasattr(preload, "__iter__"):
        raise TypeError(
            f'preload must be a module name, "auto", or an iterable of them, not {type(preload).__name__}'
        )
    else:
        entries = tuple(preload)
    for name in entries:
        if not isinstance(name, str) or not name:
            raise TypeError(f'preload must hold module names (non-empty str) or "auto", got {name!r}')
    modules = tuple(name for name in entries if name != AUTO)
    return modules, len(modules) != len(entries)


class AutoWarm:
    """Caller side of ``preload="auto"``: tells the pool each module of a submitted function
    once. ``submit`` looks its function's ``__module__`` up in ``seen`` and calls ``note`` only
    when it is not there."""

    def __init__(self, native: Any, preloaded: tuple[str, ...]) -> None:
        self._native = native
        # 3.12: a module refused in one interpreter crashes the process when a second one
        # tries it, so a module is warmed only once a task of it has succeeded in one worker.
        self._after_first_success = _versions.ONE_WORKER_FIRST
        # Never warmed: no module (None), the caller's script (workers have their own
        # __main__), what workers have from the start. "functools" is never added: a partial's
        # __module__ is "functools", and each partial must be unwrapped (see ``note``).
        self.seen: set[Any] = {None, "__main__", "builtins", *preloaded}
        """Modules already handled (warmed, preloaded, or never to warm)."""

    def note(self, fn: Any, module: Any, future: Future[Any] | None) -> None:
        """``fn`` (whose ``__module__`` is ``module``) was submitted, as (part of) the task of
        ``future``, and ``module`` is not in ``seen``: adds the module of the function it
        calls to the pool's warm list (on 3.12, once that task has succeeded)."""
        target = fn
        while isinstance(target, functools.partial):
            target = target.func
        if target is not fn:
            module = getattr(target, "__module__", None)
            if module in self.seen:
                return
        elif module == "functools":
            return
        if not isinstance(module, str):
            return
        self.seen.add(module)
        # A module the caller has not imported (a __module__ set by hand) would only fail; the
        # package's own modules are in every worker already.
        if module not in sys.modules or module.startswith("subinterpreter_parallelism"):
            return
        if not self._after_first_success:
            self._native.warm(module)
        elif future is not None:
            future.add_done_callback(functools.partial(self._warm_if_succeeded, module))

    def _warm_if_succeeded(self, module: str, future: Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            try:
                self._native.warm(module)
            except Exception:
                pass  # the pool broke meanwhile: nothing to warm

    def on_failure(self, payload: Any, worker: int) -> None:
        """The handler for ``TAG_WARM_FAILED``: says once per module (Swift sends each once)
        that warming it failed; the tasks that need it raise the error themselves."""
        module, _, text = bytes(memoryview(payload)).decode("utf-8", "replace").partition("\n")
        logging.getLogger("subinterpreter_parallelism").warning(
            'preload="auto": worker %d could not import module %r ahead of its tasks (the tasks '
            "that need it will raise the error): %s",
            worker,
            module,
            text,
        )


class PreloadWatch:
    """Caller side: waits until every worker has imported the ``preload`` modules."""

    def __init__(self, workers: int, modules: tuple[str, ...] = ()) -> None:
        self.modules = modules
        """The modules to preload (from ``check_preload``); empty: nothing to wait for."""
        self._workers = workers
        self._left = workers
        self._failure: bytes | None = None
        self._done = threading.Event()
        self._gate: Any = None
        if modules and workers > 1 and _versions.ONE_WORKER_FIRST:
            self._gate = _native.Queue()
        self._mark_broken: Callable[[str], object] | None = None
        self._constructing = True

    def connect(self, mark_broken: Callable[[str], object]) -> None:
        """``mark_broken(reason)`` (the native pool's, which says nothing itself) marks the
        pool broken when a worker fails while the constructor waits: before the gate lets the
        other workers go, and before the worker's own failure arrives, so that the
        constructor's exception is the one report of it."""
        self._mark_broken = mark_broken

    def worker_config(self) -> dict[str, Any] | None:
        """What ``_worker.bootstrap`` hands to ``import_modules`` (None: nothing to preload)."""
        if not self.modules:
            return None
        return {"modules": self.modules, "gate": self._gate}

    def on_message(self, payload: Any, worker: int) -> None:
        """The handler for ``TAG_PRELOAD``: one worker is ready, or it failed."""
        data = bytes(memoryview(payload))
        if data == PRELOAD_OK:
            if self._left == self._workers and self._gate is not None:
                try:
                    self._gate.put(True)  # worker 0 succeeded: the others may go (they pass it on)
                except _native.QueueClosed:
                    pass  # the constructor stopped waiting (Ctrl-C): no other worker is to go
            self._left -= 1
            if self._left <= 0:
                self._constructing = False  # here, before any later interpreter's message
                self._done.set()
        elif self._constructing and self._failure is None:
            # After the constructor, a failing interpreter (max_tasks_per_worker) breaks the
            # pool through its bootstrap's failure, with the full reason.
            self._failure = data
            if self._mark_broken is not None:
                self._mark_broken(f"worker {worker} could not import the preload modules")
            self._close_gate()
            self._done.set()

    def _close_gate(self) -> None:
        if self._gate is not None:
            self._gate.close()

    def wait(self, broken: Callable[[], str | None], timeout: float | None = None) -> BaseException | None:
        """Returns None once all workers are ready, else the error the constructor raises.

        ``broken()`` gives the pool's failure text when a worker could not start at all.
        """
        deadline = time.monotonic() + (PRELOAD_TIMEOUT if timeout is None else timeout)
        error: BaseException | None = None
        try:
            while not self._done.wait(0.05):
                reason = broken()
                if reason is not None and self._failure is None:  # else on_message broke it
                    error = BrokenInterpreterPool(reason)
                    break
                if time.monotonic() > deadline:
                    error = TimeoutError(
                        f"the worker interpreters did not finish importing the preload modules "
                        f"within {PRELOAD_TIMEOUT if timeout is None else timeout:g} s"
                    )
                    break
        except BaseException:
            self._close_gate()  # the workers still waiting must stop
            raise
        if error is None and self._failure is None:
            return None  # the gate stays open, with its token, for interpreters started later
        self._close_gate()  # the workers still waiting must stop
        if error is not None:
            return error
        assert self._failure is not None  # one of the two, by the check above
        return _preload_error(self._failure)


def _preload_error(data: bytes) -> BaseException:
    """The exception the constructor raises for a preload module that failed in a worker."""
    module, encoded = _pickling.loads(data)
    error: BaseException
    try:
        _, error = _wire.decode_outcome(encoded)
    except Exception as exc:
        error = _wire.failure_from_unpickling(exc)
    refusal = _refusal.find_refusal(error)
    if refusal is None:
        error.add_note(f"raised in a worker interpreter while importing preload module {module!r}")
        return error
    # The message of `check`; the worker's traceback (numpy's long text included) as the cause.
    refused = ImportError(_refusal.refusal_message(refusal.module, refusal.reason), name=refusal.module)
    if refusal.module != module:
        refused.add_note(f"(while importing preload module {module!r})")
    cause = error.__cause__
    refused.__cause__ = cause if isinstance(cause, RemoteTraceback) else error
    return refused
