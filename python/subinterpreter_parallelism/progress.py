"""Progress of ``map(..., progress=...)`` and ``parallel(..., progress=...)``.

``progress=True`` shows a bar: tqdm's when tqdm is installed (the ``progress`` extra), else a
plain one on stderr. ``progress=callable`` calls ``callable(done, total)``: once with
``(0, total)`` at the start, then each time tasks finish. Progress counts finished items
(a ``map`` chunk counts for its items), in completion order, and is reported from the pool's
completion thread (the final report may come from the caller's thread), so a callable should
be quick. The bar is complete and closed before the
last result is handed back (or an error, or an early close of ``map``'s iterator, reaches the
caller), so that what the caller prints next comes after it.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, TextIO

__all__ = ["Progress", "Tracker", "check_progress", "finishing", "track"]

Progress = bool | Callable[[int, int], object] | None
"""What ``progress=`` accepts: None/False (nothing), True (a bar) or ``callable(done, total)``."""

logger = logging.getLogger("subinterpreter_parallelism")


def check_progress(progress: object) -> None:
    """Validates a ``progress=`` argument.

    Raises:
        TypeError: not None, a bool or a callable.
    """
    if progress is None or isinstance(progress, bool) or callable(progress):
        return
    raise TypeError(
        f"progress must be True, False, None or a callable(done, total), not {type(progress).__name__}"
    )


def track(
    futures: Sequence[Future[Any]], sizes: Sequence[int] | None, progress: Progress, description: str
) -> Tracker | None:
    """Reports the progress of ``futures`` (each standing for ``sizes[i]`` items, default 1).

    Returns the ``Tracker``, whose ``finish()`` the caller calls before handing back the last
    result; None when ``progress`` is None or False (nothing to report).
    """
    check_progress(progress)
    if progress is None or progress is False:
        return None
    weights = list(sizes) if sizes is not None else [1] * len(futures)
    total = sum(weights)
    if progress is True:
        sink: _Sink = _tqdm_sink(total, description) or _StderrBar(total, description)
    else:
        sink = _CallbackSink(progress)
    tracker = Tracker(total, len(futures), sink)
    for future, weight in zip(futures, weights):
        count = functools.partial(tracker.finished, weight=weight)
        # Runs as the task's future settles, on the completion thread, even where the pool
        # runs done-callbacks on its callback thread (_future.QUICK_CALLBACK): the count
        # must not fall behind the results.
        count._sp_quick = True  # type: ignore[attr-defined]
        future.add_done_callback(count)
    return tracker


def finishing[T](results: Iterator[T], tracker: Tracker | None, count: int) -> Iterator[T]:
    """``results`` (``count`` items), with the progress finished before the last one is handed
    back, or before an error or an early close reaches the caller.

    The futures' callbacks, which count progress on the completion thread, run after the
    caller has been woken up: without this, the caller's next ``print`` would land on an
    unfinished bar, and the bar's final line would follow it.
    """
    if tracker is None:
        return results
    return _finishing(results, tracker, count)


def _finishing[T](results: Iterator[T], tracker: Tracker, count: int) -> Iterator[T]:
    left = count
    try:
        while True:
            try:
                box = [next(results)]  # popped as it is yielded: no reference to it stays here
            except StopIteration:
                return
            left -= 1
            if left == 0:
                tracker.finish(tracker.total)
            yield box.pop()
    finally:
        tracker.finish()
        close = getattr(results, "close", None)
        if close is not None:
            close()


class _Sink:
    def update(self, done: int, total: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Tracker:
    """Counts finished futures; closes the sink when the last one has finished, or when the
    caller says it is done with them (``finish``), whichever comes first."""

    def __init__(self, total: int, count: int, sink: _Sink) -> None:
        self._lock = threading.Lock()
        self._total = total
        self._done = 0
        self._remaining = count
        self._sink = sink
        self._closed = False
        sink.update(0, total)
        if count == 0:
            self._close()

    def finished(self, future: Future[Any], weight: int) -> None:
        """Completion thread: one future has finished (or was cancelled)."""
        with self._lock:
            if self._closed:
                return
            if not future.cancelled():
                self._done += weight
            self._remaining -= 1
            self._sink.update(self._done, self._total)
            if self._remaining == 0:
                self._close()

    def finish(self, done: int | None = None) -> None:
        """Caller side: reports the end now and closes the sink; callbacks that come later
        change nothing. ``done``: the items known to have finished (the caller holds their
        results, though some callbacks may not have run yet); None: those counted so far."""
        with self._lock:
            if self._closed:
                return
            if done is not None and done > self._done:
                self._done = done
                self._sink.update(self._done, self._total)
            self._close()

    @property
    def total(self) -> int:
        """The number of items tracked."""
        return self._total

    def _close(self) -> None:
        self._closed = True
        self._sink.close()


class _CallbackSink(_Sink):
    """Calls the user's ``callable(done, total)``; stops calling it after it raises once."""

    def __init__(self, callback: Callable[[int, int], object]) -> None:
        self._callback: Callable[[int, int], object] | None = callback

    def update(self, done: int, total: int) -> None:
        if self._callback is None:
            return
        try:
            self._callback(done, total)
        except Exception:
            logger.exception("the progress callable %r raised; it will not be called again", self._callback)
            self._callback = None


def _tqdm_sink(total: int, description: str) -> _Sink | None:
    """A tqdm bar, or None when tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return _TqdmSink(tqdm(total=total, desc=description, unit="item"))


class _TqdmSink(_Sink):
    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._shown = 0

    def update(self, done: int, total: int) -> None:
        if done > self._shown:
            self._bar.update(done - self._shown)
            self._shown = done

    def close(self) -> None:
        self._bar.close()


class _StderrBar(_Sink):
    """A plain text bar on stderr: redrawn in place on a terminal, a line now and then otherwise."""

    WIDTH = 30

    def __init__(
        self,
        total: int,
        description: str,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total = total
        self._description = description
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = 0.1 if self._tty else 2.0
        self._clock = clock  # the tests' own, to cross the redraw interval without waiting
        self._start = clock()
        self._last_draw = float("-inf")
        self._last = (0, total)
        self._closed = False

    def update(self, done: int, total: int) -> None:
        self._last = (done, total)
        now = self._clock()
        if now - self._last_draw >= self._interval:
            self._last_draw = now
            self._draw(final=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._draw(final=True)

    def render(self) -> str:
        """The bar's text for the last update."""
        done, total = self._last
        fraction = done / total if total else 1.0
        filled = int(self.WIDTH * fraction)
        elapsed = self._clock() - self._start
        return (
            f"{self._description}: [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{done}/{total} {fraction:4.0%} {elapsed:.1f}s"
        )

    def _draw(self, final: bool) -> None:
        text = self.render()
        try:
            if self._tty:
                self._stream.write("\r" + text + ("\n" if final else ""))
            else:
                self._stream.write(text + "\n")
            self._stream.flush()
        except (OSError, ValueError, AttributeError):  # closed meanwhile, or no stderr at all
            pass
