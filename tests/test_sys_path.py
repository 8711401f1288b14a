"""Workers follow the caller's ``sys.path`` as of each submit (issue 22, item 12): a directory the
program adds after the pool started, in fresh, recycled and the shared pool's interpreters."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from conftest import importable


def _late_module(folder: Path) -> str:
    """Writes a module of a name never used before into ``folder`` (not yet on sys.path)."""
    name = f"late_{uuid.uuid4().hex[:12]}"
    (folder / f"{name}.py").write_text(
        "import sys\n\ndef where(x):\n    return x * 2, __file__\n\ndef has(entry):\n    return entry in sys.path\n"
    )
    return name


@pytest.fixture
def late(tmp_path):
    name = _late_module(tmp_path)
    yield tmp_path, name
    sys.modules.pop(name, None)


def test_a_directory_added_after_the_pool_started(late):
    folder, name = late
    with sp.InterpreterPoolExecutor(2) as pool:
        assert pool.submit(sp_tasks.add, 1, 2).result(timeout=30) == 3  # the workers are up
        with importable(folder, {}):
            module = __import__(name)
            assert pool.submit(module.where, 21).result(timeout=30) == (42, module.__file__)
            # the pickle-free path (a module-level function by name) too
            assert list(pool.map(module.where, range(4), chunksize=1)) == [
                (2 * i, module.__file__) for i in range(4)
            ]
            assert all(pool.map(module.has, [str(folder)] * 8))
        # the caller removed it: so do the workers (asked by a function of another module: a
        # worker that never imported the late one cannot import it any more)
        assert not any(pool.map(sp_tasks.on_sys_path, [str(folder)] * 8))


def test_recycled_interpreters_start_with_the_current_path(late):
    folder, name = late
    with sp.InterpreterPoolExecutor(2, max_tasks_per_worker=1) as pool:
        assert list(pool.map(sp_tasks.add, range(4), range(4))) == [0, 2, 4, 6]
        with importable(folder, {}):
            module = __import__(name)
            results = [pool.submit(module.where, i).result(timeout=30) for i in range(6)]
            assert results == [(2 * i, module.__file__) for i in range(6)]


def test_the_shared_pool_of_parallel_follows(late):
    folder, name = late
    assert sp.parallel(["operator", "add", (1, 2)]) == [3]  # the shared pool starts here
    with importable(folder, {}):
        __import__(name)
        assert sp.parallel([name, "where", (5,)], [name, "where", (6,)])[1][0] == 12
        assert sp.parallel(*[[name, "has", (str(folder),)]] * 4) == [True] * 4


def test_entries_a_worker_added_itself_stay_where_it_put_them(late):
    folder, _ = late
    with sp.InterpreterPoolExecutor(
        1, initializer=sp_tasks.add_own_paths, initargs=("/own-front", "/own-back")
    ) as pool:
        assert pool.submit(sp_tasks.sys_path).result(timeout=30) == ["/own-front", *sys.path, "/own-back"]
        with importable(folder, {}):
            assert pool.submit(sp_tasks.sys_path).result(timeout=30) == ["/own-front", *sys.path, "/own-back"]
            assert sys.path[0] == str(folder)
        assert pool.submit(sp_tasks.sys_path).result(timeout=30) == ["/own-front", *sys.path, "/own-back"]


def test_a_replaced_sys_path_list_is_followed(late, monkeypatch):
    folder, name = late
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(sp_tasks.sys_path).result(timeout=30) == sys.path
        monkeypatch.setattr(sys, "path", [str(folder), *sys.path])
        assert pool.submit(sp_tasks.sys_path).result(timeout=30) == sys.path
        assert pool.submit(__import__(name).where, 1).result(timeout=30)[0] == 2
