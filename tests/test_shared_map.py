"""``sp.SharedMap`` (issue 25): a read-only mapping stored once in native memory, read by every
interpreter; handles (never the entries) travel to tasks, initializers, queues and results;
files that other processes map; clear errors for keys it cannot hold and files it cannot read.
"""

from __future__ import annotations

import builtins
import collections
import copy
import enum
import functools
import gc
import math
import os
import pickle
import threading
import warnings
from collections.abc import Mapping
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shared_map_tasks as tasks
import subinterpreter_parallelism as sp
from conftest import run_python
from subinterpreter_parallelism import _native, _pickling

FROZENDICT = getattr(builtins, "frozendict", None)  # Python 3.15+

ENTRIES = {
    "a": 1,
    "b": (2, 2.5, "two"),
    3: [3, "three"],
    (4, "four"): {"x": 4},
    None: b"none",
    5.5: frozenset({5, "five"}),
    b"k": 6 - 1j,
    -7: tasks.Point(7, 7.5),
    "": None,
}


class Color(enum.IntEnum):
    RED = 1


def live_maps() -> int:
    gc.collect()
    return sp.SharedMap._live()[0]


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


# -- the mapping ------------------------------------------------------------------------------


def test_it_reads_like_the_dict_it_was_built_from():
    m = sp.SharedMap(ENTRIES)
    assert isinstance(m, Mapping) and m == ENTRIES and dict(m) == ENTRIES
    assert tasks.mismatches(m, ENTRIES) == []
    assert m.get("missing") is None and m.get("missing", 7) == 7
    assert "missing" not in m and 3 in m and (4, "four") in m
    with pytest.raises(KeyError) as caught:
        m[(1, 2)]
    assert caught.value.args == ((1, 2),)  # the key whole, as dict says it
    assert len(sp.SharedMap()) == 0 and sp.SharedMap() == {} and list(sp.SharedMap({})) == []
    assert m[3] is not m[3]  # each lookup builds its value
    match m:
        case {"a": 1, "b": (2, _, name)}:
            assert name == "two"
        case _:
            pytest.fail("a SharedMap matches mapping patterns")


def test_it_is_built_from_mappings_and_pairs_as_a_dict_would_be():
    pairs = [("a", 1), ("b", 2), ("a", 3)]
    assert list(sp.SharedMap(pairs).items()) == list(dict(pairs).items())
    assert list(sp.SharedMap(iter(pairs)).items()) == list(dict(pairs).items())
    assert sp.SharedMap(MappingProxyType({"x": 1})) == {"x": 1}
    assert sp.SharedMap(collections.OrderedDict([("z", 1), ("y", 2)])) == {"z": 1, "y": 2}
    assert sp.SharedMap(sp.SharedMap({"y": 2})) == {"y": 2}
    # Equal keys are one key: the first key stays, the last value wins.
    same_key = [(1, "a"), (1.0, "b"), (True, "c")]
    mixed = sp.SharedMap(same_key)
    assert list(mixed.items()) == list(dict(same_key).items()) == [(1, "c")]
    assert type(next(iter(mixed))) is int


def test_equal_keys_find_each_other_as_in_a_dict():
    original = {
        1: "one",
        2.5: "two and a half",
        (True, 0.0, "x"): "tuple",
        2**70: "big",
        -(2**100): "negative big",
        2.0**80: "big float",
        0.0: "zero",
        math.inf: "inf",
    }
    m = sp.SharedMap(original)
    probes = [1, 1.0, True, Color.RED, 2.5, (1, 0, "x"), (1.0, False, "x"), (True, -0.0, "x"), 2**70,
              float(2**70), -(2**100), 2**80, 0, -0.0, False, math.inf]  # fmt: skip
    for probe in probes:
        assert m[probe] == original[probe], probe
    for absent in [2, 2.4999, -math.inf, 2**70 + 1, (1, 0), "1", b"1", None]:
        assert absent not in m and absent not in original
    # Iteration gives the keys back as they were built, types included.
    assert tasks.same(list(m), list(original))


def test_keys_of_every_kind_round_trip():
    keys = [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64, -(10**50), 1.5, -0.5, math.inf,
            "", "text", "é ✓ 𝄞", "lone \ud800 surrogate", b"", b"\x00\xff", (), ((), ((),)),
            (1, ("a", (b"b", (None, 2.5)))), ("deep",) * 40]  # fmt: skip
    original = {key: i for i, key in enumerate(keys)}
    m = sp.SharedMap(original)
    assert tasks.mismatches(m, original) == []
    big = "k" * 10_000  # longer than the lookup's scratch buffer
    assert sp.SharedMap({big: 1, (big, big): 2})[(big, big)] == 2


def test_subclass_keys_look_up_by_value_as_in_a_dict():
    class Name(str):
        pass

    m = sp.SharedMap({1: "one", "n": "name", (1, 2): "pair"})
    assert m[Color.RED] == "one" and m[Name("n")] == "name"
    assert m[collections.namedtuple("P", "x y")(1, 2)] == "pair"


@pytest.mark.parametrize(
    ("key", "named"),
    [
        (frozenset({1}), r"key frozenset\(\{1\}\) \(of type frozenset\)"),
        (object, r"key <class 'object'> \(of type type\)"),
        (
            (1, frozenset()),
            r"key \(1, frozenset\(\)\) \(of type tuple\) holds frozenset\(\) \(of type frozenset\)",
        ),
        (Color.RED, r"key <Color.RED: 1> \(of type Color\), a subclass: convert it"),
        (1j, r"key 1j \(of type complex\)"),
    ],
    ids=["frozenset", "class", "nested", "IntEnum", "complex"],
)
def test_a_key_of_another_type_is_refused_naming_the_key_and_its_type(key, named):
    with pytest.raises(
        TypeError,
        match="SharedMap keys must be str, bytes, int, float, bool, None or tuples of them; " + named,
    ):
        sp.SharedMap({"fine": 1, key: 2})
    with pytest.raises(TypeError, match=named):
        sp.SharedMap([("fine", 1), (key, 2)])


def test_unhashable_and_nan_keys_are_refused_with_the_key_named():
    with pytest.raises(TypeError, match=r"key \[1\] \(of type list\) is unhashable"):
        sp.SharedMap([([1], 2)])
    with pytest.raises(TypeError, match=r"key \(1, \[2\]\) \(of type tuple\) is unhashable"):
        sp.SharedMap([((1, [2]), 2)])
    with pytest.raises(ValueError, match=r"key \(1, nan\) \(of type tuple\) holds a NaN"):
        sp.SharedMap({(1, math.nan): 1})
    with pytest.raises(TypeError, match="takes a mapping or \\(key, value\\) pairs, not an item 5"):
        sp.SharedMap([5])
    with pytest.raises(TypeError, match="takes a mapping or \\(key, value\\) pairs"):
        sp.SharedMap(5)  # type: ignore[arg-type]


def test_lookups_with_keys_no_map_holds_behave_as_with_a_dict():
    m = sp.SharedMap({"a": 1})
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        m[[1]]  # type: ignore[index]
    with pytest.raises(TypeError, match="unhashable"):
        [1] in m  # noqa: B015
    with pytest.raises(KeyError):
        m[frozenset()]
    assert object() not in m and m.get(math.nan, "default") == "default"


def test_values_that_need_pickle_are_pickled_once_and_those_that_cannot_be_say_why():
    m = sp.SharedMap({"point": tasks.Point(1, 2.5), "square": lambda x: x * x, "nan": math.nan})
    assert m["point"] == tasks.Point(1, 2.5) and m["square"](3) == 9 and math.isnan(m["nan"])
    with pytest.raises(TypeError, match="lock"):
        sp.SharedMap({"lock": threading.Lock()})


def test_it_is_read_only():
    m = sp.SharedMap({"a": 1})
    with pytest.raises(TypeError, match="read-only"):
        m["a"] = 2  # type: ignore[index]
    with pytest.raises(TypeError, match="read-only"):
        del m["a"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        m.update({"b": 2})  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        m.extra = 1  # type: ignore[attr-defined]
    assert copy.copy(m) is m and copy.deepcopy(m) is m and m == {"a": 1}


def test_repr_and_nbytes():
    m = sp.SharedMap({"a": b"x" * 1000})
    assert 1000 < m.nbytes < 2000 and m.path is None
    assert repr(m) == f"<SharedMap: 1 entries, {m.nbytes} bytes>"


# -- handles in interpreters -------------------------------------------------------------------


def test_workers_read_the_same_values(pool):
    m = sp.SharedMap(ENTRIES)
    assert pool.submit(tasks.mismatches, m, ENTRIES).result(timeout=60) == []
    assert pool.submit(tasks.kind_and_length, m).result(timeout=60) == ("SharedMap", len(ENTRIES))
    assert "read-only" in pool.submit(tasks.try_write, m).result(timeout=60)
    assert sp.parallel(["shared_map_tasks", "read", (m, ["a", 3])]) == [[1, [3, "three"]]]


def test_a_handle_travels_never_the_entries(pool):
    m = sp.SharedMap({f"k{i}": "v" * 100 for i in range(20_000)})
    maps = live_maps()
    # What a task's call, a Queue item or an initializer's arguments carry: the id.
    carried = _native._encode_for_interpreters(_pickling.dumps, m)
    assert len(carried) < 200 < m.nbytes
    assert pool.submit(tasks.kind_and_length, m).result(timeout=60) == ("SharedMap", 20_000)
    assert pool.submit(tasks.live).result(timeout=60)[0] == maps  # the same map, no copy
    assert m._file_for_processes(None) is None  # and no file was written for it


def test_a_queue_and_a_result_carry_handles(pool):
    q = sp.Queue()
    m = sp.SharedMap({"a": "queued"})
    q.put(m)
    del m  # the item in the queue keeps the map alive
    assert pool.submit(tasks.from_queue, q).result(timeout=60) == (1, "queued")
    made = pool.submit(tasks.make, {"a": (1, 2)}).result(timeout=60)  # built in a worker
    assert isinstance(made, sp.SharedMap) and made["a"] == (1, 2)
    assert pool.submit(tasks.give_back, made).result(timeout=60)._id() == made._id()


def test_it_lives_while_a_worker_holds_it_and_goes_with_the_last_handle():
    before = live_maps()
    with sp.InterpreterPoolExecutor(1) as pool:
        m = sp.SharedMap({"a": 1, "b": 2})
        assert pool.submit(tasks.keep, m).result(timeout=60) == 2
        del m
        assert live_maps() == before + 1  # the worker's handle keeps it
        assert pool.submit(tasks.read_kept, ["b", "a"]).result(timeout=60) == [2, 1]
        pool.submit(tasks.drop_kept).result(timeout=60)
        assert live_maps() == before


@pytest.mark.parametrize("bound", [False, True], ids=["initargs", "partial"])
def test_an_initializers_map_survives_recycled_interpreters_and_the_callers_handle(bound):
    m = sp.SharedMap({"a": 1, "b": (2,)})
    if bound:
        options = {"initializer": functools.partial(tasks.keep, m)}
    else:
        options = {"initializer": tasks.keep, "initargs": (m,)}
    with sp.InterpreterPoolExecutor(1, max_tasks_per_worker=2, **options) as pool:  # type: ignore[arg-type]
        del m, options
        gc.collect()
        # Seven tasks, a fresh interpreter every two: each runs the initializer again.
        for _ in range(7):
            assert pool.submit(tasks.read_kept, ["b", "a"]).result(timeout=60) == [(2,), 1]


def test_memory_is_returned_when_the_last_handle_goes():
    result = run_python(
        """
        import gc
        import subinterpreter_parallelism as sp
        import shared_map_tasks as tasks

        def rss():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024

        blob = b"x" * (96 << 20)
        m = sp.SharedMap({"blob": blob, "small": 1})
        del blob
        gc.collect()
        size = m.nbytes
        with sp.InterpreterPoolExecutor(1) as pool:
            pool.submit(tasks.keep, m).result(timeout=60)
            del m
            gc.collect()
            held = rss()
            assert pool.submit(tasks.read_kept, ["small"]).result(timeout=60) == [1]
            pool.submit(tasks.drop_kept).result(timeout=60)
            gc.collect()
            returned = held - rss()
        assert sp.SharedMap._live() == (0, 0), sp.SharedMap._live()
        print(size, returned)
        """,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    size, returned = map(int, result.stdout.split())
    assert size > 96 << 20
    assert returned > 0.9 * size, (size, returned)


# -- files and processes ----------------------------------------------------------------------


def test_save_and_from_file_round_trip(tmp_path):
    m = sp.SharedMap(ENTRIES)
    m.save(tmp_path / "table.spmap")
    mapped = sp.SharedMap.from_file(tmp_path / "table.spmap")
    assert tasks.mismatches(mapped, ENTRIES) == []
    assert mapped.path == str(tmp_path / "table.spmap") and mapped.nbytes == m.nbytes
    assert os.path.getsize(tmp_path / "table.spmap") == m.nbytes
    # Saving again over the file replaces it whole: a map of the old file reads on.
    sp.SharedMap({"other": 1}).save(str(tmp_path / "table.spmap"))
    assert tasks.mismatches(mapped, ENTRIES) == [] and sp.SharedMap.from_file(tmp_path / "table.spmap") == {
        "other": 1
    }
    mapped.save(tmp_path / "copy.spmap")  # a mapped map saves too
    assert sp.SharedMap.from_file(tmp_path / "copy.spmap", verify=False) == ENTRIES
    with pytest.raises(FileNotFoundError):
        sp.SharedMap.from_file(tmp_path / "missing.spmap")
    with pytest.raises(FileNotFoundError):
        m.save(tmp_path / "no" / "such" / "folder.spmap")


def _damage(data: bytes, how: str) -> bytes:
    if how == "empty":
        return b""
    if how == "cut in the header":
        return data[:30]
    if how == "cut at the end":
        return data[:-8]
    if how == "a text file":
        return b"key,value\n" * 20
    if how == "a pickle":
        return pickle.dumps(ENTRIES)
    if how == "a byte flipped":
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1 :]
    if how == "a later version":
        return data[:8] + (99).to_bytes(4, "little") + data[12:]
    if how == "the other byte order":
        return data[:8] + data[8:12][::-1] + data[12:16][::-1] + data[16:]
    if how == "bytes appended":
        return data + b"\0" * 8
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("empty", "is a truncated SharedMap file: it is empty"),
        (
            "cut in the header",
            "is not a SharedMap file this build can read: it has 30 bytes, fewer than a SharedMap header",
        ),
        ("cut at the end", "is a truncated SharedMap file: it has \\d+ bytes where its header says \\d+"),
        (
            "a text file",
            "is not a SharedMap file this build can read: it does not start with the SharedMap signature",
        ),
        (
            "a pickle",
            "is not a SharedMap file this build can read: it does not start with the SharedMap signature",
        ),
        ("a byte flipped", "is a corrupt SharedMap file: its checksum does not match its contents"),
        (
            "a later version",
            "is not a SharedMap file this build can read: it is in format version 99; this build reads version 1",
        ),
        ("the other byte order", "it was written on a machine of the other byte order"),
        ("bytes appended", "is a corrupt SharedMap file: it has \\d+ bytes where its header says \\d+"),
    ],
)
def test_a_damaged_or_foreign_file_is_refused_saying_why(tmp_path, how, error):
    path = tmp_path / "table.spmap"
    sp.SharedMap(ENTRIES).save(path)
    path.write_bytes(_damage(path.read_bytes(), how))
    with pytest.raises(
        ValueError, match=f"^{str(path)!s}.*{error}" if how != "the other byte order" else error
    ):
        sp.SharedMap.from_file(path)


def test_a_damaged_file_read_without_verification_fails_entries_never_the_process(tmp_path):
    path = tmp_path / "table.spmap"
    m = sp.SharedMap({f"k{i}": (i, str(i)) for i in range(200)})
    m.save(path)
    data = bytearray(path.read_bytes())
    for offset in range(64, m.nbytes, 7):  # a byte of every few, records and tables alike
        data[offset] ^= 0xA5
    path.write_bytes(bytes(data))
    damaged = sp.SharedMap.from_file(path, verify=False)
    for i in range(200):
        try:
            damaged.get(f"k{i}")
        except (ValueError, KeyError, TypeError, EOFError, pickle.UnpicklingError):
            pass
    try:
        list(damaged.items())
    except (ValueError, TypeError, EOFError, pickle.UnpicklingError):
        pass


def test_another_process_maps_the_file_and_the_written_file_goes_with_the_map(tmp_path):
    m = sp.SharedMap({"a": (1, 2.5), "b": tasks.Point(2, 0.5)})
    data = pickle.dumps(m)  # a plain pickle: it may go anywhere, so it names a file
    written = m._file_for_processes(None)
    assert written is not None and os.path.exists(written)
    script = """
        import pickle, sys
        m = pickle.loads(bytes.fromhex(sys.argv[1]))
        print(m.path, m["a"], m["b"].x)
        """
    result = run_python(script, argv=[data.hex()], timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [written, "(1,", "2.5)", "2"]
    assert pickle.loads(data)._id() == m._id()  # in this process, the same map
    del m
    gc.collect()
    assert not os.path.exists(written)
    with pytest.raises(LookupError, match=r"no longer exists|is gone"):
        pickle.loads(data)
    # A map read from a file sends that file.
    sp.SharedMap({"c": 3}).save(tmp_path / "c.spmap")
    mapped = sp.SharedMap.from_file(tmp_path / "c.spmap")
    result = run_python(
        script.replace('m["a"], m["b"].x', 'm["c"]'), argv=[pickle.dumps(mapped).hex()], timeout=60
    )
    assert result.stdout.split() == [str(tmp_path / "c.spmap"), "3"], result.stderr


@pytest.fixture(scope="module")
def numpy_loaded():
    """numpy, imported here first: the worker's failed import starts OpenBLAS's threads in this
    process, which must exist before the leftover check counts threads."""
    return pytest.importorskip("numpy")


@pytest.mark.timeout(240)
def test_fallback_process_tasks_get_the_map_through_its_file(numpy_loaded):
    m = sp.SharedMap({"a": (1, "one")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sp.ProcessFallbackWarning)
        with sp.InterpreterPoolExecutor(1, fallback="process") as pool:
            pid, path, value = pool.submit(tasks.process_side, m, "a").result(timeout=180)
    assert pid != os.getpid() and value == (1, "one")
    assert path is not None and path == m._file_for_processes(None)


# -- many interpreters at once ----------------------------------------------------------------


@pytest.mark.timeout(300)
def test_many_interpreters_read_one_map_while_maps_are_made_and_dropped():
    size = 5_000
    before = live_maps()
    table = sp.SharedMap({f"k{i}": (i, i / 2, str(i)) for i in range(size)})
    with sp.InterpreterPoolExecutor(4) as pool:
        readers = [pool.submit(tasks.reads_while_others_churn, table, seed, 10, size) for seed in range(16)]
        # Meanwhile the caller makes maps, sends them, and drops its handles at once.
        for round_ in range(30):
            passing = sp.SharedMap({"round": round_, "data": list(range(round_))})
            pool.submit(tasks.read, passing, ["round"])
            del passing
        assert [f.result(timeout=240) for f in readers] == [10 * 200] * 16
        del readers
    assert live_maps() == before + 1
    del table
    assert live_maps() == before


# -- property: every key type and value kind, read in a worker ------------------------------


_scalar_keys = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=2)
)
_keys = st.recursive(_scalar_keys, lambda children: st.lists(children, max_size=3).map(tuple), max_leaves=6)
_hashables = st.recursive(
    _scalar_keys | st.complex_numbers(allow_nan=False),
    lambda children: st.lists(children, max_size=3).map(tuple) | st.frozensets(children, max_size=3),
    max_leaves=6,
)
_values = st.recursive(
    _hashables
    | st.floats()
    | st.builds(tasks.Point, st.integers(), st.floats(allow_nan=False))
    | st.binary().map(bytearray),
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(_keys, children, max_size=3)
        | st.sets(_hashables, max_size=3)
        | st.frozensets(_hashables, max_size=3)
        | (st.dictionaries(_hashables, children, max_size=3).map(FROZENDICT) if FROZENDICT else st.nothing())
    ),
    max_leaves=10,
)


def test_values_read_in_a_worker_equal_the_original_for_every_key_type_and_value_kind():
    with sp.InterpreterPoolExecutor(1) as pool:

        @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.dictionaries(_keys, _values, max_size=12))
        def read_in_a_worker(original):
            table = sp.SharedMap(original)
            assert tasks.mismatches(table, original) == []
            # The original travels pickled, the map as a handle: the worker compares the two.
            assert pool.submit(tasks.mismatches, table, original).result(timeout=60) == []

        read_in_a_worker()
