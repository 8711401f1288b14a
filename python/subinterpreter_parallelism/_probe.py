"""The probe process of ``check``: ``python -m subinterpreter_parallelism._probe``.

It reads one request (JSON on stdin: the module, ``sys.path`` and the mode) and writes one
JSON line per stage on stdout. Mode ``"sub"`` imports the module in the worker of a real
``InterpreterPoolExecutor`` of one, so that the verdict is
what a pool does, with the same start-up (modules imported in the caller first, the 3.12
datetime substitute); mode ``"main"`` imports it in this process's main interpreter.

Stages of mode ``"sub"``:

- ``sub``: the import, with the extension modules refused on the way;
- ``again`` (3.12, after a refusal): the import in a second worker that started with the
  first, which on 3.12 may crash the process (gh-117953), as in a pool of two;
- ``later`` (3.12, after a refusal): the import in a worker started after both have ended
  (a later pool, or a worker recycled by ``max_tasks_per_worker``), which may crash too;
- ``submodules`` (a package that imported): its public submodules, imported in the same
  worker, and those that fail only because of own-GIL interpreters;
- ``closed``: the pool has shut down (its interpreters destroyed) without crashing.

Whatever the module prints goes to stderr, never into the report.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time
from importlib.machinery import ExtensionFileLoader
from typing import Any

from . import _versions
from ._import_hooks import spec_from_other_finders
from ._refusal import find_refusal, refused_module

# Submodules that are not part of what users import, or that run things when imported.
_SKIPPED_SUBMODULES = frozenset({"__main__", "conftest", "main", "setup", "test", "testing", "tests"})
MAX_SUBMODULES = 40
SUBMODULE_BUDGET_S = 15.0


class _RefusalRecorder:
    """A ``sys.meta_path`` entry that notes the extension modules refused while importing
    (an optional accelerator that the package then goes without: ``msgpack._cmsgpack``)."""

    def __init__(self) -> None:
        self.refused: list[tuple[str, str]] = []
        self._searching: set[str] = set()
        # Made now: importing anything inside find_spec would come back here.
        self._extension_loader = ExtensionFileLoader
        self._recording_loader = _recording_loader(self)

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name in self._searching:  # asked again by another finder that asks the others
            return None
        self._searching.add(name)
        try:
            spec = spec_from_other_finders(self, name, path, target)
        finally:
            self._searching.discard(name)
        if spec is None:
            return None
        if type(spec.loader) is self._extension_loader:
            spec.loader = self._recording_loader(spec.loader.name, spec.loader.path)
        return spec


def _recording_loader(recorder: _RefusalRecorder) -> Any:
    class RecordingLoader(ExtensionFileLoader):
        def create_module(self, spec: Any) -> Any:
            try:
                return super().create_module(spec)
            except ImportError as exc:
                if refused_module(exc) is not None:
                    recorder.refused.append((spec.name, str(exc)))
                raise

    return RecordingLoader


def _failure_record(error: BaseException) -> dict[str, Any]:
    refusal = find_refusal(error)
    return {
        "error_type": type(error).__name__,
        "error": " ".join(str(error).split())[:2000],
        "refusal": refusal.reason if refusal else None,
        "refused_module": refusal.extension if refusal else None,
    }


def import_in_worker(name: str) -> dict[str, Any]:
    """Worker side: imports ``name``; returns the record of stage ``sub``."""
    recorder = _RefusalRecorder()
    sys.meta_path.insert(0, recorder)
    start = time.perf_counter()
    try:
        __import__(name)
        error = None
    except BaseException as exc:
        error = exc
    elapsed = time.perf_counter() - start
    sys.meta_path.remove(recorder)
    record: dict[str, Any] = {
        "stage": "sub",
        "elapsed": elapsed,
        "error_type": None,
        "is_package": hasattr(sys.modules.get(name), "__path__"),
    }
    if error is not None:
        record.update(_failure_record(error))
    record["refused_on_the_way"] = [
        (module, reason) for module, reason in recorder.refused if module not in _versions.EXPECTED_REFUSALS
    ]
    return record


def import_submodules(name: str) -> dict[str, Any]:
    """Worker side: imports the public submodules of package ``name`` (at most
    ``MAX_SUBMODULES``, within ``SUBMODULE_BUDGET_S``); returns those that fail only because of
    own-GIL interpreters, and the extension modules refused on the way."""
    package = importlib.import_module(name)
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_") and info.name not in _SKIPPED_SUBMODULES
    )
    recorder = _RefusalRecorder()
    sys.meta_path.insert(0, recorder)
    failed: list[tuple[str, str]] = []
    tried = 0
    deadline = time.monotonic() + SUBMODULE_BUDGET_S
    try:
        for child in names[:MAX_SUBMODULES]:
            if time.monotonic() > deadline:
                break
            tried += 1
            refused_before = len(recorder.refused)
            try:
                importlib.import_module(f"{name}.{child}")
            except Exception as exc:  # only failures of own-GIL interpreters count
                refusal = find_refusal(exc)
                if refusal is not None:
                    failed.append((f"{name}.{child}", f"{type(exc).__name__}: {refusal.reason}"))
                del recorder.refused[refused_before:]  # said by the failure, not an accelerator
    finally:
        sys.meta_path.remove(recorder)
    return {
        "stage": "submodules",
        "tried": tried,
        "of": len(names),
        "failed": failed,
        "refused_on_the_way": [
            (module, reason)
            for module, reason in recorder.refused
            if module not in _versions.EXPECTED_REFUSALS
        ],
    }


def main() -> int:
    request = json.loads(sys.stdin.read())
    sys.path[:] = request["paths"]
    out = os.dup(1)
    os.dup2(2, 1)  # whatever the module prints goes to stderr, not into the report
    sys.stdout = sys.stderr

    def report(record: dict[str, Any]) -> None:
        os.write(out, (json.dumps(record) + "\n").encode())

    name = request["module"]
    if request["mode"] == "main":
        try:
            __import__(name)
            report({"stage": "main", "ok": True})
        except BaseException as exc:
            report({"stage": "main", "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 0
    # Here, not at import: a worker imports this module for its tasks, and the executor's
    # modules stay out of the worker whose imports are probed.
    from .errors import BrokenInterpreterPool
    from .executor import InterpreterPoolExecutor

    # The worker imports the tasks by name (this module runs as __main__ here).
    probe = importlib.import_module(f"{__package__}._probe")

    second = None
    try:
        pool = InterpreterPoolExecutor(1)
        if _versions.REFUSED_MODULE_CRASHES_OTHERS:
            # Started with the first, as the workers of one pool are: see stage "again".
            second = InterpreterPoolExecutor(1)
    except BrokenInterpreterPool as exc:
        report(
            {
                "stage": "sub",
                "elapsed": None,
                "error_type": "RuntimeError",
                "error": f"the probe could not start a worker interpreter: {exc}",
                "refusal": None,
                "refused_module": None,
            }
        )
        return 0
    with pool:
        try:
            record = pool.submit(probe.import_in_worker, name).result()
        except BaseException as exc:  # the import's error could not come back as a record
            record = {"stage": "sub", "elapsed": None, **_failure_record(exc)}
        report(record)
        if second is not None and record.get("refusal"):
            # Another worker that started with the first, as in a pool of two, running the
            # import as a user's task does: on 3.12 the crash may come only with what that
            # worker loads after the failed import (the error's pickling), so the error must
            # travel back as a task's error does, not be swallowed in the worker.
            second.submit(importlib.import_module, name).exception()
            report({"stage": "again", "ok": True})
        if record.get("error_type") is None and record.get("is_package"):
            try:
                report(pool.submit(probe.import_submodules, name).result())
            except Exception as exc:
                report(
                    {
                        "stage": "submodules",
                        "tried": 0,
                        "of": 0,
                        "failed": [],
                        "refused_on_the_way": [],
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
    if second is not None:
        second.shutdown()
    if record.get("refusal") and _versions.REFUSED_MODULE_CRASHES_OTHERS:
        # A worker started after those have ended: a later pool, or a worker recycled by
        # max_tasks_per_worker.
        with InterpreterPoolExecutor(1) as later:
            later.submit(importlib.import_module, name).exception()
        report({"stage": "later", "ok": True})
    report({"stage": "closed", "ok": True})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
