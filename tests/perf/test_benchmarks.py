"""pytest-benchmark timings of every native method and the learner's fit, each as a ratio to a calibration.

The calibration workload (:func:`valbench.perfgate.calibration_workload`) runs in pytest-benchmark's untimed
``setup`` before every round, so benchmark and calibration alternate and see the same load; its times go
into ``extra_info`` and ``valbench.perfgate`` takes the median over rounds of benchmark / calibration time. Both are CPU times
(``valbench.perfgate.TIMER``): run the suite through ``python -m valbench.perfgate`` (``make bench-ci``), which
passes ``--benchmark-timer=time.process_time``. Rounds:
``VALBENCH_PERF_ROUNDS`` (default 7), after one warm-up round (first-call costs: caches, lazy imports).
"""

import os
import warnings

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
    if not workload.available():
        pytest.skip(f"method {workload.method!r} is not registered")
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


def test_every_native_method_has_a_workload():
    """A method added to methods/ should get a workload here, or the gate does not see its runtime (a warning)."""
    covered = {w.method for w in WORKLOADS}
    native = {name for name, cls in METHODS.items()
              if cls.__module__.startswith("valbench.methods.") and cls.family != "peer"}
    if native - covered:
        warnings.warn(f"native methods without a perf workload in tests/perf/workloads.py (not gated): "
                      f"{sorted(native - covered)}", stacklevel=1)
