"""The demo (`make demo`, `python -m subinterpreter_parallelism demo`): its table and the load."""

from __future__ import annotations

import pytest

from conftest import run_python

# In a fresh process: the demo forks a process pool, which must not happen in a process that
# has had own-GIL interpreters (see the README's caveats).
DEMO = """
import os, sys
from subinterpreter_parallelism import demo
load = float(sys.argv[1])
os.getloadavg = lambda: (load, load / 2, load / 4)
os.cpu_count = lambda: 4
raise SystemExit(demo.main(["--tasks", "2", "--n", "1000", "--workers", "1"]))
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("load, busy", [(1.5, False), (2.5, True)])
def test_demo_prints_the_load_and_warns_when_busy(load, busy):
    done = run_python(DEMO, argv=[str(load)], timeout=150)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| sub-interpreters (this project, incl. start-up) |" in out
    expected = f"load average (1, 5, 15 min): {load:.2f}, {load / 2:.2f}, {load / 4:.2f} at start"
    assert expected in out and "on 4 CPUs" in out
    warning = f"warning: this machine is busy: load average {load:.2f} on 4 CPUs"
    assert (warning in out) is busy
    assert out.index("| method |") < out.index("load average (1, 5, 15 min)")  # next to the table
    if busy:
        assert out.index(warning) < out.index("| method |")
