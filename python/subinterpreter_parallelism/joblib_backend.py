"""A joblib backend on own-GIL interpreters: ``parallel_config(backend="subinterpreters")``.

::

    import joblib
    import subinterpreter_parallelism as sp    # registers the backend, since joblib is imported

    with joblib.parallel_config(backend="subinterpreters", n_jobs=4):
        results = joblib.Parallel()(joblib.delayed(f)(x) for x in xs)

The backend is registered when this package is imported after joblib; otherwise call
:func:`register_joblib_backend` (joblib has no plug-in mechanism that would find it).

How it runs. joblib hands a backend batches of ``delayed`` calls; each batch runs as one task
on the process-wide warm pool of :func:`~subinterpreter_parallelism.get_reusable_executor`
(the one ``parallel()`` uses), sized to ``n_jobs``, as joblib's loky backend uses loky's
reusable executor. Worker interpreters never import joblib (on Python 3.12 to 3.14 it cannot
load in them): only the batch's functions and arguments travel, and
:func:`~subinterpreter_parallelism._joblib_tasks.run_batch` calls them.

- ``n_jobs``: default -1 (one worker per CPU), as joblib's Dask backend; 1 runs the calls one
  after the other in the caller (joblib's sequential backend), as loky does; -2 all CPUs but
  one. A different ``n_jobs`` from the last call replaces the shared pool.
- ``return_as="generator"`` and ``"generator_unordered"`` work; ``timeout=`` and an error in a
  task cancel the other tasks, and running ones are interrupted (``TaskInterrupted``).
- Exceptions keep their type, with the traceback from inside the interpreter as
  ``__cause__`` (``RemoteTraceback``).
- Executor options (``task_timeout``, ``preload``, ``initializer``, ``fallback``, ...) go after
  the backend's name: ``parallel_config(backend="subinterpreters", preload=["json"])``.
- Nested calls: a ``Parallel`` call inside a task needs joblib inside the worker interpreter,
  which 3.12 to 3.14 refuse (``ImportError`` naming ``faulthandler``; ``fallback="process"``
  runs such tasks in processes). Where joblib can load, nested calls run sequentially inside
  their worker. ``Parallel`` calls from several threads of the caller share the pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

try:
    from joblib._parallel_backends import (
        AutoBatchingMixin,
        FallbackToBackend,
        ParallelBackendBase,
        SequentialBackend,
    )
    from joblib.parallel import register_parallel_backend
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the joblib backend needs joblib: pip install 'subinterpreter_parallelism[joblib]'"
    ) from exc

from . import _joblib_tasks, _native
from ._versions import default_worker_count
from .executor import InterpreterPoolExecutor
from .reusable import get_reusable_executor, option_names

__all__ = ["BACKEND_NAME", "SubinterpreterBackend", "register_joblib_backend"]

#: The name the backend is registered under.
BACKEND_NAME = "subinterpreters"


class SubinterpreterBackend(AutoBatchingMixin, ParallelBackendBase):  # type: ignore[misc]
    """joblib's ``ParallelBackendBase`` on the reusable interpreter pool.

    Keyword arguments are options of :class:`InterpreterPoolExecutor` (``task_timeout``,
    ``preload``, ``initializer``, ...), used for the shared pool.
    """

    default_n_jobs = -1
    supports_retrieve_callback = True
    supports_timeout = True
    supports_return_generator = True
    supports_sharedmem = False
    uses_threads = False
    # Batches grow until each runs this long (joblib's auto-batching): a task costs tens of
    # microseconds here, far less than a process pool's round trip, so shorter batches do.
    MIN_IDEAL_BATCH_DURATION = 0.05
    MAX_IDEAL_BATCH_DURATION = 1.0

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **executor_options: Any,
    ) -> None:
        unknown = sorted(set(executor_options) - option_names())
        if unknown:
            raise TypeError(
                f"unknown options for the {BACKEND_NAME!r} joblib backend: {', '.join(unknown)} "
                "(it takes InterpreterPoolExecutor's keyword arguments)"
            )
        super().__init__(
            nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **executor_options
        )
        self._executor: InterpreterPoolExecutor | None = None
        self._futures: set[Future[Any]] = set()
        self._futures_lock = threading.Lock()

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """Workers for ``n_jobs``: negative counts from the CPU count (-1: all), as in joblib."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None or _native.worker_index() is not None:
            return 1  # inside a worker interpreter, nested calls run sequentially
        if n_jobs < 0:
            return max(default_worker_count() + 1 + n_jobs, 1)
        return int(n_jobs)

    def configure(
        self,
        n_jobs: int = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **backend_kwargs: Any,
    ) -> int:
        """Takes the shared pool for ``n_jobs`` workers; 1 falls back to joblib's sequential backend."""
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        names = option_names()
        # Parallel also passes its own settings (max_nbytes, mmap_mode, temp_folder, verbose,
        # context...): only the executor's options are kept.
        options = {
            key: value for key, value in {**backend_kwargs, **self.backend_kwargs}.items() if key in names
        }
        self._executor = get_reusable_executor(n_jobs, **options)
        self.parallel = parallel
        return n_jobs

    def submit(
        self, func: Callable[[], Any], callback: Callable[[Future[Any]], object] | None = None
    ) -> Future[Any]:
        """Runs one joblib batch as one task; ``callback(future)`` once it is done."""
        executor = self._executor
        if executor is None:
            raise RuntimeError(f"the {BACKEND_NAME!r} joblib backend is not configured")
        items = getattr(func, "items", None)
        if type(func).__name__ == "BatchedCalls" and isinstance(items, list):
            future = executor.submit(_joblib_tasks.run_batch, items)
        else:  # not a joblib batch: run it as it is
            future = executor.submit(func)
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    # joblib before 1.5 calls apply_async; the same thing.
    apply_async = submit

    def _forget(self, future: Future[Any]) -> None:
        with self._futures_lock:
            self._futures.discard(future)

    def retrieve_result_callback(self, out: Future[Any]) -> Any:
        """The batch's results, or its exception (original type, remote traceback as cause)."""
        return out.result()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """Cancels this backend's queued batches and interrupts its running ones; the shared
        pool stays up (other callers may be using it)."""
        with self._futures_lock:
            futures = list(self._futures)
        for future in futures:
            future.cancel()

    def terminate(self) -> None:
        """End of a ``Parallel`` call: the shared pool stays warm for the next one."""
        self._executor = None
        self.reset_batch_stats()

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        """Calls nested inside a batch run sequentially (workers cannot run joblib's pools)."""
        return SequentialBackend(nesting_level=(self.nesting_level or 0) + 1), None


def register_joblib_backend(name: str = BACKEND_NAME, make_default: bool = False) -> None:
    """Registers the backend with joblib as ``name`` (``"subinterpreters"``).

    Importing ``subinterpreter_parallelism`` does this when joblib is already imported; call it
    when joblib is imported later. ``make_default=True`` makes it joblib's default backend.
    Calling it again is harmless.
    """
    register_parallel_backend(name, SubinterpreterBackend, make_default=make_default)
