"""The memoryview a worker reads a pickled call from: released after the task, and nothing of
it leaked when its release fails."""

from __future__ import annotations

import view_tasks
from subinterpreter_parallelism import InterpreterPoolExecutor


def test_a_view_whose_release_fails_is_not_leaked():
    # Regression: when `view.release()` raised (the view still exported a buffer), the worker
    # leaked the bound method `release`, and with it the view.
    with InterpreterPoolExecutor(1) as pool:
        assert pool.submit(view_tasks.identity, view_tasks.Grabber()).result(timeout=60) == 0
        assert pool.submit(view_tasks.references_to_kept_view).result(timeout=60) == 0
        assert pool.submit(view_tasks.forget).result(timeout=60) == 0
