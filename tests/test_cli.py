"""The command line: ``python -m subinterpreter_parallelism COMMAND``."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from subinterpreter_parallelism import _native, cli, compat, default_worker_count


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "subinterpreter_parallelism", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_top_level_help_lists_every_command():
    for flag in ("--help", "-h"):
        done = run_cli(flag)
        assert done.returncode == 0
        for command in ("demo", "bench", "check", "info"):
            assert f"  {command} " in done.stdout
    assert run_cli().returncode == 0  # no command: the same usage


@pytest.mark.timeout(180)
@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_has_help(command):
    done = run_cli(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m subinterpreter_parallelism {command}")


def test_version_flag():
    import subinterpreter_parallelism

    for flag in ("--version", "-V"):
        done = run_cli(flag)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"subinterpreter_parallelism {subinterpreter_parallelism.__version__}\n"


def test_unknown_command_fails_with_usage():
    done = run_cli("frobnicate")
    assert done.returncode == 2
    assert "unknown command 'frobnicate'" in done.stderr and "commands:" in done.stderr


def test_unknown_option_is_a_usage_error_too():
    done = run_cli("--frobnicate")
    assert done.returncode == 2 and "unknown command '--frobnicate'" in done.stderr


@pytest.mark.parametrize("args", [["--help"], ["info"], ["check", "json"]])
def test_stdout_closed_early_is_quiet(args):
    """`python -m subinterpreter_parallelism --help | head`: no BrokenPipeError traceback."""
    import os

    read, write = os.pipe()
    os.close(read)  # every write to the pipe now fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "subinterpreter_parallelism", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.returncode == 1
    assert done.stderr == ""


def test_check_without_modules_is_a_usage_error():
    done = run_cli("check")
    assert done.returncode == 2 and "MODULE" in done.stderr


@pytest.mark.timeout(120)
def test_check_json_and_exit_status():
    done = run_cli("check", "--json", "_testsinglephase", "json", "no_such_module_xyz")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["python"] == platform.python_version()
    verdicts = {m["module"]: m for m in report["modules"]}
    assert verdicts["_testsinglephase"]["result"] == ("refused" if sys.version_info >= (3, 13) else "crashed")
    assert verdicts["_testsinglephase"]["refused_module"] == "_testsinglephase"
    assert verdicts["json"]["result"] == "works" and verdicts["json"]["import_time_s"] >= 0
    assert verdicts["no_such_module_xyz"]["result"] == "import error"

    fine = run_cli("check", "json", "decimal") if sys.version_info >= (3, 13) else run_cli("check", "json")
    assert fine.returncode == 0  # (3.12 workers have _pydecimal: decimal "works, degraded" there)
    assert "refused" not in fine.stdout and "fallback" not in fine.stdout


@pytest.mark.timeout(120)
def test_check_numpy_json_decimal_table():
    import importlib.util

    if importlib.util.find_spec("numpy") is None:  # not imported here: its BLAS starts threads
        pytest.skip("numpy is not installed")
    done = run_cli("check", "numpy", "json", "decimal")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["module", "result"]
    rows = {line.split()[0]: line for line in lines[2:5]}
    assert rows["numpy"].split()[1] == "refused"
    assert "numpy._core._multiarray_umath does not support loading in subinterpreters" in rows["numpy"]
    assert rows["json"].split()[1] == "works"
    if sys.version_info >= (3, 13):
        assert rows["decimal"].split()[1] == "works"
    else:  # 3.12 workers are refused _decimal and have _pydecimal
        assert (
            rows["decimal"].split()[1:3] == ["works,", "degraded"] and "_decimal refused" in rows["decimal"]
        )
    assert "ms" in rows["json"]  # the import time
    assert 'fallback="process"' in done.stdout


def test_info_text():
    done = run_cli("info")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"CPython {platform.python_version()}" in text
    assert "own-GIL interpreters: yes" in text
    assert f"default workers:      {default_worker_count()}" in text
    build = _native.build_info()
    assert f"Swift {build['swift']}" in text
    assert f"compiled for CPython {build['python_compiled']}" in text
    import sysconfig

    assert sysconfig.get_config_var("EXT_SUFFIX") in text


def test_info_json_matches_the_function():
    done = run_cli("info", "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    direct = compat.info()
    for key in ("python", "default_workers", "own_gil", "ext_suffix", "package"):
        assert report[key] == direct[key]
    assert report["own_gil"] is True
    assert report["build"]["swift"] == _native.build_info()["swift"]


def test_main_returns_the_exit_status(capsys):
    assert cli.main(["check", "json"]) == 0
    assert "works" in capsys.readouterr().out
    assert cli.main(["check", "_testsinglephase"]) == 1
