"""True parallelism for pure-Python functions inside one process.

Each worker is a native thread that owns a CPython sub-interpreter with its own GIL
(PEP 684). The native core is written in Swift.

    >>> import subinterpreter_parallelism as sp
    >>> sp.parallel(["math", "factorial", (10,)], ["math", "gcd", (12, 18)])
    [3628800, 6]

How one task travels, for contributors (``═`` is the wire: the records of ``_wire``, whose
Swift half is Wire.swift; ``tests/test_halves.py`` checks the modules named here)::

    caller's interpreter                       ║ a worker's interpreter (its own GIL)
    executor.InterpreterPoolExecutor.submit    ║
     (_map: map's chunks; fallback: refusals)  ║
     _native.Pool.submit (Swift): by name,     ║
     C pickle, else _wire.encode_call ═ Call ══╬═► TaskRunner (Swift): decode, call, encode
                                               ║    _worker.invoke, _worker.run_chunk,
                                               ║    _wire.decode_call, _wire.encode_value,
    completion thread ◄═ Value, Shareable, ════╬══  _worker.encode_error (_pickling and
     Lent, Error, Chunk: _wire.decode_outcome  ║    _rebuild: once a record needs pickle)
     settles the _task_future.TaskFuture       ║
    forwarding.CallerSide ◄═ output, logs, ════╬══  bootstrap: _worker_features.install,
    preload.PreloadWatch ◄═ preload verdicts ══╬══  _worker_features.import_modules;
                                               ║    _streams.ForwardingStream posts output

    caller half: executor, _startup, _task_future, _completion, _exit, _map, _future, fallback,
                 forwarding, preload, progress, errors
    worker half: _worker, _wire, _worker_features, _streams, _import_hooks, _versions,
                 _native, _pickling, _rebuild, shared_map
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (worker start-up time)

# A clear error on 3.11 and older (ruff's UP036 sees requires-python; pip may not).
if sys.version_info < (3, 12):  # noqa: UP036  # pragma: no cover - guarded by requires-python too
    raise ImportError(
        "subinterpreter_parallelism needs Python 3.12 or newer (own-GIL sub-interpreters, "
        f"PEP 684); this is Python {sys.version.split()[0]}"
    )

from . import _versions

if _versions.FREE_THREADED:
    raise ImportError(
        "subinterpreter_parallelism runs each worker in an interpreter with its own GIL; this is a "
        "free-threaded Python build (no GIL), where plain threads already run Python code in "
        "parallel: use concurrent.futures.ThreadPoolExecutor there instead"
    )

from . import _native
from ._native import Queue, QueueClosed, TaskInterrupted
from ._versions import default_worker_count

if _native.worker_index() is None and _versions.current_interpreter_id() == 0:
    # A Ctrl-C that CPython can only report as "Exception ignored" (one that lands inside a
    # weakref callback or a finalizer: importlib's module locks have such callbacks) would be
    # lost: the program would go on. It is delivered again instead (python/cpython#95959).
    import functools as _functools
    import threading as _threading

    _main_ident = _threading.main_thread().ident
    assert _main_ident is not None  # the main thread runs (or ran) the program: it has an ident
    sys.unraisablehook = _functools.partial(_native._keep_ctrl_c, sys.unraisablehook, _main_ident)
    del _functools, _threading, _main_ident

if TYPE_CHECKING:
    from typing import Any

    from .errors import BrokenInterpreterPool, ExecutionFailed, RemoteTraceback
    from .executor import InterpreterPoolExecutor
    from .fallback import ProcessFallbackWarning
    from .parallel_calls import CallOutcome, parallel
    from .reusable import ExecutorOptions, get_reusable_executor
    from .shared_map import SharedMap

# The executor and parallel() load on first use: worker interpreters import this package
# for their runner and should not pay for what only the caller needs.
_LAZY = {
    "BrokenInterpreterPool": "errors",
    "ExecutionFailed": "errors",
    "RemoteTraceback": "errors",
    "InterpreterPoolExecutor": "executor",
    "ProcessFallbackWarning": "fallback",
    "CallOutcome": "parallel_calls",
    "parallel": "parallel_calls",
    "ExecutorOptions": "reusable",
    "get_reusable_executor": "reusable",
    "SharedMap": "shared_map",
}


if TYPE_CHECKING:
    from types import ModuleType as _ModuleType
else:
    _ModuleType = type(sys)  # ModuleType, without importing types


class _PublicModule(_ModuleType):
    """This package's module type: the executor and parallel() load on first use, and ``dir()``
    lists ``__all__`` only (module-level ``__getattr__``/``__dir__`` functions would show in
    ``help()`` beside the API)."""

    def __getattr__(self, name: str) -> Any:
        if name in _LAZY:
            import importlib

            value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
            setattr(self, name, value)
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(__all__)


__all__ = [
    "BrokenInterpreterPool",
    "CallOutcome",
    "ExecutionFailed",
    "ExecutorOptions",
    "InterpreterPoolExecutor",
    "ProcessFallbackWarning",
    "Queue",
    "QueueClosed",
    "RemoteTraceback",
    "SharedMap",
    "TaskInterrupted",
    "default_worker_count",
    "get_reusable_executor",
    "parallel",
    "register_joblib_backend",
]

__version__ = "0.1.0"


def register_joblib_backend(name: str = "subinterpreters", make_default: bool = False) -> None:
    """Registers the joblib backend ``"subinterpreters"`` (see
    :mod:`subinterpreter_parallelism.joblib_backend`), for ``joblib.parallel_config(backend=...)``.

    Importing this package does it when joblib is already imported; call this when joblib is
    imported later. ``make_default=True`` makes it joblib's default backend. Harmless twice.

    Raises:
        ImportError: joblib is not installed (``pip install "subinterpreter_parallelism[joblib]"``).
    """
    from .joblib_backend import register_joblib_backend as register

    register(name, make_default)


# joblib has no plug-in mechanism that would find the backend later: register it now if joblib
# is imported already (never the case in worker interpreters, where joblib cannot load anyway).
if "joblib" in sys.modules:
    try:
        register_joblib_backend()
    except ImportError:  # a joblib too old or broken: the backend is simply not there
        pass

# The module is the API alone: its helpers leave the namespace (dir(), help(), completion).
sys.modules[__name__].__class__ = _PublicModule
del annotations, sys, TYPE_CHECKING, _ModuleType
