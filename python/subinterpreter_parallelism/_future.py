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
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import Any

__all__ = ["LightFuture"]

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
    __init__ = object.__init__  # type: ignore[assignment]

    def __getattr__(self, name: str) -> Any:
        # Called only for attributes not found: the lazy three before their first use.
        if name not in _LAZY:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        with _creation_lock:
            if not self._sp_has_condition:
                self._waiters = []
                self._done_callbacks = []
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
        return state == FINISHED or state == CANCELLED or state == CANCELLED_AND_NOTIFIED

    def cancelled(self) -> bool:
        """Whether the future was cancelled."""
        state = self._state
        return state == CANCELLED or state == CANCELLED_AND_NOTIFIED

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
        return Future.result(self, timeout)

    def _sp_wait_exception(self, timeout: float | None) -> BaseException | None:
        return Future.exception(self, timeout)
