"""The rules for arguments that several entry points take: one rule per kind of argument.

Three kinds of number recur across the executor, ``map``, ``parallel()``,
``get_reusable_executor()`` and ``check_modules()``:

- **a wait** (``map(timeout=)``, ``parallel(timeout=)``): how long the caller waits for
  results. 0 is a wait that returns what is ready now, as ``Future.result(0)`` and
  ``concurrent.futures.wait(fs, 0)`` do, so a wait is ``>= 0``.
- **a time limit** (``task_timeout``, ``check_modules(timeout=)``): how long work may run.
  A limit of 0 would stop every task (or probe) before it could start, so a limit is ``> 0``.
- **a count** (``max_workers``, ``max_tasks_per_worker``, ``chunksize``, ``buffersize``,
  ``check_modules(jobs=)``): an ``int``, at least 1, as the stdlib's executors require.

Seconds are any real number but a bool (an int, a float, a ``Fraction``, numpy's scalars);
None, infinity, and anything beyond the longest wait the platform can do
(``threading.TIMEOUT_MAX``, about 292 years) mean no limit: such values reached the stdlib's
waits, which raise ``OverflowError`` after the tasks were sent. A count is an ``int`` and not
a bool (``True`` workers is a mistake, not 1). Every error names the argument.
"""

from __future__ import annotations

import numbers
import threading

__all__ = ["check_count", "check_time_limit", "check_timeout"]


def _seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    return float(value)


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    """A wait: seconds the caller waits for results, ``>= 0``; None means no limit.

    Returns the seconds as a float, or None for no limit (None, infinity, or longer than
    ``threading.TIMEOUT_MAX``).

    Raises:
        TypeError: not a real number (or a bool), nor None.
        ValueError: NaN or negative.
    """
    if timeout is None:
        return None
    seconds = _seconds(timeout, name)
    if not seconds >= 0:  # NaN too
        raise ValueError(f"{name} must be None or a number of seconds >= 0, not {timeout!r}")
    return None if seconds > threading.TIMEOUT_MAX else seconds


def check_time_limit(limit: object, name: str) -> float | None:
    """A time limit: seconds that work may run, ``> 0``; None means no limit.

    Returns the seconds as a float, or None for no limit (None, infinity, or longer than
    ``threading.TIMEOUT_MAX``).

    Raises:
        TypeError: not a real number (or a bool), nor None.
        ValueError: NaN, zero or negative.
    """
    if limit is None:
        return None
    seconds = _seconds(limit, name)
    if not seconds > 0:  # NaN too
        raise ValueError(f"{name} must be None or a number of seconds > 0, not {limit!r}")
    return None if seconds > threading.TIMEOUT_MAX else seconds


def check_count(value: object, name: str, maximum: int | None = None) -> int | None:
    """A count: an ``int`` from 1 (to ``maximum``, when given); None passes through.

    Raises:
        TypeError: not an int (a bool is not one here), nor None.
        ValueError: less than 1, or more than ``maximum``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, not {value!r}")
    return value
