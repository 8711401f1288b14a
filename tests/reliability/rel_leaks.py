"""Memory measurements for test_leaks.py, each run in a fresh process.

``python rel_leaks.py MODE`` prints one JSON line. RSS is read from /proc/self/statm (resident
pages), after ``gc.collect()``; every mode warms up first, so that caches, free lists, arenas
and the pool's own buffers have reached their working size before the first measurement.
"""

from __future__ import annotations

import gc
import json
import os
import sys


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tasks(total: int, warm_up: int, batch: int = 5000, payload: int = 0) -> dict:
    """RSS before and after ``total`` tiny tasks (after ``warm_up`` of them) on 2 workers."""
    import rel_tasks
    import subinterpreter_parallelism as sp

    data = b"x" * payload

    def run(count):
        for start in range(0, count, batch):
            if payload:
                futures = [pool.submit(rel_tasks.echo, (data, n)) for n in range(start, start + batch)]
            else:
                futures = [pool.submit(rel_tasks.add, n, 1) for n in range(start, start + batch)]
            for n, future in enumerate(futures, start):
                value = future.result(timeout=60)
                assert value == ((data, n) if payload else n + 1)
            del futures, value
        gc.collect()

    with sp.InterpreterPoolExecutor(2) as pool:
        run(warm_up)
        marks = [rss()]
        for _ in range(4):
            run(total // 4)
            marks.append(rss())
        stats = pool.stats()
    return {"marks": marks, "completed": stats["tasks_completed"]}


def _worker_modules() -> list[str]:
    """The modules a worker interpreter has loaded after running an ordinary task."""
    import rel_tasks
    import subinterpreter_parallelism as sp

    with sp.InterpreterPoolExecutor(1) as pool:
        pool.submit(rel_tasks.add, 1, 1).result(timeout=60)
        return pool.submit(rel_tasks.loaded_modules).result(timeout=60)


def pools(count: int, warm_up: int, workers: int) -> dict:
    """RSS growth over ``count`` pools of ``workers`` created, used and shut down."""
    import rel_tasks
    import subinterpreter_parallelism as sp

    def one_pool():
        with sp.InterpreterPoolExecutor(workers) as pool:
            assert [
                f.result(timeout=60) for f in [pool.submit(rel_tasks.add, n, 1) for n in range(20)]
            ] == list(range(1, 21))

    for _ in range(warm_up):
        one_pool()
    gc.collect()
    start = rss()
    for _ in range(count):
        one_pool()
    gc.collect()
    return {"growth": rss() - start, "interpreters": count * workers}


def bare(count: int, warm_up: int) -> dict:
    """For comparison: RSS growth over ``count`` interpreters made with CPython's own API that
    import the modules a worker has loaded after an ordinary task (as a pool's worker does)."""
    try:
        import _interpreters as interpreters  # 3.13
    except ImportError:
        import _xxsubinterpreters as interpreters  # 3.12

    # Only names an import statement can spell (Debian's _sysconfigdata__linux_x86_64-linux-gnu
    # cannot be).
    modules = [
        m
        for m in _worker_modules()
        if m not in ("__main__", "builtins", "sys") and all(p.isidentifier() for p in m.split("."))
    ]
    script = f"import sys\nsys.path[:] = {sys.path!r}\n" + "".join(f"import {name}\n" for name in modules)

    def one_interpreter():
        interp = interpreters.create()
        try:
            interpreters.run_string(interp, script)
        finally:
            interpreters.destroy(interp)

    for _ in range(warm_up):
        one_interpreter()
    gc.collect()
    start = rss()
    for _ in range(count):
        one_interpreter()
    gc.collect()
    return {"growth": rss() - start, "interpreters": count, "modules": len(modules)}


def main(argv):
    mode = argv[0]
    if mode == "tasks":
        result = tasks(total=int(argv[1]), warm_up=int(argv[2]))
    elif mode == "payload":
        # Batches of 500: with 5,000 tasks of 4 KiB in flight (40 MiB), how much of that the
        # allocators keep after the batch depends on timing, and RSS swung by up to 18 MiB between
        # marks, up and down again (CI failed once so). With 500 it stays within 1.5 MiB, so the
        # 16 MiB bound again sees a leak of a payload per task (400 MiB) or of 160 bytes.
        result = tasks(total=int(argv[1]), warm_up=int(argv[2]), payload=4096, batch=500)
    elif mode == "pools":
        result = pools(count=int(argv[1]), warm_up=int(argv[2]), workers=int(argv[3]))
    elif mode == "bare":
        result = bare(count=int(argv[1]), warm_up=int(argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
