"""A ``concurrent.futures.Future`` that costs little until someone waits on it.

The stdlib's ``Future()`` builds a ``threading.Condition`` (Python code: an RLock and a dozen
bound methods, about 2.4 us) and two lists for every task, and settles under that condition.
For tiny tasks that is a large share of the caller's per-task cost, though most futures are
done before anyone asks: ``[pool.submit(...) for ...]`` then ``f.result()`` each.

``LightFuture`` builds the condition, the waiter list and the callback list on first use:
by a ``result()`` or ``exception()`` that has to wait, ``add_done_callback`` on a pending
future, ``wait``/``as_completed`` (which take ``_condition`` and append to ``_waiters``
themselves), ``cancel``, ``repr``. Until then nobody can be waiting or registered, so
``set_result`` only stores the value. One process-wide lock orders the two: whoever creates the
condition and a condition-less ``set_result`` both hold it, so a waiter either finds the value
already there or is notified through the condition.

This is the one module that touches ``Future``'s private attributes (``_condition``,
``_state``, ``_result``...): the lazy condition cannot be built from the public methods, which
all take it. Everything else in the package uses the public methods (tests/test_layers.py).
Each condition is the future's own (not shared), so ``Future.result()``'s single ``wait()``,
which does not loop on spurious wake-ups, stays correct.

Two more things live here because they need those attributes too:

- Waits on a pool worker's thread (a task waiting on a pool of its own, or on ``parallel()``):
  ``result()``, ``exception()``, and the stdlib's ``wait()`` and ``as_completed()`` over these
  futures wait in a ``WorkerEvent``, which interrupting the task (cancel, ``task_timeout``,
  Ctrl-C) ends with ``TaskInterrupted``, as it ends ``time.sleep`` and ``Queue.get`` in tasks.
  A ``threading`` lock, where the stdlib waits, can be ended by nothing but its release.
- Done-callbacks: a subclass may run them elsewhere than on the settling thread
  (``_sp_defer_callbacks``), so that the pool's completion thread never waits on user code.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import Any

from . import _native

__all__ = ["QUICK_CALLBACK", "Completions", "LightFuture", "WorkerEvent", "on_worker_thread"]

logger = logging.getLogger("concurrent.futures")  # where Future reports a failing callback

#: The attribute that marks a done-callback of the library's own which never blocks and must
#: run as the future settles (progress counting): it runs on the settling thread even where
#: the other callbacks are deferred.
QUICK_CALLBACK = "_sp_quick"

# Orders the creation of a future's condition against a condition-less set_result (see the
# module's docstring). Held for a few bytecodes, never around a wait or a callback.
_creation_lock = threading.Lock()

# The attributes Future.__init__ would have set per instance and that LightFuture builds lazily.
_LAZY = frozenset(("_condition", "_waiters", "_done_callbacks"))


def _reset_after_fork() -> None:
    global _creation_lock
    _creation_lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_reset_after_fork)


class LightFuture(Future):  # type: ignore[type-arg]
    """A ``Future`` whose condition and lists are created only when something needs them.

    It behaves as ``Future`` everywhere (``wait``, ``as_completed``, ``add_done_callback``,
    ``asyncio.wrap_future``, ``cancel``): those reach the attributes ``Future.__init__`` would
    have set, and ``__getattr__`` creates them at that first reach. ``result()`` and
    ``exception()`` of a finished future, ``done()``, ``cancelled()`` and ``running()`` read the state
    without a lock (one attribute read; a settled future never changes state again).

    Subclasses change how a wait behaves through ``_sp_wait_result`` and
    ``_sp_wait_exception`` (the default: ``Future``'s).
    """

    # Future.__init__ sets these per instance; class defaults until a setter stores its own.
    _state = PENDING
    _result = None
    _exception = None
    # Whether the condition and lists exist: a flag, because asking ``self.__dict__`` would
    # build the instance's dict (CPython 3.13+ keeps attributes inline until then).
    _sp_has_condition = False

    # No Future.__init__: the condition and the lists come from __getattr__ (C's init: no frame).
    __init__ = object.__init__

    def __getattr__(self, name: str) -> Any:
        # Called only for attributes not found: the lazy three before their first use.
        if name not in _LAZY:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        with _creation_lock:
            if not self._sp_has_condition:
                self._waiters = _Waiters()
                self._done_callbacks: list[Any] = []
                self._condition = threading.Condition()
                self._sp_has_condition = True
        return object.__getattribute__(self, name)

    def set_result(self, result: Any) -> None:
        """Sets the value; without a condition yet, nobody waits and no callback is
        registered, so that is a store (the stdlib's path otherwise)."""
        with _creation_lock:
            if not self._sp_has_condition and (self._state == PENDING or self._state == RUNNING):
                self._result = result
                self._state = FINISHED  # after the value: lock-free readers check the state first
                return
        # Waiters or callbacks to wake, or a settled future: the stdlib raises InvalidStateError
        # (outside the lock: its repr() builds the condition, which takes the lock).
        super().set_result(result)

    def done(self) -> bool:
        """Whether the future was cancelled or finished."""
        state = self._state
        return state in (FINISHED, CANCELLED, CANCELLED_AND_NOTIFIED)

    def cancelled(self) -> bool:
        """Whether the future was cancelled."""
        state = self._state
        return state in (CANCELLED, CANCELLED_AND_NOTIFIED)

    def running(self) -> bool:
        """Whether the future is running (``set_running_or_notify_cancel`` was called)."""
        return self._state == RUNNING

    def result(self, timeout: float | None = None) -> Any:
        """The task's value; waits up to ``timeout`` seconds (None: no limit) while it runs.

        Raises:
            CancelledError, TimeoutError, or the task's exception (as ``Future.result``).
        """
        if self._state == FINISHED and self._exception is None:
            return self._result
        return self._sp_wait_result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The task's exception, or None if it returned; waits as ``result()`` does.

        Raises:
            CancelledError, TimeoutError (as ``Future.exception``).
        """
        if self._state == FINISHED:
            return self._exception
        return self._sp_wait_exception(timeout)

    def _sp_wait_result(self, timeout: float | None) -> Any:
        if _native.worker_index() is not None:
            self._sp_wait_in_worker(timeout)
            return Future.result(self, 0)  # the value, or what Future.result raises
        return Future.result(self, timeout)

    def _sp_wait_exception(self, timeout: float | None) -> BaseException | None:
        if _native.worker_index() is not None:
            self._sp_wait_in_worker(timeout)
            return Future.exception(self, 0)
        return Future.exception(self, timeout)

    def _sp_wait_in_worker(self, timeout: float | None) -> None:
        """Waits until the future is settled, or ``timeout`` passes, in a ``WorkerEvent``:
        interrupting the worker's task ends the wait with ``TaskInterrupted``."""
        waiter = _Wake()
        waiters: list[Any] = self._waiters  # the stdlib's waiters and ours
        with self._condition:
            if self.done():
                return
            waiters.append(waiter)
        try:
            waiter.event.wait(timeout)
        finally:
            with self._condition:
                waiters.remove(waiter)

    def cancel(self) -> bool:
        """Cancels the future if it has not started (``Future.cancel``)."""
        cancelled = Future.cancel(self)
        if cancelled:
            # Future.cancel wakes result() waiters through the condition only; a waiter in a
            # worker waits in its WorkerEvent (set again by set_running_or_notify_cancel).
            waiters: list[Any] = self._waiters
            for waiter in list(waiters):
                if isinstance(waiter, _Wake):
                    waiter.event.set()
        return cancelled

    # -- done-callbacks ------------------------------------------------------------

    def _invoke_callbacks(self) -> None:
        # Future calls this once settled (set_result, set_exception, cancel), outside the lock.
        if self._done_callbacks and not self._sp_defer_callbacks():
            Future._invoke_callbacks(self)  # type: ignore[attr-defined]

    def _sp_defer_callbacks(self) -> bool:
        """True when the done-callbacks will run elsewhere, later, through
        ``_sp_run_callbacks``: a subclass decides (by default they run now)."""
        return False

    def _sp_run_callbacks(self, quick: bool | None = None) -> bool:
        """Runs the done-callbacks, as ``Future`` does, on the calling thread: all of them, or
        only those marked ``QUICK_CALLBACK`` (``quick=True``) or only the others (False).
        Returns whether any callback was left out. A ``BaseException`` from one is logged
        too: it must not end the thread that runs them."""
        left = False
        for callback in self._done_callbacks:
            if quick is not None and bool(getattr(callback, QUICK_CALLBACK, False)) is not quick:
                left = True
                continue
            try:
                callback(self)
            except BaseException:
                logger.exception("exception calling callback for %r", self)
        return left


def on_worker_thread() -> bool:
    """Whether this thread is a pool worker's (whose waits ``WorkerEvent`` makes interruptible)."""
    return _native.worker_index() is not None


class WorkerEvent:
    """``threading.Event``'s ``set``, ``clear``, ``is_set`` and ``wait``, for a waiter on a pool
    worker's thread: the wait blocks in ``Queue.get``, which the worker's interruption ends
    (``TaskInterrupted``), as it ends ``time.sleep`` (see BlockingCall.swift). Each ``set``
    posts a token; ``wait`` takes tokens until the flag is set, so stale ones cost a loop."""

    __slots__ = ("_flag", "_tokens")

    def __init__(self) -> None:
        self._flag = False
        self._tokens = _native.Queue()

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        self._tokens.put_nowait(None)  # unbounded: never full

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._flag:
            if deadline is None:
                self._tokens.get()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self._tokens.get(timeout=remaining)
            except queue.Empty:
                break
        return self._flag


class _Wake:
    """A waiter of one future's ``result()``/``exception()`` in a worker: the future's waiter
    list calls it when the future is settled (as it calls ``wait()``'s waiters)."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = WorkerEvent()

    def add_result(self, future: Future[Any]) -> None:
        self.event.set()

    add_exception = add_cancelled = add_result


class _Waiters(list):  # type: ignore[type-arg]
    """A LightFuture's waiter list. The stdlib's ``wait()`` and ``as_completed()`` append their
    waiter, then block in its ``threading.Event``: appended from a pool worker's thread, that
    Event becomes a ``WorkerEvent``, so interrupting the task ends those waits too. (The waiter
    is shared by the futures waited on, and is swapped before any of them can settle: the
    stdlib appends it while it holds every future's condition.)"""

    __slots__ = ()

    def append(self, waiter: Any) -> None:
        event = getattr(waiter, "event", None)
        if type(event) is threading.Event and not event.is_set() and _native.worker_index() is not None:
            waiter.event = WorkerEvent()
        list.append(self, waiter)


class Completions:
    """The futures given to ``watch``, in the order they finish (``map(ordered=False)``).

    Told by each future's waiter list, as the stdlib's ``as_completed`` is, so the news does not
    wait behind done-callbacks. On a pool worker's thread, ``get`` waits in a ``WorkerEvent``,
    which the task's interruption ends; elsewhere in a ``SimpleQueue`` (in C, and Ctrl-C ends
    it). Works for any ``Future``.
    """

    def __init__(self) -> None:
        self._in_worker = on_worker_thread()
        self._finished: Any = deque() if self._in_worker else queue.SimpleQueue()
        self._event = WorkerEvent() if self._in_worker else None
        self._lock = threading.Lock()
        # The futures whose waiter lists hold this and that have not been handed out.
        self._watched: set[Future[Any]] = set()

    def watch(self, future: Future[Any]) -> None:
        waiters: list[Any] = future._waiters
        with future._condition:
            if not future.done():
                waiters.append(self)
                self._watched.add(future)
                return
        self._add(future)

    def get(self, timeout: float | None) -> Future[Any]:
        """The next finished future; ``TimeoutError`` when none finished within ``timeout``."""
        if not self._in_worker:
            try:
                future: Future[Any] = self._finished.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError from None
        else:
            future = self._get_in_worker(timeout)
        # No reference to it stays here once it is handed out (its settled waiter list may still
        # hold this: it is never called again).
        self._watched.discard(future)
        return future

    def _get_in_worker(self, timeout: float | None) -> Future[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        event = self._event
        assert event is not None
        while True:
            with self._lock:
                if self._finished:
                    future: Future[Any] = self._finished.popleft()
                    if not self._finished:
                        event.clear()
                    return future
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not event.wait(remaining) and deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError

    def close(self) -> None:
        """Leaves the waiter lists of the futures still watched (so that none keeps this alive)."""
        watched, self._watched = self._watched, set()
        for future in watched:
            waiters: list[Any] = future._waiters
            with future._condition:
                try:
                    waiters.remove(self)
                except ValueError:
                    pass

    # The waiter protocol (Future calls these under its condition).
    def add_result(self, future: Future[Any]) -> None:
        self._add(future)

    add_exception = add_cancelled = add_result

    def _add(self, future: Future[Any]) -> None:
        if not self._in_worker:
            self._finished.put(future)
            return
        with self._lock:
            self._finished.append(future)
            assert self._event is not None
            self._event.set()
