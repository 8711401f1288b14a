"""A dask cluster: an interpreter pool as an executor of each ``distributed.Worker``.

:func:`install` (which the preload and :class:`InterpreterPoolPlugin` call) gives a worker the
pool as its executor ``"interpreters"``. distributed then hands the pool
``_run_task_simple(task, data, time_delay)``; :func:`submit_task` runs the task on an
interpreter and builds, here, the message that wrapper would have returned. A task that
distributed releases while it runs is interrupted.
"""

from __future__ import annotations

import time
import weakref
from _thread import get_ident
from collections.abc import Hashable
from concurrent.futures import Future
from typing import Any

import dask
import distributed.worker
from dask.sizeof import sizeof
from distributed import WorkerPlugin, profile
from distributed.core import error_message
from distributed.exceptions import Reschedule
from distributed.threadpoolexecutor import ThreadPoolExecutor
from distributed.worker import WORKER_ANY_RUNNING
from tblib import Traceback

from ..errors import RemoteTraceback, TaskInterrupted
from ..executor import InterpreterPoolExecutor
from .expressions import evaluate_timed, lower
from .futures import DaskFuture

__all__ = ["DEFAULT_EXECUTOR_NAME", "InterpreterPoolPlugin", "install", "submit_task", "uninstall"]

#: The name of the worker executor that :func:`install` and the preload register.
DEFAULT_EXECUTOR_NAME = "interpreters"

# The module whose name the plugin class bears: its public home, where pickle finds it.
_PUBLIC_MODULE = __name__.rsplit(".", 1)[0]

# For each pool that install() gave a worker: the tasks it runs now, by key (so that a release
# can stop them).
_executing: weakref.WeakKeyDictionary[InterpreterPoolExecutor, dict[Hashable, DaskFuture]] = (
    weakref.WeakKeyDictionary()
)


def submit_task(
    pool: InterpreterPoolExecutor, task: Any, data: dict[Hashable, Any], time_delay: float
) -> Future:  # type: ignore[type-arg]
    """``distributed.worker._run_task_simple(task, data, time_delay)``: the task on an
    interpreter; the message a dask worker expects (see that function), built here."""
    submitted = time.time()
    part = pool.submit(evaluate_timed, lower(task, data))
    future = DaskFuture([part])
    key = getattr(task, "key", None)
    running = _executing.get(pool)
    if running is not None:
        running[key] = future

    def outcome() -> dict[str, Any]:
        if part.cancelled():
            error: BaseException | None = (
                Reschedule()
                if future.released
                else TaskInterrupted("the task was cancelled in its worker interpreter")
            )
        else:
            error = part.exception()
        if error is None:
            start, stop, thread, value = part.result()
            return _task_finished(value, start + time_delay, stop + time_delay, thread)
        return _task_erred(error, submitted + time_delay, time.time() + time_delay)

    def finished(_: Any) -> None:
        if running is not None and running.get(key) is future:
            del running[key]
        future.settle(outcome)

    part.add_done_callback(finished)
    return future


def _task_finished(value: Any, start: float, stop: float, thread: int) -> dict[str, Any]:
    """The message of ``distributed.worker._run_task_simple`` for a task that returned."""
    return {
        "op": "task-finished",
        "status": "OK",
        "result": value,
        "nbytes": sizeof(value),
        "type": type(value) if value is not None else None,
        "start": start,
        "stop": stop,
        "thread": thread,
    }


def _task_erred(error: BaseException, start: float, stop: float) -> dict[str, Any]:
    """The message of ``distributed.worker._run_task_simple`` for a task that raised.

    The traceback sent to the client is the one inside the interpreter (rebuilt from the
    ``RemoteTraceback`` text), so ``future.result()`` shows the user's frames.
    """
    if isinstance(error, (SystemExit, KeyboardInterrupt)):
        raise error  # as distributed does: these end the worker
    remote = _traceback_from_cause(error)
    try:
        raise error
    except BaseException as exc:
        # distributed reads the traceback of the exception being handled (sys.exc_info()).
        exc.__traceback__ = remote
        message: dict[str, Any] = dict(error_message(exc))
    message.update(op="task-erred", actual_exception=error, start=start, stop=stop, thread=get_ident())
    return message


def _traceback_from_cause(error: BaseException) -> Any:
    """A traceback object made from the text of the error's ``RemoteTraceback``, or None."""
    cause = error.__cause__
    if not isinstance(cause, RemoteTraceback):
        return None
    text = cause.traceback
    header = "Traceback (most recent call last):"
    if header not in text:
        return None
    try:
        return Traceback.from_string(text[text.rindex(header) :]).as_traceback()
    except Exception:
        return None


def install(
    worker: Any, max_workers: int | None = None, *, name: str = DEFAULT_EXECUTOR_NAME, default: bool = False
) -> InterpreterPoolExecutor:
    """Gives a ``distributed.Worker`` an interpreter pool as its executor ``name``.

    Tasks annotated ``dask.annotate(executor=name)`` then run in the pool's interpreters;
    with ``default=True`` un-annotated tasks do too. A worker runs at most its ``nthreads``
    tasks at once, so ``max_workers`` defaults to that. When distributed releases a task
    that is running (cancelled by the client, or no longer needed), the task is interrupted.
    The worker shuts the pool down when it closes. Prefer the preload or
    :class:`InterpreterPoolPlugin`, which call this.

    Raises:
        ValueError: an executor called ``name`` exists already (other than "default").
        RuntimeError: distributed is older than 2025.1 (it hands executors other wrappers).
    """
    if not hasattr(distributed.worker, "_run_task_simple"):
        raise RuntimeError(f"{_PUBLIC_MODULE} needs distributed >= 2025.1, not {distributed.__version__}")

    if name in worker.executors and name != "default":
        raise ValueError(f"the worker already has an executor named {name!r}")
    _stop_frame_sampling(worker)
    pool = InterpreterPoolExecutor(max_workers or worker.state.nthreads)
    _executing[pool] = {}
    worker.executors[name] = pool
    if default and name != "default":
        _replace_default(worker, pool)
    return pool


def _stop_frame_sampling(worker: Any) -> None:
    """Turns off distributed's profiler in this process, before any interpreter runs here.

    ``sys._current_frames()``, which the profiler calls periodically, walks the threads of
    every interpreter in the process and makes frame objects for them with the calling
    interpreter's allocator, while they run under their own GIL (a CPython bug): the process
    aborts ("free(): invalid pointer") once such a frame is freed. The
    per-task profiler is a periodic callback of the worker: removed. The event loop's sampling
    thread started with the worker: it takes ``distributed.profile.lock`` around each call, so
    holding that lock for the life of the process parks it for good. Later workers of this
    process start without either (config ``distributed.worker.profile.enabled``).
    """
    global _profile_lock_held
    dask.config.set({"distributed.worker.profile.enabled": False})
    for name in ("profile", "profile-cycle"):
        callback = worker.periodic_callbacks.pop(name, None)
        if callback is not None:
            callback.stop()
    if not _profile_lock_held:
        profile.lock.acquire()
        _profile_lock_held = True


_profile_lock_held = False


def _replace_default(worker: Any, pool: InterpreterPoolExecutor) -> None:
    previous = worker.executors.get("default")
    worker.executors["default"] = pool
    if previous is not None and all(previous is not e for e in worker.executors.values()):
        previous.shutdown(wait=False)  # distributed's thread pool: no thread has started yet


def uninstall(worker: Any, name: str = DEFAULT_EXECUTOR_NAME) -> None:
    """Removes the executor that :func:`install` gave ``worker`` and shuts its pool down.

    Tasks running on it are interrupted; a "default" executor it replaced comes back as a
    thread pool.
    """
    pool = worker.executors.pop(name, None)
    if not isinstance(pool, InterpreterPoolExecutor):
        if pool is not None:
            worker.executors[name] = pool
        return
    if worker.executors.get("default") is pool:
        worker.executors["default"] = ThreadPoolExecutor(worker.state.nthreads)
    _executing.pop(pool, None)
    pool.shutdown(wait=False, cancel_futures=True, interrupt=True)


def _on_transition(pool: InterpreterPoolExecutor, key: Hashable, start: str, finish: str) -> None:
    """A task distributed no longer wants while it runs (executing -> released): stop it."""
    if finish == "released" and start in ("executing", "long-running"):
        future = _executing.get(pool, {}).get(key)
        if future is not None:
            future.release()


class InterpreterPoolPlugin(WorkerPlugin):
    """A worker plugin that gives every worker an interpreter pool (see :func:`install`).

    ``client.register_plugin(InterpreterPoolPlugin())`` installs it on the workers of a
    running cluster (and on workers that join later). It also interrupts a running task
    that distributed releases.

    Args:
        max_workers: interpreters per worker; default: the worker's ``nthreads``.
        name: the executor name to annotate tasks with.
        default: also run un-annotated tasks on the interpreters.
    """

    def __init__(
        self, max_workers: int | None = None, *, name: str = DEFAULT_EXECUTOR_NAME, default: bool = False
    ) -> None:
        self.max_workers = max_workers
        self.executor_name = name
        self.default = default
        self.name = f"subinterpreter-parallelism-{name}"
        self.pool: InterpreterPoolExecutor | None = None

    def setup(self, worker: Any) -> None:
        self.pool = install(worker, self.max_workers, name=self.executor_name, default=self.default)

    def teardown(self, worker: Any) -> None:
        if worker.status not in WORKER_ANY_RUNNING:
            return  # the worker is closing: it shuts its executors down itself
        uninstall(worker, self.executor_name)

    def transition(self, key: Hashable, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if self.pool is not None:
            _on_transition(self.pool, key, start, finish)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "pool": None}


InterpreterPoolPlugin.__module__ = _PUBLIC_MODULE
