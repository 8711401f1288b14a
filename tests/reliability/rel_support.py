"""Helpers for the reliability tests that run code in a fresh Python process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent


def run_python(
    code: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -c code`` (or ``python args`` when ``code`` is empty) with this interpreter,
    tests/ and tests/reliability/ on the path, and unbuffered output off (pipes are block-
    buffered, as in production, so that lost output shows)."""
    full_env = dict(os.environ)
    full_env.pop("PYTHONUNBUFFERED", None)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(TESTS)] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else [])
    )
    if env:
        full_env.update(env)
    command = [sys.executable, *args, "-c", textwrap.dedent(code)] if code else [sys.executable, *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=full_env, input=stdin, cwd=str(HERE)
    )


def assert_clean_exit(result: subprocess.CompletedProcess[str], code: int = 0) -> None:
    """The process ended with ``code`` and without a CPython fatal error."""
    assert "Fatal Python error" not in result.stderr, result.stderr[-4000:]
    assert result.returncode == code, (
        f"exit status {result.returncode}, expected {code}\nstdout:\n{result.stdout[-2000:]}\n"
        f"stderr:\n{result.stderr[-4000:]}"
    )
