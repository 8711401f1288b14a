"""A module whose import, when it is a warm import (not a task's), reports and then waits for
``warm_tasks.RELEASE`` (tests/test_preload_auto.py)."""

import warm_tasks

if warm_tasks.in_worker() and warm_tasks.in_warm_import():
    warm_tasks.report_import(__name__)
    warm_tasks.RELEASE.get()


def triple(x):
    return 3 * x
