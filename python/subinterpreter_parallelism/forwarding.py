"""Workers that behave like the caller's program: logging, warnings and output reach the caller.

A worker interpreter starts with nothing configured: no logging handlers, its own warning
filters, and ``sys.stdout``/``sys.stderr`` of its own on the process's file descriptors.
This module makes what a task logs, warns and prints reach the caller's interpreter:

    worker interpreter k                                   caller's interpreter
    ────────────────────                                   ────────────────────
    print(...)     -> ForwardingStream (whole lines)  ─┐
    logger.info()  -> handler on the worker's root    ─┼─ _native.post_message(tag, bytes)
    warnings.warn()-> showwarning hook                ─┘   (in order with k's task results)
                                                           completion thread: CallerSide
                                                             sys.stdout.write(lines)
                                                             getLogger(name).handle(record)
                                                             warnings.warn_explicit(...)

Worker side (``install``, in ``_worker_features``: a worker imports that module, not this
one): a step of ``_worker.bootstrap``. The worker does not import ``logging`` or ``warnings``
at start-up (they are a noticeable part of it); a ``sys.meta_path`` watcher hooks each one the
moment something in the worker first imports it.

Caller side (``worker_options``, ``CallerSide``): used by
``InterpreterPoolExecutor``. Message handlers run on the pool's completion thread; they never
raise, and a task's messages are handled before its future is resolved, so output and
records are there when ``result()`` returns.
"""

from __future__ import annotations

import codecs
import logging
import sys
import warnings

from . import _pickling
from ._streams import TAG_STDERR, TAG_STDERR_BYTES, TAG_STDOUT, TAG_STDOUT_BYTES, ForwardingStream
from ._worker_features import TAG_LOG, TAG_WARNING, install

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "TAG_LOG",
    "TAG_STDERR",
    "TAG_STDERR_BYTES",
    "TAG_STDOUT",
    "TAG_STDOUT_BYTES",
    "TAG_WARNING",
    "CallerSide",
    "ForwardingStream",
    "install",
    "worker_options",
]


# ─── caller side ────────────────────────────────────────────────────────────────────────────


def worker_options(forward_logging: bool | int, forward_warnings: bool, output: str) -> dict[str, Any]:
    """Caller side: what ``install`` needs, with the caller's configuration as it is now.

    Raises:
        TypeError, ValueError: an option has the wrong type or value.
    """
    if output not in ("forward", "fd"):
        raise ValueError(f"output must be 'forward' or 'fd', not {output!r}")
    if not isinstance(forward_warnings, bool):
        raise TypeError("forward_warnings must be True or False")
    options: dict[str, Any] = {"output": output}
    if output == "forward":
        options["stdout"] = _stream_facts(sys.stdout, "<stdout>")
        options["stderr"] = _stream_facts(sys.stderr, "<stderr>")
    else:
        # The workers will write straight to fds 1 and 2: what the caller printed before the
        # pool started must reach them first, not sit in a block-buffered pipe until exit.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    if isinstance(forward_logging, bool):
        if forward_logging:
            options["logging"] = _logging_levels()
    elif isinstance(forward_logging, int):
        options["logging"] = {"levels": {"": forward_logging}}
    else:
        raise TypeError("forward_logging must be True, False or a logging level (int)")
    if forward_warnings:
        options["warnings"] = _error_filters()
    return options


def _stream_facts(stream: Any, default_name: str) -> dict[str, Any]:
    """What a worker's ``ForwardingStream`` answers for the caller's ``stream``: whether it is
    a terminal, its name, encoding and error handler (as plain data; whatever a replaced
    stream lacks or gets wrong is left at the defaults: "utf-8", "strict")."""
    facts: dict[str, Any] = {"isatty": _isatty(stream), "name": default_name}
    for key in ("name", "encoding", "errors"):
        try:
            value = getattr(stream, key, None)
        except Exception:
            continue
        if isinstance(value, str) and value:
            facts[key] = value

    try:  # an encoding or handler the workers could not look up is left out
        codecs.lookup(facts.get("encoding", "utf-8"))
    except LookupError:
        facts.pop("encoding", None)
    try:
        codecs.lookup_error(facts.get("errors", "strict"))
    except LookupError:
        facts.pop("errors", None)
    return facts


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


def _logging_levels() -> dict[str, Any]:
    """The caller's logger levels, so that workers skip what the caller would skip."""
    levels = {"": logging.root.level}
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return {"levels": levels, "disable": logging.root.manager.disable}


def _error_filters() -> list[tuple[Any, ...]]:
    """The caller's warning filters up to its last "error" one, for the workers.

    In a worker, an "error" filter raises in the task (as in the caller's program); every other
    action becomes "always" so that the warning reaches the caller, whose filters decide then.
    """
    filters = list(warnings.filters)
    last = max((i for i, f in enumerate(filters) if f[0] == "error"), default=-1)
    result: list[tuple[Any, ...]] = []
    for action, message, category, module, lineno in filters[: last + 1]:
        entry = (
            "error" if action == "error" else "always",
            _pattern(message),
            category,
            _pattern(module),
            lineno,
        )
        try:
            _pickling.dumps(entry)
        except Exception:
            continue  # a category that cannot reach the workers: only the caller applies it
        result.append(entry)
    return result


def _pattern(regex: Any) -> str:
    """A filter's message or module regex as the text ``filterwarnings`` takes ("" for any)."""
    if regex is None:
        return ""
    return regex if isinstance(regex, str) else regex.pattern


class CallerSide:
    """Caller side, one per pool: the message handlers that replay what workers sent."""

    def __init__(self) -> None:
        # warn_explicit's per-module registries, shared by all workers: "default" and
        # "module" actions show a warning once per pool, as in one program.
        self._registries: dict[str, dict[Any, Any]] = {}
        # Per stream, the worker whose last text did not end its line (a task that ended on
        # print(..., end="")): another worker's text then starts on a new line.
        self._open_line: dict[int, int | None] = {TAG_STDOUT: None, TAG_STDERR: None}

    def handlers(self) -> dict[int, Callable[[Any, int], None]]:
        """The handlers to add to the pool's ``message_handlers``."""
        return {
            TAG_STDOUT: self.on_stdout,
            TAG_STDERR: self.on_stderr,
            TAG_STDOUT_BYTES: self.on_stdout_bytes,
            TAG_STDERR_BYTES: self.on_stderr_bytes,
            TAG_LOG: self.on_log,
            TAG_WARNING: self.on_warning,
        }

    def on_stdout(self, payload: Any, worker: int) -> None:
        """Whole lines a task printed: written to the caller's current ``sys.stdout``."""
        self._write(TAG_STDOUT, sys.stdout, str(memoryview(payload), "utf-8", "surrogatepass"), worker)

    def on_stderr(self, payload: Any, worker: int) -> None:
        """Whole lines a task wrote to ``sys.stderr``: written to the caller's current one."""
        self._write(TAG_STDERR, sys.stderr, str(memoryview(payload), "utf-8", "surrogatepass"), worker)

    def on_stdout_bytes(self, payload: Any, worker: int) -> None:
        """Bytes a task wrote to ``sys.stdout.buffer``: written to the caller's current
        ``sys.stdout.buffer``, after what its text layer holds."""
        self._write_bytes(TAG_STDOUT, sys.stdout, bytes(memoryview(payload)), worker)

    def on_stderr_bytes(self, payload: Any, worker: int) -> None:
        """Bytes a task wrote to ``sys.stderr.buffer``: as ``on_stdout_bytes``, on stderr."""
        self._write_bytes(TAG_STDERR, sys.stderr, bytes(memoryview(payload)), worker)

    def _new_line_first(self, tag: int, worker: int, ends_line: bool) -> bool:
        """Whether another worker's unfinished line must be ended before this worker's output."""
        open_by = self._open_line[tag]
        self._open_line[tag] = None if ends_line else worker
        return open_by is not None and open_by != worker

    def _write(self, tag: int, stream: Any, text: str, worker: int) -> None:
        if stream is None or not text:
            return
        if self._new_line_first(tag, worker, text[-1] == "\n"):
            text = "\n" + text
        try:
            stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "utf-8"
            try:
                stream.write(text.encode(encoding, "backslashreplace").decode(encoding, "replace"))
            except Exception:
                pass
        except Exception:
            pass  # a closed or broken stream: as print() to it would fail, the text is lost

    def _write_bytes(self, tag: int, stream: Any, data: bytes, worker: int) -> None:
        if stream is None or not data:
            return
        try:
            buffer = stream.buffer
            write = buffer.write
        except Exception:  # a text-only stream (StringIO, redirect_stdout): the bytes as text
            try:
                text = data.decode(getattr(stream, "encoding", None) or "utf-8", "replace")
            except (LookupError, TypeError):
                text = data.decode("utf-8", "replace")
            self._write(tag, stream, text, worker)
            return
        try:
            if self._new_line_first(tag, worker, data[-1:] == b"\n"):
                stream.write("\n")
            stream.flush()  # the text written before goes first
            write(data)
            if b"\n" in data and getattr(stream, "line_buffering", False):
                buffer.flush()  # a terminal shows the line now, as it does printed ones
        except Exception:
            pass  # a closed or broken stream: as a write to it would fail, the bytes are lost

    @staticmethod
    def on_log(payload: Any, worker: int) -> None:
        """A record logged in a task: handled by the caller's logger of the same name."""
        try:
            # logging.makeLogRecord without the dummy LogRecord.__init__ (half of its cost).
            record = logging.LogRecord.__new__(logging.LogRecord)
            record.__dict__.update(_pickling.loads(memoryview(payload)))
            record.sp_worker = worker
            if record.threadName == "MainThread" or str(record.threadName).startswith("Dummy-"):
                record.threadName = f"sp-worker-{worker}"
            start = getattr(logging, "_startTime", None)
            if isinstance(start, (int, float)):
                record.relativeCreated = (record.created - start) * 1000
            logger = logging.Logger.manager.loggerDict.get(record.name)
            if not isinstance(logger, logging.Logger):
                logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
        except Exception:
            _report("a log record", worker)

    def on_warning(self, payload: Any, worker: int) -> None:
        """A warning raised in a task: re-issued here, through the caller's current filters."""
        try:
            category, text, filename, lineno, module = _pickling.loads(memoryview(payload))
            registry = self._registries.setdefault(module or filename, {})
            try:
                warnings.warn_explicit(
                    text, category or UserWarning, filename, lineno, module=module, registry=registry
                )
            except Warning:
                # An "error" filter added after the pool started: the task has already run
                # on, so the error can only be reported here.

                logging.getLogger(__package__).exception(
                    'a warning raised by a task in worker %d matches an "error" filter added '
                    "after the pool started",
                    worker,
                )
        except Exception:
            _report("a warning", worker)


def _report(what: str, worker: int) -> None:
    try:
        logging.getLogger(__package__).exception("could not replay %s sent by worker %d", what, worker)
    except Exception:
        pass
