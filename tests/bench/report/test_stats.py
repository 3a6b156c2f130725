"""Statistics of a run: known answers for the paired intervals and the area, autorank's ranks, the verdict."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from valbench.report.plots import pareto_front
from valbench.report.stats import (area_summary, complete_block_table, mean_ci, paired_differences, rank_analysis,
                                   subset_value_area)


def frame(rows):
    return pd.DataFrame(rows, columns=["setting", "method", "seed", "fraction", "score"])


def test_paired_difference_to_random_is_the_t_interval_of_per_seed_differences():
    # differences per seed: 0.10, 0.20, 0.30 -> mean 0.2, sd 0.1, half-width t_{2,0.975} * 0.1 / sqrt(3)
    rows = [("d", "random", s, 0.1, 0.5 + 0.1 * s) for s in range(3)]
    rows += [("d", "good", s, 0.1, 0.5 + 0.1 * s + [0.1, 0.2, 0.3][s]) for s in range(3)]
    diff = paired_differences(frame(rows)).set_index("method").loc["good"]
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert diff["n"] == 3
    assert diff["diff"] == pytest.approx(0.2)
    assert (diff["low"], diff["high"]) == pytest.approx((0.2 - half, 0.2 + half))
    # unpaired, the between-seed spread (0.1 per seed) would widen it: pairing is what makes it this narrow
    assert half < 2 * scipy_stats.t.ppf(0.975, 4) * 0.1


def test_paired_differences_need_the_reference():
    assert paired_differences(frame([("d", "a", 0, 0.1, 0.5)])).empty


def test_area_is_the_trapezoid_over_the_budget_range():
    # fractions 0.1, 0.3, 0.5; accuracies 0.5, 0.7, 0.8: ((0.2 * 1.2 / 2) + (0.2 * 1.5 / 2)) / 0.4 = 0.675
    rows = [("d", "m", 0, f, a) for f, a in ((0.5, 0.8), (0.1, 0.5), (0.3, 0.7))]
    assert subset_value_area(frame(rows)).area.item() == pytest.approx(0.675)
    assert subset_value_area(frame([("d", "m", 0, 0.2, 0.6)])).area.item() == pytest.approx(0.6)  # one budget
    rows += [("d", "m", 1, f, a + 0.1) for f, a in ((0.5, 0.8), (0.1, 0.5), (0.3, 0.7))]
    summary = area_summary(frame(rows)).iloc[0]
    assert summary.area == pytest.approx(0.725) and summary.n == 2
    assert summary.high - summary.area == pytest.approx(12.706204736 * 0.05, rel=1e-6)


def test_mean_ci_collapses_for_one_value():
    assert mean_ci([0.4]) == (0.4, 0.4, 0.4)
    assert all(math.isnan(v) for v in mean_ci([]))


def toy_blocks(n_blocks=6, seeds=2):
    """Three methods whose accuracies are ordered good > middle > bad in every block, plus noise."""
    rng = np.random.default_rng(0)
    rows = []
    for block in range(n_blocks):
        for method, level in (("good", 0.9), ("middle", 0.8), ("bad", 0.6)):
            for seed in range(seeds):
                rows.append((f"set{block // 2}", method, seed, 0.1 * (1 + block % 2), level + rng.normal(0, 0.01)))
    return frame(rows)


def test_autorank_ranks_a_toy_table_in_order():
    analysis = rank_analysis(toy_blocks())
    assert analysis.result is not None
    assert analysis.mean_ranks.to_dict() == {"good": 1.0, "middle": 2.0, "bad": 3.0}
    assert analysis.result.omnibus == "friedman" and analysis.result.pvalue < 0.05


def test_rank_analysis_keeps_the_largest_complete_table_and_says_why_not():
    budgets = toy_blocks()
    partial = frame([("set0", "partial", s, 0.1, 0.99) for s in range(2)])
    table, dropped = complete_block_table(pd.concat([budgets, partial]))
    assert dropped == ["partial"] and table.shape == (6, 3)
    too_few = rank_analysis(toy_blocks(n_blocks=4))
    assert too_few.result is None and "at least 2 methods in 5" in too_few.reason


def test_budgets_of_one_dataset_and_seed_are_one_block_scored_by_the_area():
    rows = [("d", m, seed, f, level + f) for m, level in (("a", 0.5), ("b", 0.4)) for seed in range(3)
            for f in (0.1, 0.3, 0.5)]
    table, dropped = complete_block_table(frame(rows))
    assert table.shape == (3, 2) and not dropped  # three (dataset, seed) blocks, not nine (dataset, budget) rows
    assert table.loc[("d", 0), "a"] == pytest.approx(0.5 + 0.3)  # the area: mean score over the budget range
    assert "at least 2 methods in 5 (dataset, seed) blocks; this run has 2 in 3" in rank_analysis(frame(rows)).reason


def test_pareto_front_keeps_the_undominated_points_by_cost():
    cost = np.array([1.0, 2.0, 0.5, 3.0, 2.0])
    quality = np.array([0.7, 0.8, 0.6, 0.75, 0.8])
    assert pareto_front(cost, quality).tolist() == [2, 0, 1, 4]  # 3 is dearer and worse than 1


def test_an_all_tied_table_gets_a_reason_not_an_error():
    tied = frame([(f"set{b}", m, 0, 0.1, 0.5) for b in range(6) for m in "abc"])
    analysis = rank_analysis(tied)
    assert analysis.result is None and "tied" in analysis.reason


def test_two_methods_get_a_wilcoxon_test_and_a_rank_figure(tmp_path):
    from valbench.report.plots import rank_figure

    two = toy_blocks()
    analysis = rank_analysis(two[two.method != "middle"])
    assert analysis.result.omnibus == "wilcoxon" and analysis.result.cd is None
    import matplotlib.image

    pixels = matplotlib.image.imread(rank_figure(analysis, tmp_path / "ranks.png"))[..., :3]
    bar_grey = (abs(pixels - 0.55) < 0.03).all(axis=-1).sum()
    assert bar_grey > 2000  # the two bars are drawn, not an empty frame (autorank draws nothing for two)
