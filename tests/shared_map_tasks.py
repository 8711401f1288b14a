"""Module-level functions for the SharedMap tests: what worker interpreters (and fallback
processes) run against a map they were sent."""

from __future__ import annotations

import math
import os
import random
import sys
from dataclasses import dataclass

import subinterpreter_parallelism as sp

TABLE: sp.SharedMap | None = None  # set by keep() or by an initializer


@dataclass(frozen=True)
class Point:
    """A value that only pickle can carry (a class of a module the worker imports)."""

    x: int
    y: float


def same(a: object, b: object) -> bool:
    """Equal and of exactly the same type, all the way down (bool is not int, -0.0 keeps its
    sign, NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)  # type: ignore[arg-type]
        return a == b and math.copysign(1, a) == math.copysign(1, b)  # type: ignore[arg-type]
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)  # type: ignore[attr-defined]
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    if hasattr(a, "items") and hasattr(a, "keys"):  # dict, frozendict
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)  # type: ignore[attr-defined,index]
    return a == b


def mismatches(table: sp.SharedMap, original: dict) -> list[str]:
    """Where ``table``, read here, differs from ``original`` (which came pickled): every lookup,
    and iteration in insertion order with each key's own type."""
    found = []
    if len(table) != len(original):
        found.append(f"len {len(table)} != {len(original)}")
    for key, value in original.items():
        if key not in table:
            found.append(f"{key!r} missing")
        elif not same(table[key], value) or not same(table.get(key), value):
            found.append(f"{key!r}: {table[key]!r} != {value!r}")
    if not same(list(table), list(original)):
        found.append("iteration order or key types differ")
    if not same(list(table.items()), list(original.items())):
        found.append("items differ")
    if not same(list(table.values()), list(original.values())):
        found.append("values differ")
    return found


def read(table: sp.SharedMap, keys: list) -> list:
    return [table[key] for key in keys]


def kind_and_length(table: sp.SharedMap) -> tuple[str, int]:
    return type(table).__qualname__, len(table)


def give_back(table: sp.SharedMap) -> sp.SharedMap:
    return table


def make(entries: dict) -> sp.SharedMap:
    """A map built inside a worker, returned to the caller."""
    return sp.SharedMap(entries)


def keep(table: sp.SharedMap) -> int:
    """Stores the map in this worker's module global (a handle that outlives the task)."""
    global TABLE
    TABLE = table
    return len(table)


def read_kept(keys: list) -> list:
    assert TABLE is not None
    return [TABLE[key] for key in keys]


def drop_kept() -> None:
    global TABLE
    TABLE = None


def live() -> tuple[int, int]:
    """SharedMaps alive in this process (every interpreter counts the same maps)."""
    return sp.SharedMap._live()


def try_write(table: sp.SharedMap) -> str:
    try:
        table["new"] = 1
    except TypeError as exc:
        return str(exc)
    return "written"


def from_queue(queue: sp.Queue) -> tuple[int, object]:
    table = queue.get(timeout=60)
    return len(table), table["a"]


def reads_while_others_churn(table: sp.SharedMap, seed: int, rounds: int, size: int) -> int:
    """Reads random entries of ``table`` (built as ``{f"k{i}": (i, i / 2, str(i))}``) and, in
    between, builds and drops small maps of its own. Returns the reads, all checked."""
    rng = random.Random(seed)
    reads = 0
    for round_ in range(rounds):
        for _ in range(200):
            i = rng.randrange(size)
            if table[f"k{i}"] != (i, i / 2, str(i)):
                raise AssertionError(f"k{i} read {table[f'k{i}']!r}")
            reads += 1
        own = sp.SharedMap({(seed, round_, j): [j] for j in range(20)})
        if own[(seed, round_, 7)] != [7] or len(own) != 20:
            raise AssertionError("a worker's own map reads wrong")
        del own
    return reads


def process_side(table: sp.SharedMap, key: str) -> tuple[int, str | None, object]:
    """In a fallback process: numpy makes the interpreter refuse, the map arrives as a file."""
    import numpy  # noqa: F401  (refuses own-GIL interpreters: the task moves to a process)

    return os.getpid(), getattr(table, "path", None), table[key]


def in_worker_or_process() -> str:
    return "process" if sys.modules.get("numpy") else "interpreter"
