"""The pickle-free path of tiny tasks (issue 15): a module-level function called with None,
bool, int, float, str, bytes and tuple arguments (and, since issue 25, complex, frozenset and,
on 3.15+, frozendict ones) travels by name in the Swift core's shareable format, and such a
result comes back in it; everything else is pickled as before. Both paths
give the same values, types, exceptions and name resolution as pickle would.

Whether a worker used pickle shows in its ``sys.modules``: since the runner loads pickle only
for the first pickled call, result or exception, a worker that has run only shareable tasks
never imported ``_pickle``.
"""

from __future__ import annotations

import builtins
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fast_tasks
import subinterpreter_parallelism as sp
from subinterpreter_parallelism import _native, _wire

# Every kind the format holds, at its edges, and values it does not hold (pickled instead).
SHAREABLE = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**63 - 1,
    -(2**63),
    0.0,
    -0.0,
    1.5,
    math.inf,
    -math.inf,
    "",
    "text",
    "é ✓ 𝄞",
    b"",
    b"\x00\xff",
    (),
    (1,),
    (True, 1, 1.0, "1", b"1", None),
    ((((),),),),
    (1, ("a", (b"b", (None, (2.5,))))),
    # Issue 25: the immutable containers too.
    0j,
    1j,
    complex(-0.0, math.inf),
    (1.5 - 2j, "c"),
    frozenset(),
    frozenset({3}),
    frozenset({1, "a", b"b", None, (1, 2), 2.5, 3j}),
    frozenset({frozenset({1}), frozenset()}),
    (frozenset({"x"}), 1),
]
FROZENDICT = getattr(builtins, "frozendict", None)  # Python 3.15+
if FROZENDICT is not None:
    SHAREABLE += [
        FROZENDICT(),
        FROZENDICT({"a": 1, 2: (3, frozenset({4})), None: 5j}),
        FROZENDICT({"inner": FROZENDICT({"b": b"x"})}),
    ]
NOT_SHAREABLE = [
    2**63,
    -(2**63) - 1,
    10**40,
    "lone \ud800 surrogate",
    [1, 2],
    {"a": 1},
    {1, 2},
    frozenset({3, 2**64}),
    frozenset({(1, "lone \ud800")}),
    bytearray(b"ba"),
    (1, [2]),
    fast_tasks.Tools(),
    complex,
]


def same(a: object, b: object) -> bool:
    """Equal and of exactly the same type, all the way down (bool is not int, -0.0 keeps its sign)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (a != a and b != b)
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)  # type: ignore[attr-defined]
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if FROZENDICT is not None and isinstance(a, FROZENDICT):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, fast_tasks.Tools):
        return True
    return a == b


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


@pytest.mark.parametrize("value", SHAREABLE + NOT_SHAREABLE, ids=lambda v: repr(v)[:30])
def test_values_round_trip_exactly_as_argument_and_result(pool, value):
    assert same(pool.submit(fast_tasks.echo, value).result(timeout=60), value)
    assert same(
        pool.submit(fast_tasks.echo_kwargs, value, key=value).result(timeout=60),
        ((value,), (("key", value),)),
    )


def test_nan_round_trips(pool):
    (value,) = pool.submit(fast_tasks.echo, (math.nan,)).result(timeout=60)
    assert value != value


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.complex_numbers(allow_nan=False)
    | st.text()
    | st.binary()
)
_shareable = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4).map(tuple)
        | st.frozensets(
            st.recursive(_scalars, lambda c: st.lists(c, max_size=3).map(tuple), max_leaves=4), max_size=4
        )
        | (
            st.dictionaries(_scalars, children, max_size=3).map(FROZENDICT)
            if FROZENDICT is not None
            else st.nothing()
        )
    ),
    max_leaves=12,
)


def test_any_shareable_value_round_trips():
    with sp.InterpreterPoolExecutor(1) as pool:

        @settings(max_examples=60, deadline=None)
        @given(_shareable)
        def round_trips(value):
            assert same(pool.submit(fast_tasks.echo, value).result(timeout=60), value)

        round_trips()


def test_a_worker_that_ran_only_shareable_tasks_never_imported_pickle():
    # One worker, so that every task below runs in the interpreter that answers at the end.
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(fast_tasks.pickle_imported).result(timeout=60) is False  # the first task
        for value in SHAREABLE:
            assert same(pool.submit(fast_tasks.echo, value).result(timeout=60), value)
        assert pool.submit(fast_tasks.kinds, 1, True, None, 1.5, "s", b"b", ()).result(timeout=60) == (
            "int",
            "bool",
            "NoneType",
            "float",
            "str",
            "bytes",
            "tuple",
        )
        assert pool.submit(fast_tasks.echo_kwargs, 1, a=(2,), b=None).result(timeout=60) == (
            (1,),
            (("a", (2,)), ("b", None)),
        )
        assert pool.submit(fast_tasks.Tools.double, 21).result(timeout=60) == 42  # a dotted name
        assert pool.submit(math.hypot, 3.0, 4.0).result(timeout=60) == 5.0  # a module's builtin
        assert pool.submit(str, 12).result(timeout=60) == "12"  # a class
        assert pool.submit(fast_tasks.pickle_imported).result(timeout=60) is False
        # A value the format cannot hold is pickled, both ways.
        assert pool.submit(fast_tasks.echo, 2**64).result(timeout=60) == 2**64
        assert pool.submit(fast_tasks.pickle_imported).result(timeout=60) is True


def test_a_result_that_needs_pickle_loads_it_on_first_use():
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(fast_tasks.echo, (1, [2])).result(timeout=60) == (1, [2])
        assert pool.submit(fast_tasks.pickle_imported).result(timeout=60) is True


def test_exceptions_come_back_with_their_traceback(pool):
    with pytest.raises(ValueError, match="boom") as caught:
        pool.submit(fast_tasks.fail, "boom").result(timeout=60)
    text = str(caught.value.__cause__)
    assert "fast_tasks.py" in text and "in fail" in text and "_worker.py" not in text
    with pytest.raises(TypeError):
        pool.submit(fast_tasks.echo, 1, 2).result(timeout=60)  # wrong arguments
    with pytest.raises(TypeError):
        pool.submit(fast_tasks.echo, 1, nope=2).result(timeout=60)


def test_a_name_rebound_in_the_worker_resolves_to_the_new_function_as_with_pickle():
    with sp.InterpreterPoolExecutor(1) as pool:
        assert pool.submit(fast_tasks.answer).result(timeout=60) == "original"
        assert pool.submit(fast_tasks.rebind_answer).result(timeout=60) is True
        # Sent by name, resolved afresh in the worker: its module's `answer` is the replacement.
        assert pool.submit(fast_tasks.answer).result(timeout=60) == "replaced"


def test_a_function_whose_name_is_rebound_in_the_caller_travels_by_value(pool, monkeypatch):
    original = fast_tasks.answer
    assert pool.submit(original).result(timeout=60) == "original"  # remembered by name
    monkeypatch.setattr(fast_tasks, "answer", fast_tasks._replacement_answer)
    # fast_tasks.answer is no longer `original`: pickle would not send it by name, nor do we.
    assert pool.submit(original).result(timeout=60) == "original"
    assert pool.submit(fast_tasks.answer).result(timeout=60) == "replaced"


def test_functions_without_a_resolvable_name_still_work(pool):
    nested = fast_tasks.make_nested()
    assert pool.submit(nested, 1).result(timeout=60) == ("nested", 1)
    assert pool.submit(lambda x: x + 1, 1).result(timeout=60) == 2
    assert pool.submit([1, 2].index, 2).result(timeout=60) == 1  # a builtin method of an object
    import functools

    assert pool.submit(functools.partial(fast_tasks.echo, 5)).result(timeout=60) == 5


def test_builtins_that_read_the_calling_frame_get_one_on_the_pickled_path(pool):
    """The Swift worker calls Python functions and classes directly; anything else goes through
    the runner's ``invoke``, whose frame ``eval`` without globals reads (called from Swift, it
    would have no frame and raise)."""
    import functools

    assert (
        pool.submit(functools.partial(eval, "__name__")).result(timeout=60)
        == "subinterpreter_parallelism._worker"
    )
    assert pool.submit(eval, "[__name__]", None).result(timeout=60) == ["subinterpreter_parallelism._worker"]
    assert (
        pool.submit(fast_tasks.Tools).result(timeout=60).__class__.__name__ == "Tools"
    )  # a class, called directly


def test_large_bytes_still_travel_out_of_band(pool):
    data = b"x" * (_native.OUT_OF_BAND_MIN + 1)
    assert pool.submit(fast_tasks.echo, data).result(timeout=60) == data
    assert pool.submit(fast_tasks.echo, memoryview(data)).result(timeout=60) == data


def test_the_general_path_reads_shareable_outcomes_too():
    for value in SHAREABLE:
        encoded = _native.encode_shareable(value)
        assert encoded is not None and encoded[0] == _native.SHAREABLE_TAG
        ok, decoded = _wire.decode_outcome(encoded)
        assert ok and same(decoded, value)
    for value in NOT_SHAREABLE:
        assert _native.encode_shareable(value) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"S",
        b"\x80\x05N.",
        b"S\x63",
        b"S\x06\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"S\x08\x05\x00\x00\x00\x00\x00\x00\x00\x01",
        b"S\x01\x01",
        b"S" + b"\x08\x01" + b"\x00" * 7,
        b"S" + (b"\x08\x01" + b"\x00" * 7) * 100 + b"\x01",
    ],
    ids=lambda data: repr(data)[:40],
)
def test_malformed_shareable_bytes_are_a_value_error(data):
    with pytest.raises(ValueError, match="shareable format"):
        _native.decode_shareable(data)


def test_the_first_task_of_a_fresh_pool_runs_in_a_worker_that_never_imported_pickle():
    with sp.InterpreterPoolExecutor(2) as pool:
        assert pool.submit(fast_tasks.pickle_imported).result(timeout=60) is False


def test_a_pool_with_an_initializer_still_bootstraps():
    with sp.InterpreterPoolExecutor(1, initializer=fast_tasks.rebind_answer) as pool:
        assert pool.submit(fast_tasks.answer).result(timeout=60) == "replaced"
