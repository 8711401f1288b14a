"""The completion side of a pool: the thread that turns worker events into settled futures, and
the thread that runs the futures' done-callbacks.

    Swift pool (events) ──► completion thread: PoolState.deliver_forever
                              settles each future (result, exception, timeout, breakage),
                              which wakes result(), wait() and as_completed() at once
                              └─► done-callbacks, if any ──► callback thread: CallbackThread
                                                              runs them in order

The completion thread is the only one that settles futures from worker events, so it never runs
user code: a callback that blocks (on another future of the same pool, say) would stop every
later result. Callbacks run on the callback thread instead, one at a time, in the order the
futures settled; a callback that blocks delays the callbacks after it, never a result.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from . import _native, _versions, _wire
from ._future import LightFuture
from .errors import BrokenInterpreterPool, ExecutionFailed

__all__ = ["CallbackThread", "PoolState"]

logger = logging.getLogger("subinterpreter_parallelism")


class CallbackThread:
    """Runs the done-callbacks of the futures the completion thread settled, in that order, on
    a thread of its own, started with the first of them. The completion thread stops it once
    the pool has ended (it runs what was queued before, then ends)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[LightFuture | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        """The thread, once started (``shutdown(wait=True)`` joins it)."""

    def put(self, future: LightFuture) -> bool:
        """Queues ``future``'s callbacks (but the quick ones); False if no thread could be
        started (the caller then runs them itself: late is better than never)."""
        if self.thread is None:
            with self._lock:
                if self.thread is None:
                    # A daemon in the main interpreter: exit after a second Ctrl-C must not
                    # wait for a callback that blocks. Sub-interpreters allow no daemon threads;
                    # there the pool's end stops it.
                    thread = threading.Thread(
                        target=self._run, name=self._name, daemon=_versions.current_interpreter_id() == 0
                    )
                    try:
                        thread.start()
                    except RuntimeError:  # can't start new thread
                        return False
                    self.thread = thread
        self._queue.put(future)
        return True

    def stop(self) -> None:
        """The pool has ended: the thread ends once it has run what is queued."""
        if self.thread is not None:
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            future = self._queue.get()
            if future is None:
                return
            future._sp_run_callbacks(quick=False)
            del future  # no reference kept while waiting for the next one


class PoolState:
    """What the executor and its completion thread share (no reference to the executor, so
    that an executor dropped without ``shutdown()`` can still be collected).

    The pool's state (running, shutting down, shut down, broken) and each task's state are
    Swift's (``native.state()``, ``native.phase(id)``); this keeps only the id -> future map,
    from which whoever settles a future removes it.
    """

    def __init__(self, native: Any, task_timeout: float | None, callback_thread_name: str) -> None:
        self.native = native
        self.task_timeout = task_timeout
        self.futures: dict[int, Any] = {}  # id -> _task_future.TaskFuture
        self.lock = threading.Lock()
        self.message_handlers: dict[int, Callable[[Any, int], None]] = {}
        # Set when every worker interpreter has ended and every future is settled. Waiting on
        # it (not on Thread.join) matters on 3.12, where Ctrl-C inside Thread.join() marks a
        # still-running thread as stopped, so a later join() would return too early.
        self.ended = threading.Event()
        self.fallback: Any = None  # fallback.ProcessFallback: fallback="process" or parallel(fallback=...)
        # The initializer and its arguments, kept while workers may still start: a Queue or a
        # SharedMap among them (or bound in a partial) is pickled as its id, which attaches only
        # while some handle keeps it alive.
        self.initargs: tuple[Any, ...] = ()
        self.callbacks = CallbackThread(callback_thread_name)
        # The completion thread's id, once it runs: callbacks of futures it settles go to
        # `callbacks`; those settled on any other thread (cancel) run there, as in the stdlib.
        self.completion_ident: int | None = None

    @property
    def broken(self) -> str | None:
        """Why the pool is broken, or None while it is not (Swift keeps it)."""
        reason: str | None = self.native.broken_reason()
        return reason

    def defer_callbacks(self, future: LightFuture) -> bool:
        """For ``TaskFuture._sp_defer_callbacks``: on the completion thread, runs the future's
        quick callbacks (``_future.QUICK_CALLBACK``: progress) and hands the others to the
        callback thread (True); elsewhere they all run where they are (False)."""
        if threading.get_ident() != self.completion_ident:
            return False
        if future._sp_run_callbacks(quick=True) and not self.callbacks.put(future):
            future._sp_run_callbacks(quick=False)
        return True

    def on_event(self, kind: int, task_id: int, payload: Any, worker: int) -> None:
        """Called by ``native.deliver`` on the completion thread, once per worker event."""
        if kind == _native.EVENT_MESSAGE:
            handler = self.message_handlers.get(task_id)
            if handler is not None:
                handler(payload, worker)
            return
        if kind == _native.EVENT_WORKER_FAILED:
            self.mark_broken(f"worker {worker} failed to start:\n{payload}")
            return
        future = self.futures.pop(task_id, None)
        if future is None:
            return
        if kind == _native.EVENT_TIMED_OUT:
            # The Swift core cancelled or is interrupting the task, and claimed it: its own
            # event is dropped.
            future._sp_fail(TimeoutError(f"the task did not finish within {self.task_timeout} s"))
            return
        if kind == _native.EVENT_DELIVERY_FAILED:
            future._sp_fail(payload)  # MemoryError while building the outcome here
            return
        if kind == _native.EVENT_SKIPPED:
            # Skipped without a claiming cancel: the pool broke or shut down meanwhile.
            future._sp_fail(
                BrokenInterpreterPool(self.broken)
                if self.broken
                else RuntimeError("the task was dropped at pool shutdown")
            )
            return
        if kind == _native.EVENT_INTERNAL_ERROR:
            future._sp_fail(ExecutionFailed("RuntimeError", str(payload)))
            return
        if kind == _native.EVENT_INTERRUPTED and payload is None:
            future._sp_fail(RuntimeError("the task was interrupted"))
            return
        try:
            ok, value = _wire.decode_outcome(payload)
        except BaseException as error:  # SystemExit from a __reduce__ too, or the future hangs
            ok, value = False, _wire.failure_from_unpickling(error)
        if ok:
            future.set_result(value)
        elif not self._fall_back(future, value):
            future.set_exception(value)

    def _fall_back(self, future: Any, exc: BaseException) -> bool:
        """fallback="process": hands a task that failed with a refusal to the process pool,
        which then settles its future. False: not taken over (not a refusal, no fallback for
        this task, or the process pool has shut down)."""
        if future._sp_call is None:
            return False
        moved = self.fallback.take_over(future._sp_call, future, exc)
        if moved is None:
            return False
        future._sp_call = None
        future._sp_moved = moved  # cancel() now cancels the process's task
        return True

    def mark_broken(self, reason: str) -> None:
        """A worker could not start: fail every pending task and refuse new ones."""
        if not self.native.mark_broken(reason):
            return  # broken already
        logger.error("interpreter pool is broken: %s", reason)
        self.native.close()
        error = BrokenInterpreterPool(
            "a worker interpreter failed to start, so the pool is no longer usable:\n" + reason
        )
        for future in list(self.futures.values()):
            if self.native.cancel(future._sp_task_id, False) == 1:  # claimed: ours to settle
                self.futures.pop(future._sp_task_id, None)
                future._sp_fail(error)

    def deliver_forever(self) -> None:
        """The completion thread: deliver events until the last worker has ended."""
        self.completion_ident = threading.get_ident()
        try:
            # A task that returned (and whose outcome the completion thread claimed: no cancel
            # can settle it now): Swift pops its future from ``futures`` and calls
            # ``LightFuture.set_result(future, value)``, no frame of ours in between.
            while self.native.deliver(self.futures, LightFuture.set_result, self.on_event):
                pass
        finally:
            try:
                never_ran = self.native.join()  # the queued tasks it claimed for us
            except BaseException:  # MemoryError listing them: the sweep below fails them
                never_ran = []
            error: BaseException = (
                BrokenInterpreterPool(self.broken)
                if self.broken
                else RuntimeError("the pool ended before the task could run")
            )
            for task_id in never_ran:
                future = self.futures.pop(task_id, None)
                if future is not None:
                    future._sp_fail(error)
            # Left: nothing, unless an event could not be delivered at all (reported as
            # unraisable); a cancel's claimer may be settling its own meanwhile.
            for future in list(self.futures.values()):
                if not future.done():
                    future._sp_fail(error)
            self.futures.clear()
            self.callbacks.stop()  # after the callbacks of the failures above
            self.ended.set()
