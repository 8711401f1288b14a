"""Shared fixtures: every test must leave no worker threads and no sub-interpreters behind."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # so workers (which copy sys.path) import the helper modules


def interpreter_count() -> int:
    """Interpreters alive in this process, the main one included."""
    try:
        import _interpreters  # 3.13

        return len(_interpreters.list_all())
    except ImportError:
        import _xxsubinterpreters  # 3.12

        return len(_xxsubinterpreters.list_all())


def os_thread_count() -> int:
    """Native threads of this process (worker threads are not in threading.enumerate())."""
    return len(os.listdir("/proc/self/task"))


def reset_shared_pool() -> None:
    """Shuts down the process-wide pool (``get_reusable_executor()``, also behind ``parallel()``)."""
    from subinterpreter_parallelism import reusable

    reusable._shutdown_current(wait=True)


def eventually[T](
    condition: Callable[[], T], timeout: float = 60.0, message: str | Callable[[], object] = ""
) -> T:
    """Polls ``condition()`` until it returns something true, and returns that.

    For states that nothing signals (a task's phase, a counter, an OS thread leaving /proc, an
    object being collected): everything that can be awaited (a queue, an event, a future) is
    awaited instead. ``timeout`` only guards against a hang: on a loaded machine the wait just
    takes longer. Then it fails with ``message`` (a str, or a callable for a text made at that
    moment: a table of counters, say). The polls start at 1 ms and back off to 50 ms.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"not within {timeout:g} s: {text or 'the condition never held'}")
        time.sleep(pause)
        pause = min(2 * pause, 0.05)


@pytest.fixture(autouse=True)
def no_leftovers():
    """Fails a test that leaves pool threads or sub-interpreters alive after it ends."""
    threads_before = set(threading.enumerate())
    os_threads_before = os_thread_count()
    interpreters_before = interpreter_count()
    yield
    reset_shared_pool()
    left: list[str] = []

    def clean() -> bool:
        left.clear()
        extra = [
            t for t in threading.enumerate() if t not in threads_before and t.is_alive() and not t.daemon
        ]
        if extra:
            left.append(f"threads left behind: {extra}")
        interpreters = interpreter_count()
        if interpreters > interpreters_before:
            left.append(f"sub-interpreters left behind: {interpreters} alive, {interpreters_before} before")
        os_threads = os_thread_count()
        if os_threads > os_threads_before:
            left.append(f"native threads left behind: {os_threads} alive, {os_threads_before} before")
        return not left

    # Joined threads may take a moment to leave /proc, an ending interpreter to leave the list.
    eventually(clean, timeout=10, message=lambda: "; ".join(left))


def run_python(
    code: str,
    *args: str,
    timeout: float = 60,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    argv: tuple[str, ...] | list[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Runs ``python *args -c code *argv`` in a fresh process with this interpreter
    (``python *args`` when ``code`` is empty, e.g. a script path or ``-i``)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(TESTS), full_env.get("PYTHONPATH", "")])
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, *args, "-c", textwrap.dedent(code), *argv]
        if code
        else [sys.executable, *args, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        env=full_env,
        cwd=cwd,
    )


def run_script(path: Path, source: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Writes ``source`` to ``path`` and runs it as a script (``python *args path``) in a fresh
    process, as :func:`run_python` does."""
    path.write_text(source)
    return run_python("", *args, str(path), timeout=timeout)


@contextlib.contextmanager
def importable(folder: Path, files: dict[str, str]) -> Iterator[Path]:
    """Writes ``files`` (path relative to ``folder`` -> source) and puts ``folder`` first on
    ``sys.path`` for the block, so this process and its workers import them."""
    for path, source in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(source)
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
