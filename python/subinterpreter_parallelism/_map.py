"""``InterpreterPoolExecutor.map``: items in chunks, results in order or as they finish.

The executor checks ``map``'s arguments and hands the rest to :func:`map_tasks`, which submits
the tasks through the executor's ``submit`` (one per item, or one ``_worker.run_chunk`` per
chunk of items) and returns the iterator of their results. With ``buffersize``, the input is
read lazily: the iterator submits the next tasks as it yields results.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Protocol

from . import _wire, _worker
from . import progress as _progress
from ._future import Completions

__all__ = ["MapExecutor", "map_tasks"]

# Chunks of map(): enough per worker to balance uneven items, few enough to amortise the
# per-task cost (about 10 us) over many tiny items.
_CHUNKS_PER_WORKER = 16
_MAX_AUTO_CHUNK = 4096


class MapExecutor(Protocol):
    """What ``map`` needs of its executor (an ``InterpreterPoolExecutor``)."""

    @property
    def max_workers(self) -> int: ...

    def submit[T](self, fn: Callable[..., T], /, *args: Any) -> Future[T]: ...


def map_tasks[T](
    executor: MapExecutor,
    fn: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    *,
    timeout: float | None,
    chunksize: int | None,
    buffersize: int | None,
    progress: _progress.Progress,
    ordered: bool,
    falls_back: bool,
    note_module: Callable[[Any, Future[Any]], None],
) -> Iterator[T]:
    """``executor.map(fn, *iterables, ...)`` once its arguments are checked (``timeout`` in
    seconds or None; ``progress`` not together with ``buffersize``).

    ``falls_back``: whether tasks submitted now may fall back to a process (a chunk then runs
    its items so that a refused one can be run again there, see ``_worker.run_chunk``).
    ``note_module(fn, future)`` is called for the first task of ``fn`` sent inside a chunk
    (``preload="auto"`` warms ``fn``'s module, which the chunk runner's does not name).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    if buffersize is not None:
        # chunksize=None means 1 here: an automatic size would need the input's length, and
        # a fixed chunk would make buffersize read ahead that many times more items than it
        # says (and hold back the first result until a whole chunk is done).
        return _map_buffered(
            executor, fn, iterables, deadline, chunksize or 1, buffersize, ordered, falls_back, note_module
        )
    # Over one iterable, items travel bare (see _worker.run_chunk), not as 1-tuples.
    star = len(iterables) != 1
    items = list(zip(*iterables)) if star else list(iterables[0])
    if chunksize is None:
        chunksize = max(1, min(_MAX_AUTO_CHUNK, len(items) // (executor.max_workers * _CHUNKS_PER_WORKER)))
    if chunksize == 1:
        futures: deque[Future[Any]] = deque(
            [executor.submit(fn, *args) for args in items]
            if star
            else [executor.submit(fn, item) for item in items]
        )
        results = _yield_results(futures, deadline, chunked=False, ordered=ordered)
        if progress is not None:
            tracker = _progress.track(futures, None, progress, f"map({_name_of(fn)})")
            return _progress.finishing(results, tracker, len(items))
        return results
    chunks = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
    futures = deque([executor.submit(_worker.run_chunk, fn, chunk, falls_back, star) for chunk in chunks])
    if futures:
        note_module(fn, futures[0])  # the chunks' function is the runner's
    results = _yield_results(futures, deadline, chunked=True, ordered=ordered)
    if progress is not None:
        tracker = _progress.track(futures, [len(chunk) for chunk in chunks], progress, f"map({_name_of(fn)})")
        return _progress.finishing(results, tracker, len(items))
    return results


def _map_buffered[T](
    executor: MapExecutor,
    fn: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    deadline: float | None,
    chunksize: int,
    buffersize: int,
    ordered: bool,
    falls_back: bool,
    note_module: Callable[[Any, Future[Any]], None],
) -> Iterator[T]:
    """``map`` with ``buffersize``: submits the first tasks now, the others as results are
    yielded. The iterator holds the executor (unlike the stdlib's, which stops submitting
    once the executor is collected and so may silently yield fewer results)."""
    # Chunks over one iterable carry its items bare (see _worker.run_chunk); single items
    # go as argument tuples, whose emptiness is the end of the input.
    star = chunksize == 1 or len(iterables) != 1
    args_iter: Iterator[Any] = zip(*iterables) if star else iter(iterables[0])
    futures: deque[Future[Any]] = deque()
    exhausted = False

    def refill(elsewhere: int) -> None:
        """Submits into ``futures`` while fewer than ``buffersize`` tasks, ``elsewhere``
        included (those the unordered iterator watches), are submitted and not yielded."""
        nonlocal exhausted
        while not exhausted and len(futures) + elsewhere < buffersize:
            if chunksize == 1:
                args = next(args_iter, None)
                if args is None:
                    exhausted = True
                else:
                    futures.append(executor.submit(fn, *args))
            else:
                chunk = list(itertools.islice(args_iter, chunksize))
                if not chunk:
                    exhausted = True
                else:
                    futures.append(executor.submit(_worker.run_chunk, fn, chunk, falls_back, star))
                    note_module(fn, futures[-1])  # the chunks' function is the runner's

    try:
        refill(0)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return _yield_results(futures, deadline, chunked=chunksize != 1, ordered=ordered, refill=refill)


def _name_of(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__)


def _yield_results(
    futures: deque[Future[Any]],
    deadline: float | None,
    chunked: bool,
    ordered: bool = True,
    refill: Callable[[int], None] | None = None,
) -> Iterator[Any]:
    """Yields results in order (or, unless ``ordered``, as tasks finish); on timeout, error,
    early close or Ctrl-C cancels the rest.

    ``refill``, when given, is called before each wait (so once the previous result has been
    yielded) to submit more tasks into ``futures``: ``map`` with ``buffersize``. It is told how
    many submitted tasks are no longer in ``futures`` but not yielded yet.

    No result is referenced from here once it has been yielded (CPython's test_free_reference,
    bpo-14406): each is popped off a list as it goes out, and the future is dropped first.
    """
    return (_yield_in_order if ordered else _yield_as_finished)(futures, deadline, chunked, refill)


def _yield_in_order(
    futures: deque[Future[Any]], deadline: float | None, chunked: bool, refill: Callable[[int], None] | None
) -> Iterator[Any]:
    try:
        while True:
            if refill is not None:
                refill(0)
            if not futures:
                break
            results, failure = _outcome_of(futures[0], deadline, chunked)
            futures.popleft()
            while results:
                yield results.pop()
            if failure is not None:
                raise failure
    finally:
        for future in futures:
            future.cancel()


def _yield_as_finished(
    futures: deque[Future[Any]], deadline: float | None, chunked: bool, refill: Callable[[int], None] | None
) -> Iterator[Any]:
    # Told by the futures' waiter lists, not by done-callbacks (which run later, on the pool's
    # callback thread); in a task, its interruption ends the wait (see _future.py).
    finished = Completions()
    watched: set[Future[Any]] = set()
    try:
        while True:
            if refill is not None:
                refill(len(watched))
            while futures:  # new tasks: each says when it is done
                future = futures[0]
                watched.add(future)
                futures.popleft()
                finished.watch(future)
            if not watched:
                break
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future = finished.get(remaining)
            except TimeoutError:
                raise TimeoutError("map() did not finish within its timeout") from None
            watched.discard(future)
            results, failure = _outcome_of(future, None, chunked)
            del future
            while results:
                yield results.pop()
            if failure is not None:
                raise failure
    finally:
        finished.close()
        for future in (*futures, *watched):
            future.cancel()


def _outcome_of(
    future: Future[Any], deadline: float | None, chunked: bool
) -> tuple[list[Any], BaseException | None]:
    """Waits for a ``map`` task; returns its results, last first, and the exception to raise
    after them (a chunk's failing item), or raises the task's exception, or ``TimeoutError``
    once ``deadline`` has passed."""
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0 and not future.done():
        raise TimeoutError("map() did not finish within its timeout")
    try:
        value = future.result(remaining)
    except TimeoutError:
        if future.done():
            raise  # the task itself raised TimeoutError
        raise TimeoutError("map() did not finish within its timeout") from None
    if not chunked:
        return [value], None
    # _worker.run_chunk: the results up to the first failing item, then that item's failure.
    chunk = _wire.Chunk.decode(value)
    chunk.results.reverse()
    return chunk.results, None if chunk.failure is None else chunk.failure.exception()
