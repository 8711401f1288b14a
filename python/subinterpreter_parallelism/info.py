"""``info``: this Python, own-GIL support, the default worker count and how the native core
was built (``python -m subinterpreter_parallelism info``)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import sysconfig
import time
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from . import __version__, _native, _versions

__all__ = ["info", "info_main"]

_PROG = "python -m subinterpreter_parallelism"


def info() -> dict[str, Any]:
    """What ``info`` reports: Python, own-GIL support, default worker count, build, extras."""
    report: dict[str, Any] = {
        "package": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
        "default_workers": _versions.default_worker_count(),
    }
    start = time.perf_counter()
    try:
        failure = _versions.run_in_fresh_interpreter("pass")
        report["own_gil"] = failure is None
        report["own_gil_detail"] = (
            f"created, ran and destroyed an isolated interpreter in "
            f"{(time.perf_counter() - start) * 1000:.1f} ms"
            if failure is None
            else failure
        )
    except Exception as exc:
        report["own_gil"] = False
        report["own_gil_detail"] = f"{type(exc).__name__}: {exc}"
    try:
        build = dict(_native.build_info())
        build["module"] = _native.__file__
        report["build"] = build
    except Exception as exc:  # pragma: no cover - a broken install
        report["build"] = {"error": f"{type(exc).__name__}: {exc}"}
    extras: dict[str, str | None] = {}
    for name in ("cloudpickle", "tqdm"):
        try:
            extras[name] = version(name)
        except Exception:
            extras[name] = None
    report["packages"] = extras
    return report


def info_main(argv: Sequence[str] | None = None) -> int:
    """``python -m subinterpreter_parallelism info [--json]``."""
    parser = argparse.ArgumentParser(
        prog=f"{_PROG} info",
        description="Show the Python version, whether own-GIL sub-interpreters are available, "
        "the default worker count and how the native core was built.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    report = info()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if report["own_gil"] else 1
    build = report["build"]
    if "error" in build:
        build_text = f"cannot load the native core: {build['error']}"
    else:
        details = ", ".join(
            f"{key} {value}"
            for key, value in build.items()
            if key not in ("swift", "python_compiled", "module")
        )
        build_text = (
            f"Swift {build.get('swift', '?')}, compiled for CPython "
            f"{build.get('python_compiled', '?')}, ABI {report['ext_suffix']}"
            + (f", {details}" if details else "")
        )
    packages = ", ".join(f"{name} {ver or 'not installed'}" for name, ver in report["packages"].items())
    rows = [
        ("python", f"{report['implementation']} {report['python']} ({report['executable']})"),
        ("own-GIL interpreters", f"{'yes' if report['own_gil'] else 'NO'} ({report['own_gil_detail']})"),
        ("default workers", str(report["default_workers"])),
        ("build", build_text),
        ("native module", str(build.get("module", "-"))),
        ("packages", packages + " (tqdm: progress bars, optional)"),
    ]
    print(f"subinterpreter_parallelism {report['package']}")
    print("\n".join(f"  {label + ':':<22}{value}" for label, value in rows))
    return 0 if report["own_gil"] else 1
