"""Local Dask: a pool as the scheduler's executor (``dask.compute(..., scheduler=pool)``).

``dask.local`` hands the pool ``batch_execute_tasks(batch)``; :func:`submit_batch` runs each
task of the batch on an interpreter and builds, here, what that wrapper would have returned.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from concurrent.futures import Future
from typing import Any

from dask import local

from ..executor import InterpreterPoolExecutor
from .expressions import evaluate, lower
from .futures import DaskFuture, TaskFailed, when_all_done

__all__ = ["get", "submit_batch"]


def submit_batch(pool: InterpreterPoolExecutor, batch: list[tuple[Any, ...]]) -> Future:  # type: ignore[type-arg]
    """``dask.local.batch_execute_tasks(batch)``: each task on an interpreter, then the list of
    ``(key, result info, failed)`` that the local scheduler reads, built here."""
    items = []
    parts: list[Future] = []  # type: ignore[type-arg]
    try:
        for key, task_info, dumps, loads, get_id, pack_exception in batch:
            task, data = loads(task_info)
            parts.append(pool.submit(evaluate, lower(task, data)))
            items.append((key, dumps, get_id, pack_exception))
    except BaseException:
        for part in parts:
            part.cancel()
        raise
    future = DaskFuture(parts)

    def outcome() -> list[tuple[Any, Any, bool]]:
        results = []
        for (key, dumps, get_id, pack_exception), part in zip(items, parts):
            error = part.exception()
            if error is None:
                results.append((key, dumps((part.result(), get_id())), False))
                continue
            try:
                results.append((key, pack_exception(error, dumps), True))
            except BaseException as raised:
                if raised is error:  # Dask's default pack_exception re-raises: the batch fails
                    raise TaskFailed(error) from None
                raise
        return results

    when_all_done(parts, lambda: future.settle(outcome))
    return future


def get(
    dsk: Mapping[Hashable, Any],
    keys: Any,
    *,
    pool: InterpreterPoolExecutor | None = None,
    max_workers: int | None = None,
    **kwargs: Any,
) -> Any:
    """A Dask scheduler ``get`` that runs the graph's tasks on worker interpreters.

    Use it as ``dask.compute(x, scheduler=get)`` or ``dask.config.set(scheduler=get)``. With
    ``pool=None`` a pool of ``max_workers`` interpreters is started for the call and shut
    down after it; passing a pool reuses it (``scheduler=pool`` does the same). Other keyword
    arguments go to ``dask.local.get_async``.

    Raises:
        Exception: the first exception a task raised, with the interpreter's traceback as its
            cause.
    """
    if pool is not None:
        return local.get_async(pool.submit, pool.max_workers, dsk, keys, **kwargs)
    with InterpreterPoolExecutor(max_workers) as own:
        return local.get_async(own.submit, own.max_workers, dsk, keys, **kwargs)
