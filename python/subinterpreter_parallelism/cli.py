"""The command line: ``python -m subinterpreter_parallelism COMMAND [options]``.

Each command lives in its own module and takes its own ``--help``:

    demo    the seed's comparison (subinterpreter_parallelism.demo)
    bench   the benchmark suite (shipped in the package: subinterpreter_parallelism.bench)
    check   can these modules load in an own-GIL interpreter? (subinterpreter_parallelism.check)
    info    Python, own-GIL support, worker count, build (subinterpreter_parallelism.info)

``--version`` prints the package's name and version (``__version__``, which pyproject.toml
reads too). An unknown command is a usage error (exit status 2, as argparse does). Output
piped into a program that stops reading early (``| head``) ends the command quietly.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__

# command -> (module, function, one-line help); each function takes argv and returns an exit code.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "subinterpreter_parallelism.demo",
        "main",
        "run the seed's comparison (py_factorial, several ways)",
    ),
    "bench": ("subinterpreter_parallelism.bench", "main", "run the benchmarks against the alternatives"),
    "check": (
        "subinterpreter_parallelism.check",
        "check_main",
        "check whether modules load in an own-GIL interpreter",
    ),
    "info": (
        "subinterpreter_parallelism.info",
        "info_main",
        "show Python, own-GIL support, worker count and build",
    ),
}


def _usage() -> str:
    lines = [
        "usage: python -m subinterpreter_parallelism COMMAND [options]",
        "       python -m subinterpreter_parallelism --version",
        "",
        "commands:",
    ]
    lines += [f"  {name:<7} {help_text}" for name, (_, _, help_text) in COMMANDS.items()]
    lines += ["", "Run `python -m subinterpreter_parallelism COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches to a command; returns its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        print(f"subinterpreter_parallelism {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[command]
    function: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)


def run(argv: Sequence[str] | None = None) -> int:
    """``python -m subinterpreter_parallelism``: :func:`main`, quiet when stdout is a pipe closed
    early (``... --help | head``): no ``BrokenPipeError`` traceback, exit status 1."""
    try:
        status = main(argv)
        sys.stdout.flush()  # a closed pipe shows here at the latest, not at exit
        return status
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that this cannot fail
        # (the recipe of the signal module's documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
