"""The seed's design, re-implemented in Python for comparison.

The seed (a C++ proof of concept) ran each call on a **new thread** that created a **new
own-GIL interpreter**, imported the module by name, unpickled the arguments, called the
function, pickled the result and handed it back; the interpreter was destroyed after every
call. No pool, no reuse. This module does the same with CPython's private interpreter
modules (``_interpreters``/``_interpqueues`` on 3.13+, ``_xxsubinterpreters``/
``_xxinterpchannels`` on 3.12), behind a ``concurrent.futures.Executor`` so that the
benchmarks can drive it like the other competitors.

Differences from the seed, on purpose: pickle's default protocol instead of protocol 0 (the
design is measured, not the seed's encoding), and errors come back as exceptions.
"""

from __future__ import annotations

import pickle
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["SeedDesignExecutor", "unavailable_reason"]

# Runs inside the new interpreter. PAYLOAD, MODULE, NAME and CHANNEL are bound by the caller.
_SCRIPT = """
import importlib, pickle
def _seed_call():
    try:
        args, kwargs = pickle.loads(PAYLOAD)
        target = importlib.import_module(MODULE)
        for part in NAME.split("."):
            target = getattr(target, part)
        return pickle.dumps((True, target(*args, **kwargs)), pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:
        try:
            return pickle.dumps((False, exc), pickle.HIGHEST_PROTOCOL)
        except Exception:
            return pickle.dumps((False, RuntimeError(repr(exc))))
{send}
"""

# CPython's private queue module changed its signatures in every release: 3.13.0 took
# (qid, obj, fmt), later 3.13s (qid, obj, fmt, unboundop), 3.14+ (qid, obj, unboundop).
# 2 is the "unbound item is an error" operation.
_SEND_313 = """
import _interpqueues
try:
    _interpqueues.put(CHANNEL, _seed_call(), 0, 2)
except TypeError:
    _interpqueues.put(CHANNEL, _seed_call(), 0)
"""

_SEND_314 = """
import _interpqueues
_interpqueues.put(CHANNEL, _seed_call(), 2)
"""

_SEND_312 = """
import _xxinterpchannels
_xxinterpchannels.send(CHANNEL, _seed_call())
"""


def unavailable_reason() -> str | None:
    """Why the seed design cannot run on this Python, or None when it can."""
    try:
        if sys.version_info >= (3, 13):
            import _interpqueues  # noqa: F401
            import _interpreters  # noqa: F401
        else:
            import _xxinterpchannels  # noqa: F401
            import _xxsubinterpreters  # noqa: F401
    except ImportError as exc:
        return f"CPython's private interpreter modules are missing ({exc})"
    return None


def _run_in_new_interpreter(module: str, name: str, payload: bytes) -> bytes:
    """Creates an own-GIL interpreter, runs one call in it, destroys it; returns the pickled outcome."""
    if sys.version_info >= (3, 13):
        import _interpqueues
        import _interpreters

        if sys.version_info >= (3, 14):  # create(maxsize, unboundop, fallback)
            channel, send = _interpqueues.create(0, 2, -1), _SEND_314
        else:
            try:  # create(maxsize, fmt, unboundop)
                channel = _interpqueues.create(0, 0, 2)
            except TypeError:
                channel = _interpqueues.create(0, 0)  # type: ignore[call-arg]  # 3.13.0's signature
            send = _SEND_313
        interp = _interpreters.create()  # the "isolated" config: own GIL
        try:
            shared = {"PAYLOAD": payload, "MODULE": module, "NAME": name, "CHANNEL": channel}
            failure = _interpreters.exec(interp, _SCRIPT.format(send=send), shared)
            if failure is not None:
                raise RuntimeError(f"the seed-design interpreter failed: {failure.formatted}")
            return _interpqueues.get(channel)[0]
        finally:
            _interpreters.destroy(interp)
            _interpqueues.destroy(channel)
    import _xxinterpchannels
    import _xxsubinterpreters

    channel = _xxinterpchannels.create()
    interp = _xxsubinterpreters.create()  # isolated by default on 3.12: own GIL
    try:
        shared = {"PAYLOAD": payload, "MODULE": module, "NAME": name, "CHANNEL": channel}
        _xxsubinterpreters.run_string(interp, _SCRIPT.format(send=_SEND_312), shared)
        received: bytes = _xxinterpchannels.recv(channel)
        return received
    finally:
        _xxsubinterpreters.destroy(interp)
        _xxinterpchannels.destroy(channel)


class SeedDesignExecutor(Executor):
    """One new thread and one new own-GIL interpreter per call, as in the seed.

    Args:
        max_workers: at most this many calls at once; None (the seed's behaviour) starts
            every call at once.

    Only module-level functions can be called (the seed took ``["module", "function", args]``).
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self._slots = threading.BoundedSemaphore(max_workers) if max_workers else None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Starts ``fn(*args, **kwargs)`` on a new thread in a new interpreter; returns its Future."""
        module, name = fn.__module__, fn.__qualname__
        if module == "__main__" or "<" in name:
            raise TypeError(f"the seed design calls module-level functions by name, not {fn!r}")
        payload = pickle.dumps((args, kwargs), pickle.HIGHEST_PROTOCOL)
        future: Future[Any] = Future()
        thread = threading.Thread(
            target=self._run, args=(future, module, name, payload), name="seed-design-call"
        )
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return future

    def _run(self, future: Future[Any], module: str, name: str, payload: bytes) -> None:
        if self._slots is not None:
            self._slots.acquire()
        try:
            if not future.set_running_or_notify_cancel():
                return
            try:
                ok, value = pickle.loads(_run_in_new_interpreter(module, name, payload))
            except BaseException as exc:
                future.set_exception(exc)
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        finally:
            if self._slots is not None:
                self._slots.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Waits for the calls still running (there is nothing else to stop)."""
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
