import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from valbench.grid import GridConfig
from valbench.store import ResultsStore

PLUGIN = str(Path(__file__).parent / "plugins" / "valbench_test_plugin.py")


def test_sigkilled_run_resumes_with_every_cell_exactly_once(tmp_path):
    args = [sys.executable, "-m", "valbench", "--plugin", PLUGIN, "run", "--methods", "plugin-sleepy",
            "--datasets", "wine", "--seeds", ",".join(map(str, range(8))), "--set", "plugin-sleepy.seconds=0.5",
            "--budgets", "0.5", "--jobs", "1", "--no-progress", "--out", str(tmp_path), "--run-id", "r"]
    results = tmp_path / "r" / "results.jsonl"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None and (not results.exists() or len(results.read_text().splitlines()) < 2):
        time.sleep(0.1)  # until two cells landed (a run that ends first fails the test below)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    assert 2 <= len(before) < 8, "the kill must land part-way through the run"
    subprocess.run(args, check=True, capture_output=True, timeout=300)
    after = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    seeds = [r["seed"] for r in after]
    assert sorted(seeds) == list(range(8))
    assert after[:len(before)] == before  # finished cells were neither rewritten nor recomputed


def test_truncated_last_line_is_ignored_and_sealed(tmp_path):
    store = ResultsStore(tmp_path)
    store.append({"key": "a", "status": "ok", "dataset": "wine", "method": "random"})
    with open(store.path, "a") as f:
        f.write('{"key": "b", "sta')  # a crash mid-write
    with pytest.warns(UserWarning, match="incomplete record"):
        assert store.finished_keys() == {"a"}
    store.append({"key": "c", "status": "ok", "dataset": "wine", "method": "random", "value": float("nan")})
    with pytest.warns(UserWarning):
        records = store.records()
    assert [r["key"] for r in records] == ["a", "c"] and records[1]["value"] is None


def test_cell_keys_change_with_parameters_only():
    grid = GridConfig(methods=["loo"], datasets=["wine"], seeds=[0])
    changed = GridConfig(methods=["loo"], datasets=["wine"], seeds=[0], method_params={"loo": {"utility": "neg_loss"}})
    assert grid.cells()[0].key == GridConfig(methods=["loo"], datasets=["wine"], seeds=[0]).cells()[0].key
    assert grid.cells()[0].key != changed.cells()[0].key


def test_exclude_rules_drop_pairs_and_are_validated():
    grid = GridConfig(methods=["loo", "random"], datasets=["wine", "digits"],
                      exclude=[{"method": "loo", "dataset": "digits"}])
    assert sorted((c.dataset, c.method) for c in grid.cells()) == [("digits", "random"), ("wine", "loo"),
                                                                  ("wine", "random")]
    with pytest.raises(Exception, match="must name a method and/or a dataset"):
        GridConfig(methods=["loo"], datasets=["wine"], exclude=[{"seed": "1"}]).validate()


def test_a_fit_past_its_cap_of_learner_fits_is_recorded_over_cap(monkeypatch):
    from valbench import runner
    from valbench.registry import load_plugins

    load_plugins([PLUGIN])
    monkeypatch.setattr(runner, "CAP_FLOOR_S", 0.3)
    busy, = GridConfig(methods=["plugin-busy"], datasets=["wine"], budgets=[0.5],
                       method_params={"plugin-busy": {"seconds": 3.0}}).cells()
    record = runner.run_cell(busy, plugins=(PLUGIN,), time_limit_s=60, cap_fits=2)
    assert record["status"] == "over cap" and "learner fits" in record["error"]
    assert record["cell_cpu_s"] < 2.5
    # the cap counts CPU time: a fit that waits (sleeps) past it is not over its cap
    sleepy, = GridConfig(methods=["plugin-sleepy"], datasets=["wine"], budgets=[0.5],
                         method_params={"plugin-sleepy": {"seconds": 1.0}}).cells()
    record = runner.run_cell(sleepy, plugins=(PLUGIN,), time_limit_s=60, cap_fits=2)
    assert record["status"] == "ok" and record["cap_fits"] == 2
    assert record["cap_cpu_s"] == max(2 * record["learner_fit_cpu_s"], 0.3) and record["full_accuracy"] > 0.5


def test_a_methods_prepare_runs_in_the_worker_outside_its_timed_fit_and_its_cap(monkeypatch):
    """One-off set-up (JIT compilation) is neither the fit's CPU time nor counted against its cap."""
    from valbench import runner
    from valbench.registry import load_plugins

    load_plugins([PLUGIN])
    monkeypatch.setattr(runner, "CAP_FLOOR_S", 0.3)
    cell, = GridConfig(methods=["plugin-busy"], datasets=["wine"], budgets=[0.5],
                       method_params={"plugin-busy": {"prepare_seconds": 1.0}}).cells()
    record = runner.run_cell(cell, plugins=(PLUGIN,), time_limit_s=60, cap_fits=2)
    assert record["status"] == "ok" and record["cap_cpu_s"] < 1.0
    assert record["cpu_s"] < 0.3 <= 1.0 <= record["cell_cpu_s"]


def test_a_cnn_cell_gets_the_datasets_image_shape():
    """The runner builds the learner from the dataset, image shape included (digits: 1 x 8 x 8)."""
    from valbench.grid import Cell
    from valbench.runner import evaluate_cell

    cell = Cell(dataset="digits", method="aum", seed=0, noise_rate=0.1, budgets=(0.2,),
                dataset_params={"n_train": 100, "n_valid": 30, "n_test": 100}, method_params={"epochs": 3},
                learner={"name": "cnn", "epochs": 2, "min_steps": 0, "device": "cpu"})
    record = evaluate_cell(cell)
    assert record["learner_params"]["learner"] == "cnn" and record["learner_params"]["image_shape"] == [1, 8, 8]
    assert record["budgets"][0]["k"] == 20


def test_a_cell_that_leaves_autograd_off_does_not_pass_it_on():
    import torch

    from valbench import runner
    from valbench.registry import load_plugins

    load_plugins([PLUGIN])
    cell, = GridConfig(methods=["plugin-grad-off"], datasets=["wine"], budgets=[0.5]).cells()
    assert runner.run_cell(cell, plugins=(PLUGIN,))["status"] == "failed"
    assert torch.is_grad_enabled()
