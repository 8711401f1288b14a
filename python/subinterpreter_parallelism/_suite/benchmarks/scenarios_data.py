"""(d) Data transfer: the round trip of a binary argument (bytes, bytearray, memoryview)
returned as the result, per size."""

from __future__ import annotations

import time
from typing import Any

from . import workloads
from .competitors import Ability, by_key, make_executor
from .records import Record, error_record, na_record, new_record, over_budget, start_all


def _data_cases(p: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """(case, size, trips, kind): every size as ``bytes``, some sizes as the other kinds."""
    cases = [(_size_case(size), size, trips, "bytes") for size, trips in zip(p["sizes"], p["trips"])]
    trips_of = dict(zip(p["sizes"], p["trips"]))
    for kind, sizes in p.get("kinds", {}).items():
        cases += [(f"{_size_case(size)} {kind}", size, trips_of.get(size, 3), kind) for size in sizes]
    return cases


def scenario_data(key: str, p: dict[str, Any]) -> list[Record]:
    """Round trip of a binary argument (bytes, bytearray, memoryview) returned as the result,
    one task at a time, per size.

    "serial" measures the floor of any round trip that copies once each way: two copies of the
    data in the caller, each into a new object (as the receiving interpreters must make).
    """
    records = []
    executor = make_executor(key, p["workers"]) if by_key(key).can(Ability.PARALLEL) else None
    try:
        if executor is not None:
            start_all(executor, key, p["workers"])
        for case, size, trips, kind in _data_cases(p):
            data = workloads.as_kind(workloads.make_payload(size), kind)
            samples = []
            try:
                for trip in range(trips + 1):  # the first trip warms up
                    if trip > 1 and over_budget():
                        break
                    t0 = time.perf_counter()
                    if executor is None:
                        back: bytes | bytearray | memoryview = workloads.two_copies(data)
                    else:
                        back = executor.submit(workloads.echo, data).result()
                    elapsed = time.perf_counter() - t0
                    if len(back) != len(data) or back != data:
                        raise AssertionError(f"echo of {case} came back wrong")
                    del back
                    if trip:
                        samples.append(elapsed)
            except Exception as exc:
                if kind == "memoryview" and ("pickle" in str(exc).lower() or "shareable" in str(exc).lower()):
                    # Process pools and the stdlib pool pickle what they send: pickle refuses memoryviews.
                    records.append(
                        na_record(
                            "data", case, key, f"cannot send a memoryview ({type(exc).__name__}: {exc})"
                        )
                    )
                else:
                    records.append(error_record("data", case, key, exc))
                continue
            finally:
                del data
            records.append(
                new_record(
                    "data", case, key, "s", samples, extra={"bytes": size, "trips": trips, "kind": kind}
                )
            )
    finally:
        if executor is not None:
            executor.shutdown(wait=True)
    return records


def _size_case(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"
