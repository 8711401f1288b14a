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
"""

from __future__ import annotations

import importlib
import time

from . import _native, _outcome, _pickling, _versions

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

# The caller side's imports (threading, _refusal, errors) wait inside its functions: a worker
# interpreter imports this module for import_modules alone, during its start-up.

__all__ = ["PRELOAD_TIMEOUT", "TAG_PRELOAD", "PreloadWatch", "check_preload", "import_modules"]

# The message tag of a worker's verdict (the ``tag`` of ``_native.post_message``), beside
# forwarding's tags.
TAG_PRELOAD = 0x46570005

# How long the pool's constructor waits for its workers to import ``preload`` modules.
PRELOAD_TIMEOUT = 300.0

_PRELOAD_OK = b"ok"


# ─── worker side ────────────────────────────────────────────────────────────────────────────

def import_modules(spec: dict[str, Any]) -> bool:
    """Worker side, a step of ``_worker.bootstrap``: imports ``spec["modules"]``; tells the
    caller it is ready, or what failed.

    With a ``spec["gate"]`` (a Queue), worker 0 imports first and the others wait for its
    verdict: they import only once it succeeded. The verdict is one token, which each waiter
    puts back, so that interpreters started later (``max_tasks_per_worker``) find it too.
    Returns False on failure or when told not to import (the caller reports the failure).
    """
    gate = spec.get("gate")
    if gate is not None and _native.worker_index() != 0:
        try:
            go = gate.get()
        except Exception:  # closed: worker 0 failed, or the pool is going away
            go = False
        if not go:
            return False
        try:
            gate.put(go)  # for the next waiter
        except Exception:
            pass
    for name in spec["modules"]:
        try:
            importlib.import_module(name)
        except BaseException as exc:
            failure = _pickling._dumps((name, _outcome.encode_exception(exc)), _pickling.PROTOCOL)
            _native.post_message(TAG_PRELOAD, failure)
            return False
    _native.post_message(TAG_PRELOAD, _PRELOAD_OK)
    return True


# ─── caller side ────────────────────────────────────────────────────────────────────────────

def check_preload(preload: str | Iterable[str]) -> tuple[str, ...]:
    """Caller side: ``preload`` as a tuple of module names (one name alone is allowed).

    Raises:
        TypeError: an entry is not a non-empty str.
    """
    modules = (preload,) if isinstance(preload, str) else tuple(preload)
    for name in modules:
        if not isinstance(name, str) or not name:
            raise TypeError(f"preload must hold module names (non-empty str), got {name!r}")
    return modules


class PreloadWatch:
    """Caller side: waits until every worker has imported the ``preload`` modules."""

    def __init__(self, workers: int, modules: tuple[str, ...] = ()) -> None:
        import threading

        self.modules = modules
        """The modules to preload (from ``check_preload``); empty: nothing to wait for."""
        self._workers = workers
        self._left = workers
        self._failure: bytes | None = None
        self._done = threading.Event()
        self._gate: Any = None
        if modules and workers > 1 and _versions.ONE_WORKER_FIRST:
            self._gate = _native.Queue()

    def worker_config(self) -> dict[str, Any] | None:
        """What ``_worker.bootstrap`` hands to ``import_modules`` (None: nothing to preload)."""
        if not self.modules:
            return None
        return {"modules": self.modules, "gate": self._gate}

    def on_message(self, payload: Any, worker: int) -> None:
        """The handler for ``TAG_PRELOAD``: one worker is ready, or it failed."""
        data = bytes(memoryview(payload))
        if data == _PRELOAD_OK:
            if self._left == self._workers and self._gate is not None:
                self._gate.put(True)  # worker 0 succeeded: the others may go (they pass it on)
            self._left -= 1
            if self._left <= 0:
                self._done.set()
        elif self._failure is None:
            self._failure = data
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
                if reason is not None:
                    from .errors import BrokenInterpreterPool

                    error = BrokenInterpreterPool(reason)
                    break
                if time.monotonic() > deadline:
                    error = TimeoutError(
                        f"the worker interpreters did not finish importing the preload modules "
                        f"within {PRELOAD_TIMEOUT if timeout is None else timeout:g} s")
                    break
        except BaseException:
            self._close_gate()  # the workers still waiting must stop
            raise
        if error is None and self._failure is None:
            return None  # the gate stays open, with its token, for interpreters started later
        self._close_gate()  # the workers still waiting must stop
        return error if error is not None else _preload_error(self._failure)


def _preload_error(data: bytes) -> BaseException:
    """The exception the constructor raises for a preload module that failed in a worker."""
    from . import _refusal
    from .errors import RemoteTraceback

    module, encoded = _pickling.loads(data)
    try:
        _, error = _outcome.decode(encoded)
    except Exception as exc:
        error = _outcome.failure_from_unpickling(exc)
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
