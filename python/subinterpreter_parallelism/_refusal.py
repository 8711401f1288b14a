"""Recognising that a module cannot load in an own-GIL interpreter, and saying so: one place.

Many extension modules (numpy among them) refuse to load in an interpreter with its own GIL;
CPython raises ``ImportError: module X does not support loading in subinterpreters``. A few
failures mean the same without that sentence (``SUBINTERPRETER_ONLY_FAILURES``). The worker
(``_worker.run_chunk``), the caller (``_wire.Error.exception``), ``fallback="process"``, ``preload``
and ``check`` all ask ``find_refusal``.

Worker interpreters import this module only when a task fails; ``re`` is imported then.
"""

from __future__ import annotations

import os
import re
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "REFUSAL_TEXT",
    "Refusal",
    "find_refusal",
    "importing_package",
    "is_refusal",
    "mentions_refusal",
    "note_refusal",
    "refusal_message",
    "refused_module",
]

REFUSAL_TEXT = r"module (?P<module>[\w.]+) does not support loading in subinterpreters"

#: Failures that happen only in own-GIL interpreters, without CPython's refusal: (pattern,
#: the module that is effectively refused). On 3.12 workers have the pure-Python datetime
#: (``_datetime`` refuses them), which lacks the C API that ``_zoneinfo`` and other extension
#: modules import: ``import zoneinfo`` (``dateutil.tz``) fails there with an AttributeError.
SUBINTERPRETER_ONLY_FAILURES: tuple[tuple[str, str], ...] = (
    (r"module 'datetime' has no attribute 'datetime_CAPI'", "_datetime"),
)

# Cheap substrings that every recognised failure contains (checked before any regex).
_MARKERS = ("does not support loading in subinterpreters", "datetime_CAPI")

_IMPORT_ERRORS = ("ImportError", "ModuleNotFoundError")
_CANDIDATE_TYPES = (*_IMPORT_ERRORS, "AttributeError")
_compiled: Any = None


def _patterns() -> Any:
    global _compiled
    if _compiled is None:
        _compiled = (
            re.compile(REFUSAL_TEXT),
            [(re.compile(text), module) for text, module in SUBINTERPRETER_ONLY_FAILURES],
            re.compile(r'File "(?P<file>[^"]+)", line \d+, in <module>'),
        )
    return _compiled


def mentions_refusal(text: str) -> bool:
    """Whether ``text`` may hold a refusal (a cheap test before ``find_refusal``)."""
    return any(marker in text for marker in _MARKERS)


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is CPython's refusal to load an extension module in this interpreter."""
    return refused_module(exc) is not None


def refused_module(exc: BaseException) -> str | None:
    """The name of the module that refused to load, if ``exc`` is CPython's refusal itself."""
    if not isinstance(exc, ImportError) or not mentions_refusal(str(exc)):
        return None
    match = _patterns()[0].search(str(exc))
    return match.group("module") if match else None


def refusal_message(module: str, reason: str, needs: str | None = None) -> str:
    """The one message used everywhere (task errors, ``check``, ``preload``) for a refusal of
    ``module``, or of ``needs``, a module that ``module`` imports."""
    why = f"it needs {needs}: {reason}" if needs and needs != module else reason
    return (
        f"{module} cannot be imported in an own-GIL sub-interpreter: {why}. "
        f"Check modules ahead with `python -m subinterpreter_parallelism check {module}`, "
        'or pass fallback="process" to run such tasks in a process pool.'
    )


class Refusal:
    """A module that cannot load in an own-GIL interpreter, as found in an exception."""

    __slots__ = ("extension", "module", "package", "reason")

    def __init__(self, module: str, extension: str, reason: str, package: str | None = None) -> None:
        self.module = module
        """The top-level package of the module that refused (``numpy``, ``rpds``)."""
        self.extension = extension
        """The extension module that refused (``numpy._core._multiarray_umath``)."""
        self.reason = reason
        """Why, in CPython's words: ``module numpy._core._multiarray_umath does not support
        loading in subinterpreters``."""
        self.package = package or module
        """The package whose import led there, as the task imported it (``jsonschema``, which
        needs ``rpds``); the refusing module itself when that is not known."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Refusal) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    def __hash__(self) -> int:
        return hash((self.module, self.extension, self.reason, self.package))

    def __repr__(self) -> str:
        return (
            f"Refusal(module={self.module!r}, extension={self.extension!r}, "
            f"reason={self.reason!r}, package={self.package!r})"
        )

    def message(self) -> str:
        """``refusal_message`` for this refusal, naming the package the task imported."""
        return refusal_message(self.package, self.reason, self.module)

    def describe(self) -> str:
        """``numpy``, or ``jsonschema (needs rpds, which refuses own-GIL sub-interpreters)``."""
        if self.package == self.module:
            return self.module
        return f"{self.package} (needs {self.module}, which refuses own-GIL sub-interpreters)"


def find_refusal(exc: BaseException) -> Refusal | None:
    """The refusal behind ``exc``, if it is an import that failed because of one.

    ``exc`` must be an ``ImportError`` (or an ``ExecutionFailed`` standing for one), or one of
    the ``SUBINTERPRETER_ONLY_FAILURES``; the refusal may be in its message (numpy repeats it
    there), in its chained exceptions (in the worker), or in the traceback text that came back
    from the worker (its ``RemoteTraceback`` cause), since chained exceptions do not survive
    pickling. An exception that a task raised after catching the refusal is not one.
    """
    if _type_name(exc) not in _CANDIDATE_TYPES:
        return None
    refusal_pattern, other_patterns, module_frame = _patterns()
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts = [str(current)]
        remote = getattr(current, "traceback", None)  # RemoteTraceback, ExecutionFailed
        if isinstance(remote, str):
            texts.append(remote)
        for text in texts:
            if not mentions_refusal(text):
                continue
            match = refusal_pattern.search(text)
            if match:
                extension = match.group("module")
                return Refusal(
                    extension.split(".")[0], extension, match.group(0), importing_package(exc, module_frame)
                )
            for pattern, module in other_patterns:
                match = pattern.search(text)
                if match:
                    return Refusal(module, module, match.group(0), importing_package(exc, module_frame))
        pending += [current.__context__, current.__cause__]
    return None


def _type_name(exc: BaseException) -> str:
    type_name = getattr(exc, "type_name", None)  # ExecutionFailed
    if isinstance(type_name, str):
        return type_name.rsplit(".", 1)[-1]
    for cls in type(exc).__mro__:
        if cls.__name__ in _CANDIDATE_TYPES and cls.__module__ == "builtins":
            return cls.__name__
    return type(exc).__name__


def importing_package(exc: BaseException, module_frame: Any = None) -> str | None:
    """The top-level package whose import failed, as the task's code imported it: the first
    module-level frame of the traceback (``import jsonschema`` fails deep inside ``rpds``)."""
    if module_frame is None:
        module_frame = _patterns()[2]
    files: list[str] = []
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "<module>":
            files.append(tb.tb_frame.f_code.co_filename)
            break
        tb = tb.tb_next
    cause = exc.__cause__
    for text in (getattr(exc, "traceback", None), getattr(cause, "traceback", None)):
        if isinstance(text, str):
            # The outermost exception's own traceback comes last, after its chained causes.
            own = text.rsplit("\n\nThe above exception was the direct cause of the following exception:", 1)[
                -1
            ]
            own = own.rsplit("\n\nDuring handling of the above exception, another exception occurred:", 1)[-1]
            files += [match.group("file") for match in module_frame.finditer(own)][:1]
    for file in files:
        package = _package_of_file(file)
        if package is not None:
            return package
    return None


def _package_of_file(file: str) -> str | None:
    """``/.../site-packages/jsonschema/validators.py`` -> ``jsonschema`` (by ``sys.path``)."""
    best = None
    for entry in sys.path:
        root = os.path.abspath(entry or os.curdir).rstrip(os.sep) + os.sep
        if file.startswith(root) and (best is None or len(root) > len(best)):
            best = root
    if best is None:
        return None
    head = file[len(best) :].split(os.sep)[0]
    name = head.split(".")[0]
    return name if name.isidentifier() and name != "__main__" else None


def note_refusal(exc: BaseException) -> None:
    """Caller side: when ``exc`` comes from a refusal, adds the refusal message as a note and
    trims a long message of the refusing package (numpy's 25-line banner) to one line.

    The untrimmed traceback text stays available as ``exc.__cause__.untrimmed``.
    """
    refusal = find_refusal(exc)
    if refusal is None:
        return
    note = refusal.message()
    if note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)
    _trim_long_message(exc, refusal)


_LONG_MESSAGE_LINES = 4


def _trim_long_message(exc: BaseException, refusal: Refusal) -> None:
    if not isinstance(exc, ImportError) or len(exc.args) != 1 or not isinstance(exc.args[0], str):
        return
    original = exc.args[0]
    lines = [line.strip() for line in original.splitlines() if line.strip()]
    if len(lines) < _LONG_MESSAGE_LINES:
        return
    kept = next((line for line in lines if refusal.reason in line), lines[0])
    short = f"{kept} [{refusal.package}'s message of {len(lines)} lines trimmed; the full text: exc.__cause__.untrimmed]"
    exc.args = (short,)
    exc.msg = short
    cause = exc.__cause__
    text = getattr(cause, "traceback", None)
    if isinstance(text, str) and original in text:
        cause.untrimmed = text  # type: ignore[union-attr]
        trimmed = text.replace(original, short)
        cause.traceback = trimmed  # type: ignore[union-attr]
        cause.args = (trimmed,)  # type: ignore[union-attr]
