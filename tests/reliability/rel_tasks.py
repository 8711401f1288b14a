"""Module-level helpers that the reliability tests run inside worker interpreters.

Everything here must be importable by name in a worker (tests/reliability is on the
caller's sys.path, which every worker copies at pool creation).
"""

from __future__ import annotations

import sys
import threading
import time

# The plain tasks both suites use live in one place, tests/sp_tasks.py (tests/ is on every
# worker's path too); the names these tests have always used stay.
from sp_tasks import add, echo, spin  # noqa: F401
from sp_tasks import sleep_then as nap_then  # noqa: F401


def interpreter_id():
    """The id of the interpreter running this code."""
    try:
        import _interpreters  # 3.13

        current = _interpreters.get_current()
    except ImportError:
        import _xxsubinterpreters  # 3.12

        current = _xxsubinterpreters.get_current()
    return int(current[0] if isinstance(current, tuple) else current)


def where():
    """(interpreter id, native thread ident): who ran this task."""
    return interpreter_id(), threading.get_ident()


# -- pickling failures -----------------------------------------------------------------


def _refuse(kind, message):
    raise {"value": ValueError, "exit": SystemExit, "interrupt": KeyboardInterrupt}[kind](message)


class FailsToPickle:
    """Refuses to be pickled (in whichever interpreter tries)."""

    def __reduce__(self):
        raise ValueError("FailsToPickle refuses to be pickled")


class ExitsAtPickle:
    """Raises SystemExit while being pickled."""

    def __reduce__(self):
        raise SystemExit("ExitsAtPickle")


class FailsToUnpickle:
    """Pickles fine; unpickling it raises ValueError."""

    def __reduce__(self):
        return _refuse, ("value", "FailsToUnpickle refuses to be unpickled")


class ExitsAtUnpickle:
    """Pickles fine; unpickling it raises SystemExit (must not escape as a real exit)."""

    def __reduce__(self):
        return _refuse, ("exit", "ExitsAtUnpickle")


class InterruptsAtUnpickle:
    """Pickles fine; unpickling it raises KeyboardInterrupt."""

    def __reduce__(self):
        return _refuse, ("interrupt", "InterruptsAtUnpickle")


def make(name, *args):
    """Builds one of this module's classes inside the worker and returns it."""
    return globals()[name](*args)


def make_lock():
    return threading.Lock()


def return_generator():
    return (i for i in range(3))


# -- exceptions that cannot travel -----------------------------------------------------


class LockCarrier(Exception):
    """Its payload (a lock) cannot be pickled."""


def raise_lock_payload(message):
    raise LockCarrier(message, threading.Lock())


class RebuildFails(Exception):
    """Pickles in the worker; rebuilding it in the caller raises ValueError."""

    def __reduce__(self):
        return _refuse, ("value", "RebuildFails cannot be rebuilt")


class RebuildExits(Exception):
    """Pickles in the worker; rebuilding it in the caller raises SystemExit."""

    def __reduce__(self):
        return _refuse, ("exit", "RebuildExits")


class StrFails(Exception):
    def __str__(self):
        raise RuntimeError("str() of StrFails fails")


def raise_named(name, message):
    raise globals()[name](message)


def raise_worker_only(message):
    """Raises an exception whose class lives in a module that exists only in this worker."""
    import types

    module = types.ModuleType("only_in_a_worker")
    exec("class WorkerOnlyError(Exception):\n    pass\n", module.__dict__)
    sys.modules["only_in_a_worker"] = module
    raise module.WorkerOnlyError(message)


def return_worker_only():
    """Returns an instance of a class that the caller cannot import."""
    import types

    module = types.ModuleType("only_in_a_worker_values")
    exec("class Thing:\n    pass\n", module.__dict__)
    sys.modules["only_in_a_worker_values"] = module
    return module.Thing()


def raise_chained(message):
    try:
        raise LockCarrier("inner", threading.Lock())
    except LockCarrier as inner:
        raise ValueError(message) from inner


def raise_group():
    raise ExceptionGroup("several", [ValueError("one"), LockCarrier("two", threading.Lock())])


# -- outcomes for property tests -------------------------------------------------------


class PlannedError(Exception):
    """Raised on purpose by `planned`; carries the call's tag."""


def planned(kind, tag, seconds=0.0):
    """One call of a random plan: returns tag, raises PlannedError(tag)/KeyError(tag), or sleeps."""
    if kind == "ok":
        return tag
    if kind == "slow":
        time.sleep(seconds)
        return tag
    if kind == "raise":
        raise PlannedError(tag)
    if kind == "key":
        raise KeyError(tag)
    if kind == "slow_raise":
        time.sleep(seconds)
        raise PlannedError(tag)
    raise AssertionError(kind)


def fail_at(values, bad):
    """For map(): returns the value, or raises PlannedError for the value `bad`."""
    if values == bad:
        raise PlannedError(values)
    return values * 2


# -- leak checks -----------------------------------------------------------------------


class Payload:
    """A weak-referenceable, picklable value."""

    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, Payload) and other.n == self.n

    __hash__ = None

    def bump(self, k):
        return Payload(self.n + k)


def bump(payload, k=1):
    return Payload(payload.n + k)


def raise_payload(n):
    raise PlannedError(Payload(n))


def loaded_modules():
    return sorted(sys.modules)


# -- imports -----------------------------------------------------------------------------


def import_module(name):
    import importlib

    return importlib.import_module(name).__name__


def try_import(name, times=1):
    """Imports ``name`` ``times`` times; returns what happened each time: the module's name,
    "refused" (CPython's refusal of a single-phase module), or the exception type."""
    import importlib

    outcomes = []
    for _ in range(times):
        try:
            outcomes.append(importlib.import_module(name).__name__)
        except ImportError as exc:
            outcomes.append(
                "refused" if "does not support loading in subinterpreters" in str(exc) else type(exc).__name__
            )
        except BaseException as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


# -- refused in isolated interpreters ------------------------------------------------------


def do_fork():
    import os

    pid = os.fork()
    if pid == 0:  # pragma: no cover - must never happen in a worker
        os._exit(0)
    return pid


def do_forkpty():
    import os

    pid, _ = os.forkpty()
    if pid == 0:  # pragma: no cover
        os._exit(0)
    return pid


def do_exec(which):
    import os

    if which == "execv":
        os.execv("/bin/true", ["/bin/true"])
    elif which == "execve":
        os.execve("/bin/true", ["/bin/true"], {})
    elif which == "execvp":
        os.execvp("true", ["true"])


def do_daemon_thread(how):
    if how == "daemon=True":
        thread = threading.Thread(target=lambda: None, daemon=True)
    else:
        thread = threading.Thread(target=lambda: None)
        thread.daemon = True
    thread.start()
    thread.join()


def do_multiprocessing_fork():
    import multiprocessing

    process = multiprocessing.get_context("fork").Process(target=print)
    process.start()
    process.join()


def do_signal():
    import signal

    signal.signal(signal.SIGUSR1, lambda *a: None)


def do_threads():
    """Ordinary (non-daemon) threads work inside a task, and so does a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    threading.current_thread()  # (3.13.0 once printed "Exception ignored" for this at pool exit)
    results = []
    threads = [threading.Thread(target=results.append, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with ThreadPoolExecutor(2) as inner:
        squares = list(inner.map(lambda x: x * x, range(5)))
    return sorted(results), squares


def start_thread_that_outlives_the_task(path, seconds):
    """Starts a (non-daemon) thread that writes ``path`` after ``seconds``, and returns."""

    def later():
        time.sleep(seconds)
        with open(path, "w") as out:
            out.write("written by a thread of a finished task")

    threading.Thread(target=later).start()


def do_subprocess():
    import subprocess

    return subprocess.run(["/bin/echo", "from a worker"], capture_output=True, text=True, check=True).stdout


def do_plain_threads():
    """Ordinary (non-daemon) threads started and joined inside a task."""
    threading.current_thread()  # (3.13.0 once printed "Exception ignored" for this at pool exit)
    results = []
    threads = [threading.Thread(target=results.append, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results)


# -- what never ends (issue 13: exit, Ctrl-C and shutdown must still end the program) -----------


def never_return(how, path=None):
    """Never returns: ``"python"`` spins in Python code, ``"sleep"`` sleeps (interruptible in
    workers), ``"c"`` blocks inside C (a lock wait, which no interruption reaches). With
    ``path``, first writes that file (a handshake: the call has started)."""
    if path is not None:
        with open(path, "w") as out:
            out.write("started")
    if how == "python":
        while True:
            pass
    if how == "sleep":
        time.sleep(10**6)
    if how == "c":
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()
    raise AssertionError(how)


def leave_a_thread_that_never_ends(path=None):
    """Starts a non-daemon thread that waits forever (inside C), and returns. A worker
    interpreter ends only after its threads, so this one can never end."""

    def forever():
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()

    threading.Thread(target=forever, name="never-ends").start()
    if path is not None:
        with open(path, "w") as out:
            out.write("started")
    return "thread started"


def pickle_with_keywords():
    """The stdlib pickle API called with keyword arguments (each C function's first such call
    in the process caches its keyword names: python/cpython#119213)."""
    import io
    import pickle

    data = pickle.dumps([1, 2], protocol=5)
    buffer = io.BytesIO()
    pickle.dump([3], buffer, protocol=5)
    pickle.Pickler(io.BytesIO(), protocol=5).dump(4)
    values = [
        pickle.loads(data, fix_imports=True),
        pickle.load(io.BytesIO(buffer.getvalue()), fix_imports=True),
        pickle.Unpickler(io.BytesIO(data), fix_imports=True).load(),
    ]
    return values


def big_bytes(size):
    """A ``bytes`` result of ``size`` bytes, every page touched (counted in RSS)."""
    return b"x" * size
