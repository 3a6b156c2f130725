"""Agreement and stability of the stored values: checked on frames whose answers are known by construction."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from valbench.cli import main
from valbench.report.stability import method_agreement, seed_stability, stability_column, stability_tables


def frame(method, seed, row_ids, scores, budget=0.5, kind="pool"):
    scores = np.asarray(scores, dtype=float)
    k = int(round(budget * len(scores)))
    top = np.zeros(len(scores), dtype=bool)
    top[np.argsort(-scores)[:k]] = True
    return pd.DataFrame({"row_id": row_ids, "row_id_kind": kind, "score": scores, f"in_subset_{budget:g}": top,
                         "method": method, "dataset": "d", "seed": seed, "noise_rate": 0.0, "params": "{}"})


def test_seed_stability_compares_the_rows_both_seeds_hold():
    rng = np.random.default_rng(0)
    value = rng.normal(size=20)  # a fixed value per pool row
    rows0, rows1 = np.arange(0, 12), np.arange(6, 20)  # rows 6..11 in both train splits
    scores = pd.concat([
        frame("same", 0, rows0, value[rows0]), frame("same", 1, rows1, value[rows1]),  # a deterministic method
        frame("flip", 0, rows0, value[rows0]), frame("flip", 1, rows1, -value[rows1]),  # reversed on seed 1
    ])
    result = seed_stability(scores).set_index("method")
    assert result.spearman["same"] == pytest.approx(1.0) and result.spearman["flip"] == pytest.approx(-1.0)
    # top-half overlap on the common rows, by hand: the subsets are each seed's own top 6 of 12 / top 7 of 14
    top0 = set(rows0[np.argsort(-value[rows0])[:6]]) & set(range(6, 12))
    top1_same = set(rows1[np.argsort(-value[rows1])[:7]]) & set(range(6, 12))
    top1_flip = set(rows1[np.argsort(value[rows1])[:7]]) & set(range(6, 12))
    assert result.overlap["same"] == pytest.approx(len(top0 & top1_same) / min(len(top0), len(top1_same)))
    assert result.overlap["flip"] == pytest.approx(len(top0 & top1_flip) / min(len(top0), len(top1_flip)))
    column = stability_column(seed_stability(scores)).set_index("method").stability
    assert column["same"].startswith("stable (") and column["flip"].startswith("unstable (")


def test_rows_are_matched_by_id_in_any_order_as_an_inner_merge_matches_them():
    """Each seed's rows shuffled, a third of each only in one split: the values equal those computed on a pandas
    inner merge on row_id (the reference), bitwise."""
    rng = np.random.default_rng(4)
    value = rng.normal(size=300)
    rows0, rows1 = rng.permutation(np.arange(0, 200)), rng.permutation(np.arange(100, 300))
    scores = pd.concat([frame("m", 0, rows0, value[rows0] + rng.normal(size=200)),
                        frame("m", 1, rows1, value[rows1] + rng.normal(size=200))])
    both = scores[scores.seed == 0].merge(scores[scores.seed == 1], on="row_id", suffixes=("_a", "_b"))
    top_a, top_b = both["in_subset_0.5_a"], both["in_subset_0.5_b"]
    result = seed_stability(scores).iloc[0]
    assert len(both) == 100
    assert result.spearman == float(spearmanr(both.score_a, both.score_b).statistic)
    assert result.overlap == (top_a & top_b).sum() / min(top_a.sum(), top_b.sum())


def test_ids_that_name_different_rows_per_seed_are_never_compared_across_seeds():
    scores = pd.concat([frame("m", s, np.arange(10), np.arange(10.0), kind="split") for s in (0, 1)])
    assert seed_stability(scores).empty


def test_method_agreement_on_one_seed():
    rng = np.random.default_rng(1)
    value = rng.normal(size=30)
    noisy = value + rng.normal(size=30)
    scores = pd.concat([frame("a", 0, np.arange(30), value), frame("b", 0, np.arange(30), noisy),
                        frame("a", 1, np.arange(30), -value)])
    result = method_agreement(scores)
    assert len(result) == 1 and result.seed[0] == 0
    assert result.spearman[0] == pytest.approx(spearmanr(value, noisy).statistic)
    top_a, top_b = set(np.argsort(-value)[:15]), set(np.argsort(-noisy)[:15])
    assert result["overlap_0.5"][0] == pytest.approx(len(top_a & top_b) / 15)


def test_a_run_ranks_a_deterministic_method_steadier_than_random(tmp_path):
    assert main(["run", "--methods", "random,knn-shapley", "--datasets", "breast_cancer", "--seeds", "0,1,2",
                 "--budgets", "0.1,0.3", "--no-progress", "--no-cache", "--out", str(tmp_path), "--run-id", "r"]) == 0
    tables = stability_tables(tmp_path / "r")
    seeds = tables["seeds"].set_index(["method", "budget"])
    assert (seeds.n_pairs == 3).all()
    assert abs(seeds.spearman["random", 0.1]) < 0.2  # random scores: no rank correlation between seeds
    assert seeds.spearman["knn-shapley", 0.1] > 0.3 and seeds.overlap["knn-shapley", 0.1] > seeds.overlap["random", 0.1]
    assert tables["column"].set_index("method").stability["random"].startswith("unstable")
    assert set(tables["methods"][["method_a", "method_b"]].iloc[0]) == {"knn-shapley", "random"}
    # the report reads the same numbers: the answer table's column for the recommended entry, and its section
    from valbench.report.build import build_report
    from valbench.report.tables import answer_table

    report = build_report(tmp_path / "r")
    column = answer_table(report.verdict, report.entry_stability)["values across seeds"]
    best = report.verdict.settings[0].best.label
    expected = tables["column"].set_index("method").stability[best]
    assert column.iloc[0] == expected and expected.split()[0] in ("stable", "unstable")
    assert "Stability of the values" in (tmp_path / "r" / "index.html").read_text()
