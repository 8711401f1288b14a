"""Which modules can load in an own-GIL sub-interpreter, and what to tell users when one cannot.

Many extension modules (numpy among them) refuse to load in an interpreter with its own GIL;
CPython raises ``ImportError: module X does not support loading in subinterpreters``.
"""

from __future__ import annotations

import re

__all__ = ["is_refusal", "refused_module", "refusal_message"]

_REFUSAL = re.compile(r"module (?P<module>[\w.]+) does not support loading in subinterpreters")


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is CPython's refusal to load an extension module in this interpreter."""
    return isinstance(exc, ImportError) and _REFUSAL.search(str(exc)) is not None


def refused_module(exc: BaseException) -> str | None:
    """The name of the module that refused to load, if ``exc`` is such a refusal."""
    match = _REFUSAL.search(str(exc)) if isinstance(exc, ImportError) else None
    return match.group("module") if match else None


def refusal_message(module: str, reason: str) -> str:
    """The one message used everywhere (task errors, ``check``, ``preload``) for a refusal."""
    return (
        f"{module} cannot be imported in an own-GIL sub-interpreter: {reason}. "
        f"Check modules ahead with `python -m subinterpreter_parallelism check {module}`, "
        "or pass fallback=\"process\" to run such tasks in a process pool."
    )
