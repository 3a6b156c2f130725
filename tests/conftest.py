"""Shared fixtures (small datasets built in memory, single-threaded torch) and the suite's skip policy.

Skip policy: a test may skip where something it needs is absent (an optional peer library, the Chromium
browser, the real data files), and ``-rfEs`` (pyproject addopts) prints every skip with its reason. In CI
(the environment variable ``CI`` set to true/1/yes, as ``.ci/run`` and most CI services do) nothing may be
absent: every skip, at collection or in a test, is reported as a failure naming what was missing. The one
exception is a test marked ``opt_in``, which CI runs in a step of its own (the perf benchmarks, in
``make bench-ci``). A peer library that is installed but cannot be used fails everywhere (``require_peer``).

Time: tests bound counts, states and ratios, not elapsed seconds (speed goals are ratios measured in one run, in
``tests/perf``). Where a time limit is itself under test, the test is marked ``wallclock(reason)`` and its bound
is a fraction of the time the broken behaviour would take (a sleep of minutes cut at a limit of seconds).
"""

import importlib.util
import os

import numpy as np
import pytest
import torch

from valbench.protocol import Dataset
from valbench.registry import UNAVAILABLE, load_installed

torch.set_num_threads(1)
load_installed()

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _fail_skip_in_ci(report, what: str) -> None:
    """Turn a skipped report into a failed one whose message names the skip's reason."""
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"{what} skipped in CI (CI={os.environ.get('CI')}), where nothing may be missing: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("opt_in") is None:
        _fail_skip_in_ci(report, "test")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if IN_CI and report.skipped:  # a module-level skip (pytest.importorskip, allow_module_level=True)
        _fail_skip_in_ci(report, "module")
    return report


def require_peer(package: str) -> None:
    """Skip the caller when the optional peer library ``package`` is not installed (a failure in CI, see the
    module docstring); fail when it is installed but its adapter recorded it as unusable (a broken install:
    ``UNAVAILABLE[package]`` says why). Call it in a test, a fixture or at module level.
    """
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"the peer library {package!r} is not installed (make install)", allow_module_level=True)
    if package in UNAVAILABLE:
        pytest.fail(f"the peer library {package!r} is installed but unusable: {UNAVAILABLE[package]}",
                    pytrace=False)


@pytest.fixture(autouse=True)
def _peer_marker(request):
    """``@pytest.mark.peer("pydvl")`` (or a module's ``pytestmark``): the test needs that peer (require_peer)."""
    for marker in request.node.iter_markers("peer"):
        require_peer(*marker.args)


def blobs(n_train: int = 60, n_valid: int = 30, n_test: int = 40, n_classes: int = 3, dim: int = 4,
          seed: int = 0, name: str = "blobs") -> Dataset:
    """Well-separated Gaussian blobs: a learnable problem small enough for brute-force references."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(n_classes, dim))

    def draw(n):
        y = rng.integers(0, n_classes, size=n)
        y[:n_classes] = np.arange(n_classes)
        return (centres[y] + rng.normal(size=(n, dim))).astype(np.float32), y

    (xt, yt), (xv, yv), (xs, ys) = draw(n_train), draw(n_valid), draw(n_test)
    return Dataset(name=name, x_train=xt, y_train=yt, x_valid=xv, y_valid=yv, x_test=xs, y_test=ys,
                   n_classes=n_classes)


@pytest.fixture
def small_data() -> Dataset:
    return blobs()
