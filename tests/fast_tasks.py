"""Module-level functions for tests/test_fast_path.py: what a worker runs by name, without
pickle (the Swift core's shareable format), and what shows whether it did."""

from __future__ import annotations

import sys


def echo(value):
    return value


def echo_kwargs(*args, **kwargs):
    """The arguments as they arrived, in a shareable shape: (args, sorted keyword items)."""
    return args, tuple(sorted(kwargs.items()))


def kinds(*values):
    """The type name of each argument, as the worker received it."""
    return tuple(type(value).__name__ for value in values)


def pickle_imported():
    """Whether this worker interpreter has imported the C pickle module."""
    return "_pickle" in sys.modules


def fail(message):
    raise ValueError(message)


def answer():
    return "original"


def _replacement_answer():
    return "replaced"


def rebind_answer():
    """Rebinds ``answer`` in this interpreter's copy of the module."""
    global answer
    answer = _replacement_answer
    return True


class Tools:
    @staticmethod
    def double(value):
        return 2 * value


def make_nested():
    def nested(value):
        return ("nested", value)

    return nested
