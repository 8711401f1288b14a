"""Where does a task's CPU time differ between this project's workers and bare interpreters, and why?

Issue 26 item 3: each experiment changes one thing and runs the suite's *paired* cell
(``benchmarks.cpu_per_task``: this project's pool and bare ``_interpreters`` in one process, a
batch of each in turn, the order swapped every round), so that the process, its memory layout
and the moment's load are the same for both sides. It prints, per loop and experiment, each
side's median CPU per task (``time.thread_time()`` inside the task) and the median of the
per-round ratios, with the load average. Then the suite's own variants (pinned threads, gc off,
glibc malloc, 32 MiB stacks), one process per batch, through ``cpu_per_task.run``. Last, the
same ``py_factorial`` call in this (main) interpreter under 0 to 39 extra Python frames: on
3.13 its cost moves with where its frame lands on the thread's data stack, which is how a
worker's call path alone can make one loop slower there (see changes/fair-demo.md).

    .venv/bin/python benchmarks/cpu_per_task_experiments.py [--loops "int loop"] [--repeat 2]
    scripts/debian-root run .venv-py314/bin/python benchmarks/cpu_per_task_experiments.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "python" / "subinterpreter_parallelism" / "_suite"

#: name -> the cell spec's extra entries (or its environment, under "env").
EXPERIMENTS: dict[str, dict[str, object]] = {
    "as shipped": {},
    "glibc malloc (PYTHONMALLOC=malloc)": {"env": {"PYTHONMALLOC": "malloc"}},
    "bare interpreters created in their own thread, as ours are": {"create_in_thread": True},
    "bare interpreters created before our pool": {"bare_first": True},
    "bare interpreters also import cloudpickle": {"bare_imports": ["cloudpickle"]},
    "bare interpreters also import our worker runner": {
        "bare_imports": ["subinterpreter_parallelism._worker", "pickle"]
    },
    "bare threads with 32 MiB of stack, as ours": {"stack": 32 << 20},
    "our workers run gc.collect() first (initializer)": {"initializer": "gc.collect"},
    "one worker each": {"workers": 1, "tasks": 2},
}


def paired(loop: str, n: int, extra: dict[str, object]) -> tuple[float, float, float]:
    """(ours, bare, ratio): medians of CPU seconds per task and of the per-round ratios."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SUITE), os.environ.get("PYTHONPATH")])),
    }
    spec: dict[str, object] = {
        "competitor": "paired",
        "workload": loop,
        "n": n,
        "tasks": 4,
        "workers": 2,
        "pairs": 6,
    }
    spec.update({k: v for k, v in extra.items() if k != "env"})
    env.update(extra.get("env", {}))  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        subprocess.run(
            [sys.executable, "-m", "benchmarks.cpu_per_task", str(spec_path), str(out)], env=env, check=True
        )
        rounds = json.loads(out.read_text())["paired"]
    ours = [statistics.median(r) for r in rounds["this"]]
    bare = [statistics.median(r) for r in rounds["bare"]]
    return (
        statistics.median(ours),
        statistics.median(bare),
        statistics.median(a / b for a, b in zip(ours, bare)),
    )


def frame_depth(loop: str, n: int, depths: int = 40, repeats: int = 4) -> str:
    """The cost of one ``cpu_timed(loop, n)`` call under 0..depths-1 extra Python frames, each
    over the cheapest: '0:1.01 1:1.00 ...'."""
    from benchmarks import workloads

    def nest(depth: int) -> float:
        return workloads.cpu_timed(loop, n)[1] if depth == 0 else nest(depth - 1)

    best = [min(nest(d) for _ in range(repeats)) for d in range(depths)]
    return " ".join(f"{d}:{cost / min(best):.2f}" for d, cost in enumerate(best))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", default="int loop,str/dict loop,allocation loop")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each experiment")
    parser.add_argument("--task-s", type=float, default=0.04, help="CPU seconds per task (default 0.04)")
    parser.add_argument("--no-variants", action="store_true", help="skip the suite's variants")
    args = parser.parse_args()
    sys.path.insert(0, str(SUITE))
    from benchmarks import cpu_per_task, cpu_report

    sizes = cpu_per_task.calibrate(args.task_s)
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; paired cells, 2 workers, 4 tasks a batch, 6 pairs"
    )
    print("| loop | experiment | ours | bare | ours / bare | load |")
    print("|---|---|---|---|---|---|")
    for loop in args.loops.split(","):
        for name, extra in EXPERIMENTS.items():
            for _ in range(args.repeat):
                ours, bare, ratio = paired(loop, sizes[loop], extra)
                print(
                    f"| {loop} | {name} | {ours * 1e3:.1f} ms | {bare * 1e3:.1f} ms | {ratio:.3f}x | "
                    f"{os.getloadavg()[0]:.2f} |",
                    flush=True,
                )
    for loop in args.loops.split(","):
        print(
            f"\n{loop} in this interpreter under d extra Python frames (cost / cheapest): "
            f"{frame_depth(loop, sizes[loop])}",
            flush=True,
        )
    if not args.no_variants:
        params = {"task_s": args.task_s, "tasks": 4, "workers": 2, "rounds": 1, "pairs": 4}
        results = cpu_per_task.run(params, variants=list(cpu_per_task.VARIANTS))
        print("\n".join(cpu_report.render({"cpu_per_task": results})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
