"""``check`` (check.py, and its probe, _probe.py): degraded packages, submodules, the summary.

Small local stand-ins for the package families that ``check`` used to misjudge: a package that
imports without its refused C accelerator (msgpack, PyYAML), a package with a public submodule
that fails in workers (dateutil.tz on 3.12), and a package that needs a refusing dependency
(jsonschema needs rpds). numpy's extension module is the refusing one: it refuses cleanly
in any number of interpreters, on every supported Python.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import importable
from subinterpreter_parallelism import check

pytest.importorskip("numpy")

PACKAGES = {
    # An optional accelerator, as msgpack (msgpack._cmsgpack) and PyYAML (yaml._yaml) have.
    "spk_accel/__init__.py": textwrap.dedent("""\
        try:
            from numpy._core import _multiarray_umath as _speedups
        except ImportError:
            _speedups = None
        VALUE = 1
        """),
    # Public submodules: one fails in workers (dateutil.tz on 3.12), one works; private ones,
    # tests and __main__ are not imported.
    "spk_subs/__init__.py": "",
    "spk_subs/fine.py": "X = 1\n",
    "spk_subs/heavy/__init__.py": "import numpy\n",
    "spk_subs/_private.py": "raise RuntimeError('a private module must not be imported')\n",
    "spk_subs/tests/__init__.py": "raise RuntimeError('tests must not be imported')\n",
    "spk_subs/__main__.py": "raise RuntimeError('__main__ must not be imported')\n",
    # Needs a refusing dependency (jsonschema -> rpds).
    "spk_needs/__init__.py": "from spk_needs import core\n",
    "spk_needs/core.py": "import numpy\n",
    "spk_plain/__init__.py": "from spk_plain import a, b\n",
    "spk_plain/a.py": "",
    "spk_plain/b.py": "",
    "spk_crash.py": "import os\nos.abort()\n",
}


@pytest.fixture(scope="module", autouse=True)
def packages(tmp_path_factory):
    with importable(tmp_path_factory.mktemp("check_packages"), PACKAGES) as folder:
        yield folder


@pytest.mark.timeout(240)
def test_degraded_submodules_and_dependencies():
    accel, subs, needs, plain = check.check_modules(
        ["spk_accel", "spk_subs", "spk_needs", "spk_plain"], timeout=120
    )

    assert accel.result == "works, degraded" and not accel.ok
    assert accel.degraded == ("numpy._core._multiarray_umath",)
    assert "numpy._core._multiarray_umath refused: it runs without this C extension" in accel.reason

    assert subs.result == "works, degraded"
    assert subs.degraded == ("spk_subs.heavy",)  # not fine, nor the private ones, tests, __main__
    assert subs.reason.startswith(
        "spk_subs.heavy fails in worker interpreters (ImportError: module numpy._core."
    )
    assert "refused: it runs without" not in subs.reason  # numpy's refusal is said with heavy

    assert needs.result == "refused" and needs.refused_module.startswith("numpy._core.")

    assert plain.result == "works" and plain.ok and plain.reason == "" and plain.degraded == ()


@pytest.mark.timeout(240)
def test_cli_summary_names_degraded_and_crashed_modules(packages):
    done = subprocess.run(
        [sys.executable, "-m", "subinterpreter_parallelism", "check", "spk_accel", "spk_crash", "spk_plain"],
        capture_output=True,
        text=True,
        timeout=200,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(packages)},
    )
    assert done.returncode == 1, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[2:5]}
    assert "works, degraded" in rows["spk_accel"]
    assert "crashed" in rows["spk_crash"] and "SIGABRT" in rows["spk_crash"]
    assert rows["spk_plain"].split()[1] == "works"
    summary = done.stdout.split("\n\n", 1)[1]
    assert "spk_accel: imports in worker interpreters, degraded (see the reasons)" in summary
    assert "spk_crash: crashed the probe process" in summary

    as_json = subprocess.run(
        [sys.executable, "-m", "subinterpreter_parallelism", "check", "--json", "spk_accel"],
        capture_output=True,
        text=True,
        timeout=200,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(packages)},
    )
    [record] = json.loads(as_json.stdout)["modules"]
    assert record["result"] == "works, degraded" and record["degraded"] == ["numpy._core._multiarray_umath"]


@pytest.mark.timeout(120)
@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.12 workers have the pure-Python datetime")
def test_zoneinfo_fails_in_312_workers_and_check_says_so():
    """dateutil.tz imports zoneinfo, whose C part needs the datetime C API that 3.12 workers lack."""
    [zone] = check.check_modules(["zoneinfo"])
    assert zone.result == "refused"
    assert "datetime_CAPI" in zone.reason
