"""A worker's ``sys.stdout``/``sys.stderr`` when output is forwarded, and how they post.

``ForwardingStream`` stands where a ``TextIOWrapper`` stood, and answers like one: its
``buffer`` (a ``ForwardingBuffer``, for bytes), ``encoding``/``errors`` (the caller's stream's),
``name``, ``mode``, ``line_buffering``, ``reconfigure()``. What is written travels as messages
(``_native.post_message``) to the caller's interpreter, whose ``forwarding.CallerSide`` writes
it to its *current* streams:

    worker                                        message            caller
    sys.stdout.write(text) ─ whole lines ───────► TAG_STDOUT ──────► sys.stdout.write(text)
    sys.stdout.buffer.write(data) ─ whole lines ► TAG_STDOUT_BYTES ► sys.stdout.buffer.write(data)

Text is encoded as the caller's stream would encode it (so what it cannot write raises here,
as it would there) and travels as UTF-8; bytes travel as they are. Either kind is held until a
newline, ``flush()`` or the end of the task, so that lines from different workers never mix;
writing one kind first sends what the other holds, so a task's text and bytes keep their order.
"""

from __future__ import annotations

import _thread
import codecs
import io

from . import _native, _worker

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "TAG_STDERR",
    "TAG_STDERR_BYTES",
    "TAG_STDOUT",
    "TAG_STDOUT_BYTES",
    "ForwardingBuffer",
    "ForwardingStream",
    "flush_deferred",
    "post",
]

# Message tags (the ``tag`` of ``_native.post_message``), written once, in the Swift core.
TAG_STDOUT = _native.TAG_STDOUT
TAG_STDERR = _native.TAG_STDERR
TAG_STDOUT_BYTES = _native.TAG_STDOUT_BYTES
TAG_STDERR_BYTES = _native.TAG_STDERR_BYTES

# A line longer than this is sent in pieces (a progress bar that never ends its line, say).
_MAX_PENDING = 8192

# Error handlers with which the text as written is what travels (UTF-8 with surrogates kept:
# the caller's own stream applies them when it writes).
_SURROGATE_HANDLERS = ("surrogateescape", "surrogatepass")


# ─── posting ────────────────────────────────────────────────────────────────────────────────

# Messages posted from a thread the task started: post_message works only on the worker's own
# thread, so they wait here until the worker thread ends its task.
_deferred: list[tuple[int, bytes]] = []


def post(tag: int, data: bytes) -> None:
    """Sends one message to the caller now, or, from another thread, when the task ends."""
    try:
        _native.post_message(tag, data)
    except RuntimeError:
        _deferred.append((tag, data))
        if len(_deferred) == 1:
            _register(_DeferredMessages)


def flush_deferred() -> None:
    """Posts the messages that other threads of the worker left for the worker thread."""
    _DeferredMessages.flush()


def _register(flushable: Any) -> None:
    """Asks the runner to flush ``flushable`` when the current task (or bootstrap) ends."""
    _worker.unflushed.append(flushable)


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


# ─── the streams ────────────────────────────────────────────────────────────────────────────


class _Lines:
    """What one stream holds back: whole lines go, a partial line waits (str or bytes)."""

    __slots__ = ("empty", "newline", "pending", "registered", "size", "tag")

    def __init__(self, tag: int, empty: Any, newline: Any) -> None:
        self.tag = tag
        self.empty = empty
        self.newline = newline
        self.pending: list[Any] = []
        self.size = 0
        self.registered = False

    def take(self, chunk: Any, flushable: Any) -> Any:
        """Keeps ``chunk``; returns what is ready to go (or None). Call with the stream's lock."""
        cut = chunk.rfind(self.newline)
        if cut < 0:
            self.pending.append(chunk)
            self.size += len(chunk)
            if self.size < _MAX_PENDING:
                if not self.registered:
                    self.registered = True
                    _register(flushable)
                return None
            out = self.empty.join(self.pending)
            self.pending.clear()
            self.size = 0
            return out
        out = chunk[: cut + 1]
        if self.pending:
            out = self.empty.join(self.pending) + out
            self.pending.clear()
        tail = chunk[cut + 1 :]
        self.size = len(tail)
        if tail:
            self.pending.append(tail)
            if not self.registered:
                self.registered = True
                _register(flushable)
        return out

    def drain(self) -> Any:
        """All that is held (or None); the next partial line registers again."""
        self.registered = False
        if not self.pending:
            return None
        out = self.empty.join(self.pending)
        self.pending.clear()
        self.size = 0
        return out


class ForwardingStream(io.TextIOBase):
    """A worker's ``sys.stdout``/``sys.stderr`` that sends whole lines to the caller.

    Text is kept until a newline, ``flush()``, or the end of the task (so a task's last
    partial line is written before its result arrives); each message holds whole lines, so
    lines from different workers never mix. The caller writes them to its *current*
    ``sys.stdout``/``sys.stderr`` (whatever pytest, a notebook or the program put there).
    ``buffer`` takes bytes the same way. ``encoding`` and ``errors`` are those of the caller's
    stream when the pool started: text it could not encode raises ``UnicodeEncodeError`` here.
    """

    newlines = None
    mode = "w"
    line_buffering = True
    """Always True: whole lines are sent as they complete."""
    write_through = False

    def __init__(self, tag: int, original: Any, facts: dict[str, Any]) -> None:
        super().__init__()
        self._lock = _thread.allocate_lock()
        self._original = original
        self._isatty = bool(facts.get("isatty", False))
        self._name = str(facts.get("name", "<stdout>"))
        self._text = _Lines(tag, "", "\n")
        self._bytes = _Lines(TAG_STDOUT_BYTES if tag == TAG_STDOUT else TAG_STDERR_BYTES, b"", b"\n")
        self._encoding = "utf-8"
        self._errors = "strict"
        self._as_is = False
        self._set_codec(facts.get("encoding") or "utf-8", facts.get("errors") or "strict")
        self.buffer = ForwardingBuffer(self)
        """Takes bytes, sent to the caller's ``sys.stdout.buffer`` (its text stream if it has none)."""

    def _set_codec(self, encoding: str, errors: str) -> None:
        name = codecs.lookup(encoding).name  # LookupError for an unknown encoding
        codecs.lookup_error(errors)  # LookupError for an unknown handler
        self._encoding = encoding
        self._errors = errors
        # UTF-8 and a handler that keeps surrogates: the text travels as written (the caller's
        # stream applies its handler); otherwise it is encoded here, as the caller's would be.
        self._as_is = name == "utf-8" and errors in _SURROGATE_HANDLERS
        self._utf8 = name == "utf-8"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The caller's stream's encoding when the pool started (or as ``reconfigure`` set it)."""
        return self._encoding

    @property
    def errors(self) -> str:  # type: ignore[override]
        """The caller's stream's error handler when the pool started (or as ``reconfigure`` set it)."""
        return self._errors

    @property
    def name(self) -> str:
        """The caller's stream's name (``"<stdout>"``, ``"<stderr>"``)."""
        return self._name

    def writable(self) -> bool:
        """Always True."""
        return True

    def isatty(self) -> bool:
        """What the caller's stream answered when the pool was created."""
        return self._isatty

    def fileno(self) -> int:
        """The descriptor of the worker's original stream (writing there bypasses forwarding)."""
        return int(self._original.fileno())

    def reconfigure(
        self,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: Any = None,
        line_buffering: bool | None = None,
        write_through: bool | None = None,
    ) -> None:
        """As ``TextIOWrapper.reconfigure``: ``encoding`` and ``errors`` change how text is
        encoded from now on (an ``encoding`` alone resets ``errors`` to "strict", as there).
        ``newline``, ``line_buffering`` and ``write_through`` are accepted and change nothing:
        whole lines always go at once.

        Raises:
            LookupError: an unknown encoding or error handler.
            TypeError: ``encoding`` or ``errors`` is not a str.
        """
        for value, what in ((encoding, "encoding"), (errors, "errors")):
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"reconfigure() argument '{what}' must be str or None, not {type(value).__name__}"
                )
        if encoding is None and errors is None:
            return
        with self._lock:
            self._send(self._text.drain())
            self._set_codec(encoding or self._encoding, errors or ("strict" if encoding else self._errors))

    def write(self, text: str) -> int:
        """Keeps ``text``; sends the lines it completes. Returns ``len(text)``.

        Raises:
            TypeError: ``text`` is not a str.
            UnicodeEncodeError: the caller's stream could not encode ``text`` (its ``errors``).
        """
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        if not self._as_is and not (self._utf8 and text.isascii()):
            self._check(text)
        with self._lock:
            if self._bytes.pending:
                self._send(self._bytes.drain())
            self._send(self._text.take(text, self))
        return len(text)

    def _check(self, text: str) -> None:
        """Raises what the caller's stream would raise for ``text``."""
        text.encode(self._encoding, self._errors)

    def _send(self, chunk: Any) -> None:
        if not chunk:
            return
        if isinstance(chunk, bytes):
            post(self._bytes.tag, chunk)
        elif self._as_is:
            post(self._text.tag, chunk.encode("utf-8", "surrogatepass"))
        elif self._utf8:
            post(self._text.tag, chunk.encode("utf-8", self._errors))
        else:  # as the caller's stream shows it ("?" for errors="replace"), in UTF-8
            shown = chunk.encode(self._encoding, self._errors).decode(self._encoding, "replace")
            post(self._text.tag, shown.encode("utf-8", "surrogatepass"))

    def _write_bytes(self, data: bytes) -> None:
        with self._lock:
            if self._text.pending:
                self._send(self._text.drain())
            self._send(self._bytes.take(data, self))

    def flush(self) -> None:
        """Sends the partial line kept so far (text and bytes, in the order written)."""
        with self._lock:
            # At most one of the two holds anything: writing one kind sends the other's.
            self._send(self._text.drain())
            self._send(self._bytes.drain())


class ForwardingBuffer(io.BufferedIOBase):
    """``ForwardingStream.buffer``: bytes written here reach the caller's ``sys.stdout.buffer``
    (or ``sys.stderr.buffer``) as they are, whole lines at a time, in order with the text."""

    mode = "wb"

    def __init__(self, stream: ForwardingStream) -> None:
        super().__init__()
        self._stream = stream

    @property
    def name(self) -> str:
        """The text stream's name."""
        return self._stream.name

    def writable(self) -> bool:
        """Always True."""
        return True

    def isatty(self) -> bool:
        """As the text stream."""
        return self._stream.isatty()

    def fileno(self) -> int:
        """As the text stream: the worker's original descriptor."""
        return self._stream.fileno()

    def write(self, data: Any) -> int:
        """Keeps ``data`` (any bytes-like object); sends the lines it completes. Returns its
        length in bytes.

        Raises:
            TypeError: ``data`` is not bytes-like (a str, say).
        """
        if isinstance(data, str):
            raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")
        with memoryview(data) as view:
            chunk = view.tobytes()
        if chunk:
            self._stream._write_bytes(chunk)
        return len(chunk)

    def flush(self) -> None:
        """Sends what is held (as the text stream's ``flush``)."""
        self._stream.flush()
