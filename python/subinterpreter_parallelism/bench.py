"""``python -m subinterpreter_parallelism bench``: runs the benchmark suite.

The suite ships with the package, as the top-level package ``benchmarks`` in the folder
``_suite/`` next to this module (``make bench`` and an installed wheel run the same code). It
stays a top-level package of its own folder, not a subpackage, because every competitor's
workers import its task functions (``benchmarks.workloads``): process pools and the stdlib's
interpreter pool should load those without importing this package and its native extension,
which would add to the start-up times and memory measured for them. The suite's cells find it
through ``PYTHONPATH``; this module puts the folder on ``sys.path`` and hands over the arguments.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

__all__ = ["find_suite_root", "main"]

SUITE_ROOT = Path(__file__).resolve().parent / "_suite"

_NOT_FOUND = f"""\
The benchmark suite is missing from this installation ({SUITE_ROOT}/benchmarks/):
reinstall subinterpreter_parallelism, or run `make bench` from a clone of the repository.
"""


def find_suite_root() -> Path | None:
    """The folder that holds the suite's package ``benchmarks/``, or None if it is missing."""
    return SUITE_ROOT if (SUITE_ROOT / "benchmarks" / "suite.py").is_file() else None


def main(argv: list[str] | None = None) -> int:
    """Runs the suite with ``argv``; returns its exit status (2 when the suite is not found)."""
    root = find_suite_root()
    if root is None:
        print(_NOT_FOUND, file=sys.stderr, end="")
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    loaded = sys.modules.get("benchmarks")
    if (
        loaded is not None
        and Path(getattr(loaded, "__file__", "") or "").resolve().parent != root / "benchmarks"
    ):
        print(f"another package named 'benchmarks' is already imported ({loaded.__file__})", file=sys.stderr)
        return 2
    suite = importlib.import_module("benchmarks.suite")
    return int(suite.main(list(sys.argv[1:] if argv is None else argv)) or 0)
