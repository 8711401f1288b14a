"""Worker side of the shared-table workload (``shared_table``): what each worker of every
competitor runs, whatever form its table takes.

Each worker reads its table from the module global ``TABLE``: the caller's dict inherited by a
fork, a dict the worker loaded itself (``load``), a ``SharedMap`` handle or a ``Manager`` dict
proxy (``keep``). Light imports only: this module is imported in every worker.
"""

from __future__ import annotations

import os
import time
from _thread import get_ident

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: This worker's table.
TABLE: Any = None


def make_table(entries: int) -> dict[str, tuple[int, float, str]]:
    """The benchmark's table: ``entries`` keys ``"k<i>"``, each mapped to ``(i, i / 2, "v<i>")``."""
    return {f"k{i}": (i, i * 0.5, f"v{i}") for i in range(entries)}


def make_small_values(entries: int) -> dict[str, int]:
    """The same keys, each mapped to a small int (for the one-lookup latency)."""
    return {f"k{i}": i for i in range(entries)}


def keep(table: Any) -> None:
    """Initializer: makes ``table`` (a handle, a proxy) this worker's table."""
    global TABLE
    TABLE = table


def load(path: str) -> None:
    """Initializer: loads this worker's own copy of the table from the pickle at ``path``."""
    import pickle

    with open(path, "rb") as file:
        keep(pickle.load(file))


def random_keys(entries: int, count: int, seed: int) -> list[str]:
    """``count`` keys of the table drawn at random (the same for the same seed)."""
    import random

    draw = random.Random(seed).randrange
    return [f"k{draw(entries)}" for _ in range(count)]


def first(key: str) -> Any:
    """The first task of a new pool: one lookup."""
    return TABLE[key]


def meet(folder: str, parties: int, timeout: float = 300.0) -> None:
    """Waits until ``parties`` workers have called this with ``folder``: a barrier made of files,
    so that it works across processes and interpreters alike. A worker blocked here cannot take
    a second task, so ``parties`` tasks submitted together run on ``parties`` different workers."""
    name = os.path.join(folder, f"{os.getpid()}-{get_ident()}")
    os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o600))
    deadline = time.monotonic() + timeout
    while len(os.listdir(folder)) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(os.listdir(folder))} of {parties} workers met")
        time.sleep(0.001)


def lookups(
    entries: int, count: int, seed: int, folder: str | None = None, parties: int = 1
) -> tuple[float, tuple[int, int]]:
    """Looks up ``count`` random keys of this worker's table; returns the seconds the lookups
    took (the keys are drawn before the clock starts) and which worker ran it. With ``folder``,
    it first waits for ``parties`` workers (``meet``), so that all of them read at once."""
    keys = random_keys(entries, count, seed)
    if folder is not None:
        meet(folder, parties)
    table = TABLE
    if table is None:  # a worker without the table: what a worker costs by itself
        return 0.0, (os.getpid(), get_ident())
    start = time.perf_counter()
    for key in keys:
        table[key]
    elapsed = time.perf_counter() - start
    index = int(keys[0][1:])
    value = table[keys[0]]
    if value != (index, index * 0.5, f"v{index}") and value != index:
        raise AssertionError(f"{keys[0]}: read {value!r}")
    return elapsed, (os.getpid(), get_ident())
