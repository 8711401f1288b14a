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
import time

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


# Modules for the verdicts, beyond the real ones.
CHECK_MODULES = {
    "spc_aborts.py": "import os\nos.abort()\n",
    "spc_sleeps.py": "import time\ntime.sleep(60)\n",
    "spc_noisy.py": "print('noise on stdout while importing')\nVALUE = 1\n",
    "spc_not_in_subinterpreters.py": textwrap.dedent("""\
        import sys
        try:
            import _interpreters as _i
        except ImportError:
            import _xxsubinterpreters as _i
        if _i.get_current() != _i.get_main():
            raise RuntimeError("this module works only in the main interpreter")
        """),
}


@pytest.fixture(scope="module", autouse=True)
def packages(tmp_path_factory):
    with importable(tmp_path_factory.mktemp("check_packages"), {**PACKAGES, **CHECK_MODULES}) as folder:
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


# -- the verdicts on real modules, crashes, hangs, arguments, the table ---------------------------


@pytest.mark.timeout(180)
def test_check_modules_verdicts():
    results = check.check_modules(
        [
            "_testsinglephase",
            "numpy",
            "json",
            "decimal",
            "no_such_module_xyz",
            "spc_noisy",
            "spc_not_in_subinterpreters",
            "not a name",
        ],
        timeout=90,
    )
    by_name = {r.module: r for r in results}
    assert [r.module for r in results][:3] == ["_testsinglephase", "numpy", "json"]

    single = by_name["_testsinglephase"]
    assert not single.ok and single.refused_module == "_testsinglephase"
    if sys.version_info >= (3, 13):
        assert single.result == "refused"
        assert single.reason == "module _testsinglephase does not support loading in subinterpreters"
    else:  # its init ran in the first interpreter; a second worker that tries it crashes 3.12
        assert single.result == "crashed"
        assert single.reason.startswith(
            "module _testsinglephase does not support loading in subinterpreters; "
            "then another interpreter that tried it crashed the process"
        )

    numpy_check = by_name["numpy"]
    assert numpy_check.result == "refused"
    assert numpy_check.refused_module.startswith("numpy.")
    assert "does not support loading in subinterpreters" in numpy_check.reason

    works = ("json", "decimal", "spc_noisy") if sys.version_info >= (3, 13) else ("json", "spc_noisy")
    for name in works:
        assert by_name[name].result == "works" and by_name[name].ok and by_name[name].reason == ""
        assert 0 <= by_name[name].import_time_s < 30
    if sys.version_info < (3, 13):  # 3.12 refuses _decimal in workers: decimal is _pydecimal there
        assert by_name["decimal"].result == "works, degraded"
        assert by_name["decimal"].degraded == ("_decimal",)

    missing = by_name["no_such_module_xyz"]
    assert missing.result == "import error"
    assert "ModuleNotFoundError" in missing.reason and "no_such_module_xyz" in missing.reason

    # Fails only in sub-interpreters, without CPython's refusal: still "refused".
    only_main = by_name["spc_not_in_subinterpreters"]
    assert only_main.result == "refused"
    assert "works only in the main interpreter" in only_main.reason

    assert by_name["not a name"].result == "import error"


@pytest.mark.timeout(120)
def test_check_datetime_differs_between_312_and_313():
    """_datetime became isolated in 3.13; 3.12 refuses it."""
    (result,) = check.check_modules(["_datetime"])
    if sys.version_info >= (3, 13):
        assert result.result == "works"
    else:  # refused; a pool imports it in the caller first, so no worker crashes on it
        assert result.result == "refused"
        assert result.reason == "module _datetime does not support loading in subinterpreters"


@pytest.mark.timeout(120)
def test_check_survives_a_crash_and_a_hang():
    started = time.monotonic()
    crashed, hung, fine = check.check_modules(["spc_aborts", "spc_sleeps", "json"], timeout=5)
    assert crashed.result == "crashed" and "SIGABRT" in crashed.reason
    assert hung.result == "timed out" and "5 s" in hung.reason
    assert fine.result == "works"
    assert time.monotonic() - started < 60


def test_check_modules_rejects_bad_arguments():
    with pytest.raises(TypeError):
        check.check_modules([42])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        check.check_modules(["json"], timeout=0)
    with pytest.raises(ValueError):
        check.check_modules(["json"], jobs=0)
    assert check.check_modules([]) == []


def test_format_table_has_one_row_per_module():
    rows = [
        check.ModuleCheck("json", "works", "", 0.0123),
        check.ModuleCheck(
            "numpy", "refused", "module numpy.x does not support loading in subinterpreters", 0.02, "numpy.x"
        ),
    ]
    lines = check.format_table(rows).splitlines()
    assert lines[0].split() == ["module", "result", "import", "time", "reason"]
    assert lines[2].split()[:4] == ["json", "works", "12.3", "ms"]
    assert lines[3].startswith("numpy") and "refused" in lines[3] and "numpy.x" in lines[3]


@pytest.mark.timeout(120)
def test_check_cli_numpy_json_decimal():
    done = subprocess.run(
        [sys.executable, "-m", "subinterpreter_parallelism", "check", "numpy", "json", "decimal"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 1, done.stderr
    rows = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[2:5]}
    decimal = "works" if sys.version_info >= (3, 13) else "works,"  # 3.12: "works, degraded" (_pydecimal)
    assert rows == {"numpy": "refused", "json": "works", "decimal": decimal}
    assert 'fallback="process"' in done.stdout
