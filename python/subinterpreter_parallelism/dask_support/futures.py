"""Caller side: the Future that Dask waits on, standing for one or more interpreter tasks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

__all__ = ["DaskFuture", "TaskFailed", "when_all_done"]


class TaskFailed(Exception):
    """Raised by an outcome builder: Dask's wrapper fails with the task's own exception."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


class DaskFuture(Future):  # type: ignore[type-arg]
    """What Dask waits on: done when Dask's own wrapper would have returned.

    ``cancel()`` also cancels the interpreter tasks behind it (interrupting running ones);
    ``release()`` does so for a task distributed no longer wants, whose outcome then
    asks the worker to forget it (``Reschedule``) rather than report an error.
    """

    released = False

    def __init__(self, parts: list[Future]) -> None:  # type: ignore[type-arg]
        super().__init__()
        self.parts = parts

    def cancel(self) -> bool:
        """Cancels this future and the interpreter tasks behind it."""
        if not super().cancel():
            return False
        for part in self.parts:
            part.cancel()
        return True

    def release(self) -> None:
        """Distributed no longer wants the task: stop its parts; its outcome is a reschedule."""
        self.released = True
        for part in self.parts:
            part.cancel()

    def settle(self, outcome: Callable[[], Any]) -> None:
        """Sets the result to ``outcome()``, or the exception it raises (if still pending)."""
        if self.done():
            return
        error: BaseException | None = None
        try:
            value = outcome()
        except TaskFailed as failed:
            error = failed.error.with_traceback(None)  # its story is in its RemoteTraceback
        except BaseException as exc:
            error = exc
        try:
            if error is None:
                self.set_result(value)
            else:
                self.set_exception(error)
        except InvalidStateError:  # cancelled meanwhile
            pass


def when_all_done(parts: list[Future], callback: Callable[[], None]) -> None:  # type: ignore[type-arg]
    """Calls ``callback()`` once every future of ``parts`` is done (at once if there is none)."""
    if not parts:
        callback()
        return
    remaining = [len(parts)]
    lock = threading.Lock()

    def one_done(_: Any) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            callback()

    for part in parts:
        part.add_done_callback(one_done)
