"""The future ``submit`` returns: a ``LightFuture`` that knows its task in the Swift pool.

It asks the pool about its task (``running()``), stops it (``cancel()`` interrupts a running
task), and stops it too when Ctrl-C ends a wait on it. Who settles it is Swift's decision (see
the class); the completion thread (``_completion``) settles it otherwise.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any

from . import _native
from ._future import LightFuture
from ._native import TaskInterrupted

if TYPE_CHECKING:
    from ._completion import PoolState

__all__ = ["TaskFuture"]


class TaskFuture(LightFuture):
    """A Future whose ``cancel()`` also stops the task when it is already running.

    It uses only ``Future``'s public methods (``LightFuture``, its base, builds the condition
    only when something waits: see _future.py). Who settles it is decided in Swift (the task's
    lifecycle, see Sources/NativeExtension/PoolCore.swift): a cancel that stops the task claims it,
    and then the completion thread never delivers the task's outcome to it; otherwise the
    completion thread claims it and a later cancel is too late. So ``set_result`` and ``cancel``
    never race on one future.

    ``submit`` sets ``_sp_pool`` and ``_sp_task_id`` right after creating it (no ``__init__``
    of its own: one Python frame less per task).
    """

    _sp_pool: PoolState
    _sp_task_id: int
    _sp_call: Any = None  # fallback.Call: kept for fallback="process"
    _sp_moved: Future[Any] | None = None  # the process pool's future once the task fell back

    def cancel(self) -> bool:
        """Cancels the task; a running task is interrupted inside its worker interpreter.

        Returns False only when the task has already finished. Unlike the stdlib, a running
        task can be cancelled: ``TaskInterrupted`` is raised in it at its next Python
        instruction (code blocked inside C sees it when it returns to Python).
        """
        return self._sp_cancel(interrupt=True)

    def _sp_cancel(self, interrupt: bool) -> bool:
        if self._sp_moved is not None:  # runs in a process now; fallback._settle cancels this one
            return self._sp_moved.cancel()
        if self.done():
            return self.cancelled()
        pool = self._sp_pool
        if pool.native.cancel(self._sp_task_id, interrupt) == 0:
            return False  # too late: the completion thread (or task_timeout) settles the future
        # Swift's verdict made this thread the one that settles the future.
        pool.futures.pop(self._sp_task_id, None)
        return self._sp_settle_cancelled()

    def _sp_settle_cancelled(self) -> bool:
        """Moves the future to cancelled as the stdlib's executors do: ``cancel()`` (callbacks,
        ``result()`` waiters), then ``set_running_or_notify_cancel()`` (``wait`` and
        ``as_completed``). False if it was settled by someone outside the pool meanwhile."""
        if not super().cancel():
            return self.cancelled()
        self.set_running_or_notify_cancel()
        return True

    def running(self) -> bool:
        """Whether a worker is running the task now."""
        if self.done():
            return False
        phase = self._sp_pool.native.phase(self._sp_task_id)
        return phase in (_native.PHASE_RUNNING, _native.PHASE_INTERRUPTING)

    def _sp_wait_result(self, timeout: float | None) -> Any:
        # result() of a future not finished yet (LightFuture answers a finished one itself).
        if timeout is not None and timeout > threading.TIMEOUT_MAX:
            timeout = None  # inf: no limit (the stdlib's wait raises OverflowError)
        try:
            return super()._sp_wait_result(timeout)
        except (KeyboardInterrupt, TaskInterrupted):
            self.cancel()  # Ctrl-C while waiting (or, in a task, its interruption) stops the task too
            raise

    def _sp_wait_exception(self, timeout: float | None) -> BaseException | None:
        if timeout is not None and timeout > threading.TIMEOUT_MAX:
            timeout = None
        try:
            return super()._sp_wait_exception(timeout)
        except (KeyboardInterrupt, TaskInterrupted):
            self.cancel()
            raise

    def _sp_defer_callbacks(self) -> bool:
        # Settled by the completion thread: the callbacks run on the pool's callback thread.
        return self._sp_pool.defer_callbacks(self)

    def _sp_fail(self, error: BaseException) -> None:
        """Fails the future; for its claimer (see the class), and for the pool's end, which
        settles what is left."""
        try:
            self.set_exception(error)
        except InvalidStateError:
            pass  # settled by its user (set_result on a future is public) or a cancel at the end
