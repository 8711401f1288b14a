"""The preload's command line: ``dask worker ... --preload subinterpreter_parallelism.dask_support``.

distributed runs ``dask_setup`` of the preloaded module (the package, which hands this one
on) with the options that follow the preload, parsed by click.
"""

from __future__ import annotations

from typing import Any

import click
import dask

from .cluster import DEFAULT_EXECUTOR_NAME, InterpreterPoolPlugin

__all__ = ["CONFIG_SECTION", "dask_setup"]

#: The dask config section read by the preload (also from environment variables, e.g.
#: ``DASK_SUBINTERPRETER_PARALLELISM__AS_DEFAULT=True``); options after the preload win.
CONFIG_SECTION = "subinterpreter-parallelism"

# The module named on the command line, for messages.
_PRELOAD = __name__.rsplit(".", 1)[0]


@click.command()
@click.option(
    "--interpreters",
    type=int,
    default=None,
    help="Interpreters in the worker's pool (default: the worker's --nthreads).",
)
@click.option(
    "--executor-name",
    default=None,
    help=f"Executor name that tasks are annotated with (default: {DEFAULT_EXECUTOR_NAME}).",
)
@click.option(
    "--as-default", is_flag=True, help="Run tasks without an executor annotation on the interpreters too."
)
async def dask_setup(
    worker: Any, interpreters: int | None, executor_name: str | None, as_default: bool
) -> None:
    """Preload entry point: ``dask worker ... --preload subinterpreter_parallelism.dask_support``.

    Each option may also come from the dask config section ``subinterpreter-parallelism``
    (keys ``interpreters``, ``executor-name``, ``as-default``), e.g. set through
    environment variables: ``dask worker --scheduler-file F`` takes the first word after
    it for the scheduler's address, so options after the preload need an address before.
    """
    if not hasattr(worker, "executors"):
        raise TypeError(f"{_PRELOAD} is a preload for dask workers, not for {type(worker).__name__}")

    def setting(key: str, given: Any, default: Any) -> Any:
        if given:
            return given
        return dask.config.get(f"{CONFIG_SECTION}.{key}", default)

    interpreters = setting("interpreters", interpreters, None)
    plugin = InterpreterPoolPlugin(
        int(interpreters) if interpreters else None,
        name=setting("executor-name", executor_name, DEFAULT_EXECUTOR_NAME),
        default=_truthy(setting("as-default", as_default, False)),
    )
    await worker.plugin_add(plugin, name=plugin.name, catch_errors=False)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
