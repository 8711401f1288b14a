"""Run a hook right after a module is first imported (inside worker interpreters).

Used to set up logging and warnings forwarding only when a task imports them, and to fix up
modules that behave differently in sub-interpreters, without importing anything at start.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["ImportWatcher", "spec_from_other_finders", "watch"]


def spec_from_other_finders(asking: Any, name: str, path: Any = None, target: Any = None) -> Any:
    """The spec that the ``sys.meta_path`` finders other than ``asking`` find, or None.

    For a finder that wraps what the usual import would load rather than loading it itself.
    """
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if finder is asking or find is None:
            continue
        spec = find(name, path, target)
        if spec is not None:
            return spec
    return None


class ImportWatcher:
    """A ``sys.meta_path`` entry that runs a hook right after a module is first imported.

    It finds the module with the finders after it and wraps the loader, so the module loads as
    usual; it costs one dictionary look-up per import.
    """

    def __init__(self) -> None:
        self.hooks: dict[str, Callable[[Any], None]] = {}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        hook = self.hooks.get(name)
        if hook is None:
            return None
        spec = spec_from_other_finders(self, name, path, target)
        if spec is None:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        del self.hooks[name]
        spec.loader = HookedLoader(spec.loader, hook)
        return spec

    def watch(self, name: str, hook: Callable[[Any], None]) -> None:
        """Runs ``hook(module)`` now if ``name`` is imported already, else right after its import."""
        module = sys.modules.get(name)
        if module is not None:
            run_hook(hook, module)
            return
        self.hooks[name] = hook
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)


class HookedLoader:
    """Wraps a loader: after the module runs, restores the real loader and runs the hook."""

    def __init__(self, loader: Any, hook: Callable[[Any], None]) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        run_hook(self._hook, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def run_hook(hook: Callable[[Any], None], module: Any) -> None:
    # A failing hook must not break the user's `import logging`: say so and go on.
    try:
        hook(module)
    except Exception as exc:
        try:
            if sys.__stderr__ is not None:  # None in a process started without one
                sys.__stderr__.write(
                    f"subinterpreter_parallelism: could not hook {module.__name__}: {exc!r}\n"
                )
        except Exception:
            pass


_watcher = ImportWatcher()


def watch(name: str, hook: Callable[[Any], None]) -> None:
    """Runs ``hook(module)`` now if ``name`` is imported already, else right after its import."""
    _watcher.watch(name, hook)
