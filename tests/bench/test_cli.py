import json
import subprocess
import sys
from pathlib import Path

import pytest

from valbench.cli import main

PLUGIN = str(Path(__file__).parent / "plugins" / "valbench_test_plugin.py")
SMALL = ["--datasets", "wine", "--seeds", "0", "--budgets", "0.1,0.5", "--no-progress"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "valbench", *args], capture_output=True, text=True, timeout=300)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "latest" / "results.jsonl").read_text().splitlines()]


def test_list_shows_methods_datasets_and_plugins():
    result = run_cli("--plugin", PLUGIN, "list")
    assert result.returncode == 0
    for name in ("random", "loo", "knn-shapley", "plugin-norm", "synthetic", "mnist", "digits"):
        assert name in result.stdout
    assert "Plugin test method: points with larger feature norm" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--methods", "nope", "--datasets", "wine"], "unknown method 'nope'; valid methods: "),
    (["--methods", "random", "--datasets", "nope"], "unknown dataset 'nope'; valid datasets: breast_cancer"),
    (["--methods", "random", "--datasets", "wine", "--budgets", "0,0.5"], "budget 0.0 is invalid"),
    (["--methods", "random", "--datasets", "wine", "--budgets", "1.5"], "budget 1.5 is invalid"),
    (["--methods", "random", "--datasets", "wine", "--noise", "1.0"], "noise rate 1.0 is outside [0, 1)"),
    (["--methods", "loo", "--datasets", "wine", "--set", "loo.bogus=1"],
     "method 'loo': unknown parameter(s) ['bogus']; valid: ['block', 'newton_max_params', 'utility', 'warm_start']"),
    (["--config", "missing.toml"], "config file missing.toml not found"),
])
def test_usage_errors_exit_2_with_a_clear_message(args, message, tmp_path, capsys):
    assert main(["run", *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    if "valid methods" in message:
        assert "knn-shapley" in err and "loo" in err and "random" in err


def test_plugin_method_runs_and_bad_cells_fail_alone(tmp_path):
    result = run_cli("--plugin", PLUGIN, "run", "--methods", "plugin-norm,plugin-wrong-length,random",
                     *SMALL, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    by_method = {r["method"]: r for r in records(tmp_path)}
    assert by_method["plugin-norm"]["status"] == "ok"
    assert by_method["random"]["status"] == "ok"
    bad = by_method["plugin-wrong-length"]
    assert bad["status"] == "failed"
    assert "method 'plugin-wrong-length' returned (105,) scores, expected (106,)" in bad["error"]
    assert "plugin-wrong-length" in (tmp_path / "latest" / "summary.md").read_text()


def test_time_limit_fails_the_cell_and_rerun_skips_finished_cells(tmp_path):
    args = ["--plugin", PLUGIN, "run", "--methods", "plugin-sleepy,random", *SMALL, "--set",
            "plugin-sleepy.seconds=5", "--time-limit", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    by_method = {r["method"]: r for r in records(tmp_path)}
    assert by_method["plugin-sleepy"]["status"] == "timeout"
    assert "time limit of 1 s exceeded" in by_method["plugin-sleepy"]["error"]
    assert main(args) == 0
    assert len(records(tmp_path)) == 2  # nothing recomputed


def test_grid_expands_list_parameters(tmp_path):
    assert main(["--plugin", PLUGIN, "run", "--methods", "plugin-norm", *SMALL, "--set",
                 "plugin-norm.power=1,2", "--seeds", "0,1", "--out", str(tmp_path)]) == 0
    rows = records(tmp_path)
    assert sorted((r["seed"], r["method_params"]["power"]) for r in rows) == [(0, 1), (0, 2), (1, 1), (1, 2)]
