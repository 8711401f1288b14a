"""The memoryview a worker reads a pickled call from: released after the task, and nothing of
it leaked when its release fails."""

from __future__ import annotations

import pytest

import view_tasks
from subinterpreter_parallelism import InterpreterPoolExecutor, _native


def test_a_view_whose_release_fails_is_not_leaked():
    # Regression: when `view.release()` raised (the view still exported a buffer), the worker
    # leaked the bound method `release`, and with it the view. Only the Python decoder of calls
    # with out-of-band arguments (here a large bytes) has the view on a Python frame.
    large = bytes(_native.OUT_OF_BAND_MIN)
    with InterpreterPoolExecutor(1) as pool:
        assert pool.submit(view_tasks.identity, view_tasks.Grabber(), large).result(timeout=60) == 0
        assert pool.submit(view_tasks.references_to_kept_view).result(timeout=60) == 0
        assert pool.submit(view_tasks.forget).result(timeout=60) == 0


def test_a_plain_call_is_unpickled_where_python_cannot_reach_the_view():
    """A pickled call without out-of-band arguments is unpickled by the Swift worker: no Python
    frame holds the view over the caller's bytes: the reconstructor has no Python caller."""
    with InterpreterPoolExecutor(1) as pool, pytest.raises(ValueError, match="call stack is not deep enough"):
        pool.submit(view_tasks.identity, view_tasks.Grabber()).result(timeout=60)
