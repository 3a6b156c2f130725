import json
import time

import numpy as np
import pytest

from valbench import Valuation, ValuationMethod, register_method
from valbench import scaling
from valbench.registry import METHODS, load_installed


@pytest.fixture(scope="module", autouse=True)
def builtin():
    load_installed()


def test_slope_is_the_log_log_least_squares_exponent():
    rows = [{"n_train": n, "seconds": 3e-6 * n ** 1.5, "status": "ok"} for n in (250, 500, 1000, 2000)]
    rows.append({"n_train": 5000, "seconds": 60.0, "status": "timeout"})  # censored: not in the fit
    assert scaling.loglog_slope(rows) == pytest.approx(1.5)
    assert scaling.loglog_slope(rows[:1]) is None


def test_sweep_stops_a_method_at_the_first_size_over_the_cap(monkeypatch):
    def fake(method, n, cap_s):
        slow = n >= 1000
        return {"method": method, "n_train": n, "seconds": cap_s if slow else n / 1e4,
                "wall_s": cap_s if slow else n / 1e4, "repeats": 1, "status": "timeout" if slow else "ok",
                "error": None}

    monkeypatch.setattr(scaling, "time_fit", fake)
    result = scaling.sweep(["random"], [250, 500, 1000, 2000, 5000], cap_s=1.0, log=lambda line: None)
    assert [(r["n_train"], r["status"]) for r in result["rows"]] == [(250, "ok"), (500, "ok"), (1000, "timeout")]
    assert result["slopes"]["random"] == pytest.approx(1.0)


def test_a_fit_over_the_cap_is_censored():
    @register_method
    class Slow(ValuationMethod):
        """Test method: sleeps two seconds."""

        name = "test-scaling-slow"

        def fit(self, data, learner, seed):
            time.sleep(2)
            return Valuation(scores=np.zeros(data.n_train))

    try:
        row = scaling.time_fit("test-scaling-slow", 100, cap_s=0.3)
    finally:
        METHODS.pop("test-scaling-slow")
    assert row["status"] == "timeout" and row["seconds"] == 0.3


def test_native_methods_exclude_adapters_and_the_cli_writes_json_csv_and_plot(tmp_path, capsys):
    native = scaling.native_methods()
    assert {"random", "loo", "knn-shapley"} <= set(native)
    assert not any(name.startswith(("odv-", "pydvl-")) for name in native)
    assert scaling.main(["--methods", "random,knn-shapley", "--sizes", "100,200", "--cap", "10",
                         "--data", "dim=5", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "scaling.json").read_text())
    assert [(r["method"], r["n_train"]) for r in result["rows"]] == [
        ("random", 100), ("random", 200), ("knn-shapley", 100), ("knn-shapley", 200)]
    assert all(r["status"] == "ok" and r["seconds"] > 0 for r in result["rows"])
    assert all(r["peak_rss_mb"] > 50 and r["learner_s"] > 0 and r["fits"] >= 0 for r in result["rows"])
    assert set(result["slopes"]) == {"random", "knn-shapley"}
    assert (tmp_path / "scaling.csv").read_text().startswith("method,n_train,seconds")
    assert (tmp_path / "scaling.png").stat().st_size > 0
    assert "knn-shapley    slope" in capsys.readouterr().out
    assert result["options"]["data_params"] == {"dim": 5}
