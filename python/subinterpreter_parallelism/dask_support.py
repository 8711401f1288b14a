"""Dask on interpreter pools: pure-Python Dask tasks run truly in parallel in one process.

Local Dask: pass a pool as the scheduler (or use :func:`get`)::

    with InterpreterPoolExecutor(4) as pool:
        dask.compute(graph, scheduler=pool)

A cluster: start each worker with this module as a preload; tasks annotated with the executor
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
refuses own-GIL sub-interpreters. So ``InterpreterPoolExecutor.submit`` hands such calls to
:func:`adapt_call`, which keeps Dask on the caller's side::

    caller's interpreter (Dask scheduler thread,            worker interpreter
    or a dask worker's event loop)                          (never imports dask)
    ────────────────────────────────────────────            ─────────────────────────
    pool.submit(dask wrapper, task, dependency values)
      adapt_call: lower the task (a dask._task_spec node)
      into an expression of plain calls, values filled in
      pool.submit(evaluate, expression) ──────────────────► evaluate: the user's functions
      _DaskFuture ◄──────────────────────────────────────── value, or exception + traceback
      Dask's wrapper result, rebuilt here (results, errors
      with the interpreter's traceback, timings)

The expression classes and :func:`evaluate` below are all that worker interpreters import
from this module; everything that needs dask, distributed or click is imported lazily.
"""

from __future__ import annotations

import time
from _thread import get_ident

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Mapping
    from concurrent.futures import Future
    from typing import Any

    from .executor import InterpreterPoolExecutor

__all__ = ["InterpreterPoolPlugin", "adapt_call", "dask_setup", "evaluate", "evaluate_timed", "get",
           "install", "lower", "uninstall"]

#: The name of the worker executor that :func:`install` and the preload register.
DEFAULT_EXECUTOR_NAME = "interpreters"


# -- the worker side: expressions of plain calls (no dask here) ----------------------------


class _Call:
    """``func(*args, **kwargs)``, where args and kwargs values are expressions or values."""

    __slots__ = ("func", "args", "kwargs")

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def __reduce__(self) -> tuple[Any, ...]:
        return _Call, (self.func, self.args, self.kwargs)


class _Ref:
    """The value of ``key`` in the enclosing :class:`_Graph`."""

    __slots__ = ("key",)

    def __init__(self, key: Hashable) -> None:
        self.key = key

    def __reduce__(self) -> tuple[Any, ...]:
        return _Ref, (self.key,)


class _Graph:
    """A fused subgraph: ``inputs`` (evaluated in the enclosing scope) and ``steps`` (in
    dependency order) bind keys in a new scope; the value is that of ``out``."""

    __slots__ = ("inputs", "steps", "out")

    def __init__(self, inputs: tuple[tuple[Hashable, Any], ...], steps: tuple[tuple[Hashable, Any], ...],
                 out: Hashable) -> None:
        self.inputs = inputs
        self.steps = steps
        self.out = out

    def __reduce__(self) -> tuple[Any, ...]:
        return _Graph, (self.inputs, self.steps, self.out)


class _Quote:
    """A value that happens to be one of these classes, to be taken as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        return _Quote, (self.value,)


_EXPRESSION_TYPES = frozenset({_Call, _Ref, _Graph, _Quote})


def _evaluate(expr: Any, scope: dict[Hashable, Any]) -> Any:
    kind = type(expr)
    if kind is _Call:
        args = [_evaluate(arg, scope) for arg in expr.args]
        if expr.kwargs:
            return expr.func(*args, **{name: _evaluate(value, scope) for name, value in expr.kwargs.items()})
        return expr.func(*args)
    if kind is _Ref:
        return scope[expr.key]
    if kind is _Graph:
        inner = {key: _evaluate(value, scope) for key, value in expr.inputs}
        for key, step in expr.steps:
            inner[key] = _evaluate(step, inner)
        return inner[expr.out]
    if kind is _Quote:
        return expr.value
    return expr


def evaluate(expr: Any) -> Any:
    """Worker side: the value of an expression made by :func:`lower` (runs the user's calls)."""
    return _evaluate(expr, {})


def evaluate_timed(expr: Any) -> tuple[float, float, int, Any]:
    """Worker side: ``(start, stop, thread id, value)`` of :func:`evaluate`, for distributed."""
    start = time.time()
    value = _evaluate(expr, {})
    return start, time.time(), get_ident(), value


def _make_list(*items: Any) -> list[Any]:
    return list(items)


def _make_tuple(*items: Any) -> tuple[Any, ...]:
    return items


def _make_set(*items: Any) -> set[Any]:
    return set(items)


def _make_dict(*flat: Any) -> dict[Any, Any]:
    return dict(zip(flat[::2], flat[1::2]))


_CONTAINER_BUILDERS: dict[type, Callable[..., Any]] = {
    list: _make_list, tuple: _make_tuple, set: _make_set, dict: _make_dict}


# -- the caller side: from Dask's task specs to expressions ----------------------------------


def lower(node: Any, values: Mapping[Hashable, Any]) -> Any:
    """Caller side: a ``dask._task_spec`` node as an expression that needs no dask to evaluate.

    ``values`` holds the values of the node's dependencies; they are filled in. Tasks keep
    their functions; containers, aliases, data nodes and fused subgraphs become plain
    calls. A node of a kind not known here travels as itself (the worker then imports dask).

    Raises:
        KeyError: a dependency is missing from ``values``.
    """
    from dask import _task_spec as spec

    def literal(value: Any) -> Any:
        return _Quote(value) if type(value) in _EXPRESSION_TYPES else value

    def ref(key: Hashable, bound: frozenset[Hashable] | None) -> Any:
        if bound is not None and key in bound:
            return _Ref(key)
        return literal(values[key])

    def convert(obj: Any, bound: frozenset[Hashable] | None) -> Any:
        if isinstance(obj, spec.TaskRef):
            return ref(obj.key, bound)
        if not isinstance(obj, spec.GraphNode):
            return literal(obj)
        if isinstance(obj, spec.Alias):
            return ref(obj.target, bound)
        if isinstance(obj, spec.DataNode):
            return literal(obj.value)
        if isinstance(obj, spec.NestedContainer) and obj.klass in _CONTAINER_BUILDERS:
            return _Call(_CONTAINER_BUILDERS[obj.klass], tuple(convert(a, bound) for a in obj.args), {})
        if isinstance(obj, spec.Task):
            if obj.func is getattr(spec, "_execute_subgraph", None):
                return subgraph(obj, bound)
            return _Call(obj.func, tuple(convert(a, bound) for a in obj.args),
                         {name: convert(value, bound) for name, value in obj.kwargs.items()})
        # Unknown kind of node: call it with its dependencies, as Dask does.
        flat: list[Any] = []
        for key in obj.dependencies:
            flat += [key, ref(key, bound)]
        return _Call(obj, (_Call(_make_dict, tuple(flat), {}),), {})

    def subgraph(task: Any, bound: frozenset[Hashable] | None) -> _Graph:
        # Task(key, _execute_subgraph, inner graph, output key, input keys, *input refs)
        inner, out, in_keys, *inputs = task.args
        scope = frozenset(inner) | frozenset(in_keys)
        return _Graph(
            tuple((key, convert(value, bound)) for key, value in zip(in_keys, inputs)),
            tuple((key, convert(inner[key], scope)) for key in _dependency_order(inner)),
            out)

    return convert(node, None)


def _dependency_order(graph: Mapping[Hashable, Any]) -> list[Hashable]:
    """The keys of a subgraph, each after the keys of the subgraph it depends on."""
    order: list[Hashable] = []
    placed: set[Hashable] = set()
    for root in graph:
        if root in placed:
            continue
        placed.add(root)
        stack = [(root, iter(graph[root].dependencies))]
        while stack:
            key, pending = stack[-1]
            for dep in pending:
                if dep in graph and dep not in placed:
                    placed.add(dep)
                    stack.append((dep, iter(graph[dep].dependencies)))
                    break
            else:
                stack.pop()
                order.append(key)
    return order


def _future_type() -> type:
    from concurrent.futures import Future, InvalidStateError

    class _DaskFuture(Future):  # type: ignore[type-arg]
        """What Dask waits on: done when Dask's own wrapper would have returned.

        ``cancel()`` also cancels the interpreter tasks behind it (interrupting running ones);
        ``release()`` does so for a task distributed no longer wants, whose outcome then
        asks the worker to forget it (``Reschedule``) rather than report an error.
        """

        released = False

        def __init__(self, parts: list[Future]) -> None:  # type: ignore[type-arg]
            super().__init__()
            self.parts = parts

        def cancel(self) -> bool:
            if not super().cancel():
                return False
            for part in self.parts:
                part.cancel()
            return True

        def release(self) -> None:
            self.released = True
            for part in self.parts:
                part.cancel()

        def settle(self, outcome: Callable[[], Any]) -> None:
            """Sets the result to ``outcome()``, or the exception it raises (if still pending)."""
            if self.done():
                return
            error: BaseException | None = None
            try:
                value = outcome()
            except _TaskFailed as failed:
                error = failed.error.with_traceback(None)  # its story is in its RemoteTraceback
            except BaseException as exc:
                error = exc
            try:
                if error is None:
                    self.set_result(value)
                else:
                    self.set_exception(error)
            except InvalidStateError:  # cancelled meanwhile
                pass

    return _DaskFuture


_dask_future_type: type | None = None


class _TaskFailed(Exception):
    """Raised by an outcome builder: Dask's wrapper fails with the task's own exception."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def _new_dask_future(parts: list[Future]) -> Any:  # type: ignore[type-arg]
    global _dask_future_type
    if _dask_future_type is None:
        _dask_future_type = _future_type()
    return _dask_future_type(parts)


def adapt_call(pool: InterpreterPoolExecutor, fn: Callable[..., Any], args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Future | None:  # type: ignore[type-arg]
    """Called by ``InterpreterPoolExecutor.submit`` for callables of ``dask.local`` and
    ``distributed.worker``: submits Dask's task wrappers without their Dask part.

    Returns the Future Dask expects from ``submit``, or None when ``fn`` is not a wrapper
    known here (the pool then submits the call as it is).

    Raises:
        KeyError: a task's dependency is missing from the values Dask passed.
        TypeError / pickle.PicklingError: a task cannot be sent to a worker interpreter.
    """
    import sys

    module = sys.modules.get(getattr(fn, "__module__", ""))
    if module is None or kwargs:
        return None
    name = getattr(fn, "__name__", None)
    if name == "batch_execute_tasks" and getattr(module, name, None) is fn and len(args) == 1:
        return _submit_local_batch(pool, args[0])
    if name == "_run_task_simple" and getattr(module, name, None) is fn and len(args) == 3:
        return _submit_distributed_task(pool, *args)
    return None


# -- local Dask ----------------------------------------------------------------------------


def _submit_local_batch(pool: InterpreterPoolExecutor, batch: list[tuple[Any, ...]]) -> Future:  # type: ignore[type-arg]
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
    future = _new_dask_future(parts)

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
                    raise _TaskFailed(error) from None
                raise
        return results

    _when_all_done(parts, lambda: future.settle(outcome))
    return future


def _when_all_done(parts: list[Future], callback: Callable[[], None]) -> None:  # type: ignore[type-arg]
    import threading

    if not parts:
        callback()
        return
    remaining = [len(parts)]
    lock = threading.Lock()

    def one_done(_: Any) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            callback()

    for part in parts:
        part.add_done_callback(one_done)


def get(dsk: Mapping[Hashable, Any], keys: Any, *, pool: InterpreterPoolExecutor | None = None,
        max_workers: int | None = None, **kwargs: Any) -> Any:
    """A Dask scheduler ``get`` that runs the graph's tasks on worker interpreters.

    Use it as ``dask.compute(x, scheduler=get)`` or ``dask.config.set(scheduler=get)``. With
    ``pool=None`` a pool of ``max_workers`` interpreters is started for the call and shut
    down after it; passing a pool reuses it (``scheduler=pool`` does the same). Other keyword
    arguments go to ``dask.local.get_async``.

    Raises:
        the first exception a task raised, with the interpreter's traceback as its cause.
    """
    from dask import local

    from .executor import InterpreterPoolExecutor

    if pool is not None:
        return local.get_async(pool.submit, pool.max_workers, dsk, keys, **kwargs)
    with InterpreterPoolExecutor(max_workers) as own:
        return local.get_async(own.submit, own.max_workers, dsk, keys, **kwargs)


# -- distributed ---------------------------------------------------------------------------

# For each pool that install() gave a worker: the tasks it runs now, by key (so that a release
# can stop them). A WeakKeyDictionary, made on first use.
_executing: Any = None


def _submit_distributed_task(pool: InterpreterPoolExecutor, task: Any, data: dict[Hashable, Any],
                             time_delay: float) -> Future:  # type: ignore[type-arg]
    """``distributed.worker._run_task_simple(task, data, time_delay)``: the task on an
    interpreter; the message a dask worker expects (see that function), built here."""
    submitted = time.time()
    part = pool.submit(evaluate_timed, lower(task, data))
    future = _new_dask_future([part])
    key = getattr(task, "key", None)
    running = _executing.get(pool) if _executing is not None else None
    if running is not None:
        running[key] = future

    def outcome() -> dict[str, Any]:
        if part.cancelled():
            from distributed.exceptions import Reschedule

            from .errors import TaskInterrupted

            error: BaseException | None = Reschedule() if future.released else TaskInterrupted(
                "the task was cancelled in its worker interpreter")
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
    from dask.sizeof import sizeof

    return {"op": "task-finished", "status": "OK", "result": value, "nbytes": sizeof(value),
            "type": type(value) if value is not None else None,
            "start": start, "stop": stop, "thread": thread}


def _task_erred(error: BaseException, start: float, stop: float) -> dict[str, Any]:
    """The message of ``distributed.worker._run_task_simple`` for a task that raised.

    The traceback sent to the client is the one inside the interpreter (rebuilt from the
    ``RemoteTraceback`` text), so ``future.result()`` shows the user's frames.
    """
    if isinstance(error, (SystemExit, KeyboardInterrupt)):
        raise error  # as distributed does: these end the worker
    from distributed.core import error_message

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
    from .errors import RemoteTraceback

    cause = error.__cause__
    if not isinstance(cause, RemoteTraceback):
        return None
    text = cause.traceback
    header = "Traceback (most recent call last):"
    if header not in text:
        return None
    try:
        from tblib import Traceback

        return Traceback.from_string(text[text.rindex(header):]).as_traceback()
    except Exception:
        return None


def install(worker: Any, max_workers: int | None = None, *, name: str = DEFAULT_EXECUTOR_NAME,
            default: bool = False) -> InterpreterPoolExecutor:
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
    global _executing
    import weakref

    import distributed.worker

    from .executor import InterpreterPoolExecutor

    if not hasattr(distributed.worker, "_run_task_simple"):
        raise RuntimeError(f"{__name__} needs distributed >= 2025.1, not {distributed.__version__}")

    if name in worker.executors and name != "default":
        raise ValueError(f"the worker already has an executor named {name!r}")
    _stop_frame_sampling(worker)
    pool = InterpreterPoolExecutor(max_workers or worker.state.nthreads)
    if _executing is None:
        _executing = weakref.WeakKeyDictionary()
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
    import dask
    from distributed import profile

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
    from .executor import InterpreterPoolExecutor

    pool = worker.executors.pop(name, None)
    if not isinstance(pool, InterpreterPoolExecutor):
        if pool is not None:
            worker.executors[name] = pool
        return
    if worker.executors.get("default") is pool:
        from distributed.threadpoolexecutor import ThreadPoolExecutor

        worker.executors["default"] = ThreadPoolExecutor(worker.state.nthreads)
    if _executing is not None:
        _executing.pop(pool, None)
    pool.shutdown(wait=False, cancel_futures=True)
    pool._interrupt_everything()


def _on_transition(pool: InterpreterPoolExecutor, key: Hashable, start: str, finish: str) -> None:
    """A task distributed no longer wants while it runs (executing -> released): stop it."""
    if finish == "released" and start in ("executing", "long-running"):
        future = _executing.get(pool, {}).get(key) if _executing is not None else None
        if future is not None:
            future.release()


def _plugin_class() -> type:
    from distributed import WorkerPlugin

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

        def __init__(self, max_workers: int | None = None, *, name: str = DEFAULT_EXECUTOR_NAME,
                     default: bool = False) -> None:
            self.max_workers = max_workers
            self.executor_name = name
            self.default = default
            self.name = f"subinterpreter-parallelism-{name}"
            self.pool: InterpreterPoolExecutor | None = None

        def setup(self, worker: Any) -> None:
            self.pool = install(worker, self.max_workers, name=self.executor_name, default=self.default)

        def teardown(self, worker: Any) -> None:
            from distributed.worker import WORKER_ANY_RUNNING

            if worker.status not in WORKER_ANY_RUNNING:
                return  # the worker is closing: it shuts its executors down itself
            uninstall(worker, self.executor_name)

        def transition(self, key: Hashable, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
            if self.pool is not None:
                _on_transition(self.pool, key, start, finish)

        def __getstate__(self) -> dict[str, Any]:
            return {**self.__dict__, "pool": None}

    InterpreterPoolPlugin.__module__ = __name__
    return InterpreterPoolPlugin


#: The dask config section read by the preload (also from environment variables, e.g.
#: ``DASK_SUBINTERPRETER_PARALLELISM__AS_DEFAULT=True``); options after the preload win.
CONFIG_SECTION = "subinterpreter-parallelism"


def _dask_setup_command() -> Any:
    import click

    @click.command()
    @click.option("--interpreters", type=int, default=None,
                  help="Interpreters in the worker's pool (default: the worker's --nthreads).")
    @click.option("--executor-name", default=None,
                  help=f"Executor name that tasks are annotated with (default: {DEFAULT_EXECUTOR_NAME}).")
    @click.option("--as-default", is_flag=True,
                  help="Run tasks without an executor annotation on the interpreters too.")
    async def dask_setup(worker: Any, interpreters: int | None, executor_name: str | None,
                         as_default: bool) -> None:
        """Preload entry point: ``dask worker ... --preload subinterpreter_parallelism.dask_support``.

        Each option may also come from the dask config section ``subinterpreter-parallelism``
        (keys ``interpreters``, ``executor-name``, ``as-default``), e.g. set through
        environment variables: ``dask worker --scheduler-file F`` takes the first word after
        it for the scheduler's address, so options after the preload need an address before.
        """
        import dask

        if not hasattr(worker, "executors"):
            raise TypeError(f"{__name__} is a preload for dask workers, not for {type(worker).__name__}")

        def setting(key: str, given: Any, default: Any) -> Any:
            if given:
                return given
            return dask.config.get(f"{CONFIG_SECTION}.{key}", default)

        interpreters = setting("interpreters", interpreters, None)
        plugin = __getattr__("InterpreterPoolPlugin")(
            int(interpreters) if interpreters else None,
            name=setting("executor-name", executor_name, DEFAULT_EXECUTOR_NAME),
            default=_truthy(setting("as-default", as_default, False)))
        await worker.plugin_add(plugin, name=plugin.name, catch_errors=False)

    return dask_setup


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


# Built on first use: worker interpreters import this module without dask, distributed or click.
_LAZY: dict[str, Callable[[], Any]] = {
    "InterpreterPoolPlugin": _plugin_class,
    "dask_setup": _dask_setup_command,
}


def __getattr__(name: str) -> Any:
    factory = _LAZY.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = factory()
    globals()[name] = value
    return value
