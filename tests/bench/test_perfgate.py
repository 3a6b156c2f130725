"""The runtime-regression gate: comparison, reporting, the CLI, and that a real slowdown makes it fail.

Fast (a few seconds): the measured workloads are tiny and the calibration is one learner fit; the perf
suite itself (tests/perf) is not run here.
"""

import json
import pathlib
import time

import numpy as np
import pytest

from valbench.methods import knn_shapley
from valbench import perfgate
from valbench.learners import make_learner
from valbench.registry import METHODS
from tests.conftest import blobs

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_compare_names_every_status():
    baseline = {"same": 1.0, "slower": 2.0, "quicker": 1.0, "gone": 1.0}
    current = {"same": 1.2, "slower": 3.5, "quicker": 0.5, "added": 1.0}
    result = perfgate.compare(baseline, current, tolerance=1.5)
    status = {r.name: r.status for r in result.rows}
    assert status == {"same": "ok", "slower": "REGRESSED", "quicker": "faster", "gone": "MISSING", "added": "NEW"}
    assert result.failed and result.regressed == ["slower"] and result.missing == ["gone"]
    slower = next(r for r in result.rows if r.name == "slower")
    assert slower.slowdown == pytest.approx(1.75)
    text = result.summary()
    line = next(l for l in text.splitlines() if l.startswith("slower"))
    assert "2" in line and "3.5" in line and "1.75x" in line and "REGRESSED" in line
    assert "FAIL: slower than the baseline by more than 1.5x: slower" in text
    assert "not measured now" in text and "gone" in text
    assert "warning: measured now but not in the baseline" in text and "added" in text


def test_new_benchmarks_warn_and_missing_can_be_allowed():
    assert not perfgate.compare({"a": 1.0}, {"a": 1.4, "b": 9.0}).failed  # 1.4x is within the default 1.5
    assert perfgate.compare({"a": 1.0}, {"a": 1.6}).failed
    assert not perfgate.compare({"a": 1.0}, {"a": 1.6}, tolerance=2.0).failed
    assert perfgate.compare({"a": 1.0, "b": 1.0}, {"a": 1.0}).failed
    allowed = perfgate.compare({"a": 1.0, "b": 1.0}, {"a": 1.0}, allow_missing=True)
    assert not allowed.failed and "warning: in the baseline but not measured now" in allowed.summary()
    with pytest.raises(ValueError, match="tolerance"):
        perfgate.compare({}, {}, tolerance=0.9)


def test_gate_reruns_only_regressed_and_keeps_the_best_ratio():
    calls = []
    answers = iter([{"a": 1.0, "b": 3.0}, {"b": 1.1}])

    def measure(names):
        calls.append(names)
        return next(answers)

    result = perfgate.gate({"a": 1.0, "b": 1.0}, measure, tolerance=1.5, confirm=1)
    assert calls == [None, ["b"]] and not result.failed  # the noisy 3.0 did not repeat
    persistent = perfgate.gate({"b": 1.0}, lambda names: {"b": 3.0}, confirm=2)
    assert persistent.regressed == ["b"] and "re-measured" in persistent.summary()


def _knn_workload():
    data = blobs(n_train=400, n_valid=40, dim=8)
    learner = make_learner("logreg", data.n_features, data.n_classes)
    method = METHODS["knn-shapley"]()
    return lambda: method.fit(data, learner, 0)


def _random_workload():
    data = blobs(n_train=100_000, n_valid=10, n_test=10)
    method = METHODS["random"]()
    return lambda: method.fit(data, None, 0)


def test_injected_slowdown_fails_the_gate_and_an_unchanged_run_passes(monkeypatch):
    """Time two real methods as ratios to the calibration; then make knn-shapley's kernel spin 3x its own
    CPU time (a slowdown proportional to its work) and check the gate names knn-shapley, and only it."""
    calibration = perfgate.calibration_workload(fits=1)
    workloads = {"knn-shapley": _knn_workload(), "random": _random_workload()}

    def measure_ratios(names):
        return {name: perfgate.measure(fn, rounds=5, calibration=calibration).ratio
                for name, fn in workloads.items() if names is None or name in names}

    baseline = measure_ratios(None)
    unchanged = perfgate.gate(baseline, measure_ratios, tolerance=1.5, confirm=2)
    assert not unchanged.failed, unchanged.summary()

    kernel = knn_shapley.knn_shapley_values

    def slow_kernel(*args, **kwargs):  # busy-waits: the gate measures CPU time, which a sleep would not use
        t0 = time.process_time()
        out = kernel(*args, **kwargs)
        end = time.process_time() + 3 * (time.process_time() - t0)
        while time.process_time() < end:
            pass
        return out

    monkeypatch.setattr(knn_shapley, "knn_shapley_values", slow_kernel)
    slowed = perfgate.gate(baseline, measure_ratios, tolerance=1.5, confirm=2)
    assert slowed.failed and slowed.regressed == ["knn-shapley"], slowed.summary()
    row = next(r for r in slowed.rows if r.name == "knn-shapley")
    assert row.slowdown > 2.5
    assert "FAIL: slower than the baseline by more than 1.5x: knn-shapley" in slowed.summary()


def _pytest_json(path, entries):
    """A minimal --benchmark-json file as tests/perf writes it: stats.min and the calibration in extra_info."""
    benchmarks = [{"name": f"test_workload[{name}]", "stats": {"data": [t, 2 * t, t], "min": t, "rounds": 3},
                   "options": {"timer": "process_time"},
                   "extra_info": {"workload": name, "calibration_times": [9.0, c, c, 2 * c]}}
                  for name, (t, c) in entries.items()]
    path.write_text(json.dumps({"benchmarks": benchmarks + [{"name": "other", "stats": {"min": 1.0}}]}))
    return path


def test_cli_compare_exit_code_and_table(tmp_path, capsys):
    runs = [perfgate.ratios_from_pytest_json(_pytest_json(tmp_path / f"run{i}.json",
                                                          {"loo": (0.5 + 0.01 * i, 0.2), "knn-shapley": (0.1, 0.2)}))
            for i in range(3)]
    assert runs[0]["loo"]["ratio"] == pytest.approx(2.5)
    doc = perfgate.baseline_document(runs)
    assert doc["benchmarks"]["loo"]["ratio"] == pytest.approx(2.55) and len(doc["benchmarks"]["loo"]["ratio_runs"]) == 3
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(doc))

    same = _pytest_json(tmp_path / "same.json", {"loo": (0.52, 0.2), "knn-shapley": (0.1, 0.21)})
    assert perfgate.main(["compare", str(same), "--baseline", str(baseline)]) == 0
    assert "PASS" in capsys.readouterr().out

    slow = _pytest_json(tmp_path / "slow.json", {"loo": (1.2, 0.2), "knn-shapley": (0.1, 0.2)})
    assert perfgate.main(["compare", str(slow), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "benchmark" in out and "baseline ratio" in out and "current ratio" in out and "slowdown" in out
    assert any(l.startswith("loo") and "REGRESSED" in l and "2.35x" in l for l in out.splitlines())
    assert perfgate.main(["compare", str(slow), "--baseline", str(baseline), "--tolerance", "3"]) == 0


def test_committed_baseline_matches_the_workloads():
    from tests.perf.workloads import WORKLOADS

    doc = perfgate.read_baseline(REPO / perfgate.DEFAULT_BASELINE)
    names = {w.name for w in WORKLOADS}
    assert set(doc["benchmarks"]) <= names, "perf/baseline.json names a workload tests/perf no longer defines"
    assert all(np.isfinite(e["ratio"]) and e["ratio"] > 0 for e in doc["benchmarks"].values())


def test_paired_ratio_pairs_each_round_with_the_calibration_before_it():
    # warm-up calibration first (ignored); a burst that slows both halves of a pair cancels out
    assert perfgate.paired_ratio([1.0, 4.0, 1.0], [99.0, 0.5, 2.0, 0.5]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="calibration time per round"):
        perfgate.paired_ratio([1.0, 1.0], [1.0])


def test_wall_clock_benchmarks_are_refused(tmp_path):
    path = _pytest_json(tmp_path / "wall.json", {"loo": (0.5, 0.2)})
    data = json.loads(path.read_text())
    data["benchmarks"][0]["options"]["timer"] = "perf_counter"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="--benchmark-timer=time.process_time"):
        perfgate.ratios_from_pytest_json(path)
