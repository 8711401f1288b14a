"""``check``: can these modules load in an own-GIL interpreter? (``python -m
subinterpreter_parallelism check MODULE ...``)

Each module is tried in its own probe process (``_probe``, this Python, this ``sys.path``),
in a worker of a real pool there, so that a crash while importing cannot harm the caller,
modules cannot affect each other, and the verdict is what a pool does. Besides the import
itself, the probe notes the extension modules refused on the way (a package that imports
without its C accelerator is "works, degraded") and imports the package's public
submodules (``dateutil.tz`` fails in 3.12 workers, ``dateutil`` does not).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from ._validate import check_count, check_time_limit

__all__ = ["ModuleCheck", "check_main", "check_modules", "format_table"]

_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_PROG = "python -m subinterpreter_parallelism"


@dataclass(frozen=True)
class ModuleCheck:
    """The verdict of ``check`` for one module."""

    module: str
    result: str
    """``"works"``; ``"works, degraded"`` (it imports, but an extension module of it or one of
    its public submodules was refused on the way: it runs without its C speed-ups, or that
    submodule fails in workers); ``"refused"`` (it imports in a normal interpreter but not in
    an own-GIL one); ``"import error"`` (it does not import at all); ``"crashed"`` (the probe
    process died) or ``"timed out"``."""
    reason: str
    """Why not, or what is degraded (empty when it works)."""
    import_time_s: float | None
    """Seconds the import took in the worker interpreter (None if unknown)."""
    refused_module: str | None = None
    """The extension module that refused, when CPython named it."""
    degraded: tuple[str, ...] = field(default=())
    """What was refused although the module imported: ``"msgpack._cmsgpack"`` (an
    accelerator the package goes without), ``"dateutil.tz"`` (a submodule that fails)."""

    @property
    def ok(self) -> bool:
        """Whether the module works in an own-GIL sub-interpreter, fully."""
        return self.result == "works"


def check_modules(
    modules: Sequence[str], *, timeout: float | None = 60.0, jobs: int | None = None
) -> list[ModuleCheck]:
    """Imports each module in a fresh isolated (own-GIL) interpreter; returns the verdicts in order.

    Each module is tried in its own probe process (this Python, this ``sys.path``), so that
    a crash while importing cannot harm the caller and modules cannot affect each other.
    A module that fails there without CPython's refusal is then imported in that process's
    main interpreter: if it works there, the verdict is "refused", else "import error".

    Args:
        modules: module names (dotted names allowed).
        timeout: seconds each probe may take (None or infinity: no limit).
        jobs: probes run at once; default: the CPUs this process may use.

    Raises:
        TypeError: a module name is not a str, ``timeout`` is not a number (or None), or
            ``jobs`` is not an int (or None).
        ValueError: ``timeout`` <= 0 or NaN, or ``jobs`` < 1.
    """
    names = list(modules)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"module names must be str, not {type(name).__name__}")
    limit = check_time_limit(timeout, "timeout")  # inf: None (subprocess's wait would overflow)
    jobs = check_count(jobs, "jobs")
    if jobs is None:
        jobs = max(1, min(len(names), os.cpu_count() or 1))
    if not names:
        return []
    paths = [str(p) for p in sys.path]
    if len(names) == 1 or jobs == 1:
        return [_check_one(name, paths, limit) for name in names]
    with ThreadPoolExecutor(jobs, thread_name_prefix="sp-check") as runner:
        return list(runner.map(lambda name: _check_one(name, paths, limit), names))


def _check_one(name: str, paths: list[str], timeout: float | None) -> ModuleCheck:
    if not _MODULE_NAME.fullmatch(name):
        return ModuleCheck(name, "import error", f"{name!r} is not a module name", None)
    try:
        records, crash, stderr = _run_probe(name, paths, timeout, "sub")
    except subprocess.TimeoutExpired:
        return ModuleCheck(name, "timed out", f"the import did not finish within {timeout:g} s", None)
    sub = records.get("sub")
    if sub is None:
        detail = _last_line(stderr)
        return ModuleCheck(
            name, "crashed", f"{crash} while importing it" + (f": {detail}" if detail else ""), None
        )
    elapsed = sub.get("elapsed")
    if sub.get("error_type") is None:
        if crash:
            where = (
                "importing its submodules or destroying the interpreter"
                if sub.get("is_package") and "submodules" not in records
                else "destroying the interpreter"
            )
            return ModuleCheck(name, "crashed", f"it imported, then {crash} while {where}", elapsed)
        return _works(name, sub, records.get("submodules"), elapsed)
    if sub.get("refusal"):
        if crash:  # 3.12 (see _probe): the refusal corrupted memory; the crash lands at random
            # a little later, in the second worker's import or only in a later interpreter's.
            return ModuleCheck(
                name,
                "crashed",
                f"{sub['refusal']}; then another interpreter that tried it crashed "
                "the process (CPython 3.12, gh-117953): a pool of two or more workers whose tasks "
                'import it, a second pool or a recycled worker can crash, fallback="process" or not',
                elapsed,
                sub.get("refused_module"),
            )
        return ModuleCheck(name, "refused", sub["refusal"], elapsed, sub.get("refused_module"))
    reason = f"{sub['error_type']}: {sub['error']}".strip()
    # Failed without CPython's refusal: does it import at all? Asked in another fresh process,
    # because a failed import in a sub-interpreter can corrupt the process (3.12: _datetime).
    try:
        main = _run_probe(name, paths, timeout, "main")[0].get("main")
    except subprocess.TimeoutExpired:
        main = None
    if main is not None and main.get("ok"):
        return ModuleCheck(name, "refused", reason, elapsed)
    return ModuleCheck(name, "import error", reason, elapsed)


def _works(
    name: str, sub: dict[str, Any], submodules: dict[str, Any] | None, elapsed: float | None
) -> ModuleCheck:
    """ "works", or "works, degraded" with what was refused on the way."""
    refused = dict(sub.get("refused_on_the_way") or [])
    failed: list[tuple[str, str]] = []
    if submodules is not None:
        failed = [tuple(entry) for entry in submodules.get("failed") or []]
        for module, reason in submodules.get("refused_on_the_way") or []:
            refused.setdefault(module, reason)
    failed_names = {module for module, _ in failed}
    parts = [f"{module} fails in worker interpreters ({reason})" for module, reason in failed]
    accelerators = list(refused)
    if accelerators:
        parts.append(
            f"{', '.join(accelerators)} refused: "
            f"{'it runs' if len(accelerators) == 1 else 'they run'} without "
            f"{'this C extension' if len(accelerators) == 1 else 'these C extensions'}"
        )
    if not parts:
        return ModuleCheck(name, "works", "", elapsed)
    return ModuleCheck(
        name,
        "works, degraded",
        "; ".join(parts),
        elapsed,
        degraded=tuple(sorted(failed_names)) + tuple(accelerators),
    )


def _run_probe(
    name: str, paths: list[str], timeout: float | None, mode: str
) -> tuple[dict[str, dict[str, Any]], str, str]:
    """Runs one probe process; returns (its reports by stage, why it crashed or "", its stderr).

    Raises:
        subprocess.TimeoutExpired: it ran past ``timeout`` (it is killed).
    """
    request = json.dumps({"module": name, "paths": paths, "mode": mode})
    # Run as a module of the package (found where this copy of it lives), so that it reads
    # the same version facts (_versions) as everything else.
    command = [sys.executable, "-X", "faulthandler", "-m", f"{__package__}._probe"]
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [package_parent] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        ),
    )
    done = subprocess.run(
        command, input=request, capture_output=True, text=True, timeout=timeout, cwd=os.getcwd(), env=env
    )
    records: dict[str, dict[str, Any]] = {}
    for line in done.stdout.splitlines():
        try:
            candidate = json.loads(line)
        except ValueError:
            continue
        if isinstance(candidate, dict) and isinstance(candidate.get("stage"), str):
            records[candidate["stage"]] = candidate
    crash = ""
    if done.returncode < 0:
        try:
            signame = signal.Signals(-done.returncode).name
        except ValueError:
            signame = f"signal {-done.returncode}"
        crash = f"the probe process crashed ({signame})"
    elif done.returncode != 0:
        crash = f"the probe process failed (exit status {done.returncode})"
    elif mode == "sub" and "closed" not in records:
        crash = "the probe process ended early"
    return records, crash, done.stderr


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(results: Sequence[ModuleCheck]) -> str:
    """The table ``check`` prints: module, result, import time, reason."""
    rows = [("module", "result", "import time", "reason")]
    rows += [(r.module, r.result, _format_seconds(r.import_time_s), _shorten(r.reason, 100)) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for i, row in enumerate(rows):
        lines.append(
            "  ".join(
                [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3]]
            ).rstrip()
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def summary(results: Sequence[ModuleCheck]) -> str:
    """The lines ``check`` prints under its table: what to do about each kind of failure."""
    lines = []
    refused = [r.module for r in results if r.result == "refused"]
    if refused:
        lines.append(
            f"{', '.join(refused)}: cannot run in worker interpreters; tasks that import "
            f"{'it' if len(refused) == 1 else 'them'} can run in a process pool with "
            'fallback="process".'
        )
    degraded = [r.module for r in results if r.result == "works, degraded"]
    if degraded:
        lines.append(
            f"{', '.join(degraded)}: {'imports' if len(degraded) == 1 else 'import'} in worker "
            "interpreters, degraded (see the reasons): without a C extension, code runs slower "
            "there; a task that imports a submodule that fails there can run in a process pool "
            'with fallback="process".'
        )
    crashed = [r.module for r in results if r.result == "crashed"]
    if crashed:
        lines.append(
            f"{', '.join(crashed)}: crashed the probe process; do not import "
            f"{'it' if len(crashed) == 1 else 'them'} in worker interpreters."
        )
    return "\n".join(["", *lines]) if lines else ""


def check_main(argv: Sequence[str] | None = None) -> int:
    """``python -m subinterpreter_parallelism check MODULE ...``; exit status 1 if any fails."""
    parser = argparse.ArgumentParser(
        prog=f"{_PROG} check",
        description="Import each module in a fresh isolated (own-GIL) sub-interpreter, in a "
        "fresh process, and report whether it works there.",
        epilog="Results: works; works, degraded (imports, without some C extension or public "
        "submodule of it); refused (imports normally, not in an own-GIL interpreter: "
        'use fallback="process"); import error (does not import at all); crashed; '
        "timed out. Exit status 0 if every module works, 1 otherwise.",
    )
    parser.add_argument("modules", nargs="+", metavar="MODULE", help="module to check (dotted names allowed)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per module (default 60)")
    parser.add_argument("--jobs", type=int, default=None, help="modules checked at once (default: CPUs)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:  # the rules of check_modules(), said before any probe starts
        check_time_limit(args.timeout, "--timeout")
        check_count(args.jobs, "--jobs")
    except ValueError as error:
        parser.error(str(error))
    results = check_modules(args.modules, timeout=args.timeout, jobs=args.jobs)
    if args.json:
        print(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "executable": sys.executable,
                    "modules": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    else:
        print(format_table(results))
        text = summary(results)
        if text:
            print(text)
    return 0 if all(r.ok for r in results) else 1
