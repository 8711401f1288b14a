"""Which modules can load in an own-GIL sub-interpreter, and what happens when one cannot.

Many extension modules (numpy among them) refuse to load in an interpreter with its own GIL;
CPython raises ``ImportError: module X does not support loading in subinterpreters``.
This module

- recognises that refusal in a task's exception (``find_refusal``) and words the one message
  users see for it (``refusal_message``);
- checks modules ahead (``check_modules``, ``python -m subinterpreter_parallelism check``):
  each module is imported in a fresh isolated interpreter inside a fresh process, so that a
  crash while importing cannot take the caller down and one module cannot affect another;
- runs refused tasks in a process pool instead (``ProcessFallback``, the executor's
  ``fallback="process"``);
- describes this Python and this build (``python -m subinterpreter_parallelism info``).

It is also run as a module (``python -m subinterpreter_parallelism.compat --probe``) in the
probe processes of ``check``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from . import _versions

__all__ = [
    "ModuleCheck",
    "ProcessFallback",
    "ProcessFallbackWarning",
    "Refusal",
    "check_main",
    "check_modules",
    "find_refusal",
    "info",
    "info_main",
    "is_refusal",
    "refusal_message",
    "refused_module",
]

_REFUSAL_TEXT = r"module (?P<module>[\w.]+) does not support loading in subinterpreters"
_REFUSAL = re.compile(_REFUSAL_TEXT)
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_PROG = "python -m subinterpreter_parallelism"


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is CPython's refusal to load an extension module in this interpreter."""
    return isinstance(exc, ImportError) and _REFUSAL.search(str(exc)) is not None


def refused_module(exc: BaseException) -> str | None:
    """The name of the module that refused to load, if ``exc`` is such a refusal."""
    match = _REFUSAL.search(str(exc)) if isinstance(exc, ImportError) else None
    return match.group("module") if match else None


def refusal_message(module: str, reason: str) -> str:
    """The one message used everywhere (task errors, ``check``, ``preload``) for a refusal."""
    return (
        f"{module} cannot be imported in an own-GIL sub-interpreter: {reason}. "
        f"Check modules ahead with `python -m subinterpreter_parallelism check {module}`, "
        "or pass fallback=\"process\" to run such tasks in a process pool."
    )


# -- recognising a refusal in a task's exception ----------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A module that refused to load in an own-GIL interpreter, as found in an exception."""

    module: str
    """The top-level package the user imports (``numpy``)."""
    extension: str
    """The extension module CPython refused (``numpy._core._multiarray_umath``)."""
    reason: str
    """CPython's sentence: ``module numpy._core._multiarray_umath does not support loading
    in subinterpreters``."""


def find_refusal(exc: BaseException) -> Refusal | None:
    """The refusal behind ``exc``, if it is an import that failed because of one.

    ``exc`` must be an ``ImportError`` (or an ``ExecutionFailed`` standing for one); the
    refusal may be in its message (numpy repeats it there), in its chained exceptions, or in
    the traceback text that came back from the worker (its ``RemoteTraceback`` cause), since
    chained exceptions do not survive pickling.
    """
    if not _is_import_error(exc):
        return None
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts = [str(current)]
        remote = getattr(current, "traceback", None)  # RemoteTraceback, ExecutionFailed
        if isinstance(remote, str):
            texts.append(remote)
        for text in texts:
            match = _REFUSAL.search(text)
            if match:
                extension = match.group("module")
                return Refusal(extension.split(".")[0], extension, match.group(0))
        pending += [current.__context__, current.__cause__]
    return None


def _is_import_error(exc: BaseException) -> bool:
    if isinstance(exc, ImportError):
        return True
    type_name = getattr(exc, "type_name", None)  # ExecutionFailed
    return isinstance(type_name, str) and type_name.rsplit(".", 1)[-1] in (
        "ImportError", "ModuleNotFoundError")


def note_refusal(exc: BaseException) -> None:
    """Caller side: adds the refusal message as a note when ``exc`` comes from a refusal."""
    refusal = find_refusal(exc)
    if refusal is not None:
        note = refusal_message(refusal.module, refusal.reason)
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)


# -- process fallback -------------------------------------------------------------------


class ProcessFallbackWarning(RuntimeWarning):
    """A module cannot load in a sub-interpreter, so its tasks now run in a process pool."""


def check_fallback(fallback: object) -> str | None:
    """Validates a ``fallback=`` argument; returns it.

    Raises:
        TypeError: not a str or None.
        ValueError: a str other than ``"process"``.
    """
    if fallback is None:
        return None
    if not isinstance(fallback, str):
        raise TypeError(f"fallback must be None or \"process\", not {type(fallback).__name__}")
    if fallback != "process":
        raise ValueError(f"fallback must be None or \"process\", not {fallback!r}")
    return fallback


class ProcessFallback:
    """Runs, in a process pool, the tasks that failed because a module refused to load.

    Owned by one interpreter pool; its ``ProcessPoolExecutor`` (start method ``spawn``: the
    caller has worker threads, so ``fork`` could deadlock) is created on the first refusal
    and shut down with the interpreter pool. A refused task runs again from its start in a
    process, so whatever it did before the failing import happens twice. As with any
    ``spawn`` pool, a script's main module is imported again in the processes (keep the
    ``if __name__ == "__main__":`` guard), and a task already running in a process cannot be
    interrupted: its ``cancel()`` returns False, and ``task_timeout`` fails its future
    without stopping it.

    Args:
        max_workers: size of the process pool.
        automatic: cover every task of the pool (``fallback="process"`` on the executor); when
            False, only tasks submitted inside ``covering()`` (``parallel(fallback=...)``).
    """

    def __init__(self, max_workers: int, automatic: bool) -> None:
        self.max_workers = max_workers
        self.automatic = automatic
        self._local = threading.local()
        self._lock = threading.Lock()
        self._processes: Any = None  # ProcessPoolExecutor, created on first use
        self._closed = False
        self._warned: set[str] = set()

    def covers(self) -> bool:
        """Whether a task submitted now, from this thread, may fall back."""
        return self.automatic or getattr(self._local, "depth", 0) > 0

    def covering(self) -> _Covering:
        """Context manager: tasks submitted inside it from this thread may fall back."""
        return _Covering(self._local)

    def take_over(self, future: Any, exc: BaseException) -> bool:
        """Moves a task that failed with ``exc`` to the process pool, if ``exc`` is a refusal.

        ``future`` is the task's ``_TaskFuture`` with its call in ``_sp_call``; it gets the
        process's outcome. Returns False (the caller then fails the future with ``exc``) when
        ``exc`` is not a refusal or the pool has shut down. Never raises: it runs on the
        pool's completion thread.
        """
        try:
            return self._take_over(future, exc)
        except Exception as error:
            import logging

            logging.getLogger("subinterpreter_parallelism").exception("fallback=\"process\" failed")
            exc.add_note(f"fallback=\"process\" failed: {error!r}")
            return False

    def _take_over(self, future: Any, exc: BaseException) -> bool:
        refusal = find_refusal(exc)
        if refusal is None:
            return False
        fn, args, kwargs = future._sp_call
        with self._lock:
            if self._closed:
                return False
            first = refusal.module not in self._warned
            self._warned.add(refusal.module)
        if first:
            import warnings

            try:
                warnings.warn(
                    f"{refusal.module} cannot be imported in an own-GIL sub-interpreter "
                    f"({refusal.reason}); tasks that need it run in a process pool instead "
                    "(fallback=\"process\")", ProcessFallbackWarning, stacklevel=1)
            except Exception as error:  # warnings turned into errors: no silent fallback then
                with self._lock:
                    self._warned.discard(refusal.module)
                exc.add_note(f"fallback=\"process\" did not run the task in a process: {error!r}")
                return False
        try:
            from . import _pickling

            payload = _pickling.dumps((fn, args, kwargs))
            with self._lock:
                if self._closed:
                    return False
                if self._processes is None:
                    import multiprocessing
                    from concurrent.futures import ProcessPoolExecutor

                    self._processes = ProcessPoolExecutor(
                        self.max_workers, mp_context=multiprocessing.get_context("spawn"))
                moved = self._processes.submit(_run_pickled_call, payload)
        except Exception as error:  # cannot move it: the task fails, with the reason in a note
            exc.add_note(f"fallback=\"process\" could not run the task in a process: {error!r}")
            return False
        future._sp_moved = moved
        future._sp_call = None
        moved.add_done_callback(lambda done: _settle(future, done))
        return True

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Shuts the process pool down (if it was started); later refusals are not moved."""
        with self._lock:
            self._closed = True
            processes = self._processes
        if processes is not None:
            processes.shutdown(wait=wait, cancel_futures=cancel_futures)

    @property
    def started(self) -> bool:
        """Whether the process pool was started (some task fell back)."""
        return self._processes is not None


class _Covering:
    def __init__(self, local: threading.local) -> None:
        self._local = local

    def __enter__(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def __exit__(self, *exc_info: object) -> None:
        self._local.depth -= 1


def _settle(future: Any, moved: Any) -> None:
    """Copies the process's outcome into the task's future."""
    from concurrent.futures import Future, InvalidStateError

    if moved.cancelled():
        # The stdlib's own cancel (the task's cancel() would cancel `moved` again), then
        # notify the waiters of wait()/as_completed() as an executor does.
        if Future.cancel(future):
            future.set_running_or_notify_cancel()
        return
    error = moved.exception()
    if error is None:
        from . import _outcome

        try:
            ok, value = _outcome.decode(moved.result())
        except BaseException as unpickling:  # even SystemExit from a __reduce__: settle the future
            ok, value = False, _outcome.failure_from_unpickling(unpickling)
    else:  # the process pool itself failed (a crashed process, ...)
        ok, value = False, error
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except InvalidStateError:
        pass  # cancelled or timed out meanwhile


def _run_pickled_call(payload: bytes) -> bytes:
    """Process side of the fallback: runs a call pickled by ``_pickling.dumps`` and returns its
    outcome encoded as a worker's is (``_outcome``): pickled the way the call came, so that a
    result or exception whose class came by value (defined in the caller's ``__main__``, which
    the process re-imported as another module) goes back by value too, and an exception that
    cannot be pickled still arrives, as ``ExecutionFailed``."""
    from . import _outcome, _pickling

    fn, args, kwargs = _pickling.loads(payload)
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:
        return _outcome.encode_exception(exc, skip_frames=1)  # from the user's code on
    try:
        return _pickling.dumps(value)
    except BaseException as exc:
        _outcome.note_unpicklable_result(exc, value)
        return _outcome.encode_exception(exc)


def fallback_for(pool: Any) -> ProcessFallback:
    """The pool's ProcessFallback, attached on first use (``parallel(fallback=...)``)."""
    state = pool._state
    with _attach_lock:
        if state.fallback is None:
            state.fallback = ProcessFallback(pool.max_workers, automatic=False)
        return state.fallback


_attach_lock = threading.Lock()


# -- check: can these modules load in an own-GIL interpreter? ---------------------------


@dataclass(frozen=True)
class ModuleCheck:
    """The verdict of ``check`` for one module."""

    module: str
    result: str
    """``"works"``, ``"refused"`` (it imports in a normal interpreter but not in an own-GIL
    one), ``"import error"`` (it does not import at all), ``"crashed"`` (the probe process
    died) or ``"timed out"``."""
    reason: str
    """Why not: CPython's message (empty when it works)."""
    import_time_s: float | None
    """Seconds the import took in the fresh sub-interpreter (None if unknown)."""
    refused_module: str | None = None
    """The extension module that refused, when CPython named it."""

    @property
    def ok(self) -> bool:
        """Whether the module works in an own-GIL sub-interpreter."""
        return self.result == "works"


def check_modules(modules: Sequence[str], *, timeout: float = 60.0,
                  jobs: int | None = None) -> list[ModuleCheck]:
    """Imports each module in a fresh isolated (own-GIL) interpreter; returns the verdicts in order.

    Each module is tried in its own probe process (this Python, this ``sys.path``), so that
    a crash while importing cannot harm the caller and modules cannot affect each other.
    A module that fails there without CPython's refusal is then imported in that process's
    main interpreter: if it works there, the verdict is "refused", else "import error".

    Args:
        modules: module names (dotted names allowed).
        timeout: seconds each probe may take (infinity: no limit).
        jobs: probes run at once; default: the CPUs this process may use.

    Raises:
        TypeError: a module name is not a str.
        ValueError: ``timeout`` <= 0 or ``jobs`` < 1.
    """
    names = list(modules)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"module names must be str, not {type(name).__name__}")
    if not timeout > 0:
        raise ValueError("timeout must be greater than 0")
    if timeout > threading.TIMEOUT_MAX:
        timeout = None  # inf: no limit (subprocess's wait would overflow)
    if jobs is None:
        jobs = max(1, min(len(names), os.cpu_count() or 1))
    if jobs < 1:
        raise ValueError("jobs must be >= 1")
    if not names:
        return []
    paths = [str(p) for p in sys.path]
    if len(names) == 1 or jobs == 1:
        return [_check_one(name, paths, timeout) for name in names]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(jobs, thread_name_prefix="sp-check") as runner:
        return list(runner.map(lambda name: _check_one(name, paths, timeout), names))


def _check_one(name: str, paths: list[str], timeout: float | None) -> ModuleCheck:
    import subprocess

    if not _MODULE_NAME.fullmatch(name):
        return ModuleCheck(name, "import error", f"{name!r} is not a module name", None)
    try:
        records, crash, stderr = _run_probe(name, paths, timeout, "sub")
    except subprocess.TimeoutExpired:
        return ModuleCheck(name, "timed out", f"the import did not finish within {timeout:g} s", None)
    sub = records.get("sub")
    if sub is None:
        detail = _last_line(stderr)
        return ModuleCheck(name, "crashed", f"{crash} while importing it" + (f": {detail}" if detail else ""), None)
    elapsed = sub.get("elapsed")
    if sub.get("error_type") is None:
        if crash:
            return ModuleCheck(name, "crashed", f"it imported, then {crash} while the "
                               "interpreter was destroyed", elapsed)
        return ModuleCheck(name, "works", "", elapsed)
    if sub.get("refusal"):
        if crash and "again" not in records:  # 3.12: see _probe_main
            return ModuleCheck(
                name, "crashed", f"{sub['refusal']}; then a second interpreter that tried it crashed "
                "the process (CPython 3.12, gh-117953): a pool whose workers try it crashes, "
                "fallback=\"process\" or not, unless the main interpreter imported it first",
                elapsed, sub.get("refused_module"))
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


def _run_probe(name: str, paths: list[str], timeout: float | None,
               mode: str) -> tuple[dict[str, dict[str, Any]], str, str]:
    """Runs one probe process; returns (its reports by stage, why it crashed or "", its stderr).

    Raises:
        subprocess.TimeoutExpired: it ran past ``timeout`` (it is killed).
    """
    import signal
    import subprocess

    request = json.dumps({"module": name, "paths": paths, "pattern": _REFUSAL_TEXT, "mode": mode})
    # Run as a module of the package (found where this copy of it lives), so that it reads
    # the same version facts (_versions) as everything else.
    command = [sys.executable, "-X", "faulthandler", "-m", f"{__package__}.compat", "--probe"]
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [package_parent] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    done = subprocess.run(command, input=request, capture_output=True, text=True,
                          timeout=timeout, cwd=os.getcwd(), env=env)
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
    return records, crash, done.stderr


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# What the probe runs inside the fresh sub-interpreter. It reports one JSON object through
# a pipe; the import itself is the only thing timed.
_SUB_CODE = """\
import os, sys, time
sys.path[:] = {paths!r}
_sp_start = time.perf_counter()
try:
    __import__({module!r})
    _sp_error = None
except BaseException as _sp_exc:
    _sp_error = _sp_exc
_sp_report = {{"stage": "sub", "elapsed": time.perf_counter() - _sp_start, "error_type": None}}
if _sp_error is not None:
    import re
    _sp_pattern = re.compile({pattern!r})
    _sp_found = None
    _sp_seen = set()
    _sp_todo = [_sp_error]
    while _sp_todo and _sp_found is None:
        _sp_e = _sp_todo.pop()
        if _sp_e is None or id(_sp_e) in _sp_seen:
            continue
        _sp_seen.add(id(_sp_e))
        if isinstance(_sp_e, ImportError):
            _sp_found = _sp_pattern.search(str(_sp_e))
        _sp_todo += [_sp_e.__context__, _sp_e.__cause__]
    _sp_report.update(
        error_type=type(_sp_error).__name__,
        error=" ".join(str(_sp_error).split())[:2000],
        refusal=_sp_found.group(0) if _sp_found else None,
        refused_module=_sp_found.group("module") if _sp_found else None)
import json
_sp_data = json.dumps(_sp_report).encode()
while _sp_data:
    _sp_data = _sp_data[os.write({fd}, _sp_data):]
"""


def _probe_main() -> int:
    """The probe process: one module, imported in a fresh isolated interpreter ("sub") or in
    this process's main interpreter ("main"); one JSON line on stdout."""
    request = json.loads(sys.stdin.read())
    sys.path[:] = request["paths"]
    out = os.dup(1)
    os.dup2(2, 1)  # whatever the module prints goes to stderr, not into the report
    sys.stdout = sys.stderr

    def report(record: dict[str, Any]) -> None:
        os.write(out, (json.dumps(record) + "\n").encode())

    if request["mode"] == "main":
        try:
            __import__(request["module"])
            report({"stage": "main", "ok": True})
        except BaseException as exc:
            report({"stage": "main", "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 0
    read_end, write_end = os.pipe()
    code = _SUB_CODE.format(paths=request["paths"], module=request["module"],
                            pattern=request["pattern"], fd=write_end)
    failure = _versions.run_in_fresh_interpreter(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    try:
        record = json.loads(b"".join(chunks))
    except ValueError:
        record = {"stage": "sub", "elapsed": None, "error_type": "RuntimeError",
                  "error": f"the probe could not run in a sub-interpreter: {failure}",
                  "refusal": None, "refused_module": None}
    report(record)
    if record.get("refusal") and _versions.REFUSED_MODULE_CRASHES_OTHERS:
        # CPython 3.12 ran the refused module's init in that interpreter (gh-117953); for some
        # modules a second interpreter trying it crashes the process, as a second worker would.
        _versions.run_in_fresh_interpreter(f"try:\n    __import__({request['module']!r})\nexcept ImportError:\n    pass\n")
        report({"stage": "again", "ok": True})
    return 0




def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def format_table(results: Sequence[ModuleCheck]) -> str:
    """The table ``check`` prints: module, result, import time, reason."""
    rows = [("module", "result", "import time", "reason")]
    rows += [(r.module, r.result, _format_seconds(r.import_time_s), _shorten(r.reason, 100))
             for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]),
                                row[2].rjust(widths[2]), row[3]]).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def check_main(argv: Sequence[str] | None = None) -> int:
    """``python -m subinterpreter_parallelism check MODULE ...``; exit status 1 if any fails."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=f"{_PROG} check",
        description="Import each module in a fresh isolated (own-GIL) sub-interpreter, in a "
                    "fresh process, and report whether it works there.",
        epilog="Results: works; refused (imports normally, not in an own-GIL interpreter: "
               "use fallback=\"process\"); import error (does not import at all); crashed; "
               "timed out. Exit status 0 if every module works, 1 otherwise.")
    parser.add_argument("modules", nargs="+", metavar="MODULE", help="module to check (dotted names allowed)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per module (default 60)")
    parser.add_argument("--jobs", type=int, default=None, help="modules checked at once (default: CPUs)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.timeout > 0:
        parser.error("--timeout must be greater than 0")
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be >= 1")
    results = check_modules(args.modules, timeout=args.timeout, jobs=args.jobs)
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "executable": sys.executable,
                          "modules": [asdict(r) for r in results]}, indent=2))
    else:
        print(format_table(results))
        refused = [r.module for r in results if r.result == "refused"]
        if refused:
            print(f"\n{', '.join(refused)}: cannot run in worker interpreters; tasks that import "
                  f"{'it' if len(refused) == 1 else 'them'} can run in a process pool with "
                  "fallback=\"process\".")
    return 0 if all(r.ok for r in results) else 1


# -- info -------------------------------------------------------------------------------


def info() -> dict[str, Any]:
    """What ``info`` reports: Python, own-GIL support, default worker count, build, extras."""
    import platform
    import sysconfig
    import time

    from . import __version__
    from .executor import default_worker_count

    report: dict[str, Any] = {
        "package": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
        "default_workers": default_worker_count(),
    }
    start = time.perf_counter()
    try:
        failure = _versions.run_in_fresh_interpreter("pass")
        report["own_gil"] = failure is None
        report["own_gil_detail"] = (
            f"created, ran and destroyed an isolated interpreter in "
            f"{(time.perf_counter() - start) * 1000:.1f} ms" if failure is None else failure)
    except Exception as exc:
        report["own_gil"] = False
        report["own_gil_detail"] = f"{type(exc).__name__}: {exc}"
    try:
        from . import _native

        build = dict(_native.build_info())
        build["module"] = _native.__file__
        report["build"] = build
    except Exception as exc:  # pragma: no cover - a broken install
        report["build"] = {"error": f"{type(exc).__name__}: {exc}"}
    extras = {}
    for name in ("cloudpickle", "tqdm"):
        try:
            from importlib.metadata import version

            extras[name] = version(name)
        except Exception:
            extras[name] = None
    report["packages"] = extras
    return report


def info_main(argv: Sequence[str] | None = None) -> int:
    """``python -m subinterpreter_parallelism info [--json]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=f"{_PROG} info",
        description="Show the Python version, whether own-GIL sub-interpreters are available, "
                    "the default worker count and how the native core was built.")
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
        details = ", ".join(f"{key} {value}" for key, value in build.items()
                            if key not in ("swift", "python_compiled", "module"))
        build_text = (f"Swift {build.get('swift', '?')}, compiled for CPython "
                      f"{build.get('python_compiled', '?')}, ABI {report['ext_suffix']}"
                      + (f", {details}" if details else ""))
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


if __name__ == "__main__" and sys.argv[1:] == ["--probe"]:
    raise SystemExit(_probe_main())
