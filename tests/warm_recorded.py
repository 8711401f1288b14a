"""Imported by tests/test_preload_auto.py's workers: each import reports the worker."""

import warm_tasks

warm_tasks.report_import(__name__)


def double(x):
    return 2 * x


class Doubler:
    def apply(self, x):
        return 2 * x
