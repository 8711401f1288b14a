"""How many times one task crosses between Python and the Swift core, and how many Python-level
calls it costs, on each thread: the caller's ``submit``, the worker, the completion thread.

A profile function (crossing_probe.py) runs on every thread of the caller and, installed by the
initializer, in the one worker; the script submits ``--tasks`` tasks of each kind, waits for
them, and divides. Kinds: ``sorted([i])`` (a builtin, a list argument: the pickled path),
``operator.neg(i)`` (all shareable: the by-name path), and ``fn(i)`` for a function of this
script's ``__main__`` (sent by value).

    .venv/bin/python benchmarks/crossings.py [--tasks 1000]
"""

from __future__ import annotations

import argparse
import operator
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import crossing_probe
from subinterpreter_parallelism import InterpreterPoolExecutor

NAMES = ("calls", "crossings", "into_swift", "from_swift")


def main_function(i: int) -> int:
    return i + 1


def measure(
    pool: InterpreterPoolExecutor, completion: int, submit_all: Callable[[], list[Any]]
) -> dict[str, dict[str, int]]:
    """The counts of one batch, per side."""
    me = threading.get_ident()
    before_worker = pool.submit(crossing_probe.snapshot).result()
    before_caller = crossing_probe.snapshot(me)
    before_completion = crossing_probe.snapshot(completion)
    sys.setprofile(crossing_probe.profile)
    futures = submit_all()
    sys.setprofile(None)
    after_caller = crossing_probe.snapshot(me)
    for future in futures:
        future.result()
    # The completion thread has settled every future (and counted it) once they are all done.
    after_completion = crossing_probe.snapshot(completion)
    after_worker = pool.submit(crossing_probe.snapshot).result()
    submit_side = [a - b for a, b in zip(after_caller, before_caller)]
    completion_side = [a - b for a, b in zip(after_completion, before_completion)]
    worker_side = [a - b for a, b in zip(after_worker, before_worker)]
    # The second snapshot's own call (a by-name call of a Python function: one crossing,
    # one call) is in the worker's difference.
    worker_side[0] -= 1
    worker_side[1] -= 1
    worker_side[3] -= 1
    return {
        "submit": dict(zip(NAMES, submit_side)),
        "worker": dict(zip(NAMES, worker_side)),
        "completion": dict(zip(NAMES, completion_side)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    options = parser.parse_args()
    n = options.tasks
    kinds: dict[str, Callable[[InterpreterPoolExecutor], list[Any]]] = {
        "sorted([i]) (pickled)": lambda pool: [pool.submit(sorted, [i]) for i in range(n)],
        "operator.neg(i) (by name)": lambda pool: [pool.submit(operator.neg, i) for i in range(n)],
        "__main__ fn(i) (by value)": lambda pool: [pool.submit(main_function, i) for i in range(n)],
    }
    threading.setprofile_all_threads(None)
    print(f"Python {sys.version.split()[0]}, {n} tasks per kind, load {os.getloadavg()[0]:.2f}")
    with InterpreterPoolExecutor(1, initializer=crossing_probe.install) as pool:
        pool.submit(main_function, 0).result()  # the worker is up and has the definition
        # The completion thread counts from now on (it already runs: set on every thread).
        threading.setprofile_all_threads(crossing_probe.profile)
        sys.setprofile(None)  # the main thread counts only while it submits
        (completion,) = [t.ident for t in threading.enumerate() if "completion" in t.name]
        for label, submit_all in kinds.items():
            counts = measure(pool, completion, lambda submit_all=submit_all: submit_all(pool))
            print(f"\n{label}: per task")
            print(f"  {'side':<11}{'crossings':>10}{'calls':>8}   (into Swift / from Swift)")
            total_crossings = total_calls = 0.0
            for side, values in counts.items():
                crossings, calls = values["crossings"] / n, values["calls"] / n
                total_crossings += crossings
                total_calls += calls
                print(
                    f"  {side:<11}{crossings:>10.2f}{calls:>8.2f}   "
                    f"({values['into_swift'] / n:.2f} / {values['from_swift'] / n:.2f})"
                )
            print(f"  {'total':<11}{total_crossings:>10.2f}{total_calls:>8.2f}")
        threading.setprofile_all_threads(None)


if __name__ == "__main__":
    main()
