"""How much a recycled interpreter (``max_tasks_per_worker=1``) grows the process, against
CPython's own create/import/destroy loop importing the same modules.

CPython does not give back all of an interpreter's memory when it ends (python/cpython#110411):
about 1.5 MiB per interpreter plus some per module it imported. This prints RSS growth per
interpreter, each figure from a fresh process (after ``--warm`` interpreters, over ``--count``):

  cpython bare      ``_interpreters``: create, ``import sys``, destroy (on one thread)
  cpython same      the same loop importing the modules a pool worker has after the task
  pool              ``InterpreterPoolExecutor(1, max_tasks_per_worker=1)``, one task each
  pool + trim       the same, the caller calling glibc's ``malloc_trim(0)`` after each task

for two tasks: a pickle-free call (``abs(-1)``) and a function defined in the script (which
travels by value). A pool figure well above "cpython same" would be the pool's own leak.

    .venv/bin/python benchmarks/recycling_rss.py [--warm 20] [--count 200]
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import sys
import threading


def scripts_task(x: int) -> int:
    """A function of the script: it travels by value (a worker has its own ``__main__``)."""
    return x


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _cpython_loop(count: int, imports: str) -> None:
    try:
        import _interpreters
    except ImportError:  # 3.12
        import _xxsubinterpreters as old

        for _ in range(count):
            iid = old.create(isolated=True)
            old.run_string(iid, imports)
            old.destroy(iid)
        return
    config = _interpreters.new_config("isolated")
    for _ in range(count):
        iid = _interpreters.create(config)
        _interpreters.exec(iid, imports)
        _interpreters.destroy(iid)


def _call(task: str) -> tuple[object, tuple[object, ...]]:
    return (abs, (-1,)) if task == "plain" else (scripts_task, (1,))


def _worker_modules(task: str) -> str:
    """The import statement of the modules a worker has after one ``task``."""
    import subinterpreter_parallelism as sp

    with sp.InterpreterPoolExecutor(1) as pool:
        fn, args = _call(task)
        pool.submit(fn, *args).result()
        # by name, with a str argument: a call that needs no pickle, so that it imports nothing
        names = pool.submit(eval, "tuple(sorted(__import__('sys').modules))").result()
    return "import " + ", ".join(n for n in names if n not in ("__main__", "__mp_main__"))


def _measure(mode: str, task: str, warm: int, count: int) -> float:
    """RSS growth per interpreter, in MiB, in this process."""
    if mode.startswith("cpython"):
        imports = "import sys" if mode == "cpython bare" else _worker_modules(task)

        def run(n: int) -> None:
            thread = threading.Thread(target=_cpython_loop, args=(n, imports))  # as a worker's
            thread.start()
            thread.join()

        run(warm)
        start = _rss()
        run(count)
        return (_rss() - start) / count / 2**20
    import subinterpreter_parallelism as sp

    trim = ctypes.CDLL(None).malloc_trim if mode == "pool + trim" else None
    fn, args = _call(task)
    with sp.InterpreterPoolExecutor(1, max_tasks_per_worker=1) as pool:

        def run(n: int) -> None:
            for _ in range(n):
                pool.submit(fn, *args).result()
                if trim is not None:
                    trim(0)

        run(warm)
        start = _rss()
        run(count)
        return (_rss() - start) / count / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "TASK"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one:
        print(_measure(*options.one, options.warm, options.count))
        return
    with open("/proc/loadavg") as f:
        print(f"Python {sys.version.split()[0]}, load {' '.join(f.read().split()[:3])}")
    print(f"{'MiB per interpreter':22s} {'plain task':>12s} {'script task':>12s}")
    for mode in ("cpython bare", "cpython same", "pool", "pool + trim"):
        row = []
        for task in ("plain", "script"):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    mode,
                    task,
                    "--warm",
                    str(options.warm),
                    "--count",
                    str(options.count),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            row.append(float(done.stdout.split()[-1]))
        print(f"{mode:22s} {row[0]:12.2f} {row[1]:12.2f}")
    with open("/proc/loadavg") as f:
        print(f"load after {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
