"""What differs between the CPython versions this package supports (3.12 to 3.15), in one place.

Every other module asks here instead of testing ``sys.version_info`` itself, so that a new
CPython release means reading one file. Imports nothing beyond ``sys`` (and
``sysconfig`` where ``sys.abiflags`` does not exist): worker interpreters load it during their
start-up.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (worker start-up time)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_START_METHOD_FORKS",
    "EXPECTED_REFUSALS",
    "FORK_CHILD_ABORTS",
    "FREE_THREADED",
    "IMPORT_IN_CALLER_FIRST",
    "KEYWORD_PARSERS_SHARED",
    "ONE_WORKER_FIRST",
    "PYDATETIME_IN_WORKERS",
    "REFUSED_MODULE_CRASHES_OTHERS",
    "STACK_BASED_RECURSION_LIMIT",
    "STDLIB_INTERPRETER_POOL",
    "current_interpreter_id",
    "default_worker_count",
    "interpreter_count",
    "run_in_fresh_interpreter",
]

VERSION = sys.version_info[:2]

#: A free-threaded build (``python3.13t``, ``3.14t``): no GIL to own, so own-GIL interpreters
#: bring nothing that plain threads do not; the package refuses to load there.
#: Its ABI flags carry a "t" (``3.13t``); ``sysconfig`` answers only where ``sys.abiflags`` does
#: not exist (Windows): it imports ``threading`` and a large data module, a noticeable part of
#: a worker interpreter's start-up.
FREE_THREADED: bool = (
    "t" in sys.abiflags
    if hasattr(sys, "abiflags")
    else bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED"))
)

#: CPython bugs crash the process when a worker interpreter is the first in the process to
#: import some extension modules: later, when another interpreter imports them too, or at exit
#: ("double free", "free(): invalid pointer"; python/cpython#116510, #119450, #136423).
#: Imported in the caller's interpreter first, they are safe in workers
#: (tests/reliability/test_imports.py).
IMPORT_IN_CALLER_FIRST: tuple[str, ...] = (
    ("_datetime",)
    if VERSION >= (3, 13)
    else ("_asyncio", "hashlib", "ssl", "_datetime", "_decimal", "_zoneinfo")
)

#: CPython 3.12 before 3.12.4 (python/cpython#119213): the first call with keyword arguments of
#: a function of an extension module loaded from a shared library (``_pickle``, ``_bisect``,
#: ``_json``, ...) caches the keyword names in static memory allocated by the calling
#: interpreter. Made first in a worker, that cache is freed by the main interpreter at exit
#: ("free(): invalid pointer"). The executor makes such calls to ``_pickle`` (which cloudpickle
#: makes in workers, e.g. for a result that plain pickle refuses) in the caller first.
KEYWORD_PARSERS_SHARED = (3, 12) <= sys.version_info[:3] < (3, 12, 4)

#: 3.12 only: once a worker interpreter has been refused a single-phase extension module
#: (numpy, _testsinglephase), another interpreter importing it can crash the process
#: (python/cpython#116510, #119450, gh-117953). 3.13+ refuse cleanly.
REFUSED_MODULE_CRASHES_OTHERS = VERSION < (3, 13)

#: So on 3.12, one worker tries the ``preload`` modules first, the others only if it succeeded.
ONE_WORKER_FIRST = REFUSED_MODULE_CRASHES_OTHERS

#: 3.12's ``_datetime`` cannot load in an isolated interpreter, so workers get the pure-Python
#: ``_pydatetime``; values made there are converted to the caller's datetime types.
PYDATETIME_IN_WORKERS = VERSION < (3, 13)

#: Refusals that every worker meets and that this package makes up for (``check`` does not
#: count them against a module).
EXPECTED_REFUSALS: tuple[str, ...] = ("_datetime",) if PYDATETIME_IN_WORKERS else ()

#: 3.14+ guard C recursion by the thread's real stack size instead of a fixed depth, so deep
#: ``repr``/``json``/comparisons of nested data may succeed in a worker's 32 MiB stack where
#: 3.12/3.13 raise RecursionError.
STACK_BASED_RECURSION_LIMIT = VERSION >= (3, 14)

#: 3.14+ ship ``concurrent.futures.InterpreterPoolExecutor`` and ``concurrent.interpreters``.
STDLIB_INTERPRETER_POOL = VERSION >= (3, 14)

#: Up to 3.13, multiprocessing's default start method on Linux is ``fork``, which crashes a
#: child forked while own-GIL interpreters exist; 3.14 made ``forkserver`` the default.
DEFAULT_START_METHOD_FORKS = VERSION < (3, 14)

#: A child forked while own-GIL interpreters exist cannot run Python: CPython's after-fork code
#: deletes them without a thread state (python/cpython#101437, open) and the child hangs
#: (3.12.1), aborts with "Fatal Python error: PyThreadState_Get" (3.13.0) or segfaults
#: (3.14.10, 3.15.2). The native fork guard makes such a child print why and exit with
#: ``_native.FORK_REFUSED_STATUS`` instead. Every supported version so far.
FORK_CHILD_ABORTS = True


def _low_level() -> Any:
    """CPython's private interpreters module: ``_interpreters`` (3.13+), ``_xxsubinterpreters``
    (3.12)."""
    if VERSION >= (3, 13):
        import _interpreters

        return _interpreters
    import _xxsubinterpreters

    return _xxsubinterpreters


def interpreter_count() -> int:
    """Interpreters alive in this process, the main one included."""
    return len(_low_level().list_all())


def current_interpreter_id() -> int:
    """The id of the interpreter running this code (0 is the main interpreter)."""
    current = _low_level().get_current()
    return int(current[0] if isinstance(current, tuple) else current)


def run_in_fresh_interpreter(code: str) -> str | None:
    """Runs ``code`` in a new isolated (own-GIL) interpreter, then destroys it.

    Returns None, or a description of an exception that escaped ``code``.
    """
    low = _low_level()
    if VERSION >= (3, 13):
        interp = low.create("isolated")
        try:
            excinfo = low.exec(interp, code)
        finally:
            low.destroy(interp)
        return None if excinfo is None else str(getattr(excinfo, "formatted", excinfo))
    interp = low.create(isolated=True)
    try:
        low.run_string(interp, code)
    except Exception as exc:
        return str(exc)
    finally:
        low.destroy(interp)
    return None


def default_worker_count() -> int:
    """The CPUs this process may use: ``os.process_cpu_count()`` on 3.13+, else the affinity mask."""
    counter = getattr(os, "process_cpu_count", None)
    if counter is not None:
        count = counter()
    else:
        try:
            count = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            count = os.cpu_count()
    return max(1, count or 1)
