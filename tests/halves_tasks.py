"""Tasks of tests/test_halves.py. This module imports nothing of the package: calling it adds no
module of the package to a worker, so what a worker has loaded is what its tasks' records and
the runner needed."""

from __future__ import annotations

import sys
from typing import Any

PACKAGE = "subinterpreter_parallelism"


def package_modules() -> list[str]:
    """The package's modules this interpreter has imported, sorted, without the package name."""
    prefix = PACKAGE + "."
    return sorted(name[len(prefix) :] for name in sys.modules if name.startswith(prefix))


def identity(value: Any) -> Any:
    return value


def double(value: int) -> int:
    return 2 * value


def raises(message: str) -> None:
    raise ValueError(message)


def put(queue: Any, value: Any) -> None:
    """Puts ``value`` in a ``Queue`` the caller made."""
    queue.put(value)


def look_up(shared: Any, key: Any) -> Any:
    """``shared[key]`` of a ``SharedMap`` the caller made."""
    return shared[key]


def warns(message: str) -> None:
    import warnings

    warnings.warn(message, stacklevel=1)


def logs(message: str) -> None:
    import logging

    logging.getLogger("halves").warning(message)
