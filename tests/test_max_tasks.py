"""InterpreterPoolExecutor(max_tasks_per_worker=N): a worker starts a fresh interpreter after N tasks."""

from __future__ import annotations

from concurrent.futures import CancelledError

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from conftest import importable

WAIT = 60


def test_interpreter_changes_every_n_tasks_one_worker():
    with sp.InterpreterPoolExecutor(1, max_tasks_per_worker=2) as pool:
        futures = [pool.submit(sp_tasks.identify) for _ in range(7)]
        interps = [f.result(timeout=WAIT)[0] for f in futures]
        stats = pool.stats()
    groups = [interps[i : i + 2] for i in range(0, 7, 2)]
    assert all(len(set(group)) == 1 for group in groups), interps
    assert len({group[0] for group in groups}) == 4, interps  # a new interpreter each time
    assert stats["steps"]["interpreter_startup"]["count"] >= 4
    assert stats["tasks_completed"] == 7


def test_no_task_is_lost_across_recycling():
    with sp.InterpreterPoolExecutor(2, max_tasks_per_worker=3) as pool:
        futures = [pool.submit(sp_tasks.add, i, 1) for i in range(60)]
        assert [f.result(timeout=WAIT) for f in futures] == [i + 1 for i in range(60)]
        assert list(pool.map(sp_tasks.square, range(200), chunksize=7)) == [i * i for i in range(200)]
        assert pool.stats()["steps"]["interpreter_startup"]["count"] >= (60 + 29) // 3


def test_shutdown_right_after_submitting_still_runs_every_task():
    """Workers that reach their limit while the queue is closed but not empty start another
    interpreter for the tasks left."""
    pool = sp.InterpreterPoolExecutor(2, max_tasks_per_worker=1)
    futures = [pool.submit(sp_tasks.add, i) for i in range(20)]
    pool.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == list(range(20))


def test_the_initializer_runs_in_every_new_interpreter():
    with sp.InterpreterPoolExecutor(
        1, initializer=sp_tasks.record_init, initargs=("i",), max_tasks_per_worker=1
    ) as pool:
        seen = [pool.submit(sp_tasks.init_count).result(timeout=WAIT) for _ in range(3)]
    assert seen == [["i"], ["i"], ["i"]]  # module state starts from scratch each time
    with sp.InterpreterPoolExecutor(1, initializer=sp_tasks.record_init, initargs=("i",)) as pool:
        seen = [pool.submit(sp_tasks.init_count).result(timeout=WAIT) for _ in range(2)]
    assert seen == [["i"], ["i"]]  # one interpreter: the same list


def test_preload_in_every_new_interpreter():
    with sp.InterpreterPoolExecutor(2, preload=("colorsys",), max_tasks_per_worker=1) as pool:
        futures = [pool.submit(sp_tasks.module_loaded, "colorsys") for _ in range(8)]
        assert [f.result(timeout=WAIT) for f in futures] == [True] * 8


def test_a_recycled_interpreter_whose_preload_fails_breaks_the_pool(tmp_path):
    """The next interpreter fails to import its preload module: no task runs without it (nor
    without the initializer); the pool breaks with the import's error, as for a failing
    initializer."""
    flag = tmp_path / "flag"
    source = (
        f"import os\nif os.path.exists({str(flag)!r}):\n    raise ImportError('flaky preload: flag set')\n"
    )
    with importable(tmp_path, {"_flaky_preload.py": source}):
        pool = sp.InterpreterPoolExecutor(
            1,
            preload=["_flaky_preload"],
            initializer=sp_tasks.record_init,
            initargs=("init",),
            max_tasks_per_worker=1,
        )
        try:
            assert pool.submit(sp_tasks.init_count).result(timeout=WAIT) == ["init"]
            # the flag is set inside the first interpreter's last task: the next one sees it
            assert pool.submit(sp_tasks.touch, str(flag)).result(timeout=WAIT) == str(flag)
            with pytest.raises(sp.BrokenInterpreterPool) as info:
                pool.submit(sp_tasks.init_count).result(timeout=WAIT)
            text = str(info.value)
            assert "flaky preload: flag set" in text and "preload module '_flaky_preload'" in text, text
            assert pool.status == "broken"
        finally:
            pool.shutdown()


def test_a_recycled_interpreter_whose_initializer_fails_breaks_the_pool(tmp_path):
    """The same policy for the initializer: the pool breaks, with the initializer's error."""
    flag = tmp_path / "flag"
    pool = sp.InterpreterPoolExecutor(
        1, initializer=sp_tasks.init_fails_if_flagged, initargs=(str(flag), "init"), max_tasks_per_worker=1
    )
    try:
        assert pool.submit(sp_tasks.init_count).result(timeout=WAIT) == ["init"]
        assert pool.submit(sp_tasks.touch, str(flag)).result(timeout=WAIT) == str(flag)
        with pytest.raises(sp.BrokenInterpreterPool, match="initializer refused") as info:
            pool.submit(sp_tasks.init_count).result(timeout=WAIT)
        assert "ValueError" in str(info.value)
        assert pool.status == "broken"
    finally:
        pool.shutdown()


def test_an_interrupted_task_counts_and_the_worker_goes_on():
    report = sp.Queue()
    with sp.InterpreterPoolExecutor(1, max_tasks_per_worker=1) as pool:
        first = pool.submit(sp_tasks.identify).result(timeout=WAIT)[0]
        running = pool.submit(sp_tasks.spin_until_interrupted, report)
        assert report.get(timeout=WAIT) == "started"
        assert running.cancel()
        with pytest.raises(CancelledError):
            running.result(timeout=WAIT)
        assert report.get(timeout=WAIT) == "interrupted"
        after = pool.submit(sp_tasks.identify).result(timeout=WAIT)[0]
    assert after != first


def test_reusable_executor_takes_it():
    pool = sp.get_reusable_executor(1, max_tasks_per_worker=1)
    a = pool.submit(sp_tasks.identify).result(timeout=WAIT)[0]
    b = pool.submit(sp_tasks.identify).result(timeout=WAIT)[0]
    assert a != b and sp.get_reusable_executor(1, max_tasks_per_worker=1) is pool


@pytest.mark.parametrize(
    "value, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)]
)
def test_invalid_values(value, error):
    with pytest.raises(error, match="max_tasks_per_worker"):
        sp.InterpreterPoolExecutor(1, max_tasks_per_worker=value)


def test_worker_threads_keep_their_names():
    import os

    def names() -> list[str]:
        found = []
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/comm") as comm:
                    found.append(comm.read().strip())
            except FileNotFoundError:
                pass
        return found

    with sp.InterpreterPoolExecutor(2, thread_name_prefix="mt", max_tasks_per_worker=1) as pool:
        assert [f.result(timeout=WAIT) for f in [pool.submit(sp_tasks.add, i) for i in range(4)]] == [
            0,
            1,
            2,
            3,
        ]
        assert {"mt_0", "mt_1"} <= set(names())
