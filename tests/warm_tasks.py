"""Helpers of tests/test_preload_auto.py: queues that the ``warm_*`` modules report to when a
worker imports them (set by the pool's initializer; None in the caller, which imports them
only to submit their functions)."""

from __future__ import annotations

import sys

from subinterpreter_parallelism import _native

REPORT = None
RELEASE = None


def set_queues(report, release=None):
    """The pool's initializer: where imports report, and what a blocking import waits on."""
    global REPORT, RELEASE
    REPORT, RELEASE = report, release


def in_worker() -> bool:
    return REPORT is not None


def in_warm_import() -> bool:
    """Whether this code runs inside a warm import (``_worker_features.warm_module``), not a task."""
    frame = sys._getframe()
    while frame is not None:
        if (
            frame.f_code.co_name == "warm_module"
            and frame.f_globals.get("__name__") == "subinterpreter_parallelism._worker_features"
        ):
            return True
        frame = frame.f_back
    return False


def report_import(module: str) -> None:
    """Called by a ``warm_*`` module as it is imported in a worker."""
    if REPORT is not None:
        REPORT.put((module, _native.worker_index(), in_warm_import()))


def worker_index():
    """A task: the index of the worker running it."""
    return _native.worker_index()


def hold(queue):
    """A task: reports its worker, then waits for an item of ``queue``."""
    REPORT.put(("hold", _native.worker_index(), False))
    return queue.get()
