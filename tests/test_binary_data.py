"""Binary arguments and results (bytes, bytearray, memoryview) travel out of band, never
pickled, and arrive as the same type with the same contents, both ways."""

from __future__ import annotations

import array

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from subinterpreter_parallelism import _native

LARGE = _native.OUT_OF_BAND_MIN + 13  # just past the out-of-band threshold, odd-sized


def describe(value):
    """What the worker received: type, contents, and a memoryview's format/shape/readonly."""
    if isinstance(value, memoryview):
        return ("memoryview", value.tobytes(), value.format, value.shape, value.readonly)
    return (type(value).__name__, bytes(value))


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


@pytest.mark.parametrize("size", [10, LARGE])
def test_bytes_and_bytearray_arguments_and_results_keep_their_type(pool, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for value in (data, bytearray(data)):
        back = pool.submit(sp_tasks.echo, value).result(timeout=60)
        assert type(back) is type(value) and back == value


@pytest.mark.parametrize("size", [10, LARGE])
def test_memoryview_arguments_arrive_as_memoryviews(pool, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    readonly = memoryview(data)
    writable = memoryview(bytearray(data))
    doubles = memoryview(array.array("d", range(size // 8 + 1)))
    grid = memoryview(bytearray(data[: (size // 4) * 4])).cast("B", (4, size // 4))
    for view in (readonly, writable, doubles, grid):
        got = pool.submit(describe, view).result(timeout=60)
        assert got == ("memoryview", view.tobytes(), view.format, view.shape, view.readonly)
    # As a keyword argument too.
    assert pool.submit(describe, value=readonly).result(timeout=60)[1] == data


def test_a_bytearray_argument_is_a_snapshot_taken_at_submit(pool):
    """As with a process pool: changing the buffer after submit does not change the task's copy,
    even while the task has not started (the only worker is busy until we let it go)."""
    with sp.InterpreterPoolExecutor(1) as single:
        gate = sp.Queue()
        blocker = single.submit(sp_tasks.wait_on_queue, gate)
        buffer = bytearray(b"a" * LARGE)
        future = single.submit(sp_tasks.echo, buffer)
        buffer[:] = b"b" * LARGE
        gate.put("go")
        blocker.result(timeout=60)
        assert future.result(timeout=60) == bytearray(b"a" * LARGE)


def test_large_memoryview_result_comes_back_as_bytes(pool):
    data = bytes(LARGE)
    back = pool.submit(memoryview, data).result(timeout=60)
    assert type(back) is bytes and back == data


def test_large_bytearray_result_is_independent_of_the_worker(pool):
    back = pool.submit(bytearray, LARGE).result(timeout=60)
    assert type(back) is bytearray and back == bytearray(LARGE)
    back[0] = 1  # ours to change
    assert pool.submit(len, back).result(timeout=60) == LARGE
