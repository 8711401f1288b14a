"""Recognising a refusal (_refusal.py): the package the task imported, trimmed messages, and
the one chain walk that the worker and the caller share."""

from __future__ import annotations

import pytest

import subinterpreter_parallelism as sp
from subinterpreter_parallelism import _refusal, _wire, _worker
from subinterpreter_parallelism.errors import ExecutionFailed

try:  # imported here first: a worker's refused import starts numpy's BLAS threads in this process
    import numpy
except ImportError:
    numpy = None

REASON = "module rpds.rpds does not support loading in subinterpreters"


def _remote_text(package_root: str) -> str:
    """A worker's traceback of `import spr_wrapper` that failed in its dependency rpds, after
    an earlier, chained failure inside the dependency itself."""
    return (
        "Traceback (most recent call last):\n"
        f'  File "{package_root}/rpds/__init__.py", line 1, in <module>\n'
        "    from .rpds import *\n"
        f"ImportError: {REASON}\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n"
        '  File "/home/user/script.py", line 5, in task\n'
        "    import spr_wrapper\n"
        f'  File "{package_root}/spr_wrapper/__init__.py", line 1, in <module>\n'
        "    import rpds\n"
        f'  File "{package_root}/rpds/__init__.py", line 3, in <module>\n'
        "    raise ImportError(...) from exc\n"
        f"ImportError: {REASON}\n"
    )


def test_refusal_names_the_package_the_task_imported(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    exc = ImportError(REASON)
    exc.__cause__ = sp.RemoteTraceback(_remote_text(str(tmp_path)))
    refusal = _refusal.find_refusal(exc)
    assert (refusal.module, refusal.extension, refusal.package) == ("rpds", "rpds.rpds", "spr_wrapper")
    assert refusal.describe() == "spr_wrapper (needs rpds, which refuses own-GIL sub-interpreters)"
    assert refusal.message().startswith(
        f"spr_wrapper cannot be imported in an own-GIL sub-interpreter: it needs rpds: {REASON}. "
        "Check modules ahead with `python -m subinterpreter_parallelism check spr_wrapper`"
    )
    # Not found on sys.path: the refusing module is all that is known.
    elsewhere = ImportError(REASON)
    elsewhere.__cause__ = sp.RemoteTraceback(_remote_text("/nowhere/on/sys/path"))
    assert _refusal.find_refusal(elsewhere).describe() == "rpds"


def test_subinterpreter_only_failures_are_refusals_too():
    datetime_capi = AttributeError("module 'datetime' has no attribute 'datetime_CAPI'")
    refusal = _refusal.find_refusal(datetime_capi)
    assert refusal is not None and refusal.extension == "_datetime"
    assert _refusal.find_refusal(AttributeError("module 'x' has no attribute 'y'")) is None
    # A task that caught the refusal and raised something else did not fail because of it.
    try:
        try:
            raise ImportError(REASON)
        except ImportError as inner:
            raise ValueError("handled") from inner
    except ValueError as outer:
        assert _refusal.find_refusal(outer) is None


def test_worker_and_caller_share_the_walk():
    """run_chunk (in the worker) raises exactly the failures the caller's fallback takes over."""

    def refused(_):
        raise ImportError(REASON)

    def caught(_):
        try:
            raise ImportError(REASON)
        except ImportError as exc:
            raise ValueError("no") from exc

    with pytest.raises(ImportError):
        _worker.run_chunk(refused, [(1,)], raise_refusals=True)
    _, failure = _worker.run_chunk(caught, [(1,)], raise_refusals=True)
    ok, error = _wire.decode_outcome(failure)
    assert not ok and isinstance(error, ValueError)
    assert _refusal.find_refusal(error) is None


@pytest.mark.timeout(120)
def test_numpy_banner_is_trimmed_to_one_line_with_the_full_text_kept():
    pytest.importorskip("numpy")

    with sp.InterpreterPoolExecutor(1) as pool, pytest.raises(ImportError) as info:
        pool.submit(_worker.call_by_name, "numpy", "zeros", (3,), {}).result(timeout=60)
    message = str(info.value)
    assert "\n" not in message and "IMPORTANT" not in message
    assert message.startswith(
        "Original error was: module numpy._core._multiarray_umath does not support loading "
        "in subinterpreters [numpy's message of "
    )
    cause = info.value.__cause__
    assert "IMPORTANT: PLEASE READ THIS" not in str(cause)
    assert "IMPORTANT: PLEASE READ THIS" in cause.untrimmed
    assert any(
        note.startswith("numpy cannot be imported in an own-GIL sub-interpreter")
        for note in info.value.__notes__
    )


# -- the refusal in an exception, its chain, a remote traceback -----------------------------------


def test_find_refusal_in_message_chain_and_remote_traceback():
    direct = ImportError("module numpy._core._multiarray_umath does not support loading in subinterpreters")
    found = _refusal.find_refusal(direct)
    assert found == _refusal.Refusal(
        "numpy",
        "numpy._core._multiarray_umath",
        "module numpy._core._multiarray_umath does not support loading in subinterpreters",
    )
    assert _refusal.is_refusal(direct) and _refusal.refused_module(direct) == "numpy._core._multiarray_umath"

    wrapper = ImportError("the C extension failed")
    wrapper.__cause__ = ImportError("module _foo does not support loading in subinterpreters")
    assert _refusal.find_refusal(wrapper).extension == "_foo"

    # Chained exceptions do not survive pickling; the remote traceback text does.
    remote = ImportError("pkg failed to import")
    remote.__cause__ = sp.RemoteTraceback(
        "Traceback...\nImportError: module pkg._speedups does not support loading in subinterpreters\n"
    )
    assert _refusal.find_refusal(remote).module == "pkg"

    failed = ExecutionFailed(
        "ImportError", "x", "ImportError: module _bar does not support loading in subinterpreters"
    )
    assert _refusal.find_refusal(failed).extension == "_bar"


def test_find_refusal_ignores_other_errors():
    assert _refusal.find_refusal(ImportError("No module named 'x'")) is None
    not_import = RuntimeError("module _foo does not support loading in subinterpreters")
    assert _refusal.find_refusal(not_import) is None and not _refusal.is_refusal(not_import)
    assert (
        _refusal.find_refusal(
            ExecutionFailed("ValueError", "module _foo does not support loading in subinterpreters")
        )
        is None
    )


def test_refusal_message_names_module_check_and_fallback():
    text = _refusal.refusal_message(
        "numpy", "module numpy._core._multiarray_umath does not support loading in subinterpreters"
    )
    assert text.startswith("numpy cannot be imported in an own-GIL sub-interpreter")
    assert "python -m subinterpreter_parallelism check numpy" in text
    assert 'fallback="process"' in text
