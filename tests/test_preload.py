"""``preload=``: modules every worker imports before the constructor returns (preload.py)."""

from __future__ import annotations

import logging
import textwrap
import time

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from conftest import run_python
from subinterpreter_parallelism import compat, preload


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_preload_imports_before_the_first_task(module_dir, capsys, caplog):
    caplog.set_level(logging.INFO)
    (module_dir / "_preload_probe.py").write_text(
        textwrap.dedent("""
        import logging, time
        time.sleep(0.3)
        logging.getLogger("preload.probe").info("imported")
        print("probe imported")
    """)
    )
    started = time.monotonic()
    with sp.InterpreterPoolExecutor(2, preload=("_preload_probe", "json")) as pool:
        assert time.monotonic() - started >= 0.3
        # Everything the workers did while importing has arrived.
        assert capsys.readouterr().out == "probe imported\n" * 2
        assert [r.getMessage() for r in caplog.records if r.name == "preload.probe"] == ["imported"] * 2
        results = [pool.submit(sp_tasks.module_loaded, "_preload_probe") for _ in range(8)]
        assert all(f.result(timeout=30) is True for f in results)
    with sp.InterpreterPoolExecutor(1, preload="_preload_probe") as pool:  # one name alone
        assert pool.submit(sp_tasks.module_loaded, "json").result(timeout=30) is False
        assert pool.submit(sp_tasks.module_loaded, "_preload_probe").result(timeout=30) is True


def _refusing_module() -> str:
    """A real single-phase extension module: it refuses own-GIL interpreters (3.12 and 3.13)."""
    pytest.importorskip("_testsinglephase")
    return "_testsinglephase"


def test_preload_refusal_is_reported_at_creation(module_dir):
    refused = _refusing_module()
    with pytest.raises(ImportError) as info:
        sp.InterpreterPoolExecutor(2, preload=("json", refused))
    reason = f"module {refused} does not support loading in subinterpreters"
    assert str(info.value) == compat.refusal_message(refused, reason)
    assert reason in str(info.value.__cause__)  # the worker's traceback
    # through another module: the refusing one is named, and the preload module in a note
    (module_dir / "_preload_uses_refused.py").write_text(f"import {refused}\n")
    with pytest.raises(ImportError) as info:
        sp.InterpreterPoolExecutor(1, preload=["_preload_uses_refused"])
    assert str(info.value).startswith(f"{refused} cannot be imported in an own-GIL sub-interpreter")
    assert any("_preload_uses_refused" in note for note in info.value.__notes__)


def test_preload_numpy_gives_the_message_of_check():
    import importlib.util

    if importlib.util.find_spec("numpy") is None:  # not imported here: it starts BLAS threads
        pytest.skip("numpy is not installed")
    [verdict] = compat.check_modules(["numpy"])
    assert verdict.result == "refused"
    # In a fresh process: numpy's refused extension is still loaded, and its BLAS starts threads.
    result = run_python("""
        import subinterpreter_parallelism as sp
        try:
            sp.InterpreterPoolExecutor(1, preload=("numpy",))
        except ImportError as exc:
            print(exc, getattr(exc, "__notes__", None), sep="|")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == compat.refusal_message("numpy", verdict.reason) + "|None\n"


@pytest.mark.parametrize("one_first", [False, True])
def test_preload_with_one_worker_first(module_dir, monkeypatch, capsys, one_first):
    """3.12 needs one worker to try first (a refusal seen by two interpreters crashes it)."""
    monkeypatch.setattr(preload._versions, "ONE_WORKER_FIRST", one_first)
    (module_dir / "_preload_counted.py").write_text(
        "from subinterpreter_parallelism import _native\nprint('imported by', _native.worker_index())\n"
    )
    with sp.InterpreterPoolExecutor(3, preload=["_preload_counted"]) as pool:
        importers = sorted(capsys.readouterr().out.split())
        assert importers.count("imported") == 3
        assert pool.submit(sp_tasks.module_loaded, "_preload_counted").result(timeout=30)
    (module_dir / "_preload_fails_once.py").write_text(
        "from subinterpreter_parallelism import _native\n"
        "print('tried by', _native.worker_index())\n"
        "raise ImportError('no, thanks')\n"
    )
    with pytest.raises(ImportError, match="no, thanks"):
        sp.InterpreterPoolExecutor(3, preload=["_preload_fails_once"])
    tried = capsys.readouterr().out.splitlines()
    if one_first:
        assert tried == ["tried by 0"]
    else:
        assert len(tried) >= 1


@pytest.mark.parametrize("one_first", [False, True])
def test_a_failing_preload_is_reported_once_by_the_constructor(module_dir, monkeypatch, caplog, one_first):
    """The workers' failed bootstraps break the pool, which the constructor's exception
    already says: nothing is logged besides."""
    monkeypatch.setattr(preload._versions, "ONE_WORKER_FIRST", one_first)
    (module_dir / "_preload_refuses.py").write_text("raise ImportError('refused at import')\n")
    with pytest.raises(ImportError, match="refused at import"):
        sp.InterpreterPoolExecutor(3, preload=["_preload_refuses"])
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_preload_failures_keep_their_type(module_dir):
    with pytest.raises(ModuleNotFoundError, match="no_such_module_anywhere") as info:
        sp.InterpreterPoolExecutor(1, preload=("no_such_module_anywhere",))
    assert any("preload module 'no_such_module_anywhere'" in n for n in info.value.__notes__)
    (module_dir / "_preload_broken.py").write_text("raise RuntimeError('broken at import')\n")
    with pytest.raises(RuntimeError, match="broken at import") as info:
        sp.InterpreterPoolExecutor(2, preload=("_preload_broken",))
    assert "_preload_broken.py" in str(info.value.__cause__)


def test_preload_timeout(module_dir, monkeypatch):
    (module_dir / "_preload_slow.py").write_text("import time\ntime.sleep(1.5)\n")
    monkeypatch.setattr(preload, "PRELOAD_TIMEOUT", 0.2)
    with pytest.raises(TimeoutError, match="preload"):
        sp.InterpreterPoolExecutor(1, preload=("_preload_slow",))


def test_bad_names():
    with pytest.raises(TypeError):
        sp.InterpreterPoolExecutor(1, preload=("json", 3))
    with pytest.raises(TypeError):
        sp.InterpreterPoolExecutor(1, preload=("",))


def test_preload_in_a_subprocess(tmp_path):
    (tmp_path / "_preload_sub.py").write_text("VALUE = 42\nprint('sub imported')\n")
    refused = _refusing_module()
    result = run_python(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import subinterpreter_parallelism as sp, sp_tasks
        with sp.InterpreterPoolExecutor(2, preload=["_preload_sub"]) as pool:
            print(pool.submit(sp_tasks.module_loaded, "_preload_sub").result())
        sp.InterpreterPoolExecutor(2, preload=[{refused!r}])
    """)
    assert result.returncode == 1
    assert result.stdout == "sub imported\nsub imported\nTrue\n"
    assert result.stderr.rstrip().splitlines()[-1] == (
        "ImportError: "
        + compat.refusal_message(refused, f"module {refused} does not support loading in subinterpreters")
    )


def test_a_worker_ready_after_the_constructor_gave_up_is_no_error():
    """Issue 22, item 10: Ctrl-C in the constructor's preload wait closes the gate of one-worker-
    first (3.12); worker 0's "ready" that arrives after that used to raise QueueClosed in the
    completion thread ("Exception ignored in: ..._PoolState.on_event")."""
    from subinterpreter_parallelism import _native, preload

    watch = preload.PreloadWatch(2, ("json",))
    watch._gate = _native.Queue()  # the gate of one-worker-first, on every Python
    watch._close_gate()  # as the constructor's wait does when Ctrl-C ends it
    watch.on_message(b"ok", 0)  # worker 0 is ready, late
    assert watch._gate.is_closed()
