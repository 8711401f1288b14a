"""Progress of map() and parallel(): tqdm bar, plain stderr bar, or a callable(done, total)."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from concurrent.futures import Future

import pytest

import sp_tasks
import subinterpreter_parallelism as sp
from subinterpreter_parallelism import progress as progress_module


class Recorder:
    """A progress callable that remembers every call and the threads it came from."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        self.finished = threading.Event()

    def __call__(self, done: int, total: int) -> None:
        with self.lock:
            self.calls.append((done, total))
            if done == total:
                self.finished.set()

    def check(self, total: int) -> None:
        assert self.finished.wait(30), self.calls
        assert self.calls[0] == (0, total)
        assert self.calls[-1] == (total, total)
        dones = [done for done, _ in self.calls]
        assert dones == sorted(dones)
        assert all(t == total for _, t in self.calls)


@pytest.fixture
def pool():
    with sp.InterpreterPoolExecutor(2) as executor:
        yield executor


@pytest.mark.parametrize("chunksize", [None, 1, 7])
def test_map_progress_callable(pool, chunksize):
    recorder = Recorder()
    data = list(range(200))
    assert list(pool.map(sp_tasks.square, data, chunksize=chunksize, progress=recorder)) == [
        x * x for x in data
    ]
    recorder.check(200)
    if chunksize == 1:
        assert len(recorder.calls) == 201  # one call per finished item, after the first
    if chunksize == 7:
        assert len(recorder.calls) == 1 + len(range(0, 200, 7))  # one per chunk


def test_parallel_progress_callable():
    recorder = Recorder()
    calls = [["math", "factorial", (n,)] for n in range(12)]
    assert sp.parallel(*calls, progress=recorder) == [__import__("math").factorial(n) for n in range(12)]
    recorder.check(12)
    assert len(recorder.calls) == 13


def test_progress_counts_completion_not_order(pool):
    """A slow first item does not hold back the count of the items finished after it."""
    seen: dict[int, float] = {}

    def record(done: int, total: int) -> None:
        seen.setdefault(done, time.monotonic())

    results = pool.map(sp_tasks.sleep_then, [2.0, 0.0, 0.0, 0.0], chunksize=1, progress=record)
    assert list(results) == [None] * 4
    assert set(seen) >= {0, 3, 4}
    assert seen[4] - seen[3] > 0.5  # three finished long before the first


def test_map_progress_with_tqdm(pool, capsys, monkeypatch):
    tqdm_std = pytest.importorskip("tqdm.std")
    monkeypatch.setattr(tqdm_std.tqdm, "monitor_interval", 0)  # no tqdm monitor thread left behind
    assert list(pool.map(sp_tasks.square, range(50), progress=True)) == [x * x for x in range(50)]
    err = capsys.readouterr().err
    assert "50/50" in err and "100%" in err and "map(square)" in err


def test_parallel_progress_bar_without_tqdm(monkeypatch, capsys):
    # tqdm not installed: None in sys.modules makes `import tqdm...` raise ImportError.
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert sp.parallel(["math", "gcd", (12, 18)], ["math", "gcd", (7, 21)], progress=True) == [6, 7]
    err = capsys.readouterr().err
    assert "parallel: [" in err
    assert "2/2 100%" in err
    assert "#" * progress_module._StderrBar.WIDTH in err


def test_stderr_bar_on_a_terminal_redraws_in_place():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    now = [0.0]
    bar = progress_module._StderrBar(4, "work", stream, clock=lambda: now[0])
    bar.update(0, 4)
    bar.update(1, 4)  # within the redraw interval: not drawn
    now[0] += 0.15
    bar.update(2, 4)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 3 and "1/4" not in text  # the first update, the third, the end
    assert text.startswith("\rwork: [")
    assert "2/4  50%" in text
    assert text.endswith("\n") and text.count("\n") == 1
    assert text.rstrip("\n").rsplit("\r", 1)[-1].startswith("work: [" + "#" * 15 + "." * 15 + "] 2/4")


def test_progress_argument_is_checked(pool):
    with pytest.raises(TypeError, match="progress"):
        pool.map(sp_tasks.square, [1, 2], progress="yes")
    with pytest.raises(TypeError, match="progress"):
        sp.parallel(["math", "gcd", (4, 6)], progress=3)
    assert pool.stats()["tasks_submitted"] == 0  # checked before anything ran


def test_progress_callable_that_raises_is_logged_once(pool, caplog):
    calls = []

    def broken(done, total):
        calls.append(done)
        raise RuntimeError("progress callable exploded")

    with caplog.at_level(logging.ERROR, logger="subinterpreter_parallelism"):
        assert list(pool.map(sp_tasks.square, range(20), chunksize=1, progress=broken)) == [
            x * x for x in range(20)
        ]
    assert calls == [0]
    assert sum("progress callable" in record.getMessage() for record in caplog.records) == 1


def test_empty_map_reports_zero_of_zero(pool):
    recorder = Recorder()
    assert list(pool.map(sp_tasks.square, [], progress=recorder)) == []
    assert recorder.calls == [(0, 0)]


def test_cancelled_tasks_do_not_count_and_the_bar_closes():
    futures: list[Future[int]] = [Future() for _ in range(3)]
    closed = threading.Event()
    updates = []

    class Sink(progress_module._Sink):
        def update(self, done, total):
            updates.append((done, total))

        def close(self):
            closed.set()

    tracker = progress_module.Tracker(3, 3, Sink())
    for future in futures:
        future.add_done_callback(lambda f: tracker.finished(f, 1))
    futures[0].set_result(1)
    futures[1].cancel()
    assert not closed.is_set()
    futures[2].set_exception(ValueError("failed tasks count as finished"))
    assert closed.is_set()
    assert updates == [(0, 3), (1, 3), (1, 3), (2, 3)]


# -- the bar ends before the results reach the caller ---------------------------------------


class HeldFinalReport:
    """A progress callable whose final report is slow: it waits (a bounded while) for the caller
    to say it got the last result. Before the fix the caller got it first, every time."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.caller_has_last = threading.Event()

    def __call__(self, done: int, total: int) -> None:
        if done == total and total:
            self.caller_has_last.wait(2)
            self.events.append("final report")

    def caller_got_last(self) -> None:
        self.events.append("caller has the last result")
        self.caller_has_last.set()


@pytest.mark.parametrize("chunksize, ordered", [(1, True), (4, True), (1, False), (4, False)])
def test_map_reports_the_end_before_the_last_result(pool, chunksize, ordered):
    held = HeldFinalReport()
    results = pool.map(sp_tasks.square, range(12), chunksize=chunksize, ordered=ordered, progress=held)
    seen = []
    for value in results:
        seen.append(value)
        if len(seen) == 12:
            held.caller_got_last()
    assert sorted(seen) == [x * x for x in range(12)]
    assert held.events == ["final report", "caller has the last result"]


def test_parallel_reports_the_end_before_returning():
    held = HeldFinalReport()
    assert sp.parallel(["math", "gcd", (12, 18)], ["math", "gcd", (7, 21)], progress=held) == [6, 7]
    held.caller_got_last()
    assert held.events == ["final report", "caller has the last result"]


def test_the_bar_closes_before_an_error_or_an_early_close_reaches_the_caller(pool):
    closed = []

    class Sink(progress_module._Sink):
        def update(self, done, total):
            pass

        def close(self):
            closed.append(True)

    def tracked(iterator, count):
        tracker = progress_module.Tracker(count, count, Sink())
        return progress_module.finishing(iterator, tracker, count)

    def failing():
        yield 1
        raise ValueError("item 2")

    results = tracked(failing(), 3)
    assert next(results) == 1 and not closed
    with pytest.raises(ValueError):
        next(results)
    assert closed == [True]
    inner_closed = threading.Event()

    def endless():
        try:
            while True:
                yield 0
        finally:
            inner_closed.set()

    results = tracked(endless(), 5)
    next(results)
    results.close()
    assert closed == [True, True] and inner_closed.is_set()


BAR_SCRIPT = """
import sys
import subinterpreter_parallelism as sp

def slow_square(x):
    import time
    time.sleep(0.01)
    return x * x

if __name__ == "__main__":
    if sys.argv[1] == "plain":
        sys.modules["tqdm"] = None  # as if tqdm were not installed
        sys.modules["tqdm.auto"] = None
    with sp.InterpreterPoolExecutor(2) as pool:
        for _ in range(3):
            total = sum(pool.map(slow_square, range(40), chunksize=1, progress=True))
            print("AFTER THE BAR", total, file=sys.stderr, flush=True)
"""


def _screen_lines(text: str) -> list[str]:
    """What a terminal shows: each line as the last ``\\r`` left it (the bars redraw in place)."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        drawn = [part for part in line.split("\r") if part.strip()]
        if drawn:
            lines.append(drawn[-1].rstrip())
    return lines


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["plain", "tqdm"])
def test_bar_on_a_terminal_finishes_before_the_next_print(tmp_path, kind):
    if kind == "tqdm":
        pytest.importorskip("tqdm")
    import pty
    import subprocess

    script = tmp_path / "bar_script.py"
    script.write_text(BAR_SCRIPT)
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    # A terminal 120 columns wide (a new pty has none: tqdm would draw nothing).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    with subprocess.Popen(
        [sys.executable, str(script), kind], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    ) as child:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child has exited and the terminal is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
    assert child.returncode == 0, b"".join(chunks)[-3000:]
    lines = _screen_lines(b"".join(chunks).decode())
    # Three maps: each shows exactly one final bar, complete, on its own line, then the print.
    assert len(lines) == 6, lines
    for bar, after in zip(lines[0::2], lines[1::2]):
        assert "40/40" in bar and "100%" in bar and "map(slow_square)" in bar, lines
        assert after == "AFTER THE BAR 20540", lines
