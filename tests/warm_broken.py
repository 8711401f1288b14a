"""Importable in the caller, raises in every worker interpreter (tests/test_preload_auto.py)."""

from subinterpreter_parallelism import _native

if _native.worker_index() is not None:
    raise RuntimeError("warm_broken refuses worker interpreters")


def never(x):
    return x
