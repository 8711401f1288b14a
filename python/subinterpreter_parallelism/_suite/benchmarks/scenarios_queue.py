"""(g) The Queue: a hand-off to a task blocked in `get()`, and a put/get pair in the caller."""

from __future__ import annotations

import time
from typing import Any

from . import workloads
from .competitors import Ability, by_key, make_executor
from .records import Record, error_record, na_record, new_record, per_item, repeat, start_all


def scenario_queue(key: str, p: dict[str, Any]) -> list[Record]:
    """Hand-off to a task blocked in ``get()``, and a put/get pair within the caller."""
    competitor = by_key(key)
    if not competitor.can(Ability.QUEUES) or competitor.queues is None:
        reason = competitor.why_not(Ability.QUEUES)
        return [na_record("queue", "hand-off", key, reason), na_record("queue", "put+get", key, reason)]
    records: list[Record] = []
    inbox, outbox, keep = competitor.queues()
    executor = make_executor(key, 1)
    try:
        start_all(executor, key, 1, 0.0)
        total = p["handoffs"] + p["handoff_warmups"]
        task = executor.submit(workloads.queue_echo, inbox, outbox, total)
        latencies = []
        deadline = time.perf_counter() + p["handoff_budget_s"]
        sent = 0
        while sent < total:
            time.sleep(p["pause_s"])  # let the worker park in get()
            t0 = time.perf_counter()
            inbox.put(sent)
            seen = outbox.get(timeout=30)
            sent += 1
            if sent > p["handoff_warmups"]:
                latencies.append(seen - t0)
            if time.perf_counter() > deadline and len(latencies) >= p["handoff_min"]:
                break
        for rest in range(sent, total):  # a slow queue: finish the task's loop untimed
            inbox.put(rest)
            outbox.get(timeout=30)
        task.result(timeout=60)
        records.append(
            new_record(
                "queue",
                "hand-off",
                key,
                "s",
                latencies,
                extra={"queue": competitor.queue_kind, "pause_s": p["pause_s"]},
            )
        )
    except Exception as exc:
        records.append(error_record("queue", "hand-off", key, exc))
    finally:
        executor.shutdown(wait=True)

    try:
        records.append(_pair_record(key, inbox, p))
    except Exception as exc:
        records.append(error_record("queue", "put+get", key, exc))
    finally:
        if keep is not None:
            keep.shutdown()
    return records


def _pair_record(key: str, q: Any, p: dict[str, Any]) -> Record:
    """``q.put(i); q.get()`` in the caller, batched; sized so a batch takes ~``pair_batch_s``."""
    probe = 50
    t0 = time.perf_counter()
    for i in range(probe):
        q.put(i)
        q.get()
    per_pair = (time.perf_counter() - t0) / probe
    count = max(probe, min(p["pairs"], int(p["pair_batch_s"] / per_pair)))

    def batch() -> None:
        for i in range(count):
            q.put(i)
            q.get()

    runs = repeat(batch, 1, p["repeats"])
    return new_record(
        "queue",
        "put+get",
        key,
        "s",
        per_item(runs, count),
        extra={"queue": by_key(key).queue_kind, "pairs": count},
    )
