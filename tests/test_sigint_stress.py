"""The random-Ctrl-C stress (tests/sigint_stress.py; ``make test-sigint`` runs 200): how it
judges a run, and a few runs of it."""

from __future__ import annotations

import signal

import pytest

import sigint_stress

TRACEBACK = 'Traceback (most recent call last):\n  File "<string>", line 9, in <module>\nKeyboardInterrupt\n'


@pytest.mark.parametrize(
    ("returncode", "stderr", "outcome"),
    [
        (-signal.SIGINT, TRACEBACK, "ok"),
        (-signal.SIGINT, TRACEBACK + "Exception ignored in: <function on_event>\n", "stray"),
        (-signal.SIGINT, TRACEBACK + TRACEBACK, "stray"),
        # The Ctrl-C landed in an except block: the exception it interrupted comes first.
        (
            -signal.SIGINT,
            TRACEBACK.replace("KeyboardInterrupt", "KeyError: 'x'")
            + "\nDuring handling of the above exception, another exception occurred:\n\n"
            + TRACEBACK,
            "ok",
        ),
        # ... but not the other way round: another exception after the KeyboardInterrupt.
        (
            -signal.SIGINT,
            TRACEBACK
            + "\nDuring handling of the above exception, another exception occurred:\n\n"
            + TRACEBACK.replace("KeyboardInterrupt", "RuntimeError: cleanup failed"),
            "stray",
        ),
        (-signal.SIGINT, "Exception ignored in: <function cb>\nKeyboardInterrupt:\n" + TRACEBACK, "stray"),
        (-signal.SIGINT, "some output\n" + TRACEBACK, "stray"),
        (-signal.SIGINT, TRACEBACK.replace("KeyboardInterrupt", "RuntimeError: boom"), "stray"),
        # A note CPython adds to the KeyboardInterrupt (it landed inside an enum's creation).
        (
            -signal.SIGINT,
            TRACEBACK + "Error calling __set_name__ on '_proto_member' instance 'A' in 'B'\n",
            "ok",
        ),
        (1, TRACEBACK, "stray"),  # the traceback, but not the exit of a Ctrl-C
        (-signal.SIGSEGV, TRACEBACK, "crash"),
        (-signal.SIGABRT, "Fatal Python error: PyThreadState_Get\n", "crash"),
        (70, "", "crash"),
    ],
)
def test_how_a_run_is_judged(returncode, stderr, outcome):
    assert sigint_stress._judge(returncode, stderr)[0] == outcome


@pytest.mark.slow
def test_random_ctrl_c_stops_every_program_shape():
    results = sigint_stress.stress(2 * len(sigint_stress.SHAPES), jobs=2)
    failed = [run for run in results if run.outcome != "ok"]
    assert not failed, "\n\n".join(
        f"{run.outcome}: {run.shape} (signal after {run.delay:.3f} s): {run.why}\n{run.stderr[-2000:]}"
        for run in failed
    )
