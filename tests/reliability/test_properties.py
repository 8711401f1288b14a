"""Property tests (item 13 of issue 7): random values round-trip unchanged; random mixes of
succeeding, raising and slow calls each get exactly their own outcome."""

from __future__ import annotations

import datetime
import math
from concurrent.futures import as_completed

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rel_tasks
import subinterpreter_parallelism as sp
from conftest import eventually

pytestmark = pytest.mark.timeout(600)

WAIT = 60
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- values ---------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.complex_numbers(allow_nan=True)
    | st.text()
    | st.binary()
    | st.binary().map(bytearray)
    | st.decimals(allow_nan=False)
    | st.fractions()
    | st.uuids()
)
scalars |= st.datetimes() | st.dates() | st.timedeltas()
hashables = (
    st.none() | st.booleans() | st.integers() | st.text() | st.binary() | st.tuples(st.integers(), st.text())
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.tuples(children, children)
        | st.dictionaries(hashables, children, max_size=6)
        | st.frozensets(hashables, max_size=6)
        | st.sets(hashables, max_size=6)
    ),
    max_leaves=40,
)


def same(a, b) -> bool:
    """Structural equality that also checks exact types, NaNs and the sign of zero."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)  # same keys, same order
    return a == b


@pytest.fixture(scope="module")
def pool():
    """One pool for the module (made before each test's leftover check, so it counts as
    already there; it is shut down after the last test)."""
    with sp.InterpreterPoolExecutor(2) as executor:
        # Workers start in the background: wait for both.
        eventually(lambda: executor.stats()["steps"]["interpreter_startup"]["count"] >= 2, WAIT)
        yield executor


@SETTINGS
@given(value=values)
def test_values_round_trip_through_parallel(value):
    (back,) = sp.parallel(["rel_tasks", "echo", (value,)])
    assert same(back, value), (back, value)


@SETTINGS
@given(batch=st.lists(values, min_size=1, max_size=8))
def test_values_round_trip_through_submit_and_map(pool, batch):
    futures = [pool.submit(rel_tasks.echo, value) for value in batch]
    assert all(same(f.result(timeout=WAIT), v) for f, v in zip(futures, batch))
    mapped = list(pool.map(rel_tasks.echo, batch, chunksize=3))
    assert all(same(m, v) for m, v in zip(mapped, batch))


def test_datetime_values_keep_their_type():
    # On 3.12 the workers run _pydatetime (the C _datetime refuses sub-interpreters); the
    # runner names its classes datetime.* so that values come back as the caller's types.
    values = [
        datetime.date(2000, 1, 2),
        datetime.datetime(2020, 5, 6, 7, 8, 9, 10),
        datetime.timedelta(days=3, seconds=4),
        datetime.time(1, 2, 3),
        datetime.UTC,
    ]
    back = sp.parallel(*[["rel_tasks", "echo", (value,)] for value in values])
    assert [type(b) for b in back] == [type(v) for v in values]
    assert back == values


# -- outcomes -------------------------------------------------------------------------

calls = st.lists(
    st.tuples(
        st.sampled_from(["ok", "raise", "key", "slow", "slow_raise"]), st.floats(min_value=0, max_value=0.01)
    ),
    min_size=1,
    max_size=30,
)


def check_outcome(kind, tag, future):
    error = future.exception(timeout=WAIT)
    if kind in ("ok", "slow"):
        assert error is None and future.result() == tag
    elif kind == "key":
        assert type(error) is KeyError and error.args == (tag,)
    else:
        assert type(error) is rel_tasks.PlannedError and error.args == (tag,)
        assert "planned" in error.__cause__.traceback


@SETTINGS
@given(plan=calls)
def test_each_call_gets_exactly_its_own_outcome(pool, plan):
    futures = [pool.submit(rel_tasks.planned, kind, i, seconds) for i, (kind, seconds) in enumerate(plan)]
    done = list(as_completed(futures, timeout=WAIT))
    assert len(done) == len(futures) and set(done) == set(futures)
    for i, ((kind, _), future) in enumerate(zip(plan, futures)):
        check_outcome(kind, i, future)


@SETTINGS
@given(plan=calls)
def test_parallel_reports_every_outcome_in_call_order(plan):
    arguments = [["rel_tasks", "planned", (kind, i, seconds)] for i, (kind, seconds) in enumerate(plan)]
    failing = [i for i, (kind, _) in enumerate(plan) if kind not in ("ok", "slow")]
    if not failing:
        assert sp.parallel(*arguments) == list(range(len(plan)))
        return
    with pytest.raises((rel_tasks.PlannedError, KeyError)) as info:
        sp.parallel(*arguments)
    assert info.value.args == (failing[0],)  # the lowest failing call is raised
    outcomes = info.value.parallel_outcomes
    assert [o.index for o in outcomes] == list(range(len(plan)))
    for i, ((kind, _), outcome) in enumerate(zip(plan, outcomes)):
        assert outcome.ok == (kind in ("ok", "slow"))
        if outcome.ok:
            assert outcome.value == i
        else:
            assert outcome.exception.args == (i,)


@SETTINGS
@given(
    n=st.integers(min_value=0, max_value=300),
    bad=st.integers(min_value=-1, max_value=300),
    chunksize=st.one_of(st.none(), st.integers(min_value=1, max_value=50)),
)
def test_map_yields_exactly_the_results_before_the_first_failure(pool, n, bad, chunksize):
    results = pool.map(rel_tasks.fail_at, range(n), [bad] * n, chunksize=chunksize)
    got = []
    if 0 <= bad < n:
        with pytest.raises(rel_tasks.PlannedError) as info:
            for value in results:
                got.append(value)
        assert info.value.args == (bad,)
        assert got == [2 * i for i in range(bad)]
    else:
        assert list(results) == [2 * i for i in range(n)]


def test_pool_of_this_module_ends_cleanly(pool):
    """Runs last in this module: the shared pool still works after every example."""
    assert pool.submit(rel_tasks.add, 1, 2).result(timeout=WAIT) == 3
    assert not pool._state.futures
