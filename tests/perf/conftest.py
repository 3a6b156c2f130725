"""The perf benchmarks run only on request (``make bench-ci`` / ``make bench-baseline``, or ``VALBENCH_PERF=1``).

``make test`` collects them and reports every benchmark as skipped (marked ``opt_in``, so CI, which runs them in
``make bench-ci``, accepts the skip), so the normal test run stays fast. The suite's other tests (the coverage
check of the workloads) are not benchmarks and always run.
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
        if str(item.path).startswith(here) and "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)
            item.add_marker(pytest.mark.opt_in)
