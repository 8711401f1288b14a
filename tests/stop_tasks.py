"""Tasks for the tests of stopping: waits on nested pools, ``with`` blocks in tasks, exit
(issue 22).

Where a task must see its interruption in an ``except`` clause, it waits in ``Queue.get``,
which raises ``TaskInterrupted`` as an ordinary exception: one delivered asynchronously into a
busy loop can escape the ``try`` it was raised in (python/cpython#139622, on 3.12 and 3.13).
"""

from __future__ import annotations


def inner_wait(report, gate):
    """Says it started, then waits for an item of ``gate`` (which only a failed test puts);
    reports its interruption."""
    import subinterpreter_parallelism as sp

    try:
        report.put("inner started")
        return gate.get()
    except sp.TaskInterrupted:
        report.put("inner interrupted")
        raise


def wait_on_nested(report, gate, how):
    """Waits, in one of the library's waits (``how``), for a task of a pool of its own (or of
    ``parallel()``); reports when the wait is interrupted."""
    from concurrent import futures as cf

    import subinterpreter_parallelism as sp

    try:
        if how == "parallel":
            sp.parallel(["stop_tasks", "inner_wait", (report, gate)])
            return "returned"
        with sp.InterpreterPoolExecutor(1) as inner:
            if how in ("map", "map unordered"):
                list(inner.map(inner_wait, [report], [gate], ordered=how == "map"))
            else:
                future = inner.submit(inner_wait, report, gate)
                if how == "result":
                    future.result()
                elif how == "exception":
                    future.exception()
                elif how == "wait":
                    cf.wait([future])
                elif how == "as_completed":
                    next(cf.as_completed([future]))
                else:
                    raise ValueError(how)
    except sp.TaskInterrupted:
        report.put("outer interrupted")
        raise
    return "returned"


def nested_with_block(report, gate):
    """A task whose body of ``with pool:`` waits until the task is interrupted, while the inner
    pool's task waits too."""
    import subinterpreter_parallelism as sp

    try:
        with sp.InterpreterPoolExecutor(1) as inner:
            inner.submit(inner_wait, report, gate)
            sp.Queue().get()  # never filled
    except sp.TaskInterrupted:
        report.put("outer interrupted")
        raise


def exec_when_interrupted(report):
    """Waits until interrupted; then runs ``exec`` on a string (as ``namedtuple`` does), which
    resets CPython's process-wide "ended by Ctrl-C" flag, before it ends."""
    import subinterpreter_parallelism as sp

    try:
        report.put("started")
        sp.Queue().get()  # never filled
    except sp.TaskInterrupted:
        exec("pass")
        raise


def ctrl_c_when(ready):
    """From a daemon thread: Ctrl-C in the main thread (as SIGINT would) once ``ready()``
    returns (it blocks until the moment has come)."""
    import _thread
    import threading

    def run():
        ready()
        _thread.interrupt_main()

    threading.Thread(target=run, daemon=True).start()


def lose_an_interruption():
    """Raises TaskInterrupted inside a weakref callback, where CPython can only report it as
    unraisable; returns "lost" if the task goes on after it."""
    import weakref

    import subinterpreter_parallelism as sp

    class Thing:
        pass

    def interrupted_here(reference):
        raise sp.TaskInterrupted  # where an interruption delivered inside the callback would

    thing = Thing()
    reference = weakref.ref(thing, interrupted_here)
    del thing
    for _ in range(1000):
        pass
    del reference
    return "lost"
