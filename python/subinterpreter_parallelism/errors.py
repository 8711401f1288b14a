"""Exceptions of subinterpreter_parallelism.

Errors raised by tasks keep their original type; these are for what cannot.
"""

from __future__ import annotations

from concurrent.futures import BrokenExecutor

from ._native import TaskInterrupted

__all__ = [
    "BrokenInterpreterPool",
    "ExecutionFailed",
    "RemoteTraceback",
    "TaskInterrupted",
]


class BrokenInterpreterPool(BrokenExecutor):
    """The pool cannot run tasks: a worker interpreter failed to start or its initializer raised.

    Pending and later submissions fail with this error; the original failure is in the message
    (and was logged to the ``subinterpreter_parallelism`` logger).
    """


class ExecutionFailed(Exception):
    """A task raised an exception that could not come back to the caller as itself.

    That happens when the exception (or its payload) cannot be pickled in the worker, or
    when its class cannot be imported or rebuilt in the caller's interpreter.

    Attributes:
        type_name: the qualified name of the original exception type.
        message: ``str()`` of the original exception.
        traceback: the traceback text, as formatted inside the worker.
    """

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(type_name, message, traceback)
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


# TaskInterrupted is defined by the native module (so that worker interpreters have it without
# importing anything else): a BaseException raised inside a task when it is stopped (cancel,
# timeout, Ctrl-C, shutdown); `except Exception` in task code does not swallow it.


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised inside a worker interpreter.

    Set as the ``__cause__`` of every exception a task raises, so that the traceback
    printed in the caller shows the file, line and function inside the worker.
    """

    def __init__(self, traceback: str) -> None:
        super().__init__(traceback)
        self.traceback = traceback

    def __str__(self) -> str:
        return "\n\n" + self.traceback.rstrip("\n") + "\n"
