"""(k) CPU time per task, measured inside each task: the figure a busy machine cannot inflate.

Each task (``workloads.cpu_timed``) reads its own thread's CPU clock (``time.thread_time()``)
around one of three loops: the seed's int loop, a str/dict loop and an allocation loop. The
same tasks run, a batch at a time, in

- this project's pool;
- bare interpreters: one thread per own-GIL interpreter of ``_interpreters`` (``_xxsubinterpreters``
  on 3.12), running the tasks through ``run_string`` with no pool around them: the floor for
  the same code in interpreters;
- process pools, fork and forkserver;
- the stdlib ``InterpreterPoolExecutor`` on 3.14+.

Each batch runs in a fresh process under ``perf stat`` (software counters: task-clock, context
switches, CPU migrations, page faults), counting only while the batch runs (``--delay=-1`` and
``--control``: the cell enables the counters after its warm-up and disables them after the
batch). Where ``perf`` cannot run, the table says so and the counters stay empty.

Variants (``benchmarks/cpu_per_task_experiments.py`` in the source tree) change one thing for
every competitor: each worker thread or process pinned to its own CPU, the cyclic gc off in the
tasks, glibc's malloc instead of pymalloc (``PYTHONMALLOC=malloc``), or a 32 MiB stack for the
bare interpreters' threads (what this project's workers get).

``python -m benchmarks.cpu_per_task SPEC.json OUT.json`` is one cell (this module is then
``__main__``); :func:`run` runs them all and :func:`render` writes the tables.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import workloads

__all__ = ["COMPETITORS", "VARIANTS", "available", "render", "run", "targets"]

Trace = tuple[int, float, int, int, float]

#: key -> label, in table order.
COMPETITORS: dict[str, str] = {
    "this": "this project's pool",
    "bare": "bare interpreters (a thread each, run_string)",
    "fork": "ProcessPoolExecutor, fork",
    "forkserver": "ProcessPoolExecutor, forkserver",
    "stdlib": "stdlib InterpreterPoolExecutor",
}

#: variant -> (what it changes, the cell's spec entries, the cell's environment)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "default": ("as shipped", {}, {}),
    "pinned": ("each worker thread or process pinned to its own CPU", {"pin": True}, {}),
    "gc off": ("the cyclic gc disabled during each task", {"gc_off": True}, {}),
    "malloc": ("glibc malloc instead of pymalloc (PYTHONMALLOC=malloc)", {}, {"PYTHONMALLOC": "malloc"}),
    "stack 32 MiB": ("bare interpreters' threads get 32 MiB of stack, as ours", {"stack": 32 << 20}, {}),
}

PERF_EVENTS = ("task-clock", "context-switches", "cpu-migrations", "page-faults")


def available(key: str) -> str | None:
    """Why competitor ``key`` cannot run here, or None."""
    if key == "stdlib" and sys.version_info < (3, 14):
        return "no stdlib InterpreterPoolExecutor before 3.14"
    if key == "forkserver" and sys.platform != "linux":
        return "forkserver is Linux-only here"
    return None


# -- inside the cell process --------------------------------------------------------------------


class _Counters:
    """Turns perf's counters on and off from inside the measured process (``--control``)."""

    def __init__(self, ctl: str | None, ack: str | None) -> None:
        self._ctl = os.open(ctl, os.O_WRONLY) if ctl else None
        self._ack = os.open(ack, os.O_RDONLY) if ack else None

    def _send(self, command: bytes) -> None:
        if self._ctl is not None and self._ack is not None:
            os.write(self._ctl, command + b"\n")
            os.read(self._ack, 16)  # "ack": perf has applied it

    def enable(self) -> None:
        self._send(b"enable")

    def disable(self) -> None:
        self._send(b"disable")


def _pin(native_ids: Sequence[int]) -> None:
    """Pins each thread or process (by native id) to its own CPU, round robin over the usable ones."""
    cpus = sorted(os.sched_getaffinity(0))
    for index, native_id in enumerate(dict.fromkeys(native_ids)):
        os.sched_setaffinity(native_id, {cpus[index % len(cpus)]})


def _make_pool(key: str, workers: int) -> Any:
    if key == "this":
        import subinterpreter_parallelism as sp

        return sp.InterpreterPoolExecutor(workers)
    if key == "stdlib":
        from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]

        root = str(Path(__file__).resolve().parent.parent)  # stdlib workers do not take our sys.path
        return InterpreterPoolExecutor(
            workers, initializer=exec, initargs=(f"import sys; sys.path.insert(0, {root!r})",)
        )
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(key))


def _run_pool(spec: dict[str, Any], counters: _Counters) -> tuple[list[Trace], float]:
    workers, tasks, n, loop = spec["workers"], spec["tasks"], spec["n"], spec["workload"]
    gc_off = bool(spec.get("gc_off"))
    pool = _make_pool(spec["competitor"], workers)
    try:
        marks = [f.result() for f in [pool.submit(workloads.ready, 0.05) for _ in range(workers)]]
        if spec.get("pin"):
            _pin([native_id for _, native_id, _ in marks])
        warm = [pool.submit(workloads.cpu_timed, loop, max(1, n // 10), gc_off) for _ in range(2 * workers)]
        [f.result() for f in warm]
        counters.enable()
        t0 = time.perf_counter()
        futures = [pool.submit(workloads.cpu_timed, loop, n, gc_off) for _ in range(tasks)]
        traces = [f.result() for f in futures]
        wall = time.perf_counter() - t0
        counters.disable()
    finally:
        pool.shutdown(wait=True)
    return traces, wall


_BARE_SETUP = """
import os, sys
sys.path[:0] = {path!r}
from benchmarks import workloads
mark = workloads.ready(0.0)
os.write({fd}, (repr(mark[1]) + "\\n").encode())
for _ in range(2):
    workloads.cpu_timed({loop!r}, {warm}, {gc_off!r})
"""

_BARE_TASKS = """
traces = [workloads.cpu_timed({loop!r}, {n}, {gc_off!r}) for _ in range({count})]
os.write({fd}, (repr(traces) + "\\n").encode())
"""


def _interpreters_module() -> Any:
    try:
        import _interpreters  # type: ignore[import-not-found]  # 3.13+
    except ImportError:
        import _xxsubinterpreters as _interpreters  # type: ignore[import-not-found, no-redef]  # 3.12
    return _interpreters


def _run_bare(spec: dict[str, Any], counters: _Counters) -> tuple[list[Trace], float]:
    """One thread per own-GIL interpreter, each running its share of the tasks in one
    ``run_string``; the main thread pins, counts and times between two barriers."""
    interpreters = _interpreters_module()
    workers, tasks, n, loop = spec["workers"], spec["tasks"], spec["n"], spec["workload"]
    gc_off = bool(spec.get("gc_off"))
    if tasks % workers:
        raise ValueError("bare interpreters split the tasks evenly: tasks must be a multiple of workers")
    isolated = {"isolated": True} if sys.version_info < (3, 13) else {}
    ids = [interpreters.create(**isolated) for _ in range(workers)]
    pipes = [os.pipe() for _ in range(workers)]
    ready, go = threading.Barrier(workers + 1), threading.Barrier(workers + 1)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        write_end = pipes[index][1]
        try:
            setup = _BARE_SETUP.format(
                path=sys.path, fd=write_end, loop=loop, warm=max(1, n // 10), gc_off=gc_off
            )
            interpreters.run_string(ids[index], setup)
            ready.wait()
            go.wait()
            interpreters.run_string(
                ids[index],
                _BARE_TASKS.format(loop=loop, n=n, count=tasks // workers, fd=write_end, gc_off=gc_off),
            )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            ready.abort()
            go.abort()

    previous = threading.stack_size(spec["stack"]) if spec.get("stack") else None
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    if previous is not None:
        threading.stack_size(previous)
    try:
        ready.wait()
        native_ids = [int(os.read(read_end, 64).split(b"\n")[0]) for read_end, _ in pipes]
        if spec.get("pin"):
            _pin(native_ids)
        counters.enable()
        t0 = time.perf_counter()
        go.wait()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - t0
        counters.disable()
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join()
        raise RuntimeError(f"a bare interpreter failed: {errors[0]!r}") from errors[0]
    if errors:
        raise RuntimeError(f"a bare interpreter failed: {errors[0]!r}") from errors[0]
    traces: list[Trace] = []
    for (read_end, write_end), interp in zip(pipes, ids):
        os.close(write_end)
        with os.fdopen(read_end, "rb") as stream:
            traces += eval(stream.read().decode())  # the repr of a list of tuples of numbers
        interpreters.destroy(interp)
    return traces, wall


def cell_main(argv: list[str]) -> int:
    """One cell: runs the batch of ``argv[0]``'s spec, writes the per-task CPU times to ``argv[1]``."""
    spec = json.loads(Path(argv[0]).read_text())
    counters = _Counters(spec.get("ctl"), spec.get("ack"))
    run_batch = _run_bare if spec["competitor"] == "bare" else _run_pool
    traces, wall = run_batch(spec, counters)
    expected = workloads.LOOPS[spec["workload"]](spec["n"])
    if any(trace[0] != expected for trace in traces):
        raise AssertionError(f"{spec['competitor']}: {spec['workload']} returned wrong results")
    Path(argv[1]).write_text(json.dumps({"cpu_s": [t[1] for t in traces], "wall_s": wall}))
    return 0


# -- in the suite's process ---------------------------------------------------------------------


def perf_command() -> list[str] | None:
    """``perf stat`` with its output options, or None where it cannot count here."""
    perf = shutil.which("perf")
    if perf is None:
        return None
    try:
        probe = subprocess.run([perf, "stat", "-e", "task-clock", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return [perf, "stat", "-x,", "-e", ",".join(PERF_EVENTS)] if probe.returncode == 0 else None


def _parse_perf(text: str) -> dict[str, float]:
    """perf stat -x, lines: value,unit,event,... -> {event: value}."""
    counts: dict[str, float] = {}
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[2] in PERF_EVENTS:
            try:
                counts[fields[2]] = float(fields[0])
            except ValueError:
                continue  # "<not counted>"
    return counts


def _run_cell(
    spec: dict[str, Any], env: dict[str, str], perf: list[str] | None, timeout: float
) -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="sp-cpu-") as tmp:
        spec_path, out, perf_out = Path(tmp) / "spec.json", Path(tmp) / "out.json", Path(tmp) / "perf.txt"
        command = [sys.executable, "-m", "benchmarks.cpu_per_task", str(spec_path), str(out)]
        if perf is not None:
            ctl, ack = Path(tmp) / "ctl", Path(tmp) / "ack"
            os.mkfifo(ctl)
            os.mkfifo(ack)
            spec = {**spec, "ctl": str(ctl), "ack": str(ack)}
            command = [
                *perf,
                "-o",
                str(perf_out),
                "--delay=-1",
                "--control",
                f"fifo:{ctl},{ack}",
                "--",
                *command,
            ]
        spec_path.write_text(json.dumps(spec))
        full_env = {**os.environ, **env}
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        try:
            done = subprocess.run(
                command, cwd=root, env=full_env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if done.returncode != 0 or not out.exists():
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            return {"error": last[:300]}
        record = json.loads(out.read_text())
        if perf is not None and perf_out.exists():
            record["counters"] = _parse_perf(perf_out.read_text())
        return record


def calibrate(task_s: float) -> dict[str, int]:
    """Each loop's ``n`` for about ``task_s`` of CPU here (best of 3 short probes)."""
    sizes = {}
    for name, loop in workloads.LOOPS.items():
        probe, best = 20_000, float("inf")
        for _ in range(3):
            start = time.thread_time()
            loop(probe)
            best = min(best, time.thread_time() - start)
        sizes[name] = max(1_000, int(task_s / max(best, 1e-6) * probe))
    return sizes


def run(p: dict[str, Any], log: Any = sys.stderr, variants: Sequence[str] = ("default",)) -> dict[str, Any]:
    """Every (variant, loop, competitor) cell, ``p["rounds"]`` times, in turns; returns the
    samples (for the JSON file and :func:`render`)."""
    perf = perf_command()
    sizes = calibrate(p["task_s"])
    keys = [key for key in COMPETITORS if available(key) is None]
    cells: list[dict[str, Any]] = []
    for round_index in range(p["rounds"]):
        for variant in variants:
            _, spec_extra, env = VARIANTS[variant]
            for loop in workloads.LOOPS:
                order = keys if round_index % 2 == 0 else keys[::-1]  # drift hits every competitor alike
                for key in order:
                    if variant == "stack 32 MiB" and key != "bare":
                        continue
                    spec = {
                        "competitor": key,
                        "workload": loop,
                        "n": sizes[loop],
                        "tasks": p["tasks"],
                        "workers": p["workers"],
                        **spec_extra,
                    }
                    t0 = time.perf_counter()
                    record = _run_cell(spec, env, perf, p.get("timeout_s", 300.0))
                    load = os.getloadavg()[0]
                    cells.append(
                        {"variant": variant, "workload": loop, "competitor": key, "load": load, **record}
                    )
                    status = (
                        record.get("error") or f"{statistics.median(record['cpu_s']) * 1e3:.1f} ms per task"
                    )
                    print(
                        f"cpu per task [{round_index + 1}/{p['rounds']}] {variant:<12} {loop:<15} {key:<10} "
                        f"{time.perf_counter() - t0:5.1f} s  load {load:.2f}  {status}",
                        file=log,
                    )
    return {
        "sizes": sizes,
        "task_s": p["task_s"],
        "tasks": p["tasks"],
        "workers": p["workers"],
        "rounds": p["rounds"],
        "competitors": {key: COMPETITORS[key] for key in keys},
        "skipped": {key: reason for key in COMPETITORS if (reason := available(key))},
        "perf": perf is not None,
        "variants": {v: VARIANTS[v][0] for v in variants},
        "cells": cells,
    }


# -- the report ---------------------------------------------------------------------------------


def _cells(data: dict[str, Any], variant: str, loop: str, key: str) -> list[dict[str, Any]]:
    return [
        c for c in data["cells"] if (c["variant"], c["workload"], c["competitor"]) == (variant, loop, key)
    ]


def median_cpu(data: dict[str, Any], variant: str, loop: str, key: str) -> float | None:
    """Median CPU seconds per task over every round of one cell, or None."""
    samples = [s for c in _cells(data, variant, loop, key) for s in c.get("cpu_s", [])]
    return statistics.median(samples) if samples else None


def _per_task(data: dict[str, Any], variant: str, loop: str, key: str, event: str) -> float | None:
    cells = [c for c in _cells(data, variant, loop, key) if event in c.get("counters", {})]
    if not cells:
        return None
    return statistics.median(c["counters"][event] / len(c["cpu_s"]) for c in cells)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1e3:.2f} ms"


def render(results: dict[str, Any]) -> list[str]:
    """The Markdown tables of :func:`run`'s results ([] when the run had none)."""
    data = results.get("cpu_per_task")
    if not data:
        return []
    keys = list(data["competitors"])
    loads = [c["load"] for c in data["cells"]]
    lines = [
        "### (k) CPU time per task, inside the task (time.thread_time())",
        "",
        f"{data['tasks']} tasks per batch on {data['workers']} workers, each loop sized for ~{data['task_s'] * 1e3:.0f} ms "
        f"of CPU ({', '.join(f'{k} n={v:,}' for k, v in data['sizes'].items())}); {data['rounds']} rounds, "
        f"each batch in a fresh process; medians over every task. Load average (1 min) during the "
        f"cells: {min(loads):.2f} to {max(loads):.2f}.",
        "",
    ]
    for variant, what in data["variants"].items():
        variant_keys = [k for k in keys if _cells(data, variant, next(iter(workloads.LOOPS)), k)]
        if variant != "default":
            lines += [f"Variant **{variant}**: {what}.", ""]
        header = ["loop", *variant_keys] + (["this / bare"] if {"this", "bare"} <= set(variant_keys) else [])
        rows = []
        for loop in workloads.LOOPS:
            values = {k: median_cpu(data, variant, loop, k) for k in variant_keys}
            row = [loop, *[_ms(values[k]) for k in variant_keys]]
            if "this / bare" in header:
                this, bare = values["this"], values["bare"]
                row.append(f"{this / bare:.3f}x" if this and bare else "—")
            rows.append(row)
        lines += _table(header, rows) + [""]
        if data["perf"]:
            lines += ["perf stat, per task, while the batch ran (all threads and processes of the cell):", ""]
            counter_rows = []
            for loop in workloads.LOOPS:
                for event in PERF_EVENTS:
                    values = [_per_task(data, variant, loop, k, event) for k in variant_keys]
                    unit = (
                        (lambda v: _ms(v / 1e3) if v is not None else "—")
                        if event == "task-clock"
                        else (lambda v: "—" if v is None else f"{v:.1f}")
                    )
                    counter_rows.append([f"{loop}: {event}", *[unit(v) for v in values]])
            lines += _table(["counter", *variant_keys], counter_rows) + [""]
    if not data["perf"]:
        lines += ["perf stat could not run here: no counters.", ""]
    errors = [
        f"- {c['variant']}, {c['workload']}, {c['competitor']}: {c['error']}"
        for c in data["cells"]
        if "error" in c
    ]
    lines += ["Errors:", *errors, ""] if errors else []
    lines += [f"- {key}: {reason}" for key, reason in data.get("skipped", {}).items()]
    return lines + [""]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 26's target: CPU per task in this project's pool <= 1.02x bare interpreters', each loop."""
    data = results.get("cpu_per_task")
    if not data:
        return []
    ratios = {}
    for loop in workloads.LOOPS:
        this, bare = median_cpu(data, "default", loop, "this"), median_cpu(data, "default", loop, "bare")
        if this and bare:
            ratios[loop] = this / bare
    if not ratios:
        return [{"target": _TARGET, "measured": "not measured", "met": None}]
    measured = ", ".join(f"{loop} {ratio:.3f}x" for loop, ratio in ratios.items())
    return [{"target": _TARGET, "measured": measured, "met": all(r <= 1.02 for r in ratios.values())}]


_TARGET = "CPU per task (inside the task): this project's pool <= 1.02x bare interpreters, each loop"


if __name__ == "__main__":
    status = cell_main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(status)  # a process pool's leftovers must not keep the cell alive
