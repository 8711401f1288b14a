"""Dask on one machine's cores: one worker process with N interpreters against the usual set-ups.

    .venv/bin/python benchmarks/dask_throughput.py [--workers N] [--tasks M] [--task-ms T]
                                                   [--repeats R] [--json FILE]

Three clusters, each a scheduler and ``dask worker --no-nanny`` processes on 127.0.0.1, run the
same CPU-bound pure-Python tasks (``count_primes``, defined in this script's ``__main__``):

* ``interpreters``: 1 worker process, ``--nthreads N`` and this project's preload, so that
  every task runs on one of its N own-GIL interpreters (``--as-default``);
* ``processes``: N worker processes, ``--nthreads 1`` each (the usual answer to the GIL);
* ``threads``: 1 worker process, ``--nthreads N`` on its thread pool (one GIL).

All the clusters are up at once; after a warm-up, R rounds of M tasks (submit all, gather
all) go to each in turn, so that a change in the machine's load hits them alike; tasks per
second are reported as the median and range over the rounds, next to a serial run of one task
in this process between rounds, with the CPUs the worker processes used meanwhile (their CPU
time over the round's wall time: on a machine shared with other work, what each set-up got). Then the memory of each set-up's worker processes, warm and
idle: sums of RSS, PSS and USS (PSS splits shared pages between the processes sharing them).
The Markdown report goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIGS = ("interpreters", "processes", "threads")
PRELOAD = "subinterpreter_parallelism.dask_support"


def count_primes(n: int) -> int:
    """The primes below ``n``, by trial division: CPU-bound pure Python."""
    return sum(all(k % d for d in range(2, int(k**0.5) + 1)) for k in range(2, n))


def calibrate(task_seconds: float) -> int:
    """The ``n`` for which ``count_primes(n)`` takes about ``task_seconds`` here (best of 3)."""
    n = 2000
    while True:
        best = min(_timed(count_primes, n) for _ in range(3))
        if best >= task_seconds / 4:
            return max(100, int(n * task_seconds / best))
        n *= 2


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _dask(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("dask")
    if script.exists():
        return [str(script), *args]
    module = {"scheduler": "distributed.cli.dask_scheduler", "worker": "distributed.cli.dask_worker"}[args[0]]
    return [sys.executable, "-m", module, *args[1:]]


def worker_commands(config: str, n: int, address: str, directory: str) -> list[list[str]]:
    """The ``dask worker`` command lines of one configuration.

    The scheduler's address comes first: options after a preload need it there (with
    ``--scheduler-file`` instead, the first of them would be taken for the address).
    """
    common = [
        "worker",
        address,
        "--host",
        "127.0.0.1",
        "--no-nanny",
        "--no-dashboard",
        "--local-directory",
        directory,
        "--memory-limit",
        "0",
    ]
    if config == "interpreters":
        return [_dask(*common, "--nthreads", str(n), "--preload", PRELOAD, "--as-default")]
    if config == "processes":
        return [_dask(*common, "--nthreads", "1") for _ in range(n)]
    if config == "threads":
        return [_dask(*common, "--nthreads", str(n))]
    raise ValueError(config)


def _default_executor(dask_worker: Any) -> str:
    return type(dask_worker.executors["default"]).__name__


def memory(pids: list[int]) -> dict[str, float]:
    """Sums of RSS, PSS and USS (MiB) of the given processes."""
    import psutil

    totals = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    for pid in pids:
        info = psutil.Process(pid).memory_full_info()
        for key in totals:
            totals[key] += getattr(info, key) / 2**20
    return totals


def stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for process in reversed(processes):
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Cluster:
    """A scheduler and the worker processes of one set-up, with a client connected to it."""

    def __init__(self, config: str, n: int, directory: str) -> None:
        self.config = config
        self.rates: list[float] = []
        self.cpus: list[float] = []  # CPUs the worker processes used during each round
        self.log_path = os.path.join(directory, f"{config}.log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 (the processes' log while they live: close())
        self.processes: list[subprocess.Popen] = []
        self.client: Any = None
        try:
            self._start(n, directory)
        except BaseException:
            self.close()
            raise

    def _start(self, n: int, directory: str) -> None:
        from distributed import Client

        scheduler_file = os.path.join(directory, f"{self.config}-scheduler.json")
        self.processes.append(
            subprocess.Popen(
                _dask(
                    "scheduler",
                    "--scheduler-file",
                    scheduler_file,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                ),
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        )
        deadline = time.monotonic() + 60
        address = None
        while address is None:
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                raise RuntimeError(f"the scheduler of {self.config} did not start")
            try:
                address = json.loads(Path(scheduler_file).read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        self.workers = [
            subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
            for cmd in worker_commands(self.config, n, address, directory)
        ]
        self.processes += self.workers
        self.client = Client(address, timeout=60)
        self.client.wait_for_workers(len(self.workers), timeout=120)
        self.slots = sum(self.client.nthreads().values())
        executors = set(self.client.run(_default_executor).values())
        expected = "InterpreterPoolExecutor" if self.config == "interpreters" else "ThreadPoolExecutor"
        if executors != {expected}:
            raise RuntimeError(f"{self.config}: the workers run tasks on {executors}, not {expected}")

    def round(self, size: int, tasks: int) -> float:
        """Runs ``tasks`` tasks; returns tasks per second (and notes the CPUs the workers used)."""
        cpu = self._cpu_seconds()
        start = time.perf_counter()
        self.client.gather(self.client.map(count_primes, [size] * tasks, pure=False))
        wall = time.perf_counter() - start
        self.cpus.append((self._cpu_seconds() - cpu) / wall)
        return tasks / wall

    def _cpu_seconds(self) -> float:
        import psutil

        return sum(sum(psutil.Process(w.pid).cpu_times()[:2]) for w in self.workers)

    def result(self) -> dict[str, Any]:
        text = Path(self.log_path).read_text()
        return {
            "config": self.config,
            "worker_processes": len(self.workers),
            "slots": self.slots,
            "rates": self.rates,
            "median_rate": statistics.median(self.rates),
            "cpus": self.cpus,
            "median_cpus": statistics.median(self.cpus),
            "memory_mib": memory([w.pid for w in self.workers]),
            "restarts": text.count("Fatal Python error") + text.count("Restarting worker"),
        }

    def close(self) -> None:
        try:
            if self.client is not None:
                self.client.close()
        finally:
            stop(self.processes)
            self._log.close()


def run(
    configs: list[str], n: int, tasks: int, size: int, repeats: int
) -> tuple[list[dict[str, Any]], list[float]]:
    """All set-ups up at once, their rounds interleaved (so that a change in the machine's load
    hits every set-up alike), a serial run between rounds; then memory."""
    with tempfile.TemporaryDirectory(prefix="sp-dask-bench-") as directory:
        clusters: list[Cluster] = []
        try:
            for config in configs:
                clusters.append(Cluster(config, n, directory))
            for cluster in clusters:
                cluster.round(size, 2 * cluster.slots)  # warm-up
                cluster.rates.clear()
                cluster.cpus.clear()
            serial: list[float] = []
            for r in range(repeats):
                serial.append(1 / _timed(count_primes, size))
                for cluster in (
                    clusters[r % len(clusters) :] + clusters[: r % len(clusters)]
                ):  # rotate the order
                    cluster.rates.append(cluster.round(size, tasks))
                print(
                    f"[dask bench] round {r + 1}/{repeats} (load {os.getloadavg()[0]:.2f}): serial "
                    f"{serial[-1]:.2f}, "
                    + ", ".join(f"{c.config} {c.rates[-1]:.2f} ({c.cpus[-1]:.2f} CPUs)" for c in clusters)
                    + " tasks/s",
                    file=sys.stderr,
                    flush=True,
                )
            return [c.result() for c in clusters], serial
        finally:
            for cluster in clusters:
                cluster.close()


def report(results: list[dict[str, Any]], facts: dict[str, Any]) -> str:
    lines = [
        f"## Dask: one worker process with {facts['n']} interpreters against the usual set-ups",
        "",
        f"{facts['machine']}; load average before: {facts['load_before']}; Python {facts['python']}; "
        f"{facts['tasks']} tasks of count_primes({facts['size']}) (~{facts['task_ms']:.0f} ms each "
        f"serial) per round, {facts['repeats']} rounds after a warm-up; serial: "
        f"{facts['serial_rate']:.2f} tasks/s.",
        "",
        "| set-up | worker processes | tasks/s (median) | min-max | vs serial | CPUs used | tasks per CPU-second | RSS MiB | PSS MiB | USS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "interpreters": f"1 worker, {facts['n']} interpreters",
        "processes": f"{facts['n']} workers x 1 thread",
        "threads": f"1 worker, {facts['n']} threads",
    }
    for r in results:
        m = r["memory_mib"]
        lines.append(
            f"| {labels[r['config']]} | {r['worker_processes']} | {r['median_rate']:.2f} | "
            f"{min(r['rates']):.2f}-{max(r['rates']):.2f} | {r['median_rate'] / facts['serial_rate']:.2f}x | "
            f"{r['median_cpus']:.2f} | {statistics.median(x / c for x, c in zip(r['rates'], r['cpus'])):.2f} | "
            f"{m['rss']:.0f} | {m['pss']:.0f} | {m['uss']:.0f} |"
        )
    by = {r["config"]: r for r in results}
    if "interpreters" in by and "processes" in by:
        i, p = by["interpreters"], by["processes"]
        lines += [
            "",
            f"{labels['interpreters']} / {labels['processes']}: throughput "
            f"{i['median_rate'] / p['median_rate']:.2f}x, "
            f"PSS {i['memory_mib']['pss'] / p['memory_mib']['pss']:.2f}x, "
            f"RSS {i['memory_mib']['rss'] / p['memory_mib']['rss']:.2f}x",
        ]
    if any(r["restarts"] for r in results):
        lines += [
            "",
            "WARNING: a worker crashed or restarted: "
            + ", ".join(f"{r['config']}: {r['restarts']}" for r in results if r["restarts"]),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="N: interpreters, worker processes and threads (default: the CPUs)",
    )
    parser.add_argument("--tasks", type=int, default=0, help="tasks per round (default: 16 x N)")
    parser.add_argument("--task-ms", type=float, default=100.0, help="serial time of one task")
    parser.add_argument("--repeats", type=int, default=5, help="measured rounds per set-up")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="which set-ups, comma-separated")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, kill) unwinds like Ctrl-C, so that the clusters are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    n = args.workers
    tasks = args.tasks or 16 * n
    load_before = os.getloadavg()
    size = calibrate(args.task_ms / 1000)
    print(
        f"[dask bench] N={n}, {tasks} tasks of count_primes({size}) x {args.repeats} rounds",
        file=sys.stderr,
        flush=True,
    )
    results, serial = run(args.configs.split(","), n, tasks, size, args.repeats)
    serial_rate = statistics.median(serial)
    facts = {
        "n": n,
        "tasks": tasks,
        "size": size,
        "repeats": args.repeats,
        "task_ms": 1000 / serial_rate,
        "serial_rate": serial_rate,
        "python": sys.version.split()[0],
        "machine": f"{os.cpu_count()} CPUs",
        "load_before": " ".join(f"{x:.2f}" for x in load_before),
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    sys.stdout.write(report(results, facts))
    if args.json:
        Path(args.json).write_text(json.dumps({"facts": facts, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
