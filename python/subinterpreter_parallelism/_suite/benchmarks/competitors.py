"""The ways to run the same Python functions that the benchmarks compare.

Each competitor is an executor factory behind a short key. Serial execution and the seed's
design are wrapped as ``concurrent.futures.Executor`` too, so that every scenario is written
once against ``submit``/``map``/``shutdown``.
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

__all__ = ["COMPETITORS", "Competitor", "SerialExecutor", "by_key", "make_executor", "prepare",
           "second_process_method", "unavailable_reason"]


@dataclass(frozen=True)
class Competitor:
    """One way of running tasks: ``key`` names it in JSON and table headers, ``label`` in prose."""

    key: str
    label: str


def second_process_method() -> str:
    """The process start method measured beside fork: forkserver where it exists, else spawn."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _interpreter_pool_label() -> str:
    return ("stdlib InterpreterPoolExecutor" if sys.version_info >= (3, 14)
            else "InterpreterPoolExecutor backport (interpreters-pep-734)")


COMPETITORS: tuple[Competitor, ...] = (
    Competitor("serial", "serial (a plain loop in the caller)"),
    Competitor("threads", "ThreadPoolExecutor"),
    Competitor("fork", "ProcessPoolExecutor, fork"),
    Competitor(second_process_method(), f"ProcessPoolExecutor, {second_process_method()}"),
    Competitor("loky", "loky ProcessPoolExecutor"),
    Competitor("backport", _interpreter_pool_label()),
    Competitor("seed", "seed design: a new thread + own-GIL interpreter per call"),
    Competitor("this", "this project: subinterpreter_parallelism.InterpreterPoolExecutor"),
)


def by_key(key: str) -> Competitor:
    """The competitor named ``key``; raises KeyError for an unknown key."""
    for competitor in COMPETITORS:
        if competitor.key == key:
            return competitor
    raise KeyError(key)


class SerialExecutor(Executor):
    """Runs every call at once in the caller: the baseline."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Calls ``fn`` now; returns a finished Future."""
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        """The builtin ``map``."""
        return map(fn, *iterables)


def _backport_class() -> Any:
    if sys.version_info >= (3, 14):
        from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]
    else:
        from interpreters_backport.concurrent.futures import InterpreterPoolExecutor
    return InterpreterPoolExecutor


def unavailable_reason(key: str) -> str | None:
    """Why competitor ``key`` cannot run here (not installed, wrong Python), or None.

    Checked without importing anything that could crash this process.
    """
    if key in ("fork", "forkserver", "spawn"):
        if key not in multiprocessing.get_all_start_methods():
            return f"the {key} start method is not available on this platform"
        return None
    if key == "loky":
        if importlib.util.find_spec("loky") is None:
            return "loky is not installed (pip install loky, or the `bench` extra)"
        return None
    if key == "backport":
        if sys.version_info >= (3, 14):
            return None
        if sys.version_info < (3, 13):
            return ("no stdlib InterpreterPoolExecutor before 3.14; its backport needs 3.13 "
                    "(on 3.12 it needs interpreters-3-12, whose import crashes)")
        if importlib.util.find_spec("interpreters_backport") is None:
            return "interpreters-pep-734 (the 3.13 backport of the stdlib pool) is not installed"
        return None
    if key == "seed":
        from .seed_design import unavailable_reason as seed_reason

        return seed_reason()
    return None


def prepare(key: str) -> None:
    """Imports what competitor ``key`` needs, so that no timed run pays for the import."""
    modules = {"loky": ["loky"], "seed": ["benchmarks.seed_design"],
               "this": ["subinterpreter_parallelism.executor"]}.get(key, [])
    if key == "backport":
        modules = ["concurrent.futures"] if sys.version_info >= (3, 14) else \
            ["interpreters_backport.concurrent.futures", "interpreters_backport.interpreters.queues"]
    for name in modules:
        importlib.import_module(name)


def make_executor(key: str, workers: int | None) -> Executor:
    """A fresh executor of competitor ``key`` with ``workers`` workers.

    ``workers=None`` means the competitor's default (for the seed design: every call at once).
    """
    if key == "serial":
        return SerialExecutor()
    if key == "threads":
        return ThreadPoolExecutor(workers)
    if key in ("fork", "forkserver", "spawn"):
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(key))
    if key == "loky":
        import loky

        return loky.ProcessPoolExecutor(max_workers=workers)
    if key == "backport":
        return _backport_class()(workers)
    if key == "seed":
        from .seed_design import SeedDesignExecutor

        return SeedDesignExecutor(workers)
    if key == "this":
        import subinterpreter_parallelism as sp

        return sp.InterpreterPoolExecutor(workers)
    raise KeyError(key)
