"""Task functions run by every competitor of the benchmarks and of the demo.

They live in an importable module (not ``__main__``) so that process pools, the stdlib
interpreter pool and this project can all pickle them by reference. Keep the imports to
``os``, ``time`` and ``_thread`` (loaded in every new interpreter, or built in), and import
nothing of ``subinterpreter_parallelism``: this module is imported in every worker, process or
interpreter, and what it imports counts in the start-up times and the memory per worker (the
package would load its native extension into every spawned process). The seed kept its
workload in a tiny module of its own (``benchmarking/``) for the same reason.

Three CPU-bound loops, each a different kind of work for the interpreter:

- :func:`py_factorial`: the seed's workload, small-int arithmetic;
- :func:`text_counts`: str formatting, splitting and dict updates;
- :func:`churn`: lists and dicts built and dropped (the allocator and the gc at work).

:func:`cpu_timed` runs one of them and returns the CPU time its thread spent on it
(``time.thread_time()``): a figure that the other programs of a busy machine cannot inflate.
"""

from __future__ import annotations

import _thread
import os
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a third of this module's import)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "LOOPS",
    "MODULUS",
    "checksum",
    "churn",
    "cpu_timed",
    "echo",
    "hold",
    "make_payload",
    "py_factorial",
    "queue_echo",
    "ready",
    "spin",
    "start_worker",
    "text_counts",
    "tiny",
]

MODULUS = 1_000_000_007


def py_factorial(n: int) -> int:
    """The seed's workload: ``n!`` modulo 1_000_000_007, in pure Python."""
    k = 1
    for i in range(n, 1, -1):
        k *= i
        k %= MODULUS
    return k


def text_counts(n: int) -> int:
    """A str/dict-heavy loop: ``n`` short lines formatted, split into words and counted in a
    dict; returns a checksum of the counts."""
    counts: dict[str, int] = {}
    for i in range(n):
        line = f"item-{i % 97} group-{i % 13} {'odd' if i & 1 else 'even'}"
        for word in line.split():
            counts[word] = counts.get(word, 0) + 1
    return sum(len(word) * count for word, count in counts.items()) % MODULUS


def churn(n: int) -> int:
    """An allocation-heavy loop: ``n`` rounds of a small list and a small dict built, read and
    dropped, with a few of them kept a while so that the cyclic gc has live containers to scan;
    returns a checksum."""
    kept: list[dict[int, list[int]]] = []
    total = 0
    for i in range(n):
        row = [i, i + 1, i + 2, i + 3]
        record = {0: row, 1: row[1:], 2: [i]}
        total += len(record[1]) + row[-1]
        if i % 64 == 0:
            kept.append(record)
            if len(kept) > 256:
                kept.clear()
    return total % MODULUS


#: The CPU-bound loops by name: :func:`cpu_timed` takes one of these names.
LOOPS = {"int loop": py_factorial, "str/dict loop": text_counts, "allocation loop": churn}


def cpu_timed(workload: str, n: int, gc_off: bool = False) -> tuple[int, float, int, int, float]:
    """Runs ``LOOPS[workload](n)``; returns its result, the CPU seconds the calling thread
    spent in it (``time.thread_time()``: this thread only, not its waits), and where and when
    it ran: the process id, the thread's native id and the moment it began
    (``time.perf_counter()``, a clock every process of the machine shares), from which a pool's
    start-up can be read. ``gc_off`` runs the loop with the cyclic gc disabled (an experiment of
    the CPU-per-task table)."""
    fn = LOOPS[workload]
    began = time.perf_counter()
    if gc_off:
        import gc  # built in: no import cost worth measuring

        gc.disable()
    start = time.thread_time()
    result = fn(n)
    cpu = time.thread_time() - start
    if gc_off:
        gc.enable()
    return result, cpu, os.getpid(), _thread.get_native_id(), began


def checksum(data: bytes) -> int:
    """A data-heavy task: a pure-Python pass over every 64th byte of ``data`` (bytes or a
    memoryview), plus its length: little work per byte, so getting ``data`` to the worker counts."""
    total = len(data)
    for i in range(0, len(data), 64):
        total += data[i]
    return total


def ready(hold_s: float) -> tuple[int, int, float]:
    """Marks a worker as started: returns (process id, the thread's native id, the moment it
    began as ``time.perf_counter()``, a clock that every process of the machine shares), after
    holding the worker ``hold_s`` so that each worker of a pool gets one of a batch of these.
    The native id is the one ``os.sched_setaffinity`` takes to pin that thread."""
    began = time.perf_counter()
    if hold_s > 0:
        time.sleep(hold_s)
    return os.getpid(), _thread.get_native_id(), began


def tiny(x: int) -> int:
    """A task that does almost nothing, so that only the cost of shipping it is measured."""
    return x + 1


def echo(data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """Returns its argument: a round trip of ``data`` to the worker and back."""
    return data


def as_kind(data: bytes, kind: str) -> bytes | bytearray | memoryview:
    """``data`` as a ``bytes``, a ``bytearray`` or a read-only ``memoryview``."""
    kinds: dict[str, bytes | bytearray | memoryview] = {
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
    }
    return kinds[kind]


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
    """Holds the worker ``seconds``; returns the process id.

    Submitted once per worker at the same time, it makes every worker start and import this
    module (which holds the CPU-bound tasks too), so no timed run pays for that.
    """
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
    mark_start: Any = filter(None, map(shared.__setitem__, [0], [1]))  # yields nothing: only sets byte 0
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
