"""One measurement cell: one workload, one competitor, in a fresh process.

``python -m benchmarks.cell SPEC.json OUT.json``: SPEC holds ``{"workload", "competitor",
"params"}``; the records (see ``benchmarks.scenarios``) are written to OUT. A fresh process per
cell keeps the measurements independent: no threads exist yet when a fork pool forks, memory
starts from the same baseline, and one competitor's caches or leftovers cannot help or hurt
the next.

This module is the cell's ``__main__``, so it also defines ``tiny_in_main``: the tiny task as a
function defined in ``__main__``, the way a user's script defines it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def tiny_in_main(x: int) -> int:
    """The tiny task, defined in ``__main__`` (a script's function)."""
    return x + 1


def main(argv: list[str]) -> int:
    """Runs the cell described in ``argv[0]`` and writes its records to ``argv[1]``."""
    spec = json.loads(Path(argv[0]).read_text())
    from .competitors import prepare
    from .scenarios import run_scenario

    prepare(spec["competitor"])
    records = run_scenario(spec["workload"], spec["competitor"], spec["params"])
    Path(argv[1]).write_text(json.dumps(records))
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Every pool was shut down by its scenario; one that hung (the records say so) must not
    # keep this process alive at exit.
    os._exit(status)
