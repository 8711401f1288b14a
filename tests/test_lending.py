"""A memoryview argument is lent to the worker: the task sees the caller's memory, without a
copy, and the caller's buffer stays held as long as any view in the worker can read it.

Observables: what the task reads after the caller changes its memory mid-task, what the caller
reads after the task writes, and the caller's bytearray, which refuses to resize while it has an
export (BufferError); `stats()["lent_buffers"]` counts the buffers held for workers.
Synchronisation is by Queue handshakes and by the order of a worker's events (the release of a
buffer a task kept is delivered before that worker's next outcome): no sleeps.
"""

from __future__ import annotations

import array

import pytest

import lend_tasks
import sp_tasks
import subinterpreter_parallelism as sp
from subinterpreter_parallelism import _native, _wire

SIZE = 1 << 20


@pytest.fixture
def pool():
    """One worker: the tasks of a test share its interpreter, and its events come in order."""
    with sp.InterpreterPoolExecutor(1) as executor:
        yield executor


def resizable(buffer: bytearray) -> bool:
    """Whether nothing holds an export of ``buffer`` (a held export refuses a resize)."""
    try:
        buffer.append(0)
    except BufferError:
        return False
    del buffer[-1]
    return True


def settle(pool) -> None:
    """Waits until every earlier outcome of the (one-worker) pool has been delivered in full,
    buffer releases included: they are handled before this task's outcome."""
    assert pool.submit(sp_tasks.add, 1).result(timeout=60) == 1


def test_the_task_reads_the_callers_memory_without_a_copy(pool):
    data = bytearray(SIZE)
    ready, go = sp.Queue(), sp.Queue()
    future = pool.submit(lend_tasks.first_byte_after_handshake, memoryview(data), ready, go)
    assert ready.get(timeout=60) == 0
    data[0] = 42  # after the task started: a copy made at submit or at start would not see it
    go.put("go")
    assert future.result(timeout=60) == 42


def test_the_tasks_writes_reach_the_caller(pool):
    data = bytearray(SIZE)
    assert pool.submit(lend_tasks.write, memoryview(data), 10, b"abcd").result(timeout=60) is False
    assert data[10:14] == b"abcd"
    # Shaped views too: the worker's view has the caller's format and shape.
    doubles = array.array("d", range(8))
    grid = memoryview(doubles).cast("B").cast("d", (2, 4))
    assert pool.submit(lend_tasks.layout, grid).result(timeout=60) == (
        "memoryview",
        "d",
        (2, 4),
        False,
        True,
        [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]],
    )
    pool.submit(lend_tasks.write, memoryview(doubles), 0, array.array("d", [9.5])).result(timeout=60)
    assert doubles[0] == 9.5


def test_a_read_only_view_stays_read_only(pool):
    data = bytes(SIZE)
    with pytest.raises(TypeError, match="read-only"):
        pool.submit(lend_tasks.write, memoryview(data), 0, b"x").result(timeout=60)
    assert data[0] == 0


def test_a_view_the_task_keeps_holds_the_callers_buffer_until_released(pool):
    data = bytearray(b"abc" * 1000)
    assert pool.submit(lend_tasks.keep, memoryview(data)).result(timeout=60) == 1
    settle(pool)
    # The worker still holds a slice of the caller's memory: the buffer stays exported.
    assert not resizable(data)
    assert pool.stats()["lent_buffers"] == 1
    data[1] = ord("z")
    assert pool.submit(lend_tasks.first_kept_byte).result(timeout=60) == ord("z")
    assert pool.submit(lend_tasks.drop_kept).result(timeout=60) == "dropped"
    # The release came before that task's outcome.
    assert pool.stats()["lent_buffers"] == 0
    assert resizable(data)


def test_a_kept_view_is_released_when_its_interpreter_ends():
    data = bytearray(SIZE)
    with sp.InterpreterPoolExecutor(1, max_tasks_per_worker=1) as pool:
        assert pool.submit(lend_tasks.keep, memoryview(data)).result(timeout=60) == 1
        # The next task runs in a fresh interpreter: the one that kept the view ended first.
        assert pool.submit(lend_tasks.first_kept_byte).result(timeout=60) is None
        assert pool.stats()["lent_buffers"] == 0
    assert resizable(data)


def test_many_lends_release_every_buffer(pool):
    data = bytearray(range(256)) * 64
    futures = [pool.submit(lend_tasks.total, memoryview(data)) for _ in range(300)]
    assert {f.result(timeout=120) for f in futures} == {sum(data)}
    settle(pool)
    assert pool.stats()["lent_buffers"] == 0
    assert resizable(data)


def test_returning_the_lent_view_gives_back_the_callers_view(pool):
    data = bytearray(b"0123456789" * 1000)
    view = memoryview(data)
    assert pool.submit(sp_tasks.echo, view).result(timeout=60) is view  # as with threads: no copy
    # A slice, or a view with another layout, comes back as bytes: one copy.
    part = pool.submit(lend_tasks.slice_of, view, 5, 25).result(timeout=60)
    assert type(part) is bytes and part == data[5:25]
    settle(pool)
    assert pool.stats()["lent_buffers"] == 0
    view.release()  # BufferError while the pool still held an export of it
    assert resizable(data)


def test_a_released_memoryview_is_refused_at_submit(pool):
    view = memoryview(bytearray(10))
    view.release()
    with pytest.raises(ValueError, match="released") as caught:
        pool.submit(sp_tasks.echo, view)
    assert "argument 0 is a released memoryview" in "".join(caught.value.__notes__)


def test_a_non_contiguous_view_is_copied(pool):
    """Documented fallback: a non-contiguous view travels as a snapshot with its format and
    shape; the task's writes to it do not reach the caller."""
    data = bytearray(range(20))
    strided = memoryview(data)[::2]
    assert pool.submit(lend_tasks.layout, strided).result(timeout=60) == (
        "memoryview",
        "B",
        (10,),
        False,
        True,
        list(range(0, 20, 2)),
    )
    pool.submit(lend_tasks.write, strided, 0, b"\xff").result(timeout=60)
    assert data[0] == 0
    strided.release()
    assert resizable(data)


def test_memoryview_results_of_any_size_come_back_as_bytes(pool):
    assert pool.submit(memoryview, b"abc").result(timeout=60) == b"abc"
    big = pool.submit(memoryview, bytes(SIZE)).result(timeout=60)
    assert type(big) is bytes and len(big) == SIZE


def test_a_bytearray_result_the_worker_keeps_is_a_snapshot(pool):
    back = pool.submit(lend_tasks.shared_bytearray, SIZE).result(timeout=60)
    assert type(back) is bytearray and back == b"s" * SIZE
    # Lent as it is, the worker's bytearray would refuse to grow until the caller had copied it.
    assert pool.submit(lend_tasks.grow_shared).result(timeout=60) == SIZE + 4


def test_the_out_of_band_rule_is_the_native_one():
    """One rule, in the Swift core's WireFormat; the Python encoders read it from `_native`."""
    assert _wire.out_of_band_kind is _native.out_of_band_kind
    big = _native.OUT_OF_BAND_MIN
    kinds = [
        (b"x", _native.OUT_OF_BAND_NO),
        (bytes(big - 1), _native.OUT_OF_BAND_NO),
        (bytes(big), _native.OUT_OF_BAND_BYTES),
        (bytearray(big), _native.OUT_OF_BAND_BYTEARRAY),
        ("text", _native.OUT_OF_BAND_NO),
    ]
    for value, kind in kinds:
        assert _native.out_of_band_kind(value) == kind, type(value)
    assert _native.out_of_band_kind(bytearray(1)) == _native.OUT_OF_BAND_NO
    assert _native.out_of_band_kind(memoryview(b"x")) == _native.OUT_OF_BAND_MEMORYVIEW
    assert _native.out_of_band_kind(type("B", (bytes,), {})(bytes(big))) == _native.OUT_OF_BAND_NO
