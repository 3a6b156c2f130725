"""Variants are methods everywhere: a two-variant grid gives two labelled entries in every output."""

import pandas as pd

from valbench.cli import main
from valbench.report.build import build_report
from valbench.report.stats import area_summary

VARIANTS = ("loo (utility=accuracy)", "loo (utility=neg_loss)")


def test_a_parameter_grid_is_two_methods_in_every_output(tmp_path, capsys):
    status = main(["run", "--methods", "loo", "--datasets", "wine", "--seeds", "0,1", "--budgets", "0.2,0.5",
                   "--set", "loo.utility=accuracy,neg_loss", "--out", str(tmp_path), "--run-id", "grid",
                   "--no-progress", "--no-cache"])
    assert status == 0
    run_dir = tmp_path / "grid"
    terminal = capsys.readouterr().out
    summary = (run_dir / "summary.md").read_text()
    index = (run_dir / "index.html").read_text()
    results = pd.read_csv(run_dir / "results.csv")
    assert "wine" in terminal and str(run_dir / "index.html") in terminal
    assert "All results" not in terminal  # the terminal shows the one-screen answer only
    for variant in VARIANTS:
        # one row of the results table per variant, never their blend
        assert sum(line.startswith("| wine ") and f" {variant} " in line for line in summary.splitlines()) == 1
        assert variant in index
    assert sorted(results.method.unique()) == list(VARIANTS)
    assert set(results.method_params) == {f"block=32, newton_max_params=256, utility={u}, warm_start=True"
                                          for u in ("accuracy", "neg_loss")}

    report = build_report(run_dir)
    assert sorted(area_summary(report.frames.budgets).method) == list(VARIANTS)
    setting, = report.verdict.settings
    assert len(setting.per_budget) == 2 and {b.choice.best for b in setting.per_budget} <= set(VARIANTS)
    assert setting.choice.best in VARIANTS
