"""Environment writes in workers and the fallback's process starts take turns (issue 22, item 7).

multiprocessing starts a "spawn" process with vfork and exec, and the kernel reads the parent's
live C environment for it while the parent's other threads go on. One that removes a variable
meanwhile makes exec fail with EFAULT, and multiprocessing never reads that error: the child
exits with status 255 and says nothing, the parent gets ``BrokenPipeError`` or
``BrokenProcessPool``, or "resource_tracker: process died unexpectedly"
(EnvironmentLock.swift). numpy's import adds and removes ``OPENBLAS_MAIN_FREE``, and a worker
interpreter, which numpy refuses, runs that import again in every task that needs numpy: the
very tasks that ``fallback="process"`` starts processes for.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

import subinterpreter_parallelism as sp
from conftest import importable, run_python

# A worker's refused numpy import still dlopens numpy's extension, whose BLAS starts its native
# threads in this process; importing numpy here first keeps them out of the leftover check.
try:
    import numpy
except ImportError:
    numpy = None

HELPERS = '''
import os


def churn_environment(started, stop):
    """What a refused numpy import does to the environment (add a variable, remove it), for 64
    variables at a time, again and again until told to stop."""
    names = [f"SP_TEST_CHURN_{os.getpid()}_{i}" for i in range(64)]
    started.put(os.getpid())
    rounds = 0
    while stop.empty():
        for name in names:
            os.putenv(name, "1")
        for name in names:
            os.unsetenv(name)
        rounds += 1
    return rounds


def numpy_double(x):
    import numpy
    return int(numpy.int64(x) * 2)


def environment_writes():
    """The worker's os.putenv/os.unsetenv (which os.environ writes call): what they wrap, what
    they raise for bad names, and that they work."""
    wrapped = [getattr(function, "__wrapped__", None) for function in (os.putenv, os.unsetenv)]
    names = [function.__name__ for function in (os.putenv, os.unsetenv)]
    errors = []
    for call in (
        lambda: os.putenv("SP=TEST", "1"),
        lambda: os.putenv(1, "1"),
        lambda: os.unsetenv(""),
        lambda: os.unsetenv(key="SP_TEST"),
    ):
        try:
            call()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    os.environ["SP_TEST_WRITE"] = "written"
    del os.environ["SP_TEST_WRITE"]
    os.putenv("SP_TEST_PUT", "put")
    os.unsetenv("SP_TEST_PUT")
    return [repr(function) for function in wrapped], names, errors
'''


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    with importable(tmp_path_factory.mktemp("environment_lock"), {"spe_helpers.py": HELPERS}):
        import spe_helpers

        yield spe_helpers


def test_workers_change_the_environment_under_the_lock(helpers):
    """Workers' ``os.putenv``/``os.unsetenv`` take the lock and otherwise stay what they were:
    the same names, the same errors for bad arguments."""
    with sp.InterpreterPoolExecutor(1) as pool:
        wrapped, names, errors = pool.submit(helpers.environment_writes).result(timeout=60)
    assert wrapped == [repr(os.putenv), repr(os.unsetenv)]
    assert names == ["putenv", "unsetenv"]
    expected = []
    for call in (
        lambda: os.putenv("SP=TEST", "1"),
        lambda: os.putenv(1, "1"),
        lambda: os.unsetenv(""),
        lambda: os.unsetenv(key="SP_TEST"),
    ):
        with pytest.raises(Exception) as info:
            call()
        expected.append(f"{type(info.value).__name__}: {info.value}")
    assert errors == expected


def test_with_environment_lock_calls_and_checks_its_arguments():
    assert sp._native.with_environment_lock(divmod, 7, 2) == (3, 1)
    assert sp._native.with_environment_lock(dict, a=1) == {"a": 1}
    # Recursive: a call under the lock may take it again.
    assert sp._native.with_environment_lock(sp._native.with_environment_lock, abs, -3) == 3
    with pytest.raises(TypeError, match="needs the function to call"):
        sp._native.with_environment_lock()
    with pytest.raises(ZeroDivisionError):
        sp._native.with_environment_lock(divmod, 1, 0)
    # Released after the error too: another thread takes it (this one would, being recursive).
    with ThreadPoolExecutor(1) as other:
        assert other.submit(sp._native.with_environment_lock, abs, -1).result(timeout=60) == 1


FORK_WHILE_HELD = """
import os, signal, threading, warnings
from subinterpreter_parallelism import _native

held, release = threading.Event(), threading.Event()


def hold():
    held.set()
    release.wait()


holder = threading.Thread(target=_native.with_environment_lock, args=(hold,))
holder.start()
held.wait()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # forking while a thread runs
    pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a child stuck on the lock dies of SIGALRM instead of hanging
    _native.with_environment_lock(os.putenv, "SP_TEST_FORKED", "1")
    os._exit(0)
release.set()
holder.join()
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.mark.timeout(120)
def test_a_child_forked_while_another_thread_holds_the_lock_can_take_it():
    """The child has only the forking thread: the lock that another thread held is free there."""
    done = run_python(FORK_WHILE_HELD, timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0"], done.stderr[-3000:]


CREATE_WHILE_CHURNING = """
import sys
import subinterpreter_parallelism as sp
import spe_helpers

created = int(sys.argv[1])
started, stop = sp.Queue(), sp.Queue()
# max_tasks_per_worker=1: each task of the second worker ends its interpreter, and the next
# task's starts while the first worker changes the environment.
with sp.InterpreterPoolExecutor(2, max_tasks_per_worker=1) as pool:
    churner = pool.submit(spe_helpers.churn_environment, started, stop)
    started.get(timeout=60)
    for i in range(created):
        assert pool.submit(abs, -i).result(timeout=60) == i
    stop.put(None)
    print(churner.result(timeout=60) > 0)
"""


def test_interpreters_start_while_workers_change_the_environment(helpers):
    """A new interpreter's ``posix`` module copies the C environment as it starts, and a
    worker's ``os.putenv``/``os.unsetenv`` meanwhile moved or freed the entries it read: the
    process died of a segfault in ``_install_external_importers`` (once in CI, 3.13.0, in the
    slow test below). Interpreters are now created under the environment lock."""
    done = run_python(
        CREATE_WHILE_CHURNING,
        timeout=280,
        argv=["200"],
        env={"PYTHONPATH": os.path.dirname(helpers.__file__)},
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    assert done.stdout.split() == ["True"], done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fallback_processes_start_while_workers_change_the_environment(helpers):
    """Without the lock, 9 of the 30 rounds broke here on Python 3.13.0 and on 3.14 alike (load
    13 on 2 cores): a process of the fallback died at exec, and its task failed with
    BrokenPipeError or BrokenProcessPool."""
    if numpy is None:
        pytest.skip("needs numpy (the test extra)")
    rounds, tasks = 30, 8
    failures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sp.ProcessFallbackWarning)
        for round_number in range(rounds):
            started, stop = sp.Queue(), sp.Queue()
            with sp.InterpreterPoolExecutor(4, fallback="process") as pool:
                churners = [pool.submit(helpers.churn_environment, started, stop) for _ in range(2)]
                for _ in churners:
                    started.get(timeout=60)  # both change the environment from now on
                futures = [pool.submit(helpers.numpy_double, i) for i in range(tasks)]
                for i, future in enumerate(futures):
                    try:
                        assert future.result(timeout=300) == 2 * i
                    except Exception as exc:
                        notes = "; ".join(getattr(exc, "__notes__", []))
                        failures.append(f"round {round_number}, task {i}: {exc!r} {notes}"[:600])
                        break
                stop.put(None)
                assert all(churner.result(timeout=60) > 0 for churner in churners)
    assert not failures, f"{len(failures)} of {rounds} rounds failed:\n" + "\n".join(failures)
