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
``__main__``); :func:`run` runs them all; ``cpu_report`` writes the tables.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import queue
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

__all__ = ["COMPETITORS", "PERF_EVENTS", "VARIANTS", "BareInterpreters", "available", "ratio_of_pairs", "run"]

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


def _make_pool(key: str, workers: int, initializer: str | None = None) -> Any:
    if key == "this":
        import subinterpreter_parallelism as sp

        if initializer:  # an experiment: "module.function" run once in each worker first
            module, _, name = initializer.rpartition(".")
            return sp.InterpreterPoolExecutor(
                workers, initializer=getattr(importlib.import_module(module), name)
            )
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


def _interpreters_module() -> Any:
    try:
        return importlib.import_module("_interpreters")  # 3.13+
    except ImportError:
        return importlib.import_module("_xxsubinterpreters")  # 3.12


class BareInterpreters:
    """``workers`` own-GIL interpreters of the low-level module, each served by a thread of its
    own that runs the code strings it is given with ``run_string``: no pool, no queue of tasks,
    no pickling. Each batch gives every interpreter the same share of the tasks."""

    def __init__(
        self,
        workers: int,
        stack: int | None = None,
        create_in_thread: bool = False,
        imports: Sequence[str] = (),
    ) -> None:
        self._api = _interpreters_module()
        self._isolated = {"isolated": True} if sys.version_info < (3, 13) else {}
        # Created here by default; ``create_in_thread``: each by the thread that serves it, as
        # this project's workers do (the creating thread's malloc arena holds its state).
        self._ids: list[Any] = [
            None if create_in_thread else self._api.create(**self._isolated) for _ in range(workers)
        ]
        self._inboxes: list[queue.SimpleQueue[str | None]] = [queue.SimpleQueue() for _ in range(workers)]
        self._pipes = [os.pipe() for _ in range(workers)]
        self._errors: list[BaseException] = []
        previous = threading.stack_size(stack) if stack else None
        self._threads = [threading.Thread(target=self._serve, args=(i,)) for i in range(workers)]
        for thread in self._threads:
            thread.start()
        if previous is not None:
            threading.stack_size(previous)
        self.native_ids = [
            int(line) for line in self._run_all("import _thread; _out(_thread.get_native_id())")
        ]
        self._run_all(f"import sys; sys.path[:0] = {sys.path!r}; from benchmarks import workloads; _out(0)")
        if imports:  # an experiment: what this project's workers have loaded, loaded here too
            self._run_all(
                f"import importlib; [importlib.import_module(m) for m in {list(imports)!r}]; _out(0)"
            )

    def _serve(self, index: int) -> None:
        if self._ids[index] is None:
            self._ids[index] = self._api.create(**self._isolated)
        while (code := self._inboxes[index].get()) is not None:
            try:
                # 3.12 raises the interpreter's exception; 3.13+ returns a description of it.
                failure = self._api.run_string(self._ids[index], code)
            except BaseException as exc:
                failure = exc
            if failure is not None:
                self._errors.append(
                    failure if isinstance(failure, BaseException) else RuntimeError(str(failure))
                )
                os.write(self._pipes[index][1], b"ERROR\n")

    def _run_all(self, code: str) -> list[str]:
        """Runs ``code`` in every interpreter at once; each calls ``_out(value)`` once."""
        for index, inbox in enumerate(self._inboxes):
            prelude = f"import os\ndef _out(value): os.write({self._pipes[index][1]}, (repr(value) + '\\n').encode())\n"
            inbox.put(prelude + code)
        lines = [_read_line(read_end) for read_end, _ in self._pipes]
        if self._errors:
            error, self._errors[:] = self._errors[0], []
            raise RuntimeError(f"a bare interpreter failed: {error!r}") from error
        return lines

    def batch(self, loop: str, n: int, tasks: int, gc_off: bool = False) -> list[Trace]:
        """``tasks`` calls of ``cpu_timed(loop, n)``, split evenly over the interpreters."""
        per = tasks // len(self._ids)
        code = f"_out([workloads.cpu_timed({loop!r}, {n}, {gc_off!r}) for _ in range({per})])"
        return [trace for line in self._run_all(code) for trace in ast.literal_eval(line)]

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for thread in self._threads:
            thread.join()
        for interp, (read_end, write_end) in zip(self._ids, self._pipes):
            self._api.destroy(interp)
            os.close(read_end)
            os.close(write_end)


def _read_line(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise RuntimeError("a bare interpreter's pipe closed")
        data += chunk
    return data.decode().strip()


def _run_bare(spec: dict[str, Any], counters: _Counters) -> tuple[list[Trace], float]:
    workers, tasks, n, loop = spec["workers"], spec["tasks"], spec["n"], spec["workload"]
    if tasks % workers:
        raise ValueError("bare interpreters split the tasks evenly: tasks must be a multiple of workers")
    gc_off = bool(spec.get("gc_off"))
    bare = BareInterpreters(
        workers, spec.get("stack"), bool(spec.get("create_in_thread")), spec.get("bare_imports", ())
    )
    try:
        if spec.get("pin"):
            _pin(bare.native_ids)
        bare.batch(loop, max(1, n // 10), 2 * workers, gc_off)
        counters.enable()
        t0 = time.perf_counter()
        traces = bare.batch(loop, n, tasks, gc_off)
        wall = time.perf_counter() - t0
        counters.disable()
    finally:
        bare.close()
    return traces, wall


def _check(traces: list[Trace], loop: str, n: int, who: str) -> list[float]:
    """The CPU seconds of each trace, once every result is checked."""
    expected = workloads.LOOPS[loop](n)
    if any(trace[0] != expected for trace in traces):
        raise AssertionError(f"{who}: {loop} returned wrong results")
    return [trace[1] for trace in traces]


def _run_paired(spec: dict[str, Any]) -> dict[str, Any]:
    """This project's pool and bare interpreters in one process, batch for batch, the order
    swapped each round: what differs is the pool, not the process (its memory layout, the
    moment's load). Returns each side's CPU seconds per task, one list per round."""
    workers, tasks, n, loop = spec["workers"], spec["tasks"], spec["n"], spec["workload"]
    if spec.get("bare_first"):  # creation order moves where CPython's allocations land
        bare = BareInterpreters(
            workers, spec.get("stack"), bool(spec.get("create_in_thread")), spec.get("bare_imports", ())
        )
        pool = _make_pool("this", workers, spec.get("initializer"))
    else:
        pool = _make_pool("this", workers, spec.get("initializer"))
        bare = BareInterpreters(
            workers, spec.get("stack"), bool(spec.get("create_in_thread")), spec.get("bare_imports", ())
        )
    rounds: dict[str, list[list[float]]] = {"this": [], "bare": []}
    try:
        [f.result() for f in [pool.submit(workloads.ready, 0.05) for _ in range(workers)]]
        warm = [pool.submit(workloads.cpu_timed, loop, max(1, n // 10)) for _ in range(2 * workers)]
        [f.result() for f in warm]
        bare.batch(loop, max(1, n // 10), 2 * workers)

        def ours() -> None:
            futures = [pool.submit(workloads.cpu_timed, loop, n) for _ in range(tasks)]
            rounds["this"].append(_check([f.result() for f in futures], loop, n, "this"))

        def theirs() -> None:
            rounds["bare"].append(_check(bare.batch(loop, n, tasks), loop, n, "bare"))

        for round_index in range(spec["pairs"]):
            for run_batch in (ours, theirs) if round_index % 2 == 0 else (theirs, ours):
                run_batch()
    finally:
        pool.shutdown(wait=True)
        bare.close()
    return rounds


def cell_main(argv: list[str]) -> int:
    """One cell: runs the batch of ``argv[0]``'s spec, writes the per-task CPU times to ``argv[1]``."""
    spec = json.loads(Path(argv[0]).read_text())
    if spec["competitor"] == "paired":
        record: dict[str, Any] = {"paired": _run_paired(spec)}
    else:
        counters = _Counters(spec.get("ctl"), spec.get("ack"))
        run_batch = _run_bare if spec["competitor"] == "bare" else _run_pool
        traces, wall = run_batch(spec, counters)
        record = {"cpu_s": _check(traces, spec["workload"], spec["n"], spec["competitor"]), "wall_s": wall}
    Path(argv[1]).write_text(json.dumps(record))
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
        record: dict[str, Any] = json.loads(out.read_text())
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


def ratio_of_pairs(cells: list[dict[str, Any]]) -> float | None:
    """Median over rounds of (this project's median CPU per task / bare interpreters') in paired cells."""
    ratios = [
        statistics.median(ours) / statistics.median(bare)
        for cell in cells
        if "paired" in cell
        for ours, bare in zip(cell["paired"]["this"], cell["paired"]["bare"])
    ]
    return statistics.median(ratios) if ratios else None


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
                if variant == "default" and {"this", "bare"} <= set(keys):
                    order = [*order, "paired"]  # both in one process, batch for batch
                for key in order:
                    if variant == "stack 32 MiB" and key != "bare":
                        continue
                    spec = {
                        "competitor": key,
                        "workload": loop,
                        "n": sizes[loop],
                        "tasks": p["tasks"],
                        "workers": p["workers"],
                        "pairs": p.get("pairs", 4),
                        **spec_extra,
                    }
                    t0 = time.perf_counter()
                    record = _run_cell(
                        spec, env, perf if key != "paired" else None, p.get("timeout_s", 300.0)
                    )
                    load = os.getloadavg()[0]
                    cells.append(
                        {"variant": variant, "workload": loop, "competitor": key, "load": load, **record}
                    )
                    status = record.get("error") or (
                        f"this / bare {ratio_of_pairs([record]):.3f}"
                        if key == "paired"
                        else f"{statistics.median(record['cpu_s']) * 1e3:.1f} ms per task"
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
        "pairs": p.get("pairs", 4),
        "competitors": {key: COMPETITORS[key] for key in keys},
        "skipped": {key: reason for key in COMPETITORS if (reason := available(key))},
        "perf": perf is not None,
        "variants": {v: VARIANTS[v][0] for v in variants},
        "cells": cells,
    }


if __name__ == "__main__":
    status = cell_main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(status)  # a process pool's leftovers must not keep the cell alive
