"""A module whose import in a worker says so and then blocks until released: the queues are
found by the ids in STOP_REPORT and STOP_RELEASE (tests/test_ctrl_c.py). In the caller it
imports at once."""

import os

from subinterpreter_parallelism import _native

if _native.worker_index() is not None and "STOP_REPORT" in os.environ:
    _native._attach_queue(int(os.environ["STOP_REPORT"])).put("importing")
    _native._attach_queue(int(os.environ["STOP_RELEASE"])).get()
