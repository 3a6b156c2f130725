"""pytest-benchmark timings of every native method and the learner's fit, each as a ratio to a calibration.

The calibration workload (:func:`valbench.perfgate.calibration_workload`) runs in pytest-benchmark's untimed
``setup`` before every round, so benchmark and calibration alternate and see the same load; its times go
into ``extra_info`` and ``valbench.perfgate`` takes the median over rounds of benchmark / calibration time. Both are CPU times
(``valbench.perfgate.TIMER``): run the suite through ``python -m valbench.perfgate`` (``make bench-ci``), which
passes ``--benchmark-timer=time.process_time``. Rounds:
``VALBENCH_PERF_ROUNDS`` (default 7), after one warm-up round (first-call costs: caches, lazy imports).
"""

import os

import pytest

from valbench.perfgate import CALIBRATION, TIMER, TIMER_NAME, calibration_workload
from valbench.registry import METHODS
from tests.perf.workloads import WORKLOADS

ROUNDS = int(os.environ.get("VALBENCH_PERF_ROUNDS", "7"))


@pytest.fixture(scope="module")
def calibration():
    return calibration_workload()


@pytest.mark.parametrize("workload", WORKLOADS, ids=[w.name for w in WORKLOADS])
def test_workload(benchmark, calibration, workload):
    fn = workload.build()
    calibration_times = []

    def calibrate():  # pytest-benchmark's setup: run before every (timed) round, itself untimed
        t0 = TIMER()
        calibration()
        calibration_times.append(TIMER() - t0)

    benchmark.pedantic(fn, setup=calibrate, rounds=ROUNDS, warmup_rounds=1)
    benchmark.extra_info.update(workload=workload.name, describe=workload.describe(), timer=TIMER_NAME,
                                calibration=CALIBRATION, calibration_min_s=min(calibration_times),
                                calibration_times=calibration_times)


# Native methods the gate deliberately does not time, each with why. Empty: every native method has a workload.
# An entry must name a registered native method that has no workload (the test below checks it stays accurate).
NO_WORKLOAD: dict[str, str] = {}


def native_methods() -> set[str]:
    """Registered methods implemented in this package (valbench.methods), peers' adapters excluded."""
    return {name for name, cls in METHODS.items()
            if cls.__module__.startswith("valbench.methods.") and cls.family != "peer"}


def test_every_native_method_has_a_workload():
    """A native method without a workload is outside the runtime gate: it needs one in tests/perf/workloads.py,
    or an entry in NO_WORKLOAD saying why not. Not a benchmark, so it runs in ``make test``."""
    covered = {w.method for w in WORKLOADS if w.method is not None}
    native = native_methods()
    assert not native - covered - NO_WORKLOAD.keys(), (
        f"native methods without a perf workload in tests/perf/workloads.py (add one, or an entry with a "
        f"reason in NO_WORKLOAD): {sorted(native - covered - NO_WORKLOAD.keys())}")
    assert not covered - native, f"workloads of methods that are not registered native methods: " \
                                 f"{sorted(covered - native)}"
    stale = {name for name in NO_WORKLOAD if name not in native or name in covered}
    assert not stale, f"NO_WORKLOAD entries that are not native methods, or that have a workload now: {sorted(stale)}"
    assert all(reason.strip() for reason in NO_WORKLOAD.values()), "every NO_WORKLOAD entry needs its reason"
