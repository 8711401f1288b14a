"""Every record that crosses (``_wire.py``, ``Wire.swift``): encoded on one side, decoded on the
other, every kind.

The Python halves are run across interpreters directly (the caller encodes, a worker decodes,
or the other way round); the Swift halves through the pool, which encodes and decodes each
kind of record on its own path.
"""

from __future__ import annotations

import operator

import pytest

import wire_tasks
from subinterpreter_parallelism import InterpreterPoolExecutor, _native, _wire
from subinterpreter_parallelism.errors import ExecutionFailed

BIG = _native.OUT_OF_BAND_MIN
describe = wire_tasks.describe


@pytest.fixture
def pool():
    with InterpreterPoolExecutor(2) as executor:
        yield executor


def _decoded_in_worker(pool, fn, args, kwargs):
    encoded = _wire.encode_call(fn, args, kwargs)
    data, extras = encoded if isinstance(encoded, tuple) else (encoded, [])
    return pool.submit(wire_tasks.decode_call, data, *extras).result(timeout=60)


NON_CONTIGUOUS = memoryview(bytearray(range(32)))[::2]

CALLS = {
    "plain": (wire_tasks.add, (1, 2), {}),
    "keywords": (wire_tasks.add, (1,), {"b": 2, "c": 3}),
    "a builtin": (sorted, ([3, 1, 2],), {}),
    "a lambda (by value)": (lambda a, b=0, **k: a * 10 + b, (4,), {"b": 2}),
    "large bytes": (wire_tasks.add, (b"x" * BIG, b"y"), {}),
    "a large bytearray": (wire_tasks.add, (bytearray(b"z" * BIG), bytearray(b"w")), {}),
    "a keyword memoryview (lent)": (wire_tasks.add, (b"a",), {"b": memoryview(b"m" * 100)}),
    "a non-contiguous memoryview": (operator.getitem, (NON_CONTIGUOUS, 3), {}),
}


@pytest.mark.parametrize("case", CALLS)
def test_a_call_encoded_in_the_caller_is_the_same_call_in_a_worker(pool, case):
    fn, args, kwargs = CALLS[case]
    _, got_args, got_kwargs, result = _decoded_in_worker(pool, fn, args, kwargs)
    expected_args = describe(args)
    if case == "a non-contiguous memoryview":  # a copy, with its format and shape
        assert got_args == ("tuple", [describe(memoryview(NON_CONTIGUOUS.tobytes())), describe(3)])
    elif case == "a keyword memoryview (lent)":
        assert got_args == expected_args and got_kwargs == ("dict", [("b", describe(memoryview(b"m" * 100)))])
    else:
        assert (got_args, got_kwargs) == (expected_args, describe(kwargs))
    assert result == describe(fn(*args, **kwargs))


def test_a_call_that_cannot_be_encoded_names_its_culprit():
    import threading

    with pytest.raises(TypeError) as info:
        _wire.encode_call(wire_tasks.add, (1, threading.Lock()), {})
    assert any("argument 1 (_thread.lock) cannot be pickled" in note for note in info.value.__notes__)
    released = memoryview(b"x")
    released.release()
    with pytest.raises(ValueError) as info:
        _wire.encode_call(wire_tasks.add, (released,), {})
    assert any("argument 0 is a released memoryview" in note for note in info.value.__notes__)


VALUES = [None, 7, "text", (1, ("a", 2.5)), [1, {"k": b"v"}], {3, 4}, 10**40]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_value_encoded_in_a_worker_decodes_in_the_caller(pool, value):
    encoded = pool.submit(wire_tasks.encode_value, value).result(timeout=60)
    assert encoded[0] == _native.VALUE_TAG
    ok, decoded = _wire.decode_outcome(encoded)
    assert ok and describe(decoded) == describe(value)


def test_a_value_that_cannot_be_pickled_becomes_its_error(pool):
    encoded = pool.submit(wire_tasks.encode_value_of_unpicklable).result(timeout=60)
    ok, error = _wire.decode_outcome(encoded)
    assert not ok and isinstance(error, TypeError)
    assert any("while pickling the result (_thread.lock)" in note for note in error.__notes__)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"b" * BIG, ("Lent", describe(b"b" * BIG), False)),
        (bytearray(b"c" * BIG), ("Lent", describe(bytearray(b"c" * BIG)), True)),
        (memoryview(b"d" * 10), ("Lent", describe(memoryview(b"d" * 10)), False)),
    ],
    ids=["bytes", "bytearray", "memoryview"],
)
def test_binary_results_are_lent_records_not_tuples(pool, value, expected):
    assert pool.submit(wire_tasks.encode_value, value).result(timeout=60) == expected


@pytest.mark.parametrize("value", [None, True, -5, 2.5, "s", b"b", (1, (2, "x"))], ids=repr)
def test_shareable_values_cross_both_ways(pool, value):
    from_worker = pool.submit(wire_tasks.encode_shareable, value).result(timeout=60)
    assert from_worker[0] == _native.SHAREABLE_TAG
    ok, decoded = _wire.decode_outcome(from_worker)
    assert ok and describe(decoded) == describe(value)
    from_caller = _native.encode_shareable(value)
    assert pool.submit(wire_tasks.decode_shareable, from_caller).result(timeout=60) == describe(value)


def test_errors_encoded_in_a_worker_decode_in_the_caller(pool):
    def decoded(kind):
        data = pool.submit(wire_tasks.encode_error, kind).result(timeout=60)
        assert data[0] == _native.ERROR_TAG
        return _wire.Error.decode(data)

    record = decoded("value")
    assert (record.type_name, record.message) == ("ValueError", "bad value")
    error = record.exception()
    assert type(error) is ValueError and error.args == ("bad value",)
    assert "raise ValueError" in str(error.__cause__)
    # Rebuilt from its text when the exception itself does not come back.
    for kind, type_name in (("unrebuildable", "wire_tasks.Unpicklable"), ("lock", "RuntimeError")):
        record = decoded(kind)
        assert record.type_name == type_name
        error = record.exception()
        assert type(error) is ExecutionFailed and type_name in str(error)
    refused = decoded("numpy").exception()
    assert type(refused) is ImportError
    assert any("own-GIL" in note or "subinterpreter" in note for note in refused.__notes__)
    ok, error = _wire.decode_outcome(_wire.Error("X", "m", "tb", None).encode())
    assert not ok and type(error) is ExecutionFailed
    with pytest.raises(ValueError, match="not an Error record"):
        _wire.Error.decode(bytes((_native.VALUE_TAG,)))


def test_chunks_encoded_in_a_worker_decode_in_the_caller(pool):
    def decoded(kind):
        return _wire.Chunk.decode(pool.submit(wire_tasks.encode_chunk, kind).result(timeout=60))

    chunk = decoded("whole")
    assert chunk.results == [1, "two", [3]] and chunk.failure is None
    chunk = decoded("failed")
    assert chunk.results == [1, 2] and type(chunk.failure.exception()) is KeyError
    chunk = decoded("unpicklable")  # the item that cannot be pickled fails; those before it come
    assert chunk.results == [1]
    assert any("while pickling the result" in note for note in chunk.failure.exception().__notes__)


def test_bootstraps_encoded_in_the_caller_decode_in_a_worker(pool):
    step = (wire_tasks.step, {"modules": ["json"], "n": 3})
    marshalled = _wire.Bootstrap([step], interruptible_sleep=False).encode()
    assert marshalled[0] != _native.VALUE_TAG  # no pickle: a worker starts without it
    assert pool.submit(wire_tasks.decode_bootstrap, marshalled).result(timeout=60) == (
        False,
        [("wire_tasks.step", {"modules": ["json"], "n": 3})],
        None,
        (),
    )
    pickled = _wire.Bootstrap([step], wire_tasks.add, (1, 2)).encode()
    assert pickled[0] == _native.VALUE_TAG
    assert pool.submit(wire_tasks.decode_bootstrap, pickled).result(timeout=60) == (
        True,
        [("wire_tasks.step", {"modules": ["json"], "n": 3})],
        "wire_tasks.add",
        (1, 2),
    )
    # A step argument marshal cannot hold (a class) makes the whole Bootstrap a pickle.
    assert _wire.Bootstrap([(wire_tasks.step, wire_tasks.Unpicklable)]).encode()[0] == _native.VALUE_TAG


# -- the Swift halves, through the pool ------------------------------------------------------------


def _closure():
    factor = 3
    return lambda x: x * factor


SWIFT_PATHS = {
    # Call by name, Shareable result.
    "by name": (operator.add, (2, 3), 5),
    # Call as a C pickle, a Value back (C pickle).
    "pickled": (sorted, ([3, 1, 2],), [1, 2, 3]),
    # Call by _wire.encode_call (cloudpickle), Shareable back.
    "by value": (lambda x: (x, "y"), (1,), (1, "y")),
    # Call with out-of-band arguments (_wire.decode_call), Lent results back.
    "lent bytes": (bytes, (b"q" * BIG,), b"q" * BIG),
    "lent bytearray": (bytearray, (bytearray(b"r" * BIG),), bytearray(b"r" * BIG)),
    # A value the C pickler cannot take: _wire.encode_value (cloudpickle).
    "value by value": (_closure, (), None),
}


@pytest.mark.parametrize("case", SWIFT_PATHS)
def test_every_path_of_the_swift_half_round_trips(pool, case):
    fn, args, expected = SWIFT_PATHS[case]
    result = pool.submit(fn, *args).result(timeout=60)
    if case == "value by value":
        assert result(5) == 15
    else:
        assert type(result) is type(expected) and result == expected


def test_errors_and_chunks_and_bootstraps_through_the_pool():
    with InterpreterPoolExecutor(
        1, initializer=wire_tasks.step, initargs=(1,)
    ) as pool:  # a pickled Bootstrap
        with pytest.raises(ZeroDivisionError):
            pool.submit(operator.truediv, 1, 0).result(timeout=60)
        assert list(pool.map(abs, [-1, -2, -3], chunksize=2)) == [1, 2, 3]
        results = pool.map(operator.truediv, [1, 1, 1], [1, 0, 1], chunksize=3)
        assert next(results) == 1.0
        with pytest.raises(ZeroDivisionError):
            next(results)
