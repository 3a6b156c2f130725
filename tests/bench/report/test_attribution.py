"""The verdict per regime: family bests, hostcp-fl against pipelines (cleaning vs selection), detection ranking."""

import math

import numpy as np
import pandas as pd
import pytest

from valbench.report.labels import Labels
from valbench.report.stats import (attribution, attribution_line, attribution_table, detection_ranking, detection_table, family_bests, mean_ci,
                            ordered_regimes, rank_analyses)

FL = ("pipeline (detector=enn, selector=facility-location)", "pipeline", {"detector": "enn", "selector": "facility-location"})
RND = ("pipeline (detector=enn, selector=random)", "pipeline", {"detector": "enn", "selector": "random"})
IDENTITIES = {FL[0]: FL[1:], RND[0]: RND[1:], "hostcp-fl": ("hostcp-fl", {}),
              "facility-location": ("facility-location", {}), "random": ("random", {})}
FAMILIES = {FL[0]: "pipeline", RND[0]: "pipeline", "hostcp-fl": "set-selection", "facility-location": "set-selection",
            "random": "reference"}
# accuracy per method and seed (the same at both budgets, so the area is that number)
LEVELS = {"hostcp-fl": [0.80, 0.82, 0.81], FL[0]: [0.85, 0.88, 0.86], RND[0]: [0.80, 0.81, 0.83],
          "facility-location": [0.70, 0.72, 0.69], "random": [0.75, 0.74, 0.78]}


def budgets(setting="d, noise 0.1", regime="noise 0.1"):
    rows = [(setting, regime, m, seed, f, acc) for m, accs in LEVELS.items() for seed, acc in enumerate(accs)
            for f in (0.1, 0.3)]
    return pd.DataFrame(rows, columns=["setting", "regime", "method", "seed", "fraction", "score"])


def test_family_bests_give_each_familys_best_and_its_paired_interval_to_the_best():
    rows = family_bests(budgets(), FAMILIES, {("d, noise 0.1", f): FL[0] for f in (0.1, 0.3)})
    at = rows[rows.fraction == 0.1].set_index("family")
    assert at.loc["pipeline", "method"] == FL[0] and at.loc["pipeline", "diff"] == (0.0, 0.0, 0.0)
    assert at.loc["set-selection", "n"] == 3
    assert at.loc["set-selection", "method"] == "hostcp-fl"
    expected = mean_ci(np.subtract(LEVELS["hostcp-fl"], LEVELS[FL[0]]))
    assert at.loc["set-selection", "diff"] == pytest.approx(expected)
    assert at.loc["reference", "method"] == "random" and set(at.best) == {FL[0]}


def test_attribution_separates_cleaning_from_selection():
    item = attribution(budgets(), IDENTITIES)[0]
    assert item.entries["best pipeline"] == FL[0] and item.entries["pipeline (same detector, random)"] == RND[0]
    left, right, hostcp, n = item.diffs["hostcp-fl - best pipeline"]
    assert (left, right, n) == ("hostcp-fl", FL[0], 3)
    assert hostcp == pytest.approx(mean_ci(np.subtract(LEVELS["hostcp-fl"], LEVELS[FL[0]])))
    assert hostcp[2] < 0  # hostcp-fl loses to clean-then-select here, every seed
    cleaning = item.diffs["cleaning (pipeline - facility-location)"][2]
    assert cleaning == pytest.approx(mean_ci(np.subtract(LEVELS[FL[0]], LEVELS["facility-location"])))
    selection = item.diffs["selection (facility-location - random, after cleaning)"][2]
    assert selection == pytest.approx(mean_ci(np.subtract(LEVELS[FL[0]], LEVELS[RND[0]])))
    # the best pipeline is the facility-location one: no duplicate row comparing hostcp-fl with it again
    assert "hostcp-fl - clean-then-facility-location" not in item.diffs


def test_one_paired_seed_is_not_tested_never_a_win():
    one_seed = budgets()
    one_seed = one_seed[one_seed.seed == 0]
    item = attribution(one_seed, IDENTITIES)[0]
    table = attribution_table([item])
    assert set(table.verdict) == {"1 seed: not tested"}
    assert not table["left - right, points [95% CI]"].str.contains(r"\[").any()
    assert "wins" not in attribution_line(item) and "loses" not in attribution_line(item)


def test_attribution_skips_settings_without_pipelines():
    frame = budgets()
    assert attribution(frame[~frame.method.str.startswith("pipeline")], IDENTITIES) == []


def cells(rows):
    return pd.DataFrame(rows, columns=["setting", "method", "family", "status", "seed", "mislabel_auc", "kmeans_f1"])


def test_detection_ranking_handles_clean_settings_and_leaves_pipelines_out():
    frame = cells([("clean", "enn", "valuation", "ok", 0, math.nan, math.nan),
                   ("clean", "cleanlab", "valuation", "ok", 0, math.nan, math.nan),
                   ("noisy", "enn", "valuation", "ok", 0, 0.9, 0.5), ("noisy", "enn", "valuation", "ok", 1, 0.8, 0.4),
                   ("noisy", "cleanlab", "valuation", "ok", 0, 0.95, 0.6),
                   ("noisy", "cleanlab", "valuation", "failed", 1, math.nan, math.nan),
                   ("noisy", FL[0], "pipeline", "ok", 0, 0.9, 0.5)])
    ranking = detection_ranking(frame)
    assert set(ranking.setting) == {"noisy"} and list(ranking.method) == ["cleanlab", "enn"]
    assert ranking.set_index("method").loc["enn", "AUC"] == pytest.approx(0.85)
    table = detection_table(ranking)
    assert list(table.columns) == ["dataset", "cleanlab", "enn", "best AUC"]
    assert table.iloc[0].cleanlab == "0.950 / 0.600 (1)" and table.iloc[0]["best AUC"] == "cleanlab (0.950)"
    assert detection_ranking(frame[frame.setting == "clean"]).empty
    assert detection_table(detection_ranking(frame[frame.setting == "clean"])).empty


def test_regimes_are_ranked_separately_clean_labels_first():
    assert ordered_regimes(["noise 0.2", "clean labels", "noise 0.1, learner mlp", "noise 0.1, learner logreg"]) == [
        "clean labels", "noise 0.1, learner logreg", "noise 0.1, learner mlp", "noise 0.2"]
    both = pd.concat([budgets(f"d{i}, noise 0.1") for i in range(3)] +
                     [budgets(f"d{i}, noise 0", "clean labels") for i in range(3)])
    analyses = rank_analyses(both)
    assert list(analyses) == ["clean labels", "noise 0.1"]
    assert all(a.table.shape == (9, 5) for a in analyses.values())  # 3 datasets x 3 seeds, 5 methods


def test_labels_add_the_learner_and_the_regime_where_a_run_has_several():
    records = [{"method": "enn", "dataset": "digits", "noise_rate": rate, "learner": {"name": learner}}
               for rate in (0.0, 0.1) for learner in ("logreg", "mlp")]
    labels = Labels(records)
    assert [labels.setting(r) for r in records] == [
        "digits, noise 0, learner logreg", "digits, noise 0, learner mlp", "digits, noise 0.1, learner logreg",
        "digits, noise 0.1, learner mlp"]
    assert [labels.regime(r) for r in records] == ["clean labels, learner logreg", "clean labels, learner mlp",
                                                   "noise 0.1, learner logreg", "noise 0.1, learner mlp"]
    one = Labels(records[:1])
    assert one.setting(records[0]) == "digits" and one.regime(records[0]) == "clean labels"


def test_a_run_with_clean_and_noisy_labels_reports_each_regime(tmp_path):
    from valbench.cli import main
    from valbench.report.build import build_report
    from valbench.report.readme import detection_markdown, verdict_lines

    status = main(["run", "--methods", "random,enn,facility-location,pipeline", "--datasets", "wine",
                   "--seeds", "0,1", "--noise", "0,0.2", "--budgets", "0.2,0.5", "--set", "pipeline.selector=facility-location,random",
                   "--out", str(tmp_path), "--run-id", "regimes", "--no-progress", "--no-cache"])
    assert status == 0
    run_dir = tmp_path / "regimes"
    summary = (run_dir / "summary.md").read_text()
    index = (run_dir / "index.html").read_text()
    assert summary.index("### Clean labels") < summary.index("### Noise 0.2")
    assert "<h3>Clean labels</h3>" in index and "<h3>Noise 0.2</h3>" in index
    assert "cleaning (pipeline - facility-location)" in summary and "selection (facility-location - random" in summary
    assert {p.name for p in run_dir.glob("ranks*.png")} <= {"ranks-clean-labels.png", "ranks-noise-0.2.png"}
    assert not (run_dir / "ranks.png").exists()
    report = build_report(run_dir)
    lines = verdict_lines(report)
    assert "**Clean labels**" in lines and "**Noise 0.2**" in lines and "where the win comes from" in lines
    assert "wine, noise 0.2" in detection_markdown(report) and "wine, noise 0 " not in detection_markdown(report)


def test_a_detector_with_parameter_variants_gets_its_column():
    """aum runs as "aum (keep=easy)" and "aum (keep=hard)": the table names it under "aum", its best-ranked variant."""
    frame = cells([("noisy", "aum (keep=easy)", "valuation", "ok", 0, 0.90, 0.5),
                   ("noisy", "aum (keep=hard)", "valuation", "ok", 0, 0.90, 0.5),
                   ("noisy", "aumlike", "valuation", "ok", 0, 0.99, 0.7),
                   ("noisy", "enn", "valuation", "ok", 0, 0.95, 0.6)])
    table = detection_table(detection_ranking(frame))
    assert list(table.columns) == ["dataset", "enn", "aum", "best AUC"]
    assert table.iloc[0].aum == "0.900 / 0.500 (3)" and table.iloc[0]["best AUC"] == "aumlike (0.990)"
