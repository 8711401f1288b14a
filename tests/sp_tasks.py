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

    try:
        # Inside the try: an interruption requested once "started" arrived can land as put()
        # returns, before the loop.
        report.put("started")
        while True:
            pass
    except sp.TaskInterrupted:
        report.put("interrupted")
        raise


def sleep_until_interrupted(report, seconds):
    import subinterpreter_parallelism as sp

    try:
        report.put("started")  # inside the try, as above
        time.sleep(seconds)
    except sp.TaskInterrupted:
        report.put("interrupted")
        raise
    report.put("slept")


# -- A C call that holds the worker's GIL until the test lets it end -----------------------------


def hold_gil_in_c(path):
    """One C call (``sum`` over C iterators, no Python code in between) that holds the worker's
    GIL until byte 2 of the file at ``path`` becomes 0.

    From inside that same call it sets byte 0 when it starts and byte 1 when it ends, so the
    caller can see where it is without the worker's GIL (see ``CGate``). Interruptions reach it
    only once it returns to Python.
    """
    import itertools
    import mmap

    with open(path, "r+b") as file:
        shared = mmap.mmap(file.fileno(), 3)
    mark_start = filter(None, map(shared.__setitem__, [0], [1]))
    spin = itertools.takewhile(bool, map(shared.__getitem__, itertools.repeat(2)))
    mark_end = filter(None, map(shared.__setitem__, [1], [1]))
    return sum(itertools.chain(mark_start, spin, mark_end))


class CGate:
    """The caller's side of ``hold_gil_in_c``: three shared bytes (started, finished, hold)."""

    def __init__(self, directory):
        import mmap

        self.path = os.path.join(str(directory), "c-gate")
        with open(self.path, "wb") as file:
            file.write(b"\0\0\1")
        with open(self.path, "r+b") as file:
            self._shared = mmap.mmap(file.fileno(), 3)

    @property
    def started(self):
        return self._shared[0] == 1

    @property
    def finished(self):
        return self._shared[1] == 1

    def wait_started(self, timeout=60.0):
        from conftest import eventually  # the caller's side only: workers import this module too

        eventually(lambda: self.started, timeout, "the C call never started")

    def release(self):
        """Lets the C call end."""
        self._shared[2] = 0

    def release_after(self, seconds):
        """Guards against hangs: lets the C call end after ``seconds`` whatever happens.
        Returns the timer; ``cancel()`` and ``join()`` it when done."""
        timer = threading.Timer(seconds, self.release)
        timer.daemon = True
        timer.start()
        return timer


def wait_until_waiting(condition, timeout=60.0):
    """Returns once some thread waits on ``condition`` (a ``threading.Condition``, or an
    Event's or Future's): it is in the condition's list from just before it blocks."""
    from conftest import eventually  # the caller's side only: workers import this module too

    eventually(lambda: condition._waiters, timeout, "nobody waited")


def signal_when_waiting(condition, times=1, timeout=60.0, on_signal=None):
    """Sends SIGINT to this process ``times`` times, each once some thread has begun a new wait
    on ``condition`` (a ``threading.Condition``, or an Event's or Future's): a handshake that
    needs no frames (``sys._current_frames()`` would reach into worker interpreters' frames).

    A waiter is in the condition's list from just before it blocks until it wakes, so a
    SIGINT sent then raises KeyboardInterrupt inside that wait, or, where it lands just
    before the wait blocks, once the wait ends (CPython does not look for signals between its
    last bytecode and the block): the waits that must see it poll. ``on_signal(i)`` runs after
    each signal.
    """
    import signal

    from conftest import eventually  # the caller's side only: workers import this module too

    seen = []

    def fresh():
        return [w for w in list(condition._waiters) if not any(w is s for s in seen)]

    for i in range(times):
        seen.extend(eventually(fresh, timeout, "nobody waited"))
        os.kill(os.getpid(), signal.SIGINT)
        if on_signal is not None:
            on_signal(i)


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


def rendezvous(arrived, go):
    """An initializer that says it started, then waits for the caller's go."""
    arrived.put(1)
    go.get()


def nested_pool(n):
    """A pool created inside a task: the (interpreter id, result) of each of its ``n`` tasks,
    and this worker's own id."""
    import subinterpreter_parallelism as sp

    with sp.InterpreterPoolExecutor(2) as pool:
        inner = list(pool.map(identify_and_square, range(n)))
    return sp._versions.current_interpreter_id(), inner


def nested_parallel(n):
    """``parallel()`` inside a task (the worker's own process-wide pool)."""
    import subinterpreter_parallelism as sp

    return sp.parallel(*[["sp_tasks", "identify_and_square", (i,)] for i in range(n)])


def identify_and_square(x):
    import subinterpreter_parallelism as sp

    return sp._versions.current_interpreter_id(), x * x


def report_then_return(report, value):
    """Says it started, then returns ``value`` at once: a cancel sent on "started" races the
    task's completion."""
    report.put("started")
    return value


def add_own_paths(front, back):
    """An initializer that puts entries of the worker's own on its sys.path."""
    sys.path.insert(0, front)
    sys.path.append(back)


def touch(path):
    """Creates the file ``path`` (a flag that a later interpreter's start-up reads)."""
    open(path, "w").close()
    return path


def init_fails_if_flagged(flag, value):
    """An initializer that fails once the file ``flag`` exists, else records ``value``."""
    if os.path.exists(flag):
        raise ValueError(f"initializer refused: {flag} exists")
    record_init(value)


def on_sys_path(entry):
    return entry in sys.path
