"""The worker half of the features beside the runner: forwarding and preload.

A worker interpreter imports this module, not ``forwarding`` or ``preload`` (their caller
halves): the bootstrap's steps name ``install`` and ``import_modules`` here, and the Swift
worker calls ``warm_module`` between tasks. ``tests/test_halves.py`` holds the modules a
worker loads to a named set; keep this module's imports within it.

Forwarding (``install``): the worker does not import ``logging`` or ``warnings`` at start-up
(they are a noticeable part of it); a ``sys.meta_path`` watcher hooks each one the moment
something in the worker first imports it. Log records and warnings are pickled, and pickle
(``_wire.pickling()``) loads only when the first one is sent.

Preload (``import_modules``, ``warm_module``): the modules a pool imports in every worker
before its first task, or warms ahead of the tasks that need them; the verdicts travel to
``preload.PreloadWatch`` and ``preload.AutoWarm`` in the caller.
"""

from __future__ import annotations

import atexit
import sys

from . import _import_hooks as import_hooks
from . import _native, _wire, _worker
from ._streams import TAG_STDERR, TAG_STDOUT, ForwardingStream, flush_deferred, post

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = ["TAG_LOG", "TAG_PRELOAD", "TAG_WARNING", "import_modules", "install", "warm_module"]

# Message tags (the ``tag`` of ``_native.post_message``), written once, in the Swift core;
# the streams' are in ``_streams``.
TAG_LOG = _native.TAG_LOG
TAG_WARNING = _native.TAG_WARNING
# A worker's preload verdict: ``PRELOAD_OK``, or the failing module and its Error.
TAG_PRELOAD = _native.TAG_PRELOAD
PRELOAD_OK = b"ok"


# ─── forwarding ─────────────────────────────────────────────────────────────────────────────


def install(options: dict[str, Any]) -> None:
    """Forwarding's step of the bootstrap, once per worker interpreter: sets up what
    ``forwarding.worker_options`` asked for."""
    atexit.register(_at_interpreter_exit)
    output = options.get("output")
    if output == "forward":
        sys.stdout = ForwardingStream(TAG_STDOUT, sys.stdout, options.get("stdout", {}))
        sys.stderr = ForwardingStream(TAG_STDERR, sys.stderr, options.get("stderr", {}))
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
    flush_deferred()
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

    class ForwardingHandler(logging.Handler):  # type: ignore[misc]  # the worker's logging, passed in
        """Sends each record to the caller's interpreter (in the manner of ``QueueHandler``)."""

        def emit(self, record: Any) -> None:
            try:
                post(TAG_LOG, _encode_record(record, formatter))
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
    pickling = _wire.pickling()
    attributes = dict(record.__dict__)
    message = record.getMessage()
    attributes["msg"] = message
    attributes["message"] = message
    attributes["args"] = None
    if record.exc_info:
        attributes["exc_text"] = record.exc_text or formatter.formatException(record.exc_info)
    attributes["exc_info"] = None
    try:
        data: bytes = pickling._dumps(attributes, pickling.PROTOCOL)
        return data
    except Exception:
        pass
    for key, value in attributes.items():  # an `extra=` value that cannot travel: its repr
        try:
            pickling._dumps(value, pickling.PROTOCOL)
        except Exception:
            try:
                attributes[key] = repr(value)
            except Exception:
                attributes[key] = f"<{type(value).__qualname__}>"
    data = pickling._dumps(attributes, pickling.PROTOCOL)
    return data


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
    try:
        pickling = _wire.pickling()
        text = str(message)
        module = _module_at(filename, lineno)
        try:
            data = pickling.dumps((category, text, filename, lineno, module))
        except Exception:  # a category that cannot travel: a UserWarning naming it
            name = f"{category.__module__}.{category.__qualname__}"
            data = pickling.dumps((None, f"{name}: {text}", filename, lineno, module))
        post(TAG_WARNING, data)
    except Exception as exc:
        try:
            sys.__stderr__.write(  # type: ignore[union-attr]  # None only without a stderr: then it raises here, caught below
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


# ─── preload ────────────────────────────────────────────────────────────────────────────────


def import_modules(spec: dict[str, Any]) -> bool:
    """Preload's step of the bootstrap: imports ``spec["modules"]``; tells the
    caller it is ready, or what failed.

    With a ``spec["gate"]`` (a Queue), worker 0 imports first and the others wait for its
    verdict: they import only once it succeeded. The verdict is one token, which each waiter
    puts back, so that interpreters started later (``max_tasks_per_worker``) find it too.

    Returns True once imported, False when told not to import: the gate closes only when the
    pool broke (worker 0 failed: ``PreloadWatch`` marked it broken first) or is going away, so
    the worker gets no task and ends quietly.

    Raises:
        what the import raised, with a note naming the module, after telling the caller: the
        bootstrap fails, and the pool breaks with that reason (as for a failing initializer),
        in the first interpreters and in those started later by ``max_tasks_per_worker``.
    """
    gate = spec.get("gate")
    if gate is not None and _native.worker_index() != 0:
        try:
            go = gate.get()
        except Exception:  # closed: worker 0 failed, or the pool is going away
            go = False
        if not go:
            return False
        try:
            gate.put(go)  # for the next waiter
        except Exception:
            pass
    for name in spec["modules"]:
        try:
            __import__(name)  # not importlib.import_module: the importlib package stays out
        except BaseException as exc:
            pickling = _wire.pickling()
            failure = pickling._dumps((name, _wire.encode_error(exc)), pickling.PROTOCOL)
            _native.post_message(TAG_PRELOAD, failure)
            exc.add_note(
                f"raised in worker {_native.worker_index()} while importing preload module {name!r}, "
                "so that worker cannot run tasks"
            )
            raise
    _native.post_message(TAG_PRELOAD, PRELOAD_OK)
    return True


def warm_module(name: str) -> str | None:
    """``preload="auto"``: imports ``name`` ahead of the tasks that need it (the
    Swift worker calls it while no task waits). Returns None, or the failure's text: a failure
    is only recorded, and the task that needs the module gets its own error."""
    try:
        __import__(name)
    except BaseException as exc:  # anything at all: the worker and the pool go on
        import traceback  # on a failure only: it is a noticeable part of a worker's start-up

        return "".join(traceback.format_exception_only(exc)).strip()
    finally:
        _worker.flush_unflushed()  # what the import printed arrives now, not with a later task
    return None
