"""Module-level functions that tests run inside worker interpreters."""

from __future__ import annotations

import os
import sys
import threading
import time


def add(a, b=0):
    return a + b


def echo(value):
    return value


def fail(kind, message):
    raise {"value": ValueError, "key": KeyError, "type": TypeError, "runtime": RuntimeError}[kind](message)


def fail_deep():
    def inner():
        raise ZeroDivisionError("deep inside")
    return inner()


def identify():
    """Which interpreter and thread ran this."""
    from subinterpreter_parallelism import _versions

    return _versions.current_interpreter_id(), threading.get_ident()


def spin(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def sleep_then(seconds, value=None):
    time.sleep(seconds)
    return value


def py_factorial(n):
    k = 1
    for i in range(n, 1, -1):
        k *= i
        k %= 1_000_000_007
    return k


def raise_system_exit(code):
    sys.exit(code)


def raise_keyboard_interrupt():
    raise KeyboardInterrupt("from a task")


def getcwd():
    return os.getcwd()


def sys_path():
    return list(sys.path)


class Unpicklable:
    def __reduce__(self):
        raise TypeError("Unpicklable refuses to be pickled")


def return_unpicklable():
    return threading.Lock()


class BadInitError(Exception):
    """An exception whose __init__ signature breaks unpickling."""

    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")


def raise_bad_init():
    raise BadInitError(1, 2)


class LockCarrier(Exception):
    pass


def raise_unpicklable_payload():
    raise LockCarrier(threading.Lock())


COUNTER = []


def record_init(value):
    COUNTER.append(value)


def init_count():
    return list(COUNTER)


def init_fails():
    raise RuntimeError("initializer exploded")


def square(x):
    return x * x


class Accumulator:
    def __init__(self, base):
        self.base = base

    def add(self, x):
        return self.base + x


def put_all(queue, items):
    for item in items:
        queue.put(item)
    return len(items)


def get_n(queue, n):
    return [queue.get() for _ in range(n)]


def relay(q_in, q_out, n):
    """Moves n items from one queue to another (blocking gets)."""
    for _ in range(n):
        q_out.put(q_in.get())
    return n


def produce(queue, producer, count):
    for i in range(count):
        queue.put((producer, i))
    return count


def consume(queue, stop_marker):
    items = []
    while True:
        item = queue.get()
        if item == stop_marker:
            return items
        items.append(item)


def wait_on_queue(queue):
    return queue.get()


def spin_until_interrupted(report):
    """Spins until interrupted; reports through a queue that it saw the interruption."""
    import subinterpreter_parallelism as sp

    report.put("started")
    try:
        while True:
            pass
    except sp.TaskInterrupted:
        report.put("interrupted")
        raise


def sleep_until_interrupted(report, seconds):
    import subinterpreter_parallelism as sp

    report.put("started")
    try:
        time.sleep(seconds)
    except sp.TaskInterrupted:
        report.put("interrupted")
        raise
    report.put("slept")


def make_queue(items):
    """Creates a Queue in the worker, fills it and returns it (its only handle)."""
    import subinterpreter_parallelism as sp

    queue = sp.Queue()
    for item in items:
        queue.put(item)
    return queue


def sleep_error(seconds):
    """What ``time.sleep(seconds)`` raises here: ``(type name, message)``, or None."""
    try:
        time.sleep(seconds)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return None


class Stop(BaseException):
    """A BaseException a task raises on purpose."""


def fail_at(x, at, how):
    """Returns x, except at item ``at``: fails the way ``how`` says."""
    if x != at:
        return x
    if how == "exception":
        raise ValueError(f"item {x}")
    if how == "unpicklable exception":
        raise LockCarrier(threading.Lock())
    if how == "base exception":
        raise Stop(f"item {x}")
    if how == "unpicklable result":
        return threading.Lock()
    raise AssertionError(how)


class Dummy:
    """An object that weak references can watch."""

    def __init__(self, value):
        self.value = value


def make_dummy(value):
    return Dummy(value)


def gated(x, gate, blocked):
    """Returns x; items in ``blocked`` first wait for an item from the ``gate`` queue."""
    if x in blocked:
        gate.get(timeout=120)
    return x


def joblib_nested(n):
    """A joblib Parallel call inside a task (joblib is imported in the worker interpreter)."""
    import joblib

    results = joblib.Parallel(n_jobs=2)(joblib.delayed(square)(i) for i in range(n))
    return results, joblib.parallel.DEFAULT_BACKEND


def module_loaded(name):
    """Whether this interpreter has imported ``name`` (a preload module, say)."""
    return name in sys.modules
