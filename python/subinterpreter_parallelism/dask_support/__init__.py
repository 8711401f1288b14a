"""Dask on interpreter pools: pure-Python Dask tasks run truly in parallel in one process.

Local Dask: pass a pool as the scheduler (or use :func:`get`)::

    with InterpreterPoolExecutor(4) as pool:
        dask.compute(graph, scheduler=pool)

A cluster: start each worker with this package as a preload; tasks annotated with the executor
``"interpreters"`` run on the worker's interpreter pool::

    dask scheduler --scheduler-file s.json
    dask worker --scheduler-file s.json --nthreads 4 --preload subinterpreter_parallelism.dask_support

    with dask.annotate(executor="interpreters"):
        future = client.submit(count_primes, 10**6)

(``--as-default`` after the preload runs every task there; options after the preload need the
scheduler's address before them, or come from the dask config section ``subinterpreter-parallelism``;
``client.register_plugin(InterpreterPoolPlugin())`` installs the pool on running workers.)

How a task travels. Dask hands an executor its own wrapper around each task
(``dask.local.batch_execute_tasks``, ``distributed.worker._run_task_simple``). Unpickling those
in a worker interpreter would import dask there, and ``distributed`` imports psutil, which
refuses own-GIL sub-interpreters. The executor knows nothing of Dask: it asks its call
adapters (``subinterpreter_parallelism._adapters``), where this package is declared for those
wrappers' modules, and so hands such calls to :func:`adapt_call`, which keeps Dask on the
caller's side::

    caller's interpreter (Dask scheduler thread,            worker interpreter
    or a dask worker's event loop)                          (never imports dask)
    ────────────────────────────────────────────            ─────────────────────────
    pool.submit(dask wrapper, task, dependency values)
      adapt_call: lower the task (a dask._task_spec node)
      into an expression of plain calls, values filled in
      pool.submit(evaluate, expression) ──────────────────► evaluate: the user's functions
      DaskFuture ◄───────────────────────────────────────── value, or exception + traceback
      Dask's wrapper result, rebuilt here (results, errors
      with the interpreter's traceback, timings)

The package, one job per module:

- ``expressions``: the expression language, :func:`lower` and :func:`evaluate`: all that
  worker interpreters import from here;
- ``futures``: the Future Dask waits on, standing for the interpreter tasks;
- ``local``: ``dask.local``'s wrapper, and the scheduler :func:`get`;
- ``cluster``: ``distributed``'s wrapper, :func:`install`, :func:`uninstall` and
  :class:`InterpreterPoolPlugin`;
- ``preload``: ``dask_setup``, the preload's command line.

The package imports none of its modules at start (worker interpreters import it for
``expressions``): each is imported on first use, and imports dask, distributed or click itself.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future
    from typing import Any

    from ..executor import InterpreterPoolExecutor
    from .cluster import DEFAULT_EXECUTOR_NAME, InterpreterPoolPlugin, install, uninstall
    from .expressions import evaluate, evaluate_timed, lower
    from .local import get
    from .preload import CONFIG_SECTION, dask_setup

__all__ = [
    "CONFIG_SECTION",
    "DEFAULT_EXECUTOR_NAME",
    "InterpreterPoolPlugin",
    "adapt_call",
    "dask_setup",
    "evaluate",
    "evaluate_timed",
    "get",
    "install",
    "lower",
    "uninstall",
]

# Public name -> the module of this package that defines it (imported on first use).
_LAZY = {
    "evaluate": "expressions",
    "evaluate_timed": "expressions",
    "lower": "expressions",
    "get": "local",
    "DEFAULT_EXECUTOR_NAME": "cluster",
    "InterpreterPoolPlugin": "cluster",
    "install": "cluster",
    "uninstall": "cluster",
    "CONFIG_SECTION": "preload",
    "dask_setup": "preload",
}


def adapt_call(
    pool: InterpreterPoolExecutor, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Future | None:  # type: ignore[type-arg]
    """The call adapter for ``dask.local`` and ``distributed.worker`` (see
    ``subinterpreter_parallelism._adapters``): submits Dask's task wrappers without their
    Dask part.

    Returns the Future Dask expects from ``submit``, or None when ``fn`` is not a wrapper
    known here (the pool then submits the call as it is).

    Raises:
        KeyError: a task's dependency is missing from the values Dask passed.
        TypeError / pickle.PicklingError: a task cannot be sent to a worker interpreter.
    """
    module = sys.modules.get(getattr(fn, "__module__", ""))
    if module is None or kwargs:
        return None
    name = getattr(fn, "__name__", None)
    if name == "batch_execute_tasks" and getattr(module, name, None) is fn and len(args) == 1:
        from .local import submit_batch  # imports dask: never in a worker interpreter

        return submit_batch(pool, args[0])
    if name == "_run_task_simple" and getattr(module, name, None) is fn and len(args) == 3:
        from .cluster import submit_task

        return submit_task(pool, *args)
    return None


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
