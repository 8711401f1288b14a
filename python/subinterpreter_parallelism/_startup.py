"""How a pool starts: what its workers run before their first task, and the native pool with its
completion thread.

The constructor checks its arguments, then makes a ``StartPlan`` once: the bootstrap each
worker runs (forwarding's set-up, the preload imports, the initializer), the names of the
threads, the handlers of the workers' messages. ``start`` makes from it the native pool, its
``PoolState`` and its completion thread, all or nothing: in the constructor, and again whenever
a pool that stepped aside (``_exit.step_aside``) comes back for its next task.

This module is one of the executor's rooms: ``start`` sets the pool's private parts
(``_state``, ``_completion``, ``_warm``, ``_sys_path``) and reads its ``_plan``
and its stepping-aside flag.
"""

from __future__ import annotations

import _pickle
import importlib
import io
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import _exit, _native, _versions, _wire, forwarding
from . import preload as preloading
from ._completion import PoolState

if TYPE_CHECKING:
    from .fallback import ProcessFallback

__all__ = ["StartPlan", "come_back", "start"]

# Linux keeps this many bytes of a thread's name (/proc/self/task/*/comm; 16 with the NUL).
_OS_THREAD_NAME_BYTES = 15


class StartPlan:
    """What starting a pool's workers takes, checked and encoded once by the constructor.

    Making it checks ``preload`` and the forwarding options, and pickles the initializer and
    its arguments (a note says so when they cannot be pickled).
    """

    def __init__(
        self,
        pool_id: int,
        max_workers: int,
        thread_name_prefix: str,
        initializer: Callable[..., object] | None,
        initargs: Iterable[Any],
        *,
        task_timeout: float | None,
        preload: str | Iterable[str],
        forward_logging: bool | int,
        forward_warnings: bool,
        output: str,
        max_tasks_per_worker: int | None,
    ) -> None:
        self.max_workers = max_workers
        self.task_timeout = task_timeout
        self.preload_modules, self.auto_warm = preloading.check_preload(preload)
        watch = preloading.PreloadWatch(max_workers, self.preload_modules)
        # What each worker's bootstrap runs before the initializer (see _worker.bootstrap).
        steps: list[tuple[Callable[[Any], object], Any]] = [
            (forwarding.install, forwarding.worker_options(forward_logging, forward_warnings, output))
        ]
        if watch.modules:
            steps.append((preloading.import_modules, watch.worker_config()))
        config = _wire.Bootstrap(steps, initializer, tuple(initargs))
        try:
            bootstrap = config.encode()
        except Exception as exc:
            exc.add_note("the initializer and initargs must be picklable to reach the worker interpreters")
            raise
        _import_in_caller_first()
        # The arguments of _native.Pool after the worker count and sys.path.
        self.native_arguments = (
            bootstrap,
            _wire.encode_call,
            _worker_thread_names(thread_name_prefix, max_workers),
            max_tasks_per_worker or 0,
            task_timeout,
        )
        # The initializer and its arguments, kept for the workers that start later (see
        # PoolState.initargs).
        self.initargs: tuple[Any, ...] = (config.initializer, *config.initargs)
        self.handlers = forwarding.CallerSide().handlers()
        # Told, while the constructor waits, how to mark the pool broken (see PreloadWatch).
        self.preload_watch: preloading.PreloadWatch | None = watch if watch.modules else None
        if self.preload_watch is not None:
            self.handlers[preloading.TAG_PRELOAD] = self.preload_watch.on_message
        # The completion thread's and the callback thread's names.
        self.thread_names = (
            (f"{thread_name_prefix}_completion", f"{thread_name_prefix}_callbacks")
            if thread_name_prefix
            else (f"sp-completion-{pool_id:x}", f"sp-callbacks-{pool_id:x}")
        )


def start(pool: Any, plan: StartPlan, process_pool: ProcessFallback | None) -> None:
    """Makes the native pool and its completion thread, and registers ``pool`` (the executor)
    for exit: in the constructor, and when a pool that stepped aside comes back. All or nothing:
    whatever ends it (Ctrl-C, "can't start new thread"), its workers have ended when the
    exception propagates (unless a second Ctrl-C stops that wait)."""
    made: list[Any] = []
    state: PoolState | None = None
    # Whoever takes it delivers the pool's events and joins its workers: the completion
    # thread, or (if that thread never began) this one, below.
    delivery = threading.Lock()

    def deliver() -> None:
        if delivery.acquire(blocking=False):
            assert state is not None
            state.deliver_forever()

    try:
        # Stored from C (list.extend over map), not by an assignment: a Ctrl-C handled
        # between the call's return and the next bytecode would drop the pool with its
        # workers running, and nothing would wait for them.
        # What the workers' sys.path follows: submit() sends the caller's again when it changed.
        pool._sys_path = list(sys.path)
        arguments = (plan.max_workers, [str(p) for p in pool._sys_path], *plan.native_arguments)
        made.extend(map(_native.Pool, *([argument] for argument in arguments)))
        native = made[0]
        if plan.preload_watch is not None:
            plan.preload_watch.connect(native.mark_broken)
        state = PoolState(native, plan.task_timeout, plan.thread_names[1])
        state.initargs = plan.initargs
        state.fallback = process_pool
        state.message_handlers.update(plan.handlers)
        warm: preloading.AutoWarm | None = None
        if plan.auto_warm:
            warm = preloading.AutoWarm(native, plan.preload_modules)
            state.message_handlers[preloading.TAG_WARM_FAILED] = warm.on_failure
        completion = threading.Thread(target=deliver, name=plan.thread_names[0], daemon=False)
        completion.start()
        weakref.finalize(pool, _close_native, native)
        pool._completion = completion
        pool._warm = warm
        pool._state = state
        _exit.register(pool)
    except BaseException:
        if made:
            made[0].close()
            made[0].interrupt_all()  # the initializers too
            if state is None:
                made[0].join()
            elif delivery.acquire(blocking=False):
                state.deliver_forever()  # the completion thread never began: end it all here
            else:
                while not _exit.wait_for_event(state.ended, _exit.CTRL_C_POLL_SECONDS):
                    pass
        raise


def come_back(pool: Any) -> bool:
    """A pool that stepped aside (``_exit.step_aside``) makes new interpreters, for its next
    task. False: it has been shut down meanwhile."""
    with pool._lifecycle_lock:
        if pool._stepped_aside:
            start(pool, pool._plan, pool._state.fallback)
            pool._stepped_aside = False
        return bool(pool._state.native.state() == "running")


def _close_native(native: Any) -> None:
    """Finalizer of an executor dropped without shutdown: let its workers end."""
    native.close()


def _worker_thread_names(prefix: str, count: int) -> list[str]:
    """OS names of the worker threads: ``{prefix}_{i}`` (the stdlib executors' scheme), or
    ``sp-worker-{i}`` (the ``threadName`` of forwarded log records) without a prefix.

    Linux keeps 15 bytes of a name; cutting the end would give every worker the same name, so
    the prefix is shortened instead (at a character boundary).
    """
    if not prefix:
        return [f"sp-worker-{i}" for i in range(count)]
    encoded = prefix.encode("utf-8", "replace")  # lone surrogates become "?"
    names = []
    for i in range(count):
        suffix = f"_{i}"
        head = encoded[: max(0, _OS_THREAD_NAME_BYTES - len(suffix))].decode("utf-8", "ignore")
        names.append(head + suffix)
    return names


def _import_in_caller_first() -> None:
    """Imports here, before any worker does, the modules that must be first imported by the
    main interpreter (``_versions.IMPORT_IN_CALLER_FIRST``), and primes ``_pickle``'s keyword
    parsers where CPython shares them (``_versions.KEYWORD_PARSERS_SHARED``)."""
    for name in _versions.IMPORT_IN_CALLER_FIRST:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            # AttributeError: in a 3.12 worker (a pool created inside a task), datetime is the
            # pure-Python one, whose missing datetime_CAPI capsule fails the C modules that
            # need it; the main interpreter imported them already when it made the outer pool.
            except (ImportError, AttributeError):
                pass
    if _versions.KEYWORD_PARSERS_SHARED:
        _call_pickle_with_keywords()


_pickle_called_with_keywords = False


def _call_pickle_with_keywords() -> None:
    """CPython < 3.12.4: calls each ``_pickle`` function once with keyword arguments here, so
    that its cached keyword names belong to the main interpreter (python/cpython#119213; see
    ``_versions.KEYWORD_PARSERS_SHARED``). cloudpickle, which workers use for what plain pickle
    refuses, builds ``_pickle.Pickler(file, protocol=..., buffer_callback=...)``."""
    global _pickle_called_with_keywords
    if _pickle_called_with_keywords:
        return
    data = _pickle.dumps(None, protocol=2, fix_imports=True, buffer_callback=None)
    _pickle.dump(None, io.BytesIO(), protocol=2, fix_imports=True, buffer_callback=None)
    _pickle.Pickler(io.BytesIO(), protocol=2, fix_imports=True, buffer_callback=None)
    options: dict[str, Any] = {"fix_imports": True, "encoding": "ASCII", "errors": "strict", "buffers": None}
    _pickle.loads(data, **options)
    _pickle.load(io.BytesIO(data), **options)
    _pickle.Unpickler(io.BytesIO(data), **options)
    _pickle_called_with_keywords = True
