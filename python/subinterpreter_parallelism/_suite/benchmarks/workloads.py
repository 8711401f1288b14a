"""Task functions run by every competitor.

They live in an importable module (not ``__main__``) so that process pools, the stdlib
interpreter pool and this project can all pickle them by reference. Keep the imports to
``os`` and ``time``: this module is imported in every worker, process or interpreter, and
what it imports counts in the start-up times. The CPU-bound task is the seed's
``subinterpreter_parallelism.demo.py_factorial`` itself.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a third of this module's import)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["echo", "hold", "make_payload", "queue_echo", "spin", "start_worker", "tiny"]


def tiny(x: int) -> int:
    """A task that does almost nothing, so that only the cost of shipping it is measured."""
    return x + 1


def echo(data: bytes) -> bytes:
    """Returns its argument: a round trip of ``data`` to the worker and back."""
    return data


def as_kind(data: bytes, kind: str) -> bytes | bytearray | memoryview:
    """``data`` as a ``bytes``, a ``bytearray`` or a read-only ``memoryview``."""
    return {"bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data)}[kind]


def two_copies(data: bytes | bytearray | memoryview) -> bytes | bytearray:
    """Two copies of ``data``, each into a new object: the floor of a round trip that copies
    once each way (what "serial" measures in the data workload)."""
    first = bytearray(data)
    return bytes(first) if type(data) is not bytearray else bytearray(bytes(first))


def make_payload(size: int) -> bytes:
    """``size`` bytes with every byte value (NULs included), cheap to build."""
    block = bytes(range(256))
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]


def hold(seconds: float) -> int:
    """Sleeps, then returns the worker's process id; keeps a worker busy while others start."""
    time.sleep(seconds)
    return os.getpid()


def start_worker(seconds: float) -> int:
    """Imports the factorial's module and holds the worker ``seconds``; returns the process id.

    Submitted once per worker at the same time, it makes every worker start and import what
    the CPU-bound scenarios need, so no timed run pays for that.
    """
    import subinterpreter_parallelism.demo  # noqa: F401

    return hold(seconds)


def spin(seconds: float) -> int:
    """Pure-Python busy loop for ``seconds`` (no C call that could delay an interruption)."""
    deadline = time.perf_counter() + seconds
    rounds = 0
    while time.perf_counter() < deadline:
        rounds += 1
    return rounds


def hold_gil_in_c(path: str) -> int:
    """One C call that holds the worker's GIL until byte 2 of the file at ``path`` becomes 0,
    like ``sum(range(10**9))`` but ended by the caller: ``sum`` over C iterators, no Python code
    in between, so an interruption reaches the task only once the call returns. Byte 0 is set
    from inside the call when it starts (the caller waits for it without the worker's GIL)."""
    import itertools
    import mmap

    with open(path, "r+b") as file:
        shared = mmap.mmap(file.fileno(), 3)
    mark_start = filter(None, map(shared.__setitem__, [0], [1]))
    spin_until_released = itertools.takewhile(bool, map(shared.__getitem__, itertools.repeat(2)))
    return sum(itertools.chain(mark_start, spin_until_released))


def queue_echo(inbox: Any, outbox: Any, count: int) -> int:
    """Takes ``count`` items from ``inbox``; for each, puts on ``outbox`` the moment it arrived.

    The caller puts ``time.perf_counter()``-stamped items; ``perf_counter`` is the system's
    monotonic clock, shared by every thread, interpreter and process of the machine, so the
    caller can compute the one-way hand-off latency from the reply.
    """
    for _ in range(count):
        inbox.get()
        outbox.put(time.perf_counter())
    return count
