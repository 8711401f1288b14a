"""The benchmark suite: plans the cells, runs each in a fresh process, reports.

``python -m subinterpreter_parallelism bench [--quick] [--json FILE] [--plot FILE.png]``
(or ``make bench``). Progress goes to stderr, the Markdown report to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .competitors import COMPETITORS, by_key, unavailable_reason
from .measure import machine_facts
from .plan import HEAVY, OWN_RUNNER, SCALING, WORKLOADS, build_params, factorial_cost

__all__ = ["main", "run_cell", "run_suite"]

# The folder that holds this package (subinterpreter_parallelism/_suite): cells import the suite
# from it as the top-level package `benchmarks`.
ROOT = Path(__file__).resolve().parent.parent


def run_cell(
    workload: str, key: str, params: dict[str, Any], timeout: float
) -> tuple[list[dict[str, Any]], str]:
    """Runs one workload for one competitor in a fresh interpreter process.

    Returns the records and the process's stderr (warnings, tracebacks).
    """
    with tempfile.TemporaryDirectory(prefix="sp-bench-") as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec.write_text(json.dumps({"workload": workload, "competitor": key, "params": params}))
        env = dict(os.environ)
        # Workers that do not inherit sys.path (new interpreters, spawned processes) find
        # `benchmarks` through PYTHONPATH.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.cell", str(spec), str(out)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            stderr = (
                exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            )
            return [
                {
                    "workload": workload,
                    "case": "*",
                    "competitor": key,
                    "error": f"timed out after {timeout:.0f} s",
                }
            ], stderr
        if proc.returncode != 0 or not out.exists():
            last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            return [
                {
                    "workload": workload,
                    "case": "*",
                    "competitor": key,
                    "error": f"the cell process failed (exit {proc.returncode}): {last[:300]}",
                }
            ], proc.stderr
        return json.loads(out.read_text()), proc.stderr


def _cpu_list(record: dict[str, Any]) -> list[float | None]:
    return list(record.get("cpu_percent") or [None] * len(record["samples"]))


def merge_rounds(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (workload, case, competitor): the samples of every round together.

    A round that failed where another measured leaves its error in ``round_errors``.
    """
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in records:
        key = (record["workload"], record["case"], record["competitor"])
        first = merged.get(key)
        if first is None:
            merged[key] = record
        elif "samples" in record and "samples" in first:
            if "cpu_percent" in first or "cpu_percent" in record:
                first["cpu_percent"] = _cpu_list(first) + _cpu_list(record)
            first["samples"] = first["samples"] + record["samples"]
            first["rounds"] = first.get("rounds", 1) + 1
        elif "samples" in record:
            record["round_errors"] = [first.get("error") or first.get("na")]
            merged[key] = record
        elif "error" in record:
            first.setdefault("round_errors", []).append(record["error"])
    return list(merged.values())


def _compile_sources(log: Any) -> None:
    """Writes the byte code of this package (the suite included), as installing a wheel does.

    Without it, an editable install under ``PYTHONDONTWRITEBYTECODE`` (or a read-only tree
    that was never compiled) compiles every module from source in every new process and every
    new worker interpreter, which made a worker's start-up 2 to 3 times as long here. Where
    the tree cannot be written, the run goes on and says so.
    """
    import compileall

    package = Path(__file__).resolve().parents[2]  # subinterpreter_parallelism/
    if not compileall.compile_dir(str(package), quiet=2):
        print(
            f"note: could not write byte code for every module under {package}; start-up rows "
            "then include compiling",
            file=log,
        )


def run_suite(
    quick: bool,
    workloads: list[str],
    keys: list[str],
    timeout: float | None = None,
    log: Any = sys.stderr,
    widths: list[int] | None = None,
) -> dict[str, Any]:
    """Runs the chosen workloads for the chosen competitors; returns everything for the JSON file."""
    started = time.perf_counter()
    _compile_sources(log)
    facts = machine_facts(ROOT)
    cores = facts["usable_cpus"]
    unit_cost = factorial_cost()
    params = build_params(quick, cores, unit_cost, widths)
    skipped: dict[str, str] = {}
    runnable: list[str] = []
    for key in keys:
        reason = unavailable_reason(key)
        if reason is None:
            runnable.append(key)
        else:
            skipped[by_key(key).label] = reason
            print(f"skipped: {by_key(key).label}: {reason}", file=log)
    if "memory" in workloads:
        try:
            import psutil  # noqa: F401
        except ImportError:
            workloads = [w for w in workloads if w != "memory"]
            skipped["memory per worker"] = "psutil is not installed (the `bench` extra has it)"
            print("skipped: memory per worker: psutil is not installed", file=log)
    cell_timeout = timeout or (90.0 if quick else 240.0)
    cells = [
        (w, k)
        for w in workloads
        if w not in OWN_RUNNER
        for _ in range(params[w].get("rounds", 1))
        for k in runnable
    ]
    print(
        f"{len(cells)} cells ({'quick' if quick else 'full'}), {cores} usable CPUs, "
        f"load {facts['load_average'][0]:.2f}",
        file=log,
    )
    records: list[dict[str, Any]] = []
    warnings: list[dict[str, str]] = []
    for index, (workload, key) in enumerate(cells, 1):
        t0 = time.perf_counter()
        timeout_s = params[workload].get("cell_timeout_s", cell_timeout) if timeout is None else cell_timeout
        cell_records, stderr = run_cell(workload, key, params[workload], timeout_s)
        for record in cell_records:
            record["cell_s"] = round(time.perf_counter() - t0, 3)
        records += cell_records
        errors = [r["error"] for r in cell_records if "error" in r]
        if stderr.strip():
            warnings.append({"workload": workload, "competitor": key, "stderr": stderr[-2000:]})
        status = f"error: {errors[0]}" if errors else "ok"
        print(
            f"[{index:>2}/{len(cells)}] {workload:<8} {key:<10} {time.perf_counter() - t0:6.1f} s  {status}",
            file=log,
            flush=True,
        )
    own: dict[str, Any] = {}
    if "cputask" in workloads:
        from . import cpu_per_task

        own["cpu_per_task"] = cpu_per_task.run(params["cputask"], log)
    facts["load_average_end"] = list(os.getloadavg())
    return {
        **own,
        "schema": 1,
        "mode": "quick" if quick else "full",
        "machine": facts,
        "competitors": {c.key: c.label for c in COMPETITORS if c.key in keys},
        "abilities": {c.key: sorted(a.value for a in c.abilities) for c in COMPETITORS if c.key in keys},
        "skipped": skipped,
        "params": params,
        "factorial_seconds_per_n": unit_cost,
        "records": merge_rounds(records),
        "stderr": warnings,
        "duration_s": time.perf_counter() - started,
    }


# The competitors of --scaling (issue 15): process pools and, where it is in the stdlib, the
# stdlib interpreter pool (its 3.13 backport runs when named).
SCALING_COMPETITORS = (
    "serial",
    "fork",
    "forkserver",
    *(("backport",) if sys.version_info >= (3, 14) else ()),
    "this",
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m subinterpreter_parallelism bench``; returns the exit status."""
    from . import report

    keys = [c.key for c in COMPETITORS]
    parser = argparse.ArgumentParser(
        prog="python -m subinterpreter_parallelism bench",
        description="Benchmarks this project against serial code, threads, process pools, loky, "
        "the stdlib interpreter pool and the seed's design, each in a fresh process.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes, one repeat, without {', '.join(sorted(HEAVY))}: under a minute",
    )
    parser.add_argument("--json", metavar="FILE", help="write every sample and the machine facts here")
    parser.add_argument("--plot", metavar="FILE.png", help="write the plot here (needs matplotlib)")
    parser.add_argument(
        "--readme",
        metavar="FILE",
        help="replace the text between the bench markers in this file with the figures",
    )
    parser.add_argument(
        "--targets",
        metavar="FILE",
        help="replace the text between the bench-targets markers in this file with the targets table",
    )
    parser.add_argument(
        "--only", metavar="W,W", help=f"workloads to run (default all: {','.join(WORKLOADS)})"
    )
    parser.add_argument(
        "--competitors", metavar="K,K", help=f"competitors to run (default all: {','.join(keys)})"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="the many-core run instead (make bench-scaling): at each of --widths workers, "
        "start-up, first result, memory per worker, short and long tasks; "
        f"competitors {', '.join(SCALING_COMPETITORS)} unless --competitors says",
    )
    parser.add_argument(
        "--widths", metavar="N,N", help="worker counts of --scaling (default 1,2,4,8,16 and the CPU count)"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds before a cell is stopped (default 240, quick 90)"
    )
    parser.add_argument(
        "--load",
        metavar="FILE",
        help="measure nothing: report, plot, --readme and --targets from a JSON file an earlier run wrote",
    )
    args = parser.parse_args(argv)

    workloads = _pick(parser, args.only, list(WORKLOADS), "workload")
    if args.scaling:
        workloads = list(SCALING)
    elif args.only is None:
        workloads = [w for w in workloads if w not in SCALING and not (args.quick and w in HEAVY)]
    chosen = _pick(parser, args.competitors, keys, "competitor")
    if args.scaling and args.competitors is None:
        chosen = [k for k in keys if k in SCALING_COMPETITORS]
    widths = None
    if args.widths is not None:
        try:
            widths = sorted({int(w) for w in args.widths.split(",") if w.strip()})
        except ValueError:
            parser.error(f"--widths takes worker counts separated by commas, not {args.widths!r}")
        if not widths or widths[0] < 1:
            parser.error("--widths: every width must be at least 1")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install matplotlib (or the `bench` extra)")
    if args.load:
        results = json.loads(Path(args.load).read_text())
    else:
        results = run_suite(args.quick, workloads, chosen, args.timeout, widths=widths)
    results["targets"] = report.evaluate_targets(results)
    print(report.render(results))
    if args.json and not args.load:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        print(f"wrote {path}", file=sys.stderr)
    if args.plot:
        from .plot import plot

        path = Path(args.plot)
        path.parent.mkdir(parents=True, exist_ok=True)
        plot(results, path)
        print(f"wrote {path}", file=sys.stderr)
    if args.readme:
        image = (
            os.path.relpath(Path(args.plot).resolve(), Path(args.readme).resolve().parent)
            if args.plot
            else None
        )
        report.update_readme(Path(args.readme), results, image)
        print(f"updated {args.readme}", file=sys.stderr)
    if args.targets:
        report.update_targets(Path(args.targets), results)
        print(f"updated {args.targets}", file=sys.stderr)
    if not args.load:
        print(f"total {results['duration_s']:.0f} s", file=sys.stderr)
    return 0


def _pick(parser: argparse.ArgumentParser, value: str | None, allowed: list[str], what: str) -> list[str]:
    if value is None:
        return allowed
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        parser.error(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return [v for v in allowed if v in chosen]
