"""``python -m subinterpreter_parallelism``: see :mod:`subinterpreter_parallelism.cli`."""

from subinterpreter_parallelism.cli import run

raise SystemExit(run())
