"""A worker process killed under a cell: the run finishes, every cell once, the culprit failed alone."""

import json
from pathlib import Path

import pytest

from valbench.grid import GridConfig
from valbench.registry import load_installed, load_plugins
from valbench.runner import run_grid
from valbench.store import ResultsStore

load_installed()

PLUGIN = str(Path(__file__).parent / "plugins" / "valbench_test_plugin.py")


@pytest.fixture
def plugin():
    load_plugins([PLUGIN])
    return PLUGIN


def lines(run_dir):
    text = (run_dir / "results.jsonl").read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # raises on a corrupt line


def cells(killer_params, nap_seeds=(0, 1, 2)):
    naps = GridConfig(methods=["plugin-sleepy"], datasets=["wine"], seeds=list(nap_seeds), budgets=[0.5],
                      method_params={"plugin-sleepy": {"seconds": 0.3}}).cells()
    killer = GridConfig(methods=["plugin-killer"], datasets=["wine"], seeds=[0], budgets=[0.5],
                        method_params={"plugin-killer": killer_params}).cells()
    return killer + naps


def run(plugin, run_dir, grid):
    return run_grid(grid, ResultsStore(run_dir), jobs=2, plugins=(plugin,), progress=False)


def test_a_worker_killed_once_loses_nothing_and_recomputes_nothing(plugin, tmp_path):
    marker = tmp_path / "killed-once"
    grid = cells({"marker": str(marker), "delay": 1.0})
    counts = run(plugin, tmp_path / "r", grid)
    assert marker.exists()  # the kill happened
    assert counts == {"total": 4, "skipped": 0, "ok": 4, "failed": 0}
    records = lines(tmp_path / "r")
    # each cell exactly once: a cell that had landed before the kill and was recomputed would appear twice
    assert sorted(r["key"] for r in records) == sorted(c.key for c in grid)
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    assert not (tmp_path / "r" / ".inflight").exists()


def test_a_cell_that_always_kills_its_worker_fails_alone(plugin, tmp_path):
    grid = cells({"marker": str(tmp_path / "killed"), "always": 1, "delay": 0.3})
    counts = run(plugin, tmp_path / "r", grid)
    assert counts == {"total": 4, "skipped": 0, "ok": 3, "failed": 1}
    records = lines(tmp_path / "r")
    assert sorted(r["key"] for r in records) == sorted(c.key for c in grid)
    killed = [r for r in records if r["status"] != "ok"]
    assert [r["method"] for r in killed] == ["plugin-killer"]
    assert "its process died while running this cell" in killed[0]["error"]
    assert run(plugin, tmp_path / "r", grid)["skipped"] == 4  # a rerun skips everything recorded
    assert len(lines(tmp_path / "r")) == 4
