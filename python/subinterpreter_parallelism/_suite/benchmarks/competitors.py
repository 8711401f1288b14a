"""The ways to run the same Python functions that the benchmarks compare.

Each competitor is described by what it can do (its ``abilities``), how to make one
(``factory``) and what it needs (``availability``, ``modules``). Scenarios and the report ask
for abilities, never for a competitor by name: adding a competitor is one entry here. Serial
execution and the seed's design are wrapped as ``concurrent.futures.Executor`` too, so that
every scenario is written once against ``submit``/``map``/``shutdown``.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import multiprocessing
import queue
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COMPETITORS",
    "Ability",
    "Competitor",
    "SerialExecutor",
    "by_key",
    "make_executor",
    "prepare",
    "second_process_method",
    "unavailable_reason",
]


class Ability(enum.StrEnum):
    """What a competitor can do; a scenario measures a case only for those that can."""

    #: Runs tasks at the same time (serial cannot: it is the baseline).
    PARALLEL = "parallel"
    #: Keeps workers between tasks (serial has none; the seed design makes one per call).
    WORKERS = "workers"
    #: Runs at most ``max_workers`` calls at once (the seed design runs every call at once).
    BOUNDED = "bounded"
    #: Has a ``map`` of its own.
    MAP = "map"
    #: ``map`` groups items into chunks by itself (its default chunking is not one item per task).
    BATCHED_MAP = "batched map"
    #: ``map(chunksize=...)`` sends that many items per task.
    CHUNKSIZE = "chunksize"
    #: Runs functions defined in ``__main__`` (a script's functions).
    MAIN_FUNCTIONS = "main functions"
    #: Workers are processes (the report's "best process pool" column).
    PROCESSES = "processes"
    #: ``Future.running()`` is reported by the worker that started the task.
    REPORTS_RUNNING = "reports running"
    #: ``Future.cancel()`` can stop a task that is already running.
    STOPS_RUNNING = "stops running"
    #: Workers inherit the caller's imported modules (fork).
    INHERITS_IMPORTS = "inherits imports"
    #: Has a queue that tasks and the caller share (see ``make_queues``).
    QUEUES = "queues"
    #: The project being measured: the report compares it with the others.
    SUBJECT = "subject"


@dataclass(frozen=True)
class Competitor:
    """One way of running tasks.

    ``key`` names it in JSON and table headers, ``label`` in prose; ``lacks`` says why it
    cannot do what its ``abilities`` leave out, for the report's n/a notes.
    """

    key: str
    label: str
    abilities: frozenset[Ability]
    factory: Callable[[int | None], Executor]
    #: Why it cannot run here (not installed, wrong Python), or None; imports nothing that could crash.
    availability: Callable[[], str | None] = lambda: None
    #: Modules imported before any timed run, so that no timed run pays for them.
    modules: Callable[[], list[str]] = lambda: []
    #: Two queues a task and the caller share, and an object to keep alive with them (or None).
    queues: Callable[[], tuple[Any, Any, Any]] | None = None
    #: What its queues are, in prose.
    queue_kind: str = ""
    lacks: Mapping[Ability, str] = field(default_factory=dict)
    #: The plot's line style (matplotlib keyword arguments).
    style: Mapping[str, Any] = field(default_factory=dict)

    def can(self, ability: Ability) -> bool:
        """Whether it has ``ability``."""
        return ability in self.abilities

    def why_not(self, ability: Ability) -> str:
        """Why it lacks ``ability`` (a short phrase for the report)."""
        return self.lacks.get(ability, f"no {ability.value}")


def second_process_method() -> str:
    """The process start method measured beside fork: forkserver where it exists, else spawn."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


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

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """The builtin ``map``."""
        return map(fn, *iterables)


# -- process pools ------------------------------------------------------------------------------


def _start_method_availability(method: str) -> Callable[[], str | None]:
    def reason() -> str | None:
        if method not in multiprocessing.get_all_start_methods():
            return f"the {method} start method is not available on this platform"
        return None

    return reason


def _process_pool(method: str) -> Callable[[int | None], Executor]:
    return lambda workers: ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))


def _manager_queues(method: str) -> Callable[[], tuple[Any, Any, Any]]:
    def make() -> tuple[Any, Any, Any]:
        manager = multiprocessing.get_context(method).Manager()
        return manager.Queue(), manager.Queue(), manager

    return make


_PROCESS_ABILITIES = frozenset(
    {
        Ability.PARALLEL,
        Ability.WORKERS,
        Ability.BOUNDED,
        Ability.MAP,
        Ability.CHUNKSIZE,
        Ability.MAIN_FUNCTIONS,
        Ability.PROCESSES,
        Ability.QUEUES,
    }
)
_MANAGER_QUEUE = "multiprocessing Manager().Queue()"


def _process_competitor(method: str, colour: str) -> Competitor:
    abilities = _PROCESS_ABILITIES | ({Ability.INHERITS_IMPORTS} if method == "fork" else set())
    return Competitor(
        method,
        f"ProcessPoolExecutor, {method}",
        frozenset(abilities),
        _process_pool(method),
        availability=_start_method_availability(method),
        queues=_manager_queues(method),
        queue_kind=_MANAGER_QUEUE,
        lacks={Ability.STOPS_RUNNING: "cancel() cannot stop a running task"},
        style={"color": colour},
    )


# -- loky -------------------------------------------------------------------------------------


def _loky_availability() -> str | None:
    if importlib.util.find_spec("loky") is None:
        return "loky is not installed (pip install loky, or the `bench` extra)"
    return None


def _loky(workers: int | None) -> Executor:
    import loky

    return loky.ProcessPoolExecutor(max_workers=workers)  # type: ignore[no-any-return]


# -- the stdlib interpreter pool (3.14+) or its 3.13 backport ---------------------------------


def _stdlib_pool_label() -> str:
    return (
        "stdlib InterpreterPoolExecutor"
        if sys.version_info >= (3, 14)
        else "InterpreterPoolExecutor backport (interpreters-pep-734)"
    )


def _stdlib_pool_availability() -> str | None:
    if sys.version_info >= (3, 14):
        return None
    if sys.version_info < (3, 13):
        return (
            "no stdlib InterpreterPoolExecutor before 3.14; its backport needs 3.13 "
            "(on 3.12 it needs interpreters-3-12, whose import crashes)"
        )
    if importlib.util.find_spec("interpreters_backport") is None:  # type: ignore[unreachable]  # mypy checks as 3.12
        return "interpreters-pep-734 (the 3.13 backport of the stdlib pool) is not installed"
    return None


def _stdlib_pool(workers: int | None) -> Executor:
    if sys.version_info >= (3, 14):
        from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]
    else:
        from interpreters_backport.concurrent.futures import InterpreterPoolExecutor
    return InterpreterPoolExecutor(workers)  # type: ignore[no-any-return]


def _stdlib_pool_modules() -> list[str]:
    return (
        ["concurrent.futures"]
        if sys.version_info >= (3, 14)
        else ["interpreters_backport.concurrent.futures", "interpreters_backport.interpreters.queues"]
    )


def _stdlib_queues() -> tuple[Any, Any, Any]:
    if sys.version_info >= (3, 14):
        from concurrent import interpreters  # type: ignore[attr-defined]
    else:
        from interpreters_backport import interpreters
    return interpreters.create_queue(), interpreters.create_queue(), None


# -- the seed design and this project ----------------------------------------------------------


def _seed_availability() -> str | None:
    from .seed_design import unavailable_reason as seed_reason

    return seed_reason()


def _seed(workers: int | None) -> Executor:
    from .seed_design import SeedDesignExecutor

    return SeedDesignExecutor(workers)


def _this(workers: int | None) -> Executor:
    import subinterpreter_parallelism as sp

    return sp.InterpreterPoolExecutor(workers)


def _this_queues() -> tuple[Any, Any, Any]:
    import subinterpreter_parallelism as sp

    return sp.Queue(), sp.Queue(), None


_NO_POOL = "no pool"

COMPETITORS: tuple[Competitor, ...] = (
    Competitor(
        "serial",
        "serial (a plain loop in the caller)",
        frozenset({Ability.MAP, Ability.INHERITS_IMPORTS}),
        lambda workers: SerialExecutor(),
        lacks={
            Ability.PARALLEL: _NO_POOL,
            Ability.WORKERS: "no workers",
            Ability.QUEUES: "no second party",
            Ability.MAIN_FUNCTIONS: "nothing to ship",
            Ability.CHUNKSIZE: "same as map",
        },
        style={"color": "#7f7f7f", "linestyle": "--"},
    ),
    Competitor(
        "threads",
        "ThreadPoolExecutor",
        frozenset(
            {
                Ability.PARALLEL,
                Ability.WORKERS,
                Ability.BOUNDED,
                Ability.MAP,
                Ability.MAIN_FUNCTIONS,
                Ability.INHERITS_IMPORTS,
                Ability.QUEUES,
            }
        ),
        lambda workers: ThreadPoolExecutor(workers),
        queues=lambda: (queue.Queue(), queue.Queue(), None),
        queue_kind="queue.Queue",
        lacks={Ability.CHUNKSIZE: "map() ignores chunksize"},
        style={"color": "#bcbd22"},
    ),
    _process_competitor("fork", "#1f77b4"),
    _process_competitor(second_process_method(), "#17becf"),
    Competitor(
        "loky",
        "loky ProcessPoolExecutor",
        _PROCESS_ABILITIES,
        _loky,
        availability=_loky_availability,
        modules=lambda: ["loky"],
        queues=_manager_queues("fork"),
        queue_kind=_MANAGER_QUEUE,
        style={"color": "#9467bd"},
    ),
    Competitor(
        "backport",
        _stdlib_pool_label(),
        frozenset(
            {
                Ability.PARALLEL,
                Ability.WORKERS,
                Ability.BOUNDED,
                Ability.MAP,
                Ability.MAIN_FUNCTIONS,
                Ability.QUEUES,
            }
        ),
        _stdlib_pool,
        availability=_stdlib_pool_availability,
        modules=_stdlib_pool_modules,
        queues=_stdlib_queues,
        queue_kind="interpreters Queue",
        lacks={Ability.CHUNKSIZE: "map() ignores chunksize"},
        style={"color": "#ff7f0e"},
    ),
    Competitor(
        "seed",
        "seed design: a new thread + own-GIL interpreter per call",
        frozenset({Ability.PARALLEL}),
        _seed,
        availability=_seed_availability,
        modules=lambda: ["benchmarks.seed_design"],
        lacks={
            Ability.WORKERS: "no persistent workers",
            Ability.MAP: "no map of its own",
            Ability.CHUNKSIZE: "no map of its own",
            Ability.QUEUES: "no queue",
            Ability.MAIN_FUNCTIONS: "calls functions by module and name",
        },
        style={"color": "#8c564b"},
    ),
    Competitor(
        "this",
        "this project: subinterpreter_parallelism.InterpreterPoolExecutor",
        frozenset(
            {
                Ability.PARALLEL,
                Ability.WORKERS,
                Ability.BOUNDED,
                Ability.MAP,
                Ability.BATCHED_MAP,
                Ability.CHUNKSIZE,
                Ability.MAIN_FUNCTIONS,
                Ability.REPORTS_RUNNING,
                Ability.STOPS_RUNNING,
                Ability.QUEUES,
                Ability.SUBJECT,
            }
        ),
        _this,
        modules=lambda: ["subinterpreter_parallelism.executor"],
        queues=_this_queues,
        queue_kind="subinterpreter_parallelism.Queue",
        style={"color": "#d62728", "linewidth": 2.8},
    ),
)


def by_key(key: str) -> Competitor:
    """The competitor named ``key``; raises KeyError for an unknown key."""
    for competitor in COMPETITORS:
        if competitor.key == key:
            return competitor
    raise KeyError(key)


def unavailable_reason(key: str) -> str | None:
    """Why competitor ``key`` cannot run here (not installed, wrong Python), or None."""
    return by_key(key).availability()


def prepare(key: str) -> None:
    """Imports what competitor ``key`` needs, so that no timed run pays for the import."""
    for name in by_key(key).modules():
        importlib.import_module(name)


def make_executor(key: str, workers: int | None) -> Executor:
    """A fresh executor of competitor ``key`` with ``workers`` workers.

    ``workers=None`` means the competitor's default (for the seed design: every call at once).
    """
    return by_key(key).factory(workers)
