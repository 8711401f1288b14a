"""The worker side of the joblib backend (see joblib_backend.py): no joblib here.

Worker interpreters import this module to run a joblib batch. joblib itself cannot be imported
in an own-GIL interpreter on Python 3.12 to 3.14 (it imports ``faulthandler``, which refuses
them), so the backend sends only the batch's ``(function, args, kwargs)`` triples.
"""

from __future__ import annotations

from . import _import_hooks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["run_batch"]

_hooked = False


def run_batch(items: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
    """Runs a joblib batch, ``[func(*args, **kwargs) for func, args, kwargs in items]``.

    The first time in an interpreter, it arranges that if a task imports joblib (where joblib
    can load in an own-GIL interpreter), joblib's default backend there is ``"sequential"``:
    a nested ``Parallel`` call runs inside its worker, as joblib runs nested calls in a loky
    worker without starting processes from it.
    """
    global _hooked
    if not _hooked:
        _hooked = True
        _import_hooks.watch("joblib.parallel", _sequential_by_default)
    return [func(*args, **kwargs) for func, args, kwargs in items]


def _sequential_by_default(module: Any) -> None:
    module.DEFAULT_BACKEND = "sequential"
