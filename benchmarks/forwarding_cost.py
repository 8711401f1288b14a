"""What forwarding (logging, warnings, output) costs tasks that do not log, warn or print.

Runs the same workloads on pools with forwarding on (the default) and off
(``forward_logging=False, forward_warnings=False, output="fd"``), alternating the two in
each round so that machine noise hits both alike, and reports the median of each and the
ratio on/off. A ratio within the rounds' own spread means: nothing measurable.

    .venv/bin/python benchmarks/forwarding_cost.py [--rounds 7] [--workers 2] [--quick] [--json F]

Workloads:
    startup     create a pool and run one task (wall time, includes the forwarding set-up)
    worker_boot one worker's start-up as the Swift core measures it (interpreter creation,
                runner import, bootstrap: where forwarding's set-up runs)
    submit      N tiny tasks, one submit() each (the per-task path: the runner's end-of-task
                check runs once per task)
    map         a map() over many tiny items, chunked
    cpu         a few CPU-bound tasks (pure Python loops)
It also times the runner's ``invoke`` against a copy without the end-of-task check, in this
interpreter (``timeit``), which is the only code forwarding adds to every task.
"""

from __future__ import annotations

import argparse
import colorsys
import functools
import json
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import subinterpreter_parallelism as sp
from subinterpreter_parallelism import _worker

OFF = {"forward_logging": False, "forward_warnings": False, "output": "fd"}
ON: dict[str, object] = {}  # the defaults


def count_up(n: int) -> int:
    """CPU-bound pure Python (sent by value: defined in this script)."""
    total = 0
    for i in range(n):
        total += i % 7
    return total


def workloads(quick: bool) -> dict[str, Callable[[sp.InterpreterPoolExecutor], object]]:
    tiny = 500 if quick else 3000
    items = 20_000 if quick else 200_000
    cpu = 300_000 if quick else 1_500_000

    def submit(pool: sp.InterpreterPoolExecutor) -> object:
        futures = [pool.submit(colorsys.rgb_to_hsv, 0.2, 0.4, 0.6) for _ in range(tiny)]
        wait(futures)
        return futures[-1].result()

    def map_(pool: sp.InterpreterPoolExecutor) -> object:
        return sum(
            h for h, _, _ in pool.map(colorsys.rgb_to_hsv, [0.2] * items, [0.4] * items, [0.6] * items)
        )

    def cpu_(pool: sp.InterpreterPoolExecutor) -> object:
        return sum(pool.map(count_up, [cpu] * 4, chunksize=1))

    return {"submit": submit, "map": map_, "cpu": cpu_}


def one_round(options: dict[str, object], workers: int, quick: bool) -> dict[str, float]:
    times: dict[str, float] = {}
    start = time.perf_counter()
    pool = sp.InterpreterPoolExecutor(workers, **options)  # type: ignore[arg-type]
    try:
        pool.submit(colorsys.rgb_to_hsv, 0.1, 0.2, 0.3).result()
        times["startup"] = time.perf_counter() - start
        for _ in range(2):  # warm the workers (imports, caches, cloudpickle)
            pool.submit(count_up, 10).result()
        for name, run in workloads(quick).items():
            start = time.perf_counter()
            run(pool)
            times[name] = time.perf_counter() - start
    finally:
        pool.shutdown()
    step = pool.stats()["steps"]["interpreter_startup"]  # measured by the Swift core
    times["worker_boot"] = step["total_s"] / max(1, step["count"])
    return times


def invoke_without_check(call: tuple) -> object:
    """The runner's ``invoke`` as it was before forwarding (for the timeit comparison)."""
    fn, args, kwargs = call
    return fn(*args, **kwargs)


def time_invoke(number: int) -> dict[str, float]:
    call = (abs, (-1,), {})
    results = {}
    for name, fn in (("invoke_with_check", _worker.invoke), ("invoke_without_check", invoke_without_check)):
        results[name] = min(timeit.repeat(functools.partial(fn, call), number=number, repeat=7)) / number
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per mode (default 7)")
    parser.add_argument("--workers", type=int, default=2, help="workers per pool (default 2)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads and 3 rounds")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds

    samples: dict[str, dict[str, list[float]]] = {"on": {}, "off": {}}
    for index in range(rounds):
        order = (("on", ON), ("off", OFF)) if index % 2 == 0 else (("off", OFF), ("on", ON))
        for mode, options in order:
            for name, seconds in one_round(options, args.workers, args.quick).items():
                samples[mode].setdefault(name, []).append(seconds)

    print(
        f"Python {sys.version.split()[0]}, {args.workers} workers, {rounds} rounds per mode "
        f"(alternating); medians, [min-max]"
    )
    print(f"{'workload':<10} {'forwarding on':>22} {'forwarding off':>22} {'on/off':>8}")
    report: dict[str, object] = {
        "python": sys.version.split()[0],
        "workers": args.workers,
        "rounds": rounds,
        "workloads": {},
    }
    for name in samples["on"]:
        on, off = samples["on"][name], samples["off"][name]
        ratio = statistics.median(on) / statistics.median(off)
        print(
            f"{name:<10} {statistics.median(on) * 1000:9.1f} ms [{min(on) * 1000:.0f}-{max(on) * 1000:.0f}]"
            f" {statistics.median(off) * 1000:9.1f} ms [{min(off) * 1000:.0f}-{max(off) * 1000:.0f}]"
            f" {ratio:8.3f}"
        )
        report["workloads"][name] = {"on_s": on, "off_s": off, "ratio_of_medians": ratio}  # type: ignore[index]
    invoke = time_invoke(200_000 if args.quick else 1_000_000)
    extra = (invoke["invoke_with_check"] - invoke["invoke_without_check"]) * 1e9
    print(
        f"runner invoke(): {invoke['invoke_with_check'] * 1e9:.0f} ns with the end-of-task check, "
        f"{invoke['invoke_without_check'] * 1e9:.0f} ns without ({extra:+.0f} ns per task, on or off)"
    )
    report["invoke_ns"] = {k: v * 1e9 for k, v in invoke.items()}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
