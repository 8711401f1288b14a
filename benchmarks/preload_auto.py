"""What ``preload="auto"`` costs per submit, and what it saves when a pool starts small.

Both measurements alternate pools with and without ``"auto"`` in each round, so that machine
noise hits both alike, and print medians with the load average before and after.

    .venv/bin/python benchmarks/preload_auto.py [--rounds 7] [--workers 4] [--tasks 20000]

submit  ``--tasks`` tiny tasks (``operator.add``), one ``submit()`` each, on a started pool:
        microseconds per task of the submit loop alone, and of submit + result.
burst   a cold pool of ``--workers`` workers (start-up included) gets one task of a module
        that imports a slow library (networkx when installed, else ``email.mime.text`` and
        ``xml.dom.minidom``), then, once its result is in, a burst of one task per worker.
        With ``"auto"`` the idle workers import the module while the first task runs.
"""

from __future__ import annotations

import argparse
import operator
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import subinterpreter_parallelism as sp

_TASK_MODULE = """
try:
    import networkx as nx
except ImportError:
    nx = None
    import email.mime.text, xml.dom.minidom

LIBRARY = "networkx" if nx is not None else "email.mime.text + xml.dom.minidom"


def work(seed):
    if nx is not None:
        graph = nx.gnm_random_graph(300, 1200, seed=seed)
        return sum(len(p) for p in nx.shortest_path(graph, 0).values())
    text = "".join(f"<item n='{i}'/>" for i in range(2000))
    return len(xml.dom.minidom.parseString(f"<a>{text}</a>").getElementsByTagName("item"))
"""


def submit_cost(preload: object, tasks: int) -> tuple[float, float]:
    with sp.InterpreterPoolExecutor(2, preload=preload) as pool:  # type: ignore[arg-type]
        pool.submit(operator.add, 0, 0).result()
        start = time.perf_counter()
        futures = [pool.submit(operator.add, i, 1) for i in range(tasks)]
        submitted = time.perf_counter()
        for future in futures:
            future.result()
        done = time.perf_counter()
    return (submitted - start) / tasks * 1e6, (done - start) / tasks * 1e6


def burst(preload: object, workers: int, module: object) -> tuple[float, float]:
    work = module.work  # type: ignore[attr-defined]
    start = time.perf_counter()
    with sp.InterpreterPoolExecutor(workers, preload=preload) as pool:  # type: ignore[arg-type]
        pool.submit(work, 0).result()
        first = time.perf_counter()
        for future in [pool.submit(work, i) for i in range(1, workers + 1)]:
            future.result()
        done = time.perf_counter()
    return first - start, done - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=20_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "_auto_bench_tasks.py").write_text(textwrap.dedent(_TASK_MODULE))
        sys.path.insert(0, folder)
        import _auto_bench_tasks as module

        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
        kinds = {"without": (), "auto": "auto"}
        costs: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        bursts: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        for _ in range(options.rounds):
            for kind, preload in kinds.items():
                costs[kind].append(submit_cost(preload, options.tasks))
                bursts[kind].append(burst(preload, options.workers, module))
        print(f"submit, {options.tasks} tiny tasks on 2 workers (medians of {options.rounds}):")
        for kind, values in costs.items():
            print(
                f"  {kind:8s} submit {statistics.median(v[0] for v in values):6.2f} us/task   "
                f"submit+result {statistics.median(v[1] for v in values):6.2f} us/task"
            )
        print(
            f"burst, {options.workers} workers, library {module.LIBRARY} (medians of {options.rounds}, "
            "start-up included):"
        )
        for kind, values in bursts.items():
            print(
                f"  {kind:8s} first result {statistics.median(v[0] for v in values) * 1e3:7.0f} ms   "
                f"burst done {statistics.median(v[1] for v in values) * 1e3:7.0f} ms"
            )
        print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
