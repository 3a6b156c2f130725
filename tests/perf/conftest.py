"""The perf suite runs only on request (``make bench-ci`` / ``make bench-baseline``, or ``VALBENCH_PERF=1``).

``make test`` collects it and reports every benchmark as skipped, so the normal test run stays fast.
"""

import os

import pytest


def perf_enabled() -> bool:
    return os.environ.get("VALBENCH_PERF", "") not in ("", "0")


def pytest_collection_modifyitems(config, items):
    if perf_enabled():
        return
    skip = pytest.mark.skip(reason="perf benchmark: run `make bench-ci`, or set VALBENCH_PERF=1")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(skip)
