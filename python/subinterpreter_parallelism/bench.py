"""``python -m subinterpreter_parallelism bench``: runs the benchmark suite in ``benchmarks/``.

The suite lives in the source tree, next to ``python/``, not in the installed package: it
compares this project with process pools, loky and other interpreter pools, which are not
dependencies. This module finds it (the repository of an editable install, or the current
directory) and hands over the arguments.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

__all__ = ["find_suite_root", "main"]

_NOT_FOUND = """\
The benchmark suite is not available: it lives in the source repository (benchmarks/),
not in the installed package. Clone the repository and run, from its root:

    make bench          # or: python -m subinterpreter_parallelism bench [--quick]
"""


def find_suite_root() -> Path | None:
    """The folder that holds ``benchmarks/suite.py``: the source tree, else the current directory."""
    candidates = [Path(__file__).resolve().parents[2], Path.cwd()]
    for root in candidates:
        if (root / "benchmarks" / "suite.py").is_file():
            return root
    return None


def main(argv: list[str] | None = None) -> int:
    """Runs the suite with ``argv``; returns its exit status (2 when the suite is not found)."""
    root = find_suite_root()
    if root is None:
        print(_NOT_FOUND, file=sys.stderr, end="")
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    loaded = sys.modules.get("benchmarks")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve().parent != root / "benchmarks":
        print(f"another package named 'benchmarks' is already imported ({loaded.__file__})", file=sys.stderr)
        return 2
    suite = importlib.import_module("benchmarks.suite")
    return int(suite.main(list(sys.argv[1:] if argv is None else argv)) or 0)
