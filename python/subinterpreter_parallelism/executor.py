"""InterpreterPoolExecutor: a ``concurrent.futures`` executor on persistent own-GIL interpreters.

The Swift core runs the workers (see the picture in Sources/NativeExtension/PoolCore.swift);
this module adds what users touch: futures, ``map``, ``asyncio``, shutdown. Its rooms:
``_startup`` (what workers run before their first task; the native pool and its completion
thread), ``_task_future`` (the future ``submit`` returns), ``_completion`` (the threads that
settle futures and run their callbacks), ``_map`` (``map``'s machinery) and ``_exit`` (exit,
Ctrl-C, fork, idle pools stepping aside).
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from . import _adapters, _exit, _map, _native, _startup
from ._native import TaskInterrupted
from ._task_future import TaskFuture
from ._validate import check_count, check_time_limit, check_timeout
from ._versions import default_worker_count
from .errors import BrokenInterpreterPool
from .fallback import ProcessFallback, check_fallback
from .progress import check_progress

if TYPE_CHECKING:
    from ._completion import PoolState
    from .preload import AutoWarm

__all__ = ["InterpreterPoolExecutor", "default_worker_count"]

P = ParamSpec("P")
T = TypeVar("T")

# Modules of frameworks' own task wrappers, which an integration takes over before they are
# sent (see _adapters.py): one look-up per submit.
_ADAPTED_MODULES = _adapters.ADAPTERS


class InterpreterPoolExecutor(Executor):
    """An executor whose workers are native threads, each owning an own-GIL sub-interpreter.

    A drop-in for ``concurrent.futures`` executors (and for Python 3.14's stdlib class of the
    same name, with the same first four parameters, in the same order): ``submit``, ``map``
    (with ``buffersize``), ``shutdown``, context manager, ``as_completed``/``wait``,
    ``loop.run_in_executor``, plus ``await pool.run(...)`` and ``pool.stats()``. The other
    parameters are keyword-only.

    Args:
        max_workers: number of worker interpreters; default: the CPUs this process may use.
        thread_name_prefix: names the worker threads ``f"{thread_name_prefix}_{i}"`` as the
            stdlib executors do (default: ``sp-worker-{i}``), the completion thread
            ``f"{thread_name_prefix}_completion"`` and the thread that runs done-callbacks
            ``f"{thread_name_prefix}_callbacks"``. The workers are native threads, absent
            from ``threading.enumerate()``: the name is their OS thread name (``top -H``,
            ``ps -L``, gdb, ``/proc/self/task/*/comm``), which Linux cuts to 15 bytes, so a
            long prefix is shortened to keep the ``_{i}``. None means "".
        initializer: called as ``initializer(*initargs)`` once in each worker interpreter.
            If it raises, the pool is broken: pending and later tasks fail with
            ``BrokenInterpreterPool``. Functions of ``__main__`` (a script, ``-c``, a REPL),
            initializer and tasks alike, share their worker's ``__main__`` namespace: what
            the initializer sets with ``global`` the tasks see. A global they refer to is
            copied from the caller when the worker lacks it (functions and classes of
            ``__main__``: each time they were redefined, so redefinitions arrive; each is
            pickled once and unpickled once per worker); pass changing values as arguments.
        initargs: arguments for ``initializer``.
        task_timeout: seconds a task may run (from submission); then it is interrupted and its
            future fails with ``TimeoutError``. None or infinity: no limit.
        fallback: ``"process"``: a task that fails because a module refuses to load in an
            own-GIL interpreter (numpy, ...) runs again, from its start, in a process pool
            (created on first need, shut down with this pool), with one
            ``ProcessFallbackWarning`` per module. None: such a task fails with the
            ``ImportError``, with a note naming the module.
        preload: module names (or one name) that every worker imports at start; the
            constructor returns once all workers have imported them, so first tasks do not
            pay for the imports. A module that fails to import is reported here. ``"auto"``
            (alone, or as an entry beside names: ``preload=["json", "auto"]``) also warms the
            module of each submitted function (``fn.__module__``; a bound method's, a
            ``functools.partial``'s function's; not ``__main__``'s) in every worker, the first
            time a function of it is submitted: idle workers import it while the first tasks
            run, one module at a time, taking any waiting task first. A warm import that fails
            is logged once as a warning and shown in ``stats()["warm_failures"]``; the tasks
            that need the module raise the error themselves. ``stats()`` shows what each worker
            warmed. On Python 3.12 a module is warmed only once a task of it has succeeded
            (there a module refused in one interpreter crashes the process when a second one
            tries it). (A module named ``auto`` cannot be preloaded by name: import it in an
            ``initializer``.)
        forward_logging: records logged in tasks go to this interpreter's loggers of the same
            names (``record.sp_worker`` is the worker's index, ``threadName`` is
            ``sp-worker-N``). Workers skip records below the levels configured when the pool
            is created; an int (a level) makes them forward everything from that level up.
            False: tasks' records are dropped, as in a bare interpreter.
        forward_warnings: warnings raised in tasks are issued again here, with the task's
            file and line, through this interpreter's filters at that time. Filters that
            turn warnings into errors when the pool is created (``-W error``) raise inside the
            task instead, which then fails with that exception.
        output: ``"forward"``: what tasks print or write to ``sys.stdout``/``sys.stderr``
            goes, in whole lines, to this interpreter's current ``sys.stdout``/``sys.stderr``
            (before the task's result). ``"fd"``: straight to file descriptors 1 and 2,
            line-buffered.
        max_tasks_per_worker: after this many tasks (a ``map`` chunk counts as one), a worker
            ends its interpreter and starts a fresh one, bootstrapped again (``initializer``,
            ``preload``), before it takes the next task, like ``ProcessPoolExecutor``'s
            ``max_tasks_per_child``: module state, leaks and caches of a task start from zero.
            None: an interpreter serves its worker for the pool's whole life.

    Raises:
        TypeError: ``max_workers`` or ``max_tasks_per_worker`` is not an int,
            ``task_timeout`` is not a number of seconds, ``thread_name_prefix`` is not a str,
            or ``initializer`` is not callable.
        ValueError: ``max_workers`` or ``max_tasks_per_worker`` < 1 (or ``max_workers`` over
            the core's limit, 4096), ``task_timeout`` <= 0 or NaN, or ``fallback`` is not None
            or ``"process"``.
        ValueError: ``output`` is not ``"forward"`` or ``"fd"``.
        ImportError (or what the import raised): a ``preload`` module cannot be imported in
            the worker interpreters; a module that refuses own-GIL interpreters gives the
            message of ``python -m subinterpreter_parallelism check``.
        TimeoutError: the workers did not finish the ``preload`` imports within
            ``preload.PRELOAD_TIMEOUT`` seconds.
        RuntimeError: the interpreter is exiting (called from an ``atexit`` function).
    """

    # Set by _startup.start, and again when a pool that stepped aside comes back.
    _state: PoolState
    _completion: threading.Thread
    _sys_path: list[str]

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str | None = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        task_timeout: float | None = None,
        fallback: str | None = None,
        preload: str | Iterable[str] = (),
        forward_logging: bool | int = True,
        forward_warnings: bool = True,
        output: str = "forward",
        max_tasks_per_worker: int | None = None,
    ) -> None:
        if _exit.exiting():
            raise RuntimeError("cannot start an interpreter pool after interpreter shutdown")
        # Before anything is sized by it.
        max_workers = check_count(max_workers, "max_workers", _native.MAX_WORKERS)
        if max_workers is None:
            max_workers = default_worker_count()
        if thread_name_prefix is None:
            thread_name_prefix = ""
        elif not isinstance(thread_name_prefix, str):
            raise TypeError(f"thread_name_prefix must be a str, not {type(thread_name_prefix).__name__}")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        check_count(max_tasks_per_worker, "max_tasks_per_worker")
        task_timeout = check_time_limit(task_timeout, "task_timeout")  # inf: None (no limit)
        if fallback is not None:
            check_fallback(fallback)
        self._max_workers = max_workers
        self._thread_name_prefix = thread_name_prefix
        # What _startup.start needs, now and whenever the pool comes back after stepping aside.
        self._plan = _startup.StartPlan(
            id(self),
            max_workers,
            thread_name_prefix,
            initializer,
            initargs,
            task_timeout=task_timeout,
            preload=preload,
            forward_logging=forward_logging,
            forward_warnings=forward_warnings,
            output=output,
            max_tasks_per_worker=max_tasks_per_worker,
        )
        # preload="auto": submit() asks it about each function's module (None: off).
        self._warm: AutoWarm | None = None
        self._ids = itertools.count()
        # Stepping aside (before a fork, or idle): see _exit.step_aside and _startup.come_back.
        self._lifecycle_lock = threading.Lock()
        self._stepped_aside = False
        self._idle_watch: _exit.IdleWatch | None = None
        process_pool = ProcessFallback(max_workers, automatic=True) if fallback is not None else None
        preload_watch = self._plan.preload_watch
        error = None
        try:
            _startup.start(self, self._plan, process_pool)
            if preload_watch is not None:
                error = preload_watch.wait(lambda: self._state.broken)
        except BaseException:
            # All or nothing, whatever ended the constructor (Ctrl-C too): the pool stops here,
            # as after Ctrl-C in `with pool:`, and exit sees it until its workers have ended.
            if hasattr(self, "_state"):  # else _startup.start has ended what it made
                _exit.keep_until_ended(self)
                _exit.stop_after_ctrl_c(self)
            raise
        if error is not None:
            self.shutdown(wait=not isinstance(error, TimeoutError))
            raise error

    # -- submitting ----------------------------------------------------------------

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedules ``fn(*args, **kwargs)`` in a worker interpreter; returns its Future.

        ``fn`` may be a module-level function, a function or class from ``__main__`` (a script,
        ``python -c`` or a REPL), a lambda, a closure, a ``functools.partial`` or a bound method
        of a picklable object.

        Raises:
            RuntimeError: after ``shutdown()``.
            BrokenInterpreterPool: a worker failed to start.
            TypeError / pickle.PicklingError: the call cannot be pickled; a note names the
                part that cannot.
        """
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        module = getattr(fn, "__module__", None)
        if module in _ADAPTED_MODULES:
            # A framework's own task wrapper: its integration sends the user's call instead.
            adapted = _adapters.adapt(self, fn, args, kwargs)
            if adapted is not None:
                return adapted
        state = self._state
        if sys.path != self._sys_path:  # one comparison of the same str objects when unchanged
            self._follow_sys_path(state)
        task_id = next(self._ids)
        future: TaskFuture = TaskFuture()  # annotated: LightFuture's borrowed __init__ hides the type
        future._sp_pool = state
        future._sp_task_id = task_id
        state.futures[task_id] = future
        if state.fallback is not None and state.fallback.covers():
            future._sp_call = state.fallback.remember(fn, args, kwargs)
        try:
            state.native.submit(task_id, fn, args, kwargs)
        except BaseException:
            state.futures.pop(task_id, None)
            if self._stepped_aside and _startup.come_back(self):
                return self.submit(fn, *args, **kwargs)  # in the new interpreters
            reason = state.broken  # Swift refuses tasks of a broken pool too
            if reason is not None:
                raise BrokenInterpreterPool(reason) from None
            raise
        warm = self._warm
        if warm is not None and module not in warm.seen:
            # preload="auto", the first function of its module: after the task is queued, so
            # that a woken worker takes the task and the others warm the module.
            warm.note(fn, module, future)
        return future

    def _follow_sys_path(self, state: PoolState) -> None:
        """The caller's ``sys.path`` changed since the last submit: the workers follow it before
        their next task (and interpreters started later begin with it)."""
        path = list(sys.path)
        state.native.set_sys_path([str(p) for p in path])
        self._sys_path = path

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        progress: bool | Callable[[int, int], object] | None = None,
        ordered: bool = True,
    ) -> Iterator[T]:
        """Like ``concurrent.futures.Executor.map``, with automatic batching.

        Results come in input order; with ``ordered=False``, as they finish instead (a chunk's
        results together, in input order within the chunk), so that a slow item does not hold
        back the results behind it; ``timeout``, ``buffersize``, cancelling and closing work the
        same. When an item fails, every result before it is yielded, then its exception is
        raised, whatever the failure (also a ``BaseException``, an exception or a result that
        cannot be pickled, inside a chunk).

        Without ``buffersize``, the whole input is read and submitted before ``map`` returns,
        and ``chunksize=None`` sends items in chunks (about 16 per worker, at most 4096 items),
        so that many tiny items cost little each; ``chunksize=1`` sends each item alone.

        ``buffersize=N`` (as in Python 3.14) reads the input lazily: at most N tasks (chunks,
        with ``chunksize`` > 1) are submitted and not yet yielded at any time, and the next
        one is submitted once a result has been yielded, so endless or huge inputs work in
        bounded memory. ``chunksize`` then defaults to 1: ``buffersize`` counts items, as in
        the stdlib; pass a ``chunksize`` to amortise the per-task cost (about 10 us).

        When ``timeout`` (seconds, from this call; None or infinity: no limit) expires, the
        tasks still running are interrupted and ``TimeoutError`` is raised. Closing the
        iterator early (or Ctrl-C) cancels what is left. ``progress=True`` shows a progress
        bar (tqdm when installed, else a plain one on stderr); ``progress=callable`` is called
        as ``callable(done, total)`` from the completion thread (see
        ``subinterpreter_parallelism.progress``).

        Raises:
            TypeError: ``chunksize`` or ``buffersize`` is not an int (or None), or ``timeout``
                is not a number (or None).
            ValueError: ``chunksize`` or ``buffersize`` < 1, ``timeout`` NaN or negative, or
                ``progress`` together with ``buffersize`` (the total is not known up front).
            RuntimeError: after ``shutdown()`` (also while iterating with ``buffersize``).
        """
        timeout = check_timeout(timeout)
        check_progress(progress)
        check_count(chunksize, "chunksize")
        check_count(buffersize, "buffersize")
        if buffersize is not None and progress is not None and progress is not False:
            raise ValueError(
                "progress needs the number of items up front, which map() does not "
                "read with buffersize: pass one or the other"
            )
        return _map.map_tasks(
            self,
            fn,
            iterables,
            timeout=timeout,
            chunksize=chunksize,
            buffersize=buffersize,
            progress=progress,
            ordered=ordered,
            falls_back=self._falls_back(),
            note_module=self._note_module,
        )

    def _note_module(self, fn: Any, future: Future[Any]) -> None:
        """preload="auto": warms ``fn``'s module, for a task (``future``'s) that sends it
        inside another call."""
        warm = self._warm
        if warm is not None:
            module = getattr(fn, "__module__", None)
            if module not in warm.seen:
                warm.note(fn, module, future)

    def _falls_back(self) -> bool:
        """Whether tasks submitted now from this thread may fall back to a process."""
        fallback = self._state.fallback
        return fallback is not None and fallback.covers()

    def process_fallback(self) -> contextlib.AbstractContextManager[None]:
        """Context manager: tasks submitted inside it, from this thread, fall back to a process
        pool when a module refuses own-GIL interpreters, as with ``fallback="process"`` (which
        covers every task of the pool). ``parallel(fallback="process")`` uses it.

        The process pool is created on the first refusal and shut down with this pool.
        """
        state = self._state
        with state.lock:
            if state.fallback is None:
                state.fallback = ProcessFallback(self._max_workers, automatic=False)
            fallback: ProcessFallback = state.fallback
        return fallback.covering()

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``await pool.run(fn, *args, **kwargs)``: submit and await the result in asyncio.

        Cancelling the awaiting asyncio task also interrupts the running call.
        """
        import asyncio

        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    # -- lifecycle -----------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, interrupt: bool = False) -> None:
        """Stops accepting tasks; with ``wait``, returns once every worker interpreter has ended.

        ``cancel_futures=True`` cancels the tasks that have not started, and interrupts the
        ``initializer`` where it still runs (no task is left for it to prepare).
        ``interrupt=True`` does that and also interrupts the running tasks, as Ctrl-C does.
        A warm import of ``preload="auto"`` is interrupted in any case: no task needs it.
        With ``wait``, the done-callbacks of the tasks have run too when it returns. Ctrl-C
        while waiting interrupts the running tasks and initializers too. Calling it again is
        harmless.
        """
        with self._lifecycle_lock:
            self._stepped_aside = False  # a pool that stepped aside stays down now
        state = self._state
        state.native.close()  # refuses new tasks from here on (Swift owns the pool's state)
        state.native.interrupt_warm_imports()
        if interrupt:
            _exit.interrupt_everything(self)
        elif cancel_futures:
            for future in list(state.futures.values()):
                future._sp_cancel(interrupt=False)
        if cancel_futures or interrupt:
            state.native.interrupt_initializers()
        watch = self._idle_watch
        if watch is not None:
            watch.stop()
        if wait and threading.current_thread() is not self._completion:
            _exit.wait_for_shutdown(self, state, watch)
        if state.fallback is not None:
            state.fallback.shutdown(wait=wait, cancel_futures=cancel_futures or interrupt)

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> Literal[False]:
        """Shuts the pool down and waits for its tasks, as ``shutdown()`` does. When Ctrl-C
        ends the block (KeyboardInterrupt, or in a task its interruption: TaskInterrupted),
        the tasks are interrupted first, and only what can still end is waited for (a second
        Ctrl-C stops waiting)."""
        if exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, TaskInterrupted)):
            _exit.stop_after_ctrl_c(self)
        else:
            self.shutdown(wait=True)
        return False

    def stats(self) -> dict[str, Any]:
        """Counters and per-step times measured by the Swift core.

        Keys: ``workers``, ``alive_workers``, ``tasks_submitted``, ``tasks_completed``,
        ``tasks_failed``, ``tasks_cancelled``, ``tasks_interrupted``, ``tasks_queued``,
        ``timeout_entries`` (``task_timeout`` deadlines held, for tasks not finished and some
        finished ones not yet dropped), ``lent_buffers`` (``memoryview`` arguments whose buffer
        is still lent to a worker) and ``steps``: for each of ``interpreter_startup``, ``encode_call``, ``queue_wait``,
        ``decode_call``, ``call``, ``encode_result``, ``result_wait``, ``deliver`` and
        ``interpreter_shutdown``, ``{"total_s": float, "count": int}``; ``worker_startup``: for
        each worker, its latest interpreter's start-up, ``{"start_s", "create_s", "bootstrap_s",
        "ready_s"}`` (seconds: when its creation began and when it was ready, counted from the
        pool's creation, and the two steps between), or None while it is not up yet. The first
        worker starts alone; the others begin once it is ready, while the first tasks run.
        With ``preload="auto"``: ``warm_modules``, the modules seen so far (in order);
        ``warmed_modules``, for each worker, those its current interpreter has imported ahead
        of tasks (or found imported by one); ``warm_failures``, module -> the text of its
        first failed warm import. Without it, these are empty.
        """
        stats: dict[str, Any] = self._state.native.stats()
        return stats

    @property
    def max_workers(self) -> int:
        """Number of worker interpreters."""
        return self._max_workers

    @property
    def status(self) -> Literal["running", "shut down", "broken"]:
        """``"running"`` (it takes tasks), ``"shut down"`` (``shutdown()`` was called) or
        ``"broken"`` (a worker interpreter failed to start). A pool that stepped aside (before
        a fork, or idle) is running: its next task starts its interpreters again."""
        if self._stepped_aside:
            return "running"
        state: Literal["running", "shutting down", "shut down", "broken"] = self._state.native.state()
        return "shut down" if state == "shutting down" else state

    def __repr__(self) -> str:
        return f"<InterpreterPoolExecutor max_workers={self._max_workers} {self.status}>"
