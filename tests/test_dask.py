"""Dask on interpreter pools: the local scheduler, task lowering, and a real cluster on loopback."""

from __future__ import annotations

import importlib.util
import json
import operator
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

dask = pytest.importorskip("dask")

import subinterpreter_parallelism as sp
from conftest import eventually, run_python
from subinterpreter_parallelism import dask_support
from subinterpreter_parallelism.dask_support import expressions


def _make_tasks() -> SimpleNamespace:
    """Task functions defined locally, so that they travel by value: a worker interpreter
    that ran them has imported neither this test module nor dask through it."""

    def inc(x):
        return x + 1

    def add(a, b=0):
        return a + b

    def total(items):
        return sum(items)

    def describe(mapping, *, scale=1):
        return sorted((key, value * scale) for key, value in mapping.items())

    def fail(x):
        raise ValueError(f"no good: {x}")

    def dask_modules_here():
        import sys

        return sorted(name for name in sys.modules if name.split(".")[0] in ("dask", "distributed", "toolz"))

    def meet(mine, theirs, token):
        # Both tasks must run at the same time: each waits for the other's token.
        mine.put(token)
        return theirs.get(timeout=20)

    return SimpleNamespace(
        inc=inc,
        add=add,
        total=total,
        describe=describe,
        fail=fail,
        dask_modules_here=dask_modules_here,
        meet=meet,
    )


tasks = _make_tasks()


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


def _graph():
    delayed = dask.delayed
    one = delayed(tasks.inc)(1)
    chain = delayed(tasks.add)(one, b=delayed(tasks.inc)(10))
    many = delayed(tasks.total)([delayed(tasks.inc)(i) for i in range(20)])
    mapping = delayed(tasks.describe)({"a": one, "b": chain, "c": 3}, scale=delayed(operator.add)(1, 1))
    return chain, many, mapping


def test_compute_with_pool_as_scheduler(pool):
    chain, many, mapping = _graph()
    assert dask.compute(chain, many, mapping, scheduler=pool) == (13, 210, [("a", 4), ("b", 26), ("c", 6)])
    assert pool.stats()["tasks_submitted"] >= 20


def test_worker_interpreters_never_import_dask(pool):
    (modules,) = dask.compute(dask.delayed(tasks.dask_modules_here)(), scheduler=pool)
    assert modules == []


def test_tasks_run_in_parallel(pool):
    first, second = sp.Queue(), sp.Queue()
    a = dask.delayed(tasks.meet)(first, second, "a", dask_key_name="meet-a")
    b = dask.delayed(tasks.meet)(second, first, "b", dask_key_name="meet-b")
    assert dask.compute(a, b, scheduler=pool) == ("b", "a")


def test_error_keeps_type_and_interpreter_traceback(pool):
    bad = dask.delayed(tasks.fail)(dask.delayed(tasks.inc)(1))
    with pytest.raises(ValueError, match="no good: 2") as info:
        dask.compute(bad, scheduler=pool)
    remote = info.value.__cause__
    assert isinstance(remote, sp.RemoteTraceback)
    assert "in fail" in remote.traceback
    assert "dask_support" not in remote.traceback  # the runner's frames are left out
    # The pool is still fine afterwards.
    assert dask.compute(dask.delayed(tasks.inc)(1), scheduler=pool) == (2,)


def test_get_with_own_pool_and_with_given_pool(pool):
    chain, many, _ = _graph()
    assert dask.compute(chain, many, scheduler=dask_support.get) == (13, 210)
    with dask.config.set(scheduler=lambda dsk, keys, **kw: dask_support.get(dsk, keys, pool=pool, **kw)):
        assert dask.compute(chain) == (13,)


def test_batches_of_several_tasks(pool):
    values = [dask.delayed(tasks.inc)(i) for i in range(12)]
    assert dask.compute(*values, scheduler=pool, chunksize=4) == tuple(range(1, 13))
    failing = [dask.delayed(tasks.inc)(1), dask.delayed(tasks.fail)(5)]
    with pytest.raises(ValueError, match="no good: 5"):
        dask.compute(*failing, scheduler=pool, chunksize=4)


def test_lowering_matches_dask_for_every_node_kind(pool):
    from dask._task_spec import Alias, DataNode, Dict, List, Set, Task, TaskRef, Tuple

    values = {"x": 5, "y": [1, 2]}
    nodes = [
        Task("t1", tasks.add, TaskRef("x"), b=Task(None, tasks.inc, 1)),
        Task("t2", tasks.total, List(TaskRef("x"), 2, Task(None, tasks.inc, TaskRef("x")))),
        Task("t3", tasks.describe, Dict({"k": TaskRef("x"), "d": DataNode(None, 7)})),
        Task("t4", sorted, Set(1, TaskRef("x"), 3)),
        Task("t5", tasks.total, Tuple(TaskRef("x"), 1)),
        Alias("t6", "y"),
        DataNode("t7", expressions.Ref("x")),  # a value that looks like an expression
    ]

    def comparable(value):
        return ("ref", value.key) if isinstance(value, expressions.Ref) else value

    for node in nodes:
        expected = comparable(node({key: values[key] for key in node.dependencies}))
        expression = dask_support.lower(node, values)
        assert comparable(dask_support.evaluate(expression)) == expected, node
        assert comparable(pool.submit(dask_support.evaluate, expression).result(timeout=30)) == expected, node


def test_lowering_fused_subgraphs(pool):
    from dask._task_spec import GraphNode, Task, TaskRef

    a = Task("a", tasks.inc, TaskRef("outside"))
    b = Task("b", tasks.add, TaskRef("a"), b=TaskRef("a"))
    c = Task("c", tasks.total, [1, 2])  # a plain list is a value, not a task
    d = Task("d", tasks.add, TaskRef("b"), TaskRef("c"))
    inner = GraphNode.fuse(a, b, key="ab")
    fused = GraphNode.fuse(inner.substitute({}, key="b"), c, d, key="d")
    values = {"outside": 4}
    expected = fused(values)
    assert expected == (4 + 1) * 2 + 3
    expression = dask_support.lower(fused, values)
    assert isinstance(expression, expressions.Graph)
    assert dask_support.evaluate(expression) == expected
    assert pool.submit(dask_support.evaluate, expression).result(timeout=30) == expected


def test_other_dask_local_callables_pass_through(pool):
    from dask.local import identity

    assert pool.submit(identity, 3).result(timeout=30) == 3  # not a task wrapper: runs as it is


def test_functions_from_main_in_a_script():
    result = run_python(
        """
        import dask
        import subinterpreter_parallelism as sp

        def square(x):
            return x * x

        class Box:
            def __init__(self, value):
                self.value = value

        def unbox(box):
            return box.value

        if __name__ == "__main__":
            with sp.InterpreterPoolExecutor(2) as pool:
                parts = [dask.delayed(square)(i) for i in range(10)]
                print(dask.compute(dask.delayed(sum)(parts), scheduler=pool)[0])
                print(dask.compute(dask.delayed(unbox)(dask.delayed(Box)(7)), scheduler=pool)[0])
    """,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["285", "7"]
    assert "Traceback" not in result.stderr


# -- a real cluster: a scheduler and two `dask worker` processes on loopback ------------------

CLIENT_SCRIPT = """
import json, sys, time, traceback
import dask
from conftest import eventually
from distributed import Client, wait
from subinterpreter_parallelism.dask_support import InterpreterPoolPlugin

def count_primes(n):
    return sum(all(k % d for d in range(2, int(k ** 0.5) + 1)) for k in range(2, n))

def modules_here():
    import sys
    return sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))

def fail(x):
    raise KeyError(f"missing {x}")

def spin(x):
    while True:
        pass

def busy(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds

def executors(dask_worker):
    return {name: type(e).__name__ for name, e in dask_worker.executors.items()}

def pool_size(dask_worker):
    return dask_worker.executors["interpreters"].max_workers

def interrupted(dask_worker):
    return dask_worker.executors["interpreters"].stats()["tasks_interrupted"]

def executing(dask_worker):
    return len(dask_worker.state.executing)

report = {}
with Client(scheduler_file=sys.argv[1], timeout=60) as client:
    client.wait_for_workers(2, timeout=120)
    report["executors"] = sorted(client.run(executors).values(), key=lambda e: e["default"])
    kinds = client.run(executors)
    sizes = client.run(pool_size)
    report["pool_sizes"] = sorted((kinds[w]["default"], sizes[w]) for w in sizes)

    with dask.annotate(executor="interpreters"):
        futures = client.map(count_primes, [2000 + i for i in range(40)])
        mods = client.submit(modules_here, pure=False)
        failing = client.submit(fail, 42)
    report["results"] = client.gather(futures)
    report["expected"] = [count_primes(2000 + i) for i in range(40)]
    report["workers_used"] = len({w for ws in client.who_has(futures).values() for w in ws})
    report["modules_in_interpreter"] = mods.result()

    try:
        failing.result()
    except KeyError as exc:
        report["error_type"] = type(exc).__name__
        report["error_text"] = "".join(traceback.format_exception(exc))
    report["error_tb"] = failing.traceback() is not None and "in fail" in "".join(
        traceback.format_tb(failing.traceback()))

    # Tasks long enough for distributed's profiler to sample (it must not touch interpreters).
    with dask.annotate(executor="interpreters"):
        report["busy"] = client.gather(client.map(busy, [3.0, 3.0, 3.0, 3.0], pure=False))

    # A graph of delayed functions, annotated.
    with dask.annotate(executor="interpreters"):
        parts = [dask.delayed(count_primes)(300 + i) for i in range(8)]
        graph = dask.delayed(sum)(parts)
    report["graph"] = [client.compute(graph).result(), sum(count_primes(300 + i) for i in range(8))]

    # Cancelling running tasks interrupts them, and their interpreters serve the next tasks:
    # two endless tasks fill each worker's two slots, so nothing else runs until they stop.
    before = sum(client.run(interrupted).values())
    with dask.annotate(executor="interpreters"):
        spinning = [client.submit(spin, i, workers=[w], pure=False)
                    for w in client.scheduler_info()["workers"] for i in range(2)]
        eventually(lambda: sum(client.run(executing).values()) >= 4)
        report["executing_before_cancel"] = sum(client.run(executing).values())
        client.cancel(spinning)
        after = client.map(count_primes, [100, 101, 102, 103, 104, 105], pure=False)
        report["after_cancel"] = client.gather(after)
    eventually(lambda: sum(client.run(interrupted).values()) - before >= 4)
    report["interrupted"] = sum(client.run(interrupted).values()) - before

    # A SharedMap reaches each worker process as a file it maps, and its interpreters as handles.
    from subinterpreter_parallelism import SharedMap
    table = SharedMap({"a": (1, "one"), "b": 2})

    def shared_read(m, key):
        return m[key], m.path is not None

    with dask.annotate(executor="interpreters"):
        report["shared_map"] = client.gather(client.map(shared_read, [table, table], ["a", "b"], pure=False))

    # A worker plugin installs a pool on running workers, under another name.
    client.register_plugin(InterpreterPoolPlugin(1, name="plugged"))
    with dask.annotate(executor="plugged"):
        report["plugged"] = client.submit(modules_here, pure=False).result()
    client.unregister_worker_plugin("subinterpreter-parallelism-plugged")
    report["after_unregister"] = sorted(set(n for e in client.run(executors).values() for n in e))

print("REPORT " + json.dumps(report))
"""


def _dask_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("dask")
    if script.exists():
        return [str(script), *args]
    module = {"scheduler": "distributed.cli.dask_scheduler", "worker": "distributed.cli.dask_worker"}[args[0]]
    return [sys.executable, "-m", module, *args[1:]]


def _stop(processes: list[subprocess.Popen]) -> None:
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


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cluster_end_to_end(tmp_path):
    if importlib.util.find_spec("distributed") is None:  # not imported here: it starts threads
        pytest.skip("distributed is not installed")
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    worker = [
        *common,
        "--nthreads",
        "2",
        "--local-directory",
        str(tmp_path / "work"),
        "--preload",
        "subinterpreter_parallelism.dask_support",
    ]
    # The processes' logs, open while they run (closed in the finally below).
    logs = [open(tmp_path / name, "w") for name in ("scheduler.log", "worker-1.log", "worker-2.log")]  # noqa: SIM115
    processes: list[subprocess.Popen] = []
    try:
        processes.append(
            subprocess.Popen(
                _dask_command("scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", *common),
                stdout=logs[0],
                stderr=subprocess.STDOUT,
            )
        )

        def scheduler_address() -> str | None:
            assert processes[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            try:
                return json.loads(scheduler_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        address = eventually(scheduler_address, message="the scheduler did not write its file")
        # Worker 1: settings from the environment (dask config), the scheduler from its file.
        processes.append(
            subprocess.Popen(
                _dask_command("worker", "--scheduler-file", str(scheduler_file), *worker),
                env={**os.environ, "DASK_SUBINTERPRETER_PARALLELISM__INTERPRETERS": "3"},
                stdout=logs[1],
                stderr=subprocess.STDOUT,
            )
        )
        # Worker 2: options after the preload, which need the scheduler's address first.
        processes.append(
            subprocess.Popen(
                _dask_command("worker", address, *worker, "--interpreters=2", "--as-default"),
                stdout=logs[2],
                stderr=subprocess.STDOUT,
            )
        )
        client = run_python(CLIENT_SCRIPT, argv=[str(scheduler_file)], timeout=400)
    finally:
        _stop(processes)
        for log in logs:
            log.close()
    worker_logs = "\n".join((tmp_path / f"worker-{i}.log").read_text() for i in (1, 2))
    lines = [line for line in client.stdout.splitlines() if line.startswith("REPORT ")]
    assert client.returncode == 0 and lines, client.stdout + client.stderr + worker_logs[-5000:]
    report = json.loads(lines[-1][len("REPORT ") :])

    assert report["executors"] == [
        {
            "actor": "ThreadPoolExecutor",
            "default": "InterpreterPoolExecutor",
            "interpreters": "InterpreterPoolExecutor",
            "offload": "ThreadPoolExecutor",
        },
        {
            "actor": "ThreadPoolExecutor",
            "default": "ThreadPoolExecutor",
            "interpreters": "InterpreterPoolExecutor",
            "offload": "ThreadPoolExecutor",
        },
    ]
    assert report["pool_sizes"] == [["InterpreterPoolExecutor", 2], ["ThreadPoolExecutor", 3]]
    assert report["results"] == report["expected"]
    assert report["workers_used"] == 2
    assert report["modules_in_interpreter"] == []
    assert report["error_type"] == "KeyError"
    assert "missing 42" in report["error_text"]
    assert "RemoteTraceback" in report["error_text"] and "in fail" in report["error_text"]
    assert report["error_tb"] is True
    assert report["graph"][0] == report["graph"][1]
    assert report["busy"] == [3.0] * 4
    assert report["after_cancel"] == [
        sum(all(k % d for d in range(2, int(k**0.5) + 1)) for k in range(2, n)) for n in range(100, 106)
    ]
    assert report["executing_before_cancel"] == 4
    assert report["interrupted"] == 4
    assert report["plugged"] == []
    assert report["shared_map"] == [[[1, "one"], True], [2, True]]  # read from the mapped file
    assert report["after_unregister"] == ["actor", "default", "interpreters", "offload"]
    # No worker process died or restarted along the way.
    assert "Restarting worker" not in worker_logs and "Fatal Python error" not in worker_logs
