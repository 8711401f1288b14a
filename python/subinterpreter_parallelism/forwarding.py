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

Worker side (``install``): a step of ``_worker.bootstrap``. The worker does not import
``logging`` or ``warnings`` at start-up (they are a noticeable part of it); a ``sys.meta_path``
watcher hooks each one the moment something in the worker first imports it.

Caller side (``worker_options``, ``CallerSide``): used by
``InterpreterPoolExecutor``. Message handlers run on the pool's completion thread; they never
raise, and a task's messages are handled before its future is resolved, so output and
records are there when ``result()`` returns.
"""

from __future__ import annotations

import io
import sys

TYPE_CHECKING = False

from . import _import_hooks as import_hooks
from . import _native

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "TAG_LOG",
    "TAG_STDERR",
    "TAG_STDOUT",
    "TAG_WARNING",
    "CallerSide",
    "ForwardingStream",
    "install",
    "worker_options",
]

# Message tags (the ``tag`` of ``_native.post_message``), written once, in the Swift core.
TAG_STDOUT = _native.TAG_STDOUT
TAG_STDERR = _native.TAG_STDERR
TAG_LOG = _native.TAG_LOG
TAG_WARNING = _native.TAG_WARNING

# A line longer than this is sent in pieces (a progress bar that never ends its line, say).
_MAX_PENDING = 8192


# ─── worker side ────────────────────────────────────────────────────────────────────────────

# Messages posted from a thread the task started: post_message works only on the worker's own
# thread, so they wait here until the worker thread ends its task.
_deferred: list[tuple[int, bytes]] = []


def _post(tag: int, data: bytes) -> None:
    try:
        _native.post_message(tag, data)
    except RuntimeError:
        _deferred.append((tag, data))
        if len(_deferred) == 1:
            _register(_DeferredMessages)


def _register(flushable: Any) -> None:
    """Asks the runner to flush ``flushable`` when the current task (or bootstrap) ends."""
    global _unflushed
    if _unflushed is None:
        from . import _worker

        _unflushed = _worker.unflushed
    _unflushed.append(flushable)


_unflushed: list[Any] | None = None


class _DeferredMessages:
    """Posts the messages that other threads of the worker left in ``_deferred``."""

    @staticmethod
    def flush() -> None:
        while _deferred:
            tag, data = _deferred.pop(0)
            try:
                _native.post_message(tag, data)
            except RuntimeError:  # still not on the worker thread: try again later
                _deferred.insert(0, (tag, data))
                return


class ForwardingStream(io.TextIOBase):
    """A worker's ``sys.stdout``/``sys.stderr`` that sends whole lines to the caller.

    Text is kept until a newline, ``flush()``, or the end of the task (so a task's last
    partial line is written before its result arrives); each message holds whole lines, so
    lines from different workers never mix. The caller writes them to its *current*
    ``sys.stdout``/``sys.stderr`` (whatever pytest, a notebook or the program put there).
    """

    encoding = "utf-8"
    errors = "surrogatepass"
    newlines = None

    def __init__(self, tag: int, original: Any, isatty: bool) -> None:
        super().__init__()
        self._tag = tag
        self._original = original
        self._isatty = isatty
        self._pending: list[str] = []
        self._size = 0
        self._registered = False
        import _thread

        self._lock = _thread.allocate_lock()

    def writable(self) -> bool:
        """Always True."""
        return True

    def isatty(self) -> bool:
        """What the caller's stream answered when the pool was created."""
        return self._isatty

    def fileno(self) -> int:
        """The descriptor of the worker's original stream (writing there bypasses forwarding)."""
        return self._original.fileno()

    def write(self, text: str) -> int:
        """Keeps ``text``; sends the lines it completes. Returns ``len(text)``.

        Raises:
            TypeError: ``text`` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        with self._lock:
            cut = text.rfind("\n")
            if cut < 0:
                self._pending.append(text)
                self._size += len(text)
                if self._size < _MAX_PENDING:
                    if not self._registered:
                        self._registered = True
                        _register(self)
                    return len(text)
                out = "".join(self._pending)
                self._pending.clear()
                self._size = 0
            else:
                out = text[: cut + 1]
                if self._pending:
                    out = "".join(self._pending) + out
                    self._pending.clear()
                tail = text[cut + 1 :]
                self._size = len(tail)
                if tail:
                    self._pending.append(tail)
                    if not self._registered:
                        self._registered = True
                        _register(self)
            _post(self._tag, out.encode("utf-8", "surrogatepass"))
        return len(text)

    def flush(self) -> None:
        """Sends the partial line kept so far."""
        with self._lock:
            self._registered = False
            if not self._pending:
                return
            out = "".join(self._pending)
            self._pending.clear()
            self._size = 0
            _post(self._tag, out.encode("utf-8", "surrogatepass"))


def install(options: dict[str, Any]) -> None:
    """Worker side, once per worker interpreter: sets up what ``worker_options`` asked for."""
    import atexit

    atexit.register(_at_interpreter_exit)
    output = options.get("output")
    if output == "forward":
        sys.stdout = ForwardingStream(TAG_STDOUT, sys.stdout, options.get("stdout_isatty", False))
        sys.stderr = ForwardingStream(TAG_STDERR, sys.stderr, options.get("stderr_isatty", False))
    elif output == "fd":
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(line_buffering=True)
    logging_options = options.get("logging")
    if logging_options is not None:
        import_hooks.watch("logging", lambda module: _install_logging(module, logging_options))
    warning_filters = options.get("warnings")
    if warning_filters is not None:
        import_hooks.watch("warnings", lambda module: _install_warnings(module, warning_filters))


def _at_interpreter_exit() -> None:
    """Sends what is left, and lets go of the worker thread's ``threading`` stand-in.

    On 3.13, ``threading.current_thread()`` (which every log record calls) makes a
    ``_DummyThread`` for the worker thread whose clean-up, left to the interpreter's teardown,
    runs after ``threading`` is gone and prints "Exception ignored ... _DeleteDummyThreadOnDel".
    Dropping it here, while ``threading`` still works, avoids that.
    """
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, ForwardingStream):
            stream.flush()
    _DeferredMessages.flush()
    threading = sys.modules.get("threading")
    local = getattr(threading, "_thread_local_info", None)
    if local is not None and hasattr(local, "_track_dummy_thread_ref"):
        try:
            del local._track_dummy_thread_ref
        except Exception:
            pass


def _install_logging(logging: Any, options: dict[str, Any]) -> None:
    """Hooks the worker's ``logging``: levels as in the caller, one handler that forwards."""
    formatter = logging.Formatter()

    class ForwardingHandler(logging.Handler):
        """Sends each record to the caller's interpreter (in the manner of ``QueueHandler``)."""

        def emit(self, record: Any) -> None:
            try:
                _post(TAG_LOG, _encode_record(record, formatter))
            except Exception:
                self.handleError(record)

    root = logging.getLogger()
    for name, level in options.get("levels", {}).items():
        (logging.getLogger(name) if name else root).setLevel(level)
    if options.get("disable"):
        logging.disable(options["disable"])
    root.addHandler(ForwardingHandler())


def _encode_record(record: Any, formatter: Any) -> bytes:
    """The record's attributes, made picklable: message formatted, exception as text."""
    from . import _pickling  # not at import: a worker loads pickle only when it needs it

    attributes = dict(record.__dict__)
    message = record.getMessage()
    attributes["msg"] = message
    attributes["message"] = message
    attributes["args"] = None
    if record.exc_info:
        attributes["exc_text"] = record.exc_text or formatter.formatException(record.exc_info)
    attributes["exc_info"] = None
    try:
        return _pickling._dumps(attributes, _pickling.PROTOCOL)
    except Exception:
        pass
    for key, value in attributes.items():  # an `extra=` value that cannot travel: its repr
        try:
            _pickling._dumps(value, _pickling.PROTOCOL)
        except Exception:
            try:
                attributes[key] = repr(value)
            except Exception:
                attributes[key] = f"<{type(value).__qualname__}>"
    return _pickling._dumps(attributes, _pickling.PROTOCOL)


def _install_warnings(warnings: Any, filters: list[tuple[Any, ...]]) -> None:
    """Hooks the worker's ``warnings``: the caller's error filters, everything else forwarded."""
    warnings.resetwarnings()
    warnings.simplefilter("always")
    for action, message, category, module, lineno in reversed(filters):
        warnings.filterwarnings(action, message, category, module, lineno)
    warnings.showwarning = _forward_warning


def _forward_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: str | None = None
) -> None:
    """The worker's ``warnings.showwarning``: sends the warning to the caller."""
    from . import _pickling  # not at import: a worker loads pickle only when it needs it

    try:
        text = str(message)
        module = _module_at(filename, lineno)
        try:
            data = _pickling.dumps((category, text, filename, lineno, module))
        except Exception:  # a category that cannot travel: a UserWarning naming it
            name = f"{category.__module__}.{category.__qualname__}"
            data = _pickling.dumps((None, f"{name}: {text}", filename, lineno, module))
        _post(TAG_WARNING, data)
    except Exception as exc:
        try:
            sys.__stderr__.write(
                f"{filename}:{lineno}: {category.__name__}: {message} (not forwarded: {exc!r})\n"
            )
        except Exception:
            pass


def _module_at(filename: str, lineno: int) -> str | None:
    """The ``__name__`` of the frame that the warning points at (for module filters)."""
    frame: Any = sys._getframe(2)
    while frame is not None:
        if frame.f_lineno == lineno and frame.f_code.co_filename == filename:
            name = frame.f_globals.get("__name__")
            return name if isinstance(name, str) else None
        frame = frame.f_back
    return None


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
        options["stdout_isatty"] = _isatty(sys.stdout)
        options["stderr_isatty"] = _isatty(sys.stderr)
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


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


def _logging_levels() -> dict[str, Any]:
    """The caller's logger levels, so that workers skip what the caller would skip."""
    import logging

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
    from . import _pickling  # caller side; not at import, which workers do

    import warnings

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
            TAG_LOG: self.on_log,
            TAG_WARNING: self.on_warning,
        }

    def on_stdout(self, payload: Any, worker: int) -> None:
        """Whole lines a task printed: written to the caller's current ``sys.stdout``."""
        self._write(TAG_STDOUT, sys.stdout, payload, worker)

    def on_stderr(self, payload: Any, worker: int) -> None:
        """Whole lines a task wrote to ``sys.stderr``: written to the caller's current one."""
        self._write(TAG_STDERR, sys.stderr, payload, worker)

    def _write(self, tag: int, stream: Any, payload: Any, worker: int) -> None:
        if stream is None:
            return
        text = str(memoryview(payload), "utf-8", "surrogatepass")
        if not text:
            return
        open_by = self._open_line[tag]
        if open_by is not None and open_by != worker:
            text = "\n" + text
        self._open_line[tag] = None if text[-1] == "\n" else worker
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

    @staticmethod
    def on_log(payload: Any, worker: int) -> None:
        """A record logged in a task: handled by the caller's logger of the same name."""
        from . import _pickling  # caller side; not at import, which workers do

        try:
            import logging

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
        from . import _pickling  # caller side; not at import, which workers do

        try:
            import warnings

            category, text, filename, lineno, module = _pickling.loads(memoryview(payload))
            registry = self._registries.setdefault(module or filename, {})
            try:
                warnings.warn_explicit(
                    text, category or UserWarning, filename, lineno, module=module, registry=registry
                )
            except Warning:
                # An "error" filter added after the pool started: the task has already run
                # on, so the error can only be reported here.
                import logging

                logging.getLogger(__package__).exception(
                    'a warning raised by a task in worker %d matches an "error" filter added '
                    "after the pool started",
                    worker,
                )
        except Exception:
            _report("a warning", worker)


def _report(what: str, worker: int) -> None:
    try:
        import logging

        logging.getLogger(__package__).exception("could not replay %s sent by worker %d", what, worker)
    except Exception:
        pass
