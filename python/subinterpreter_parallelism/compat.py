"""The names this module held before it was split by feature, for code that imports them here.

- recognising a refusal: ``_refusal`` (``find_refusal``, ``refusal_message``, ...);
- ``fallback="process"``: ``fallback`` (``ProcessFallback``, ``ProcessFallbackWarning``);
- ``check``: ``check`` (``check_modules``, ``ModuleCheck``, ``check_main``);
- ``info``: ``info``.
"""

from __future__ import annotations

from ._refusal import Refusal, find_refusal, is_refusal, note_refusal, refusal_message, refused_module
from .check import ModuleCheck, check_main, check_modules, format_table
from .fallback import ProcessFallback, ProcessFallbackWarning, check_fallback
from .info import info, info_main

__all__ = [
    "ModuleCheck",
    "ProcessFallback",
    "ProcessFallbackWarning",
    "Refusal",
    "check_fallback",
    "check_main",
    "check_modules",
    "find_refusal",
    "format_table",
    "info",
    "info_main",
    "is_refusal",
    "note_refusal",
    "refusal_message",
    "refused_module",
]
