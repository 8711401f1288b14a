"""Call adapters: integrations that take over a call before the executor sends it.

Some frameworks hand an executor their own wrapper around the user's function (Dask does:
``dask.local.batch_execute_tasks``, ``distributed.worker._run_task_simple``), and unpickling the
wrapper in a worker interpreter would import the framework there. An integration is declared
here for the module of such wrappers; ``InterpreterPoolExecutor.submit`` looks each call's
module up in :data:`ADAPTERS` and knows no integration by name. The table names each adapter as
text, like an entry point: it is imported when the first call of its wrappers arrives, so the
executor, which sits below the integrations, never imports them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["ADAPTERS", "adapt"]

#: The module of a framework's wrappers -> ``"module:function"`` of its adapter, called as
#: ``adapter(pool, fn, args, kwargs)``; it submits the call in another form and returns the
#: Future to hand back, or returns None: the call is then submitted as it is.
ADAPTERS: dict[str, str] = {
    "dask.local": "subinterpreter_parallelism.dask_support:adapt_call",
    "distributed.worker": "subinterpreter_parallelism.dask_support:adapt_call",
}

_loaded: dict[str, Callable[..., Future[Any] | None]] = {}


def adapt(
    pool: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Future[Any] | None:
    """The Future of ``fn(*args, **kwargs)`` as the adapter of ``fn``'s module submitted it, or
    None (no adapter, or the adapter left the call as it is).

    Raises:
        what the adapter raises (a call it cannot send).
    """
    target = ADAPTERS.get(getattr(fn, "__module__", None))  # type: ignore[arg-type]
    if target is None:
        return None
    adapter = _loaded.get(target)
    if adapter is None:
        module, _, name = target.partition(":")
        adapter = _loaded[target] = getattr(importlib.import_module(module), name)
    return adapter(pool, fn, args, kwargs)
