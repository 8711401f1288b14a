"""Random Ctrl-C stress (issue 22, item 14): small pool programs, each run as a child process
that gets one SIGINT at a random moment, 0 to 0.6 s after it said it was ready.

What a run must do: end, killed by the SIGINT as an unhandled ``KeyboardInterrupt`` ends a
Python program, having printed that one traceback on stderr and nothing after it. What is
counted against it:

- hang: the child is still alive ``--hang-after`` seconds (60) after the signal; it is then
  asked for every thread's stack (faulthandler, SIGUSR1) and killed;
- crash: a death by another signal, a non-Python exit status, or a CPython fatal error;
- stray: anything on stderr besides the one ``KeyboardInterrupt`` traceback (a second
  traceback, "Exception ignored ...", exit's give-up message), or another exception instead.

What CPython itself prints as part of the KeyboardInterrupt's report is not stray output:
a note it adds when the Ctrl-C lands inside the creation of an enum class (an import of ``ssl``
or ``inspect``, say: "Error calling __set_name__ on ..."), and the exception whose handling the
Ctrl-C interrupted ("During handling of the above exception, another exception occurred", an
import's ``except KeyError`` say), printed before it. Such runs count as ok, and the summary
says how many there were (column "noted").

Usage: ``python tests/sigint_stress.py [--runs 200] [--jobs 2] [--shapes map,preload,...]
[--keep DIR]``; ``make test-sigint`` (N=200) runs it. The exit status is 1 when any run failed;
``--keep`` saves each failed run's stderr there.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent

# Before every program: stacks on SIGUSR1 (for a hang's report), and `ready()`, the moment
# from which the signal's random delay counts.
PROLOGUE = """\
import faulthandler, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)
import subinterpreter_parallelism as sp
import sigint_tasks as t
from concurrent.futures import as_completed

def ready():
    sys.stdout.write("READY\\n")
    sys.stdout.flush()
"""

#: The program shapes: each loops until the Ctrl-C.
SHAPES: dict[str, str] = {
    # A chunked map, on a pool left to the exit hook.
    "map": """
        pool = sp.InterpreterPoolExecutor(2)
        ready()
        while True:
            for _ in pool.map(t.work, range(400), chunksize=20):
                pass
    """,
    # Constructors with preload, again and again (the Ctrl-C lands inside one, often).
    "preload": """
        ready()
        while True:
            pool = sp.InterpreterPoolExecutor(2, preload=["json", "textwrap", "difflib"])
            pool.submit(t.work, 1).result()
            pool.shutdown()
    """,
    # A producer task blocked in put(), the main thread consuming, in a with block.
    "queue": """
        with sp.InterpreterPoolExecutor(2) as pool:
            q = sp.Queue(maxsize=4)
            pool.submit(t.produce_forever, q)
            ready()
            while True:
                q.get()
    """,
    # parallel() on the process-wide pool.
    "parallel": """
        ready()
        while True:
            sp.parallel(*[["sigint_tasks", "work", (i,)] for i in range(8)])
    """,
    # as_completed in a with block, beside a task that never ends by itself.
    "as_completed": """
        with sp.InterpreterPoolExecutor(2) as pool:
            pool.submit(t.spin_forever)
            ready()
            while True:
                futures = [pool.submit(t.work, i) for i in range(20)]
                for future in as_completed(futures):
                    future.result()
    """,
}

OUTCOMES = ("ok", "hang", "crash", "stray")

# Notes CPython adds to an exception raised inside class creation (Objects/typeobject.c).
_CPYTHON_NOTES = ("Error calling __set_name__ on ",)
_DURING = "During handling of the above exception, another exception occurred:"


@dataclass
class Run:
    shape: str
    delay: float
    outcome: str
    returncode: int | None
    stderr: str
    why: str = ""


def program(shape: str) -> str:
    return PROLOGUE + textwrap.dedent(SHAPES[shape])


def _judge(returncode: int, stderr: str) -> tuple[str, str]:
    """The outcome of a run that ended, and why when it is not "ok"."""
    if "Fatal Python error" in stderr:
        return "crash", "fatal error"
    if returncode < 0 and returncode != -signal.SIGINT:
        return "crash", f"killed by {signal.Signals(-returncode).name}"
    if returncode not in (-signal.SIGINT, 130):
        return ("crash" if returncode > 1 else "stray"), f"exit status {returncode}"
    lines = stderr.rstrip("\n").splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not headers or headers[0] != 0:
        return "stray", "no traceback, or output before it"
    # One exception report: its later tracebacks are the chain of a KeyboardInterrupt that
    # landed while another exception was being handled (CPython prints that context first).
    chained = all(lines[i - 2 : i] == [_DURING, ""] for i in headers[1:])
    if not chained:
        return "stray", f"{len(headers)} tracebacks"
    ends = [i for i, line in enumerate(lines) if line.startswith("KeyboardInterrupt")]
    if not ends or ends[-1] < headers[-1]:
        return "stray", "the traceback is not a KeyboardInterrupt's"
    after = lines[ends[-1] + 1 :]
    if not all(line.startswith(_CPYTHON_NOTES) for line in after):
        return "stray", "output after the KeyboardInterrupt traceback"
    if any("Exception ignored" in line for line in lines):
        return "stray", "an exception reported as unraisable"
    notes = [f"{len(headers) - 1} exception(s) it interrupted the handling of"] if len(headers) > 1 else []
    notes += after
    return "ok", "noted: " + " / ".join(notes) if notes else ""


def run_once(shape: str, delay: float, hang_after: float, python: str = sys.executable) -> Run:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTHONUNBUFFERED", None)
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [python, "-c", program(shape)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # the handshake: the program is ready
            if line.strip() != "READY":
                child.wait(timeout=hang_after)
                err.seek(0)
                return Run(shape, delay, "crash", child.returncode, err.read(), "it never got ready")
            time.sleep(delay)  # the random moment: this is what the test is about, not a wait
            child.send_signal(signal.SIGINT)
            # Read stdout to its end meanwhile, so that a chatty child cannot block on the pipe.
            drain = threading.Thread(target=child.stdout.read, daemon=True)
            drain.start()
            try:
                returncode = child.wait(timeout=hang_after)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGUSR1)  # every thread's stack, on stderr
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                child.kill()
                child.wait()
                err.seek(0)
                return Run(shape, delay, "hang", None, err.read(), f"alive {hang_after:g} s after the signal")
            drain.join(timeout=5)
            err.seek(0)
            stderr = err.read()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    outcome, why = _judge(returncode, stderr)
    return Run(shape, delay, outcome, returncode, stderr, why)


def stress(
    runs: int,
    shapes: list[str] | None = None,
    jobs: int = 2,
    hang_after: float = 60.0,
    seed: int | None = None,
    report=None,
) -> list[Run]:
    """``runs`` runs, spread evenly over ``shapes`` (all by default), ``jobs`` at a time."""
    shapes = list(shapes or SHAPES)
    rng = random.Random(seed)
    plan = [(shapes[i % len(shapes)], rng.uniform(0.0, 0.6)) for i in range(runs)]
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(run_once, shape, delay, hang_after) for shape, delay in plan]
        results = []
        for future in futures:
            run = future.result()
            results.append(run)
            if report is not None:
                report(run)
    return results


def summary(results: list[Run]) -> str:
    by_shape: dict[str, Counter[str]] = {}
    for run in results:
        by_shape.setdefault(run.shape, Counter())[run.outcome] += 1
    total = Counter(run.outcome for run in results)
    noted: Counter[str] = Counter(run.shape for run in results if run.why.startswith("noted:"))
    lines = [f"{'shape':<14}" + "".join(f"{o:>7}" for o in OUTCOMES) + f"{'noted':>7}"]
    for shape, counts in by_shape.items():
        lines.append(f"{shape:<14}" + "".join(f"{counts[o]:>7}" for o in OUTCOMES) + f"{noted[shape]:>7}")
    lines.append(f"{'all':<14}" + "".join(f"{total[o]:>7}" for o in OUTCOMES) + f"{sum(noted.values()):>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--hang-after", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="save failed runs' stderr here")
    args = parser.parse_args(argv)
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        parser.error(f"unknown shapes: {unknown}")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failures = 0

    def report(run: Run) -> None:
        nonlocal failures
        if run.outcome == "ok":
            return
        failures += 1
        print(f"{run.outcome}: {run.shape} (signal after {run.delay:.3f} s): {run.why}", flush=True)
        if args.keep is not None:
            path = args.keep / f"{failures:03d}-{run.shape}-{run.outcome}.txt"
            path.write_text(f"{run.why}\nexit status {run.returncode}\n\n{run.stderr}")
        else:
            print(textwrap.indent(run.stderr[-3000:], "    "), flush=True)

    version = sys.version.split()[0]
    print(f"sigint stress: {args.runs} runs, Python {version}, load {_load()}", flush=True)
    results = stress(args.runs, shapes, args.jobs, args.hang_after, args.seed, report)
    print(summary(results))
    print(f"Python {version}: {time.monotonic() - started:.0f} s, load {_load()}")
    return 1 if any(run.outcome != "ok" for run in results) else 0


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
