"""subinterpreter_parallelism.Queue: one FIFO shared by every interpreter of the process."""

from __future__ import annotations

import pickle
import queue as stdlib_queue
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sp_tasks
import subinterpreter_parallelism as sp
from subinterpreter_parallelism import _native


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


def test_fifo_and_stdlib_exceptions():
    q = sp.Queue()
    assert q.empty() and q.qsize() == 0 and not q.full()
    for item in [1, "two", (3,), {"four": [4]}, None, b"\x00six"]:
        q.put(item)
    assert q.qsize() == 6
    assert [q.get() for _ in range(6)] == [1, "two", (3,), {"four": [4]}, None, b"\x00six"]
    with pytest.raises(stdlib_queue.Empty):
        q.get_nowait()
    with pytest.raises(stdlib_queue.Empty):
        q.get(block=False)
    start = time.monotonic()
    with pytest.raises(stdlib_queue.Empty):
        q.get(timeout=0.1)
    assert time.monotonic() - start >= 0.09


def test_maxsize_and_full():
    q = sp.Queue(maxsize=2)
    assert q.maxsize == 2 and sp.Queue().maxsize == 0
    q.put(1)
    q.put_nowait(2)
    assert q.full()
    with pytest.raises(stdlib_queue.Full):
        q.put_nowait(3)
    with pytest.raises(stdlib_queue.Full):
        q.put(3, timeout=0.05)
    assert q.get() == 1
    q.put(3, block=True, timeout=1)
    assert [q.get(), q.get()] == [2, 3]


def test_bad_arguments():
    with pytest.raises(TypeError):
        sp.Queue("big")
    with pytest.raises(TypeError):
        sp.Queue(maxsize=1, other=2)
    q = sp.Queue()
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    with pytest.raises(TypeError):
        q.put()
    with pytest.raises(TypeError, match="pickle"):
        q.put(threading.Lock())
    assert q.empty()  # nothing half-put


def test_blocking_get_releases_the_gil_and_wakes_on_put():
    q = sp.Queue()
    got = []
    thread = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    thread.start()
    # While the thread waits in q.get(), this thread keeps running Python code.
    spins = sp_tasks.spin(0.2)
    assert spins > 1000
    q.put("wake up")
    thread.join(10)
    assert got == ["wake up"]


def test_close_wakes_every_waiter():
    q = sp.Queue(maxsize=1)
    q.put("kept")
    errors = []

    def putter():
        try:
            q.put("never")
        except sp.QueueClosed as exc:
            errors.append(exc)

    threads = [threading.Thread(target=putter) for _ in range(3)]
    for t in threads:
        t.start()
    # A putter blocks in put() or, on a loaded machine, meets the closed queue there first:
    # both must raise QueueClosed, so the test holds however the threads are scheduled.
    q.close()
    for t in threads:
        t.join(10)
    assert len(errors) == 3 and all("closed" in str(e) for e in errors)
    assert q.is_closed()
    assert q.get() == "kept"  # items put before close can still be taken
    with pytest.raises(sp.QueueClosed):
        q.get(timeout=5)
    with pytest.raises(sp.QueueClosed):
        q.put(1)


def test_close_wakes_a_worker_blocked_in_get(pool):
    q = sp.Queue()
    future = pool.submit(sp_tasks.wait_on_queue, q)
    # As above: blocked in get() or not there yet, the task must see QueueClosed.
    q.close()
    with pytest.raises(sp.QueueClosed):
        future.result(timeout=10)


def test_a_queue_passed_to_a_task_is_the_same_queue(pool):
    q = sp.Queue()
    assert pool.submit(sp_tasks.put_all, q, [1, 2, 3]).result(timeout=10) == 3
    assert [q.get(timeout=5) for _ in range(3)] == [1, 2, 3]
    for i in range(5):
        q.put(i)
    assert pool.submit(sp_tasks.get_n, q, 5).result(timeout=10) == [0, 1, 2, 3, 4]
    # through parallel() too
    assert sp.parallel(["sp_tasks", "put_all", (q, ["x"])]) == [1]
    assert q.get(timeout=5) == "x"


def test_hand_off_between_workers_and_caller(pool):
    inbox, outbox = sp.Queue(), sp.Queue()
    relay = pool.submit(sp_tasks.relay, inbox, outbox, 500)
    for i in range(500):
        inbox.put(i)
        assert outbox.get(timeout=10) == i
    assert relay.result(timeout=10) == 500


def test_pickled_handle_outside_tasks():
    q = sp.Queue()
    copy = pickle.loads(pickle.dumps(q))
    copy.put("via copy")
    assert q.get(timeout=1) == "via copy"
    assert copy._id() == q._id()


def test_queue_dies_with_its_last_handle():
    q = sp.Queue()
    data = pickle.dumps(q)
    del q
    with pytest.raises(LookupError, match="no longer exists"):
        pickle.loads(data)


def test_a_queue_in_transit_outlives_its_last_handle():
    outer, inner = sp.Queue(), sp.Queue()
    inner.put("kept")
    outer.put(inner)
    del inner  # the item in `outer` is now the only thing that refers to it
    received = outer.get(timeout=5)
    assert received.get(timeout=5) == "kept"


def test_a_queue_in_a_dropped_item_is_released():
    outer, inner = sp.Queue(), sp.Queue()
    inner_id = inner._id()
    outer.put(inner)
    del inner
    assert _native._attach_queue(inner_id)._id() == inner_id  # kept alive by the item
    del outer  # the item goes with its queue, and the pin with the item
    with pytest.raises(LookupError, match="no longer exists"):
        _native._attach_queue(inner_id)
    # A queue holding a handle to itself is not kept alive by it.
    q = sp.Queue()
    q_id = q._id()
    q.put(q)
    del q
    with pytest.raises(LookupError, match="no longer exists"):
        _native._attach_queue(q_id)


def test_a_queue_made_and_returned_by_a_task(pool):
    q = pool.submit(sp_tasks.make_queue, ["a", "b"]).result(timeout=30)
    assert [q.get(timeout=5), q.get(timeout=5)] == ["a", "b"]


def test_a_queue_passed_to_a_task_outlives_the_callers_handle():
    with sp.InterpreterPoolExecutor(1) as pool:
        gate = sp.Queue()
        blocker = pool.submit(sp_tasks.wait_on_queue, gate)  # holds the only worker
        q = sp.Queue()
        q.put("inside")
        future = pool.submit(sp_tasks.wait_on_queue, q)
        del q  # the queued task's pickled call is now the only reference
        gate.put("go")
        assert blocker.result(timeout=30) == "go"
        assert future.result(timeout=30) == "inside"


def test_none_timeout_means_no_limit_as_in_queue_Queue():
    q = sp.Queue(maxsize=2)
    q.put(1, timeout=None)
    q.put(2, True, None)
    assert q.get(timeout=None) == 1
    assert q.get(True, None) == 2
    q.put(3, block=True, timeout=None)
    assert q.get(block=True, timeout=None) == 3
    # A blocking get without a limit is woken by a put from another thread.
    got = []
    getter = threading.Thread(target=lambda: got.append(q.get(timeout=None)))
    getter.start()
    q.put("woken")
    getter.join(30)
    assert got == ["woken"]


def test_timeout_of_parallel_interrupts_a_task_blocked_in_get():
    q = sp.Queue()
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        sp.parallel(["sp_tasks", "wait_on_queue", (q,)], timeout=0.3)
    assert time.monotonic() - start < 60  # the task waits forever unless interrupted
    q.put("later")
    assert sp.parallel(["sp_tasks", "wait_on_queue", (q,)], timeout=10) == ["later"]


@pytest.mark.timeout(300)
def test_two_producers_two_consumers_move_100k_items_exactly():
    count = 50_000
    stop = ("stop", -1)
    q = sp.Queue(maxsize=1000)
    with sp.InterpreterPoolExecutor(4) as pool:
        consumers = [pool.submit(sp_tasks.consume, q, stop) for _ in range(2)]
        producers = [pool.submit(sp_tasks.produce, q, p, count) for p in range(2)]
        assert [f.result(timeout=240) for f in producers] == [count, count]
        for _ in consumers:
            q.put(stop)
        received = [f.result(timeout=240) for f in consumers]
    items = [tuple(item) for chunk in received for item in chunk]
    assert len(items) == 2 * count
    assert len(set(items)) == 2 * count  # none duplicated
    assert set(items) == {(p, i) for p in range(2) for i in range(count)}  # none lost
    for chunk in received:  # order kept per producer, as each consumer saw it
        for producer in range(2):
            seq = [i for p, i in chunk if p == producer]
            assert seq == sorted(seq)


# Items made only of the types the stdlib shares natively (None, bool, int, float, str, bytes,
# tuples of them) skip pickle (ShareableCodec.swift); everything at the edges of that format
# must come back equal and of the same exact type, whichever way it travelled.
class _Text(str):
    pass


def _nested(depth: int) -> tuple:
    item: tuple = ()
    for _ in range(depth):
        item = (item,)
    return item


_EDGE_ITEMS = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    -(2**63) - 1,
    10**40,
    0.0,
    -0.0,
    1.5,
    float("inf"),
    float("-inf"),
    "",
    "héllo ✓ \x00 𝄞",
    "lone \ud800 surrogate",
    b"",
    bytes(range(256)),
    (),
    (1, "a", b"b", None, (2.5, (True, False))),
    (1, [2]),
    ([],),
    tuple(range(1000)),
    ("a", "\udc80"),
    (1, 2**64),
    (0.5, _Text("inside")),
    _nested(10),
    _nested(200),
    1 + 2j,
    [1, (2,)],
    {"k": (1,)},
    frozenset({1}),
    bytearray(b"x"),
    _Text("a str subclass"),
    sp_tasks.__name__,
]


def _types_in(item: object) -> set[type]:
    if type(item) is tuple:
        return {tuple}.union(*(_types_in(x) for x in item))
    return {type(item)}


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and str(a) == str(b)  # -0.0 keeps its sign
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("item", _EDGE_ITEMS, ids=lambda item: repr(item)[:30])
def test_items_come_back_equal_and_of_the_same_type(item):
    q = sp.Queue()
    q.put(item)
    assert _same(q.get_nowait(), item)


def test_nan_comes_back_as_nan():
    q = sp.Queue()
    q.put((float("nan"),))
    (value,) = q.get_nowait()
    assert value != value


def test_every_call_form_of_put_and_get_takes_the_same_items():
    q = sp.Queue(maxsize=4)
    q.put(1)
    q.put(2, True)
    q.put(3, block=True, timeout=None)
    q.put_nowait((4, "four"))
    assert [q.get(), q.get(True), q.get(block=True, timeout=1), q.get_nowait()] == [1, 2, 3, (4, "four")]
    with pytest.raises(TypeError):
        q.put()
    with pytest.raises(TypeError):
        q.get(1, 2, 3)


def test_items_of_every_kind_cross_to_a_worker_and_back(pool):
    # The worker decodes what the caller encoded and encodes its answer the same way.
    inbox, outbox = sp.Queue(), sp.Queue()
    # (_Text lives in this test module, which workers do not import.)
    items = [item for item in _EDGE_ITEMS if _Text not in _types_in(item)]
    relay = pool.submit(sp_tasks.relay, inbox, outbox, len(items))
    for item in items:
        inbox.put(item)
        assert _same(outbox.get(timeout=30), item)
    assert relay.result(timeout=30) == len(items)


def test_a_tuple_holding_a_queue_still_carries_the_queue(pool):
    # Not a shareable item (the handle is pickled): the queue inside stays alive in transit.
    outer = sp.Queue()
    inner = sp.Queue()
    outer.put((1, inner))
    del inner
    number, inner = outer.get_nowait()
    inner.put("through the inner queue")
    assert number == 1 and inner.get_nowait() == "through the inner queue"


_shareable = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4).map(tuple),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_shareable)
def test_shareable_items_round_trip(item):
    q = sp.Queue()
    q.put(item)
    got = q.get_nowait()
    assert repr(got) == repr(item) and _same_types(got, item)


def _same_types(a: object, b: object) -> bool:
    if isinstance(a, tuple):
        return type(b) is tuple and len(a) == len(b) and all(_same_types(x, y) for x, y in zip(a, b))
    return type(a) is type(b)
