"""The argument rules of ``_validate``: one rule per kind of argument, the same at every entry point.

- a wait (``map``'s and ``parallel()``'s ``timeout``): seconds >= 0, 0 returns what is ready;
- a time limit (``task_timeout``, ``check_modules(timeout=)``): seconds > 0;
- a count (``max_workers``, ``max_tasks_per_worker``, ``chunksize``, ``buffersize``,
  ``check_modules(jobs=)``): an int >= 1.

None, infinity and anything past ``threading.TIMEOUT_MAX`` mean no limit; every error names the
argument. The tests marked "changed" pin down where the entry points disagreed before the rules
were shared.
"""

from __future__ import annotations

import math
import threading
from fractions import Fraction

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from conftest import run_python
from subinterpreter_parallelism import _native, check, reusable
from subinterpreter_parallelism._validate import check_count, check_time_limit, check_timeout

WAIT = 60

# -- the rules themselves ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        (0, 0.0),
        (0.0, 0.0),
        (2, 2.0),
        (0.25, 0.25),
        (Fraction(1, 4), 0.25),
        (threading.TIMEOUT_MAX, threading.TIMEOUT_MAX),
        (math.inf, None),
        (1e300, None),
    ],
)
def test_a_wait_is_seconds_from_zero(value, expected):
    result = check_timeout(value, "patience")
    assert result == expected
    assert result is None or type(result) is float


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        (2, 2.0),
        (0.25, 0.25),
        (Fraction(1, 4), 0.25),
        (1e-9, 1e-9),
        (math.inf, None),
        (1e300, None),
    ],
)
def test_a_time_limit_is_seconds_above_zero(value, expected):
    result = check_time_limit(value, "limit")
    assert result == expected
    assert result is None or type(result) is float


@pytest.mark.parametrize("rule", [check_timeout, check_time_limit])
@pytest.mark.parametrize("bad", [-1, -0.001, -math.inf, math.nan])
def test_seconds_refuse_negative_and_nan_values_by_name(rule, bad):
    with pytest.raises(ValueError, match=r"^patience must be None or a number of seconds"):
        rule(bad, "patience")


def test_a_time_limit_of_zero_is_refused_but_a_wait_of_zero_is_not():
    assert check_timeout(0, "patience") == 0.0
    with pytest.raises(ValueError, match=r"^limit must be None or a number of seconds > 0, not 0$"):
        check_time_limit(0, "limit")
    with pytest.raises(ValueError, match=r"> 0, not 0.0$"):
        check_time_limit(0.0, "limit")


@pytest.mark.parametrize("rule", [check_timeout, check_time_limit])
@pytest.mark.parametrize("bad", ["1", b"1", True, False, 1j, [1], object()])
def test_seconds_refuse_what_is_not_a_real_number_by_name(rule, bad):
    with pytest.raises(TypeError, match=r"^patience must be a number of seconds or None, not "):
        rule(bad, "patience")


@pytest.mark.parametrize("value", [None, 1, 2, 4096])
def test_a_count_is_an_int_from_one(value):
    assert check_count(value, "workers", maximum=4096) == value


@pytest.mark.parametrize("bad", [0, -1, -(2**70)])
def test_a_count_below_one_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=rf"^workers must be >= 1, not {bad}$"):
        check_count(bad, "workers")


def test_a_count_over_its_maximum_is_refused_by_name():
    assert check_count(10**9, "workers") == 10**9  # no maximum: none
    with pytest.raises(ValueError, match=r"^workers must be at most 8, not 9$"):
        check_count(9, "workers", maximum=8)


@pytest.mark.parametrize("bad", [True, False, 2.0, math.nan, "2", Fraction(2), [2]])
def test_a_count_is_an_int_and_not_a_bool(bad):
    with pytest.raises(TypeError, match=r"^workers must be an int or None, not "):
        check_count(bad, "workers")


# -- every entry point takes the rule of its kind ----------------------------------------------


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(1) as executor:
        yield executor


def _constructor(**kwargs):
    return lambda value: sp.InterpreterPoolExecutor(**{"max_workers": 1, **kwargs, **value})


# (where, the argument's name in the error, a call that passes it the value)
ENTRY_POINTS = {
    "counts": [
        ("executor", "max_workers", lambda value: sp.InterpreterPoolExecutor(value)),
        ("reusable", "max_workers", lambda value: sp.get_reusable_executor(value)),
        (
            "executor",
            "max_tasks_per_worker",
            lambda value: sp.InterpreterPoolExecutor(1, max_tasks_per_worker=value),
        ),
        ("check_modules", "jobs", lambda value: check.check_modules(["json"], jobs=value)),
    ],
    "map counts": ["chunksize", "buffersize"],
    "limits": [
        ("executor", "task_timeout", lambda value: sp.InterpreterPoolExecutor(1, task_timeout=value)),
        ("reusable", "task_timeout", lambda value: sp.get_reusable_executor(1, task_timeout=value)),
        ("check_modules", "timeout", lambda value: check.check_modules(["json"], timeout=value)),
    ],
}


@pytest.mark.parametrize(
    "bad, error", [(0, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)]
)
@pytest.mark.parametrize(
    "where, name, call", ENTRY_POINTS["counts"], ids=lambda x: x if isinstance(x, str) else None
)
def test_counts_follow_one_rule_everywhere(where, name, call, bad, error):
    with pytest.raises(error, match=rf"^{name} must be "):
        call(bad)


@pytest.mark.parametrize(
    "bad, error", [(0, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)]
)
@pytest.mark.parametrize("name", ENTRY_POINTS["map counts"])
def test_map_counts_follow_the_same_rule(pool, name, bad, error):
    with pytest.raises(error, match=rf"^{name} must be "):
        pool.map(sp_tasks.square, [1], **{name: bad})
    assert pool.stats()["tasks_submitted"] == 0


@pytest.mark.parametrize(
    "bad, error",
    [(0, ValueError), (-1, ValueError), (math.nan, ValueError), ("1", TypeError), (True, TypeError)],
)
@pytest.mark.parametrize(
    "where, name, call", ENTRY_POINTS["limits"], ids=lambda x: x if isinstance(x, str) else None
)
def test_time_limits_follow_one_rule_everywhere(where, name, call, bad, error):
    with pytest.raises(error, match=rf"^{name} must be "):
        call(bad)


@pytest.mark.parametrize(
    "bad, error", [(-1, ValueError), (-math.inf, ValueError), (math.nan, ValueError), ("1", TypeError)]
)
def test_waits_follow_one_rule_everywhere(pool, bad, error):
    with pytest.raises(error, match=r"^timeout must be "):
        pool.map(sp_tasks.add, [1], [1], timeout=bad)
    with pytest.raises(error, match=r"^timeout must be "):
        sp.parallel(["sp_tasks", "add", (1, 2)], timeout=bad, executor=pool)
    assert pool.stats()["tasks_submitted"] == 0


def test_max_workers_has_the_cores_limit_in_the_constructor(pool):
    with pytest.raises(ValueError, match=rf"^max_workers must be at most {_native.MAX_WORKERS}, not "):
        sp.InterpreterPoolExecutor(_native.MAX_WORKERS + 1)


# -- what a wait of zero and a limit of zero mean ------------------------------------------------


def test_a_wait_of_zero_takes_what_is_ready_and_stops_the_rest(pool):
    assert list(pool.map(sp_tasks.square, [], timeout=0)) == []
    assert sp.parallel(timeout=0) == []
    # A task that never ends by itself is not ready: the map raises at once and stops it.
    results = pool.map(sp_tasks.spin, [120], timeout=0, chunksize=1)
    with pytest.raises(TimeoutError):
        next(results)
    assert pool.submit(sp_tasks.add, 1, 1).result(timeout=WAIT) == 2  # the worker is free again
    report = sp.Queue()
    with pytest.raises(TimeoutError, match="parallel"):
        sp.parallel(["sp_tasks", "spin_until_interrupted", (report,)], timeout=0, executor=pool)


# -- the cases that changed when the rules were shared ---------------------------------------------


def test_changed_task_timeout_takes_any_real_number():
    # It took only int and float; map's timeout took any real number.
    with sp.InterpreterPoolExecutor(1, task_timeout=Fraction(7200, 2)) as pool:
        assert pool._state.task_timeout == 3600.0
        assert pool.submit(sp_tasks.add, 1, 1).result(timeout=WAIT) == 2


def test_changed_check_modules_timeout_none_means_no_limit():
    # It raised TypeError ("'>' not supported"); None means no limit everywhere else.
    assert [r.result for r in check.check_modules(["json"], timeout=None)] == ["works"]


@pytest.mark.parametrize("bad", [1.5, True])
def test_changed_check_modules_jobs_must_be_an_int(bad):
    # jobs=1.5 and jobs=True passed (one module needs no job count; more reached ThreadPoolExecutor).
    with pytest.raises(TypeError, match=r"^jobs must be an int or None"):
        check.check_modules(["json", "math"], jobs=bad)


def test_changed_reusable_refuses_too_many_workers_before_replacing_its_pool():
    # The core's limit was checked only by the constructor, after get_reusable_executor() had
    # shut its current pool down.
    current = sp.get_reusable_executor(1)
    with pytest.raises(ValueError, match=rf"^max_workers must be at most {_native.MAX_WORKERS}"):
        sp.get_reusable_executor(_native.MAX_WORKERS + 1)
    assert reusable._executor is current and current.status == "running"
    assert sp.get_reusable_executor(1) is current


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--timeout", "0"], "--timeout must be None or a number of seconds > 0, not 0.0"),
        (["--timeout", "nan"], "--timeout must be None or a number of seconds > 0, not nan"),
        (["--jobs", "0"], "--jobs must be >= 1, not 0"),
    ],
)
def test_changed_check_command_line_says_the_rule(argv, message):
    done = run_python("", "-m", "subinterpreter_parallelism", "check", "json", *argv)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.rstrip().endswith(f"error: {message}"), done.stderr
