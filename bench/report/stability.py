"""Agreement and stability of the values themselves, from a run's scores files (:mod:`valbench.values`).

Two questions nobody should skip before trusting a ranking:

* **Between seeds** (per dataset, regime and entry): how much does the ranking move when only the seed changes
  (the split, the flipped labels, the method's own randomness)? For every pair of seeds, on the rows both train
  splits hold (``row_id_kind == "pool"``: ids that name the same row under every seed), the Spearman correlation
  of the scores and the top-k overlap at each budget, ``|A ∩ B| / min(|A|, |B|)`` of the two subsets restricted
  to those rows (chance: about the budget's fraction). Mean over seed pairs with a Student-t interval (pairs
  share seeds, so the interval is optimistic: read it as a spread).
* **Between methods** (one seed): the same two numbers for every pair of entries on the same train split.

:func:`stability_column` condenses the first into the one-screen table's column: ``stable`` when the mean top-k
overlap at the budget nearest :data:`LABEL_BUDGET` is at least :data:`STABLE_OVERLAP` (a top 10 % that changes
by half or more from seed to seed is ``unstable``), with the number.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from valbench.report.stats import mean_ci
from valbench.protocol import DataError
from valbench.values import read_scores

ENTRY = ["dataset", "noise_rate", "method", "params"]
STABLE_OVERLAP = 0.5
LABEL_BUDGET = 0.1


def subset_columns(scores: pd.DataFrame) -> dict[float, str]:
    """Budget -> its ``in_subset_<budget>`` column."""
    return {float(c.removeprefix("in_subset_")): c for c in scores.columns if c.startswith("in_subset_")}


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    smaller = min(a.sum(), b.sum())
    return float((a & b).sum() / smaller) if smaller else np.nan


class _Values:
    """One cell's scores as arrays: row ids, scores, and the in-subset mask of each budget present."""

    def __init__(self, frame: pd.DataFrame, budgets: dict[float, str]) -> None:
        self.row_id = frame.row_id.to_numpy()
        self.score = frame.score.to_numpy()
        self.subsets = {b: frame[c].to_numpy(bool) for b, c in budgets.items() if c in frame}


def _matched(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``left`` and ``right`` of the ids both hold (ids unique within each), in ``left``'s order:
    the rows and order of an inner merge on the id."""
    if not len(left) or not len(right):
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    order = np.argsort(right, kind="stable")
    at = np.minimum(np.searchsorted(right, left, sorter=order), len(right) - 1)
    found = right[order[at]] == left
    return np.flatnonzero(found), order[at[found]]


def _compare(left: _Values, right: _Values) -> dict[str, float]:
    """Spearman of the scores and the top-k overlap per budget on the rows both cells hold (by row id)."""
    li, ri = _matched(left.row_id, right.row_id)
    a, b = left.score[li], right.score[ri]
    out = {"n_rows": len(li), "spearman": np.nan}
    if len(li) > 2 and len(np.unique(a)) > 1 and len(np.unique(b)) > 1:
        out["spearman"] = float(spearmanr(a, b).statistic)
    for budget, mask in left.subsets.items():
        if budget in right.subsets:
            out[f"overlap_{budget:g}"] = _overlap(mask[li], right.subsets[budget][ri])
    return out


def _summarise(pairs: pd.DataFrame, keys: list[str], budgets: dict[float, str]) -> pd.DataFrame:
    """Per ``keys`` and budget: mean and interval of Spearman and of the top-k overlap over the pairs."""
    rows = []
    for key, group in pairs.groupby(keys, sort=True, dropna=False):
        spearman = mean_ci(group.spearman)
        for budget in budgets:
            overlap = mean_ci(group.get(f"overlap_{budget:g}", pd.Series(dtype=float)))
            rows.append({**dict(zip(keys, key)), "budget": budget, "spearman": spearman[0],
                         "spearman_low": spearman[1], "spearman_high": spearman[2], "overlap": overlap[0],
                         "overlap_low": overlap[1], "overlap_high": overlap[2], "n_pairs": len(group)})
    return pd.DataFrame(rows)


def seed_stability(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, noise_rate, method, params, budget): the ranking's agreement with itself across seeds."""
    budgets = subset_columns(scores)
    # only rows whose id names the same row under every seed compare; files written before ``row_id_kind``
    # existed do not say so, and are left out rather than guessed
    pooled = scores[scores.row_id_kind == "pool"] if "row_id_kind" in scores else scores.iloc[:0]
    pairs = []
    for key, entry in pooled.groupby(ENTRY, sort=False):
        by_seed = {seed: _Values(frame, budgets) for seed, frame in entry.groupby("seed")}
        for a, b in itertools.combinations(sorted(by_seed), 2):
            pairs.append({**dict(zip(ENTRY, key)), "seed_a": a, "seed_b": b, **_compare(by_seed[a], by_seed[b])})
    if not pairs:
        return pd.DataFrame(columns=[*ENTRY, "budget", "spearman", "overlap", "n_pairs"])
    return _summarise(pd.DataFrame(pairs), ENTRY, budgets)


def method_agreement(scores: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
    """Per (dataset, noise_rate) on one seed (default: the smallest): every pair of entries' Spearman and
    top-k overlap at each budget, on the same train split."""
    budgets = subset_columns(scores)
    seed = int(scores.seed.min()) if seed is None else seed
    one = scores[scores.seed == seed].assign(entry=lambda f: f.method + " " + f.params)
    rows = []
    for (dataset, noise), setting in one.groupby(["dataset", "noise_rate"], sort=True):
        entries = {entry: _Values(frame, budgets) for entry, frame in setting.groupby("entry")}
        variants = setting.groupby("method").params.nunique()  # parameters named only where a method has several
        names = {entry: frame.method.iloc[0] + (f" {frame.params.iloc[0]}" if variants[frame.method.iloc[0]] > 1 else "")
                 for entry, frame in setting.groupby("entry")}
        for a, b in itertools.combinations(sorted(entries), 2):
            rows.append({"dataset": dataset, "noise_rate": noise, "seed": seed, "method_a": names[a],
                         "method_b": names[b], **_compare(entries[a], entries[b])})
    return pd.DataFrame(rows)


def stability_column(stability: pd.DataFrame, budget: float = LABEL_BUDGET,
                     threshold: float = STABLE_OVERLAP) -> pd.DataFrame:
    """Per (dataset, noise_rate, method, params): ``stability`` = "stable (0.82)" / "unstable (0.31)", the mean
    top-k overlap between seeds at the run's budget nearest ``budget``; empty text where no pair of seeds ran."""
    if stability.empty:
        return pd.DataFrame(columns=[*ENTRY, "overlap", "stability"])
    nearest = min(stability.budget.unique(), key=lambda b: (abs(b - budget), b))
    rows = stability[stability.budget == nearest][[*ENTRY, "overlap"]].copy()
    rows["stability"] = [("" if np.isnan(v) else f"{'stable' if v >= threshold else 'unstable'} ({v:.2f})")
                         for v in rows.overlap]
    return rows.reset_index(drop=True)


def stability_tables(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The three frames of a run: ``seeds`` (:func:`seed_stability`), ``methods`` (:func:`method_agreement`)
    and ``column`` (:func:`stability_column`); empty frames when the run kept no scores."""
    try:
        scores = read_scores(run_dir)
    except DataError:  # a run without scores files (--no-scores, older runs) has no such section
        return {"seeds": pd.DataFrame(), "methods": pd.DataFrame(), "column": pd.DataFrame()}
    seeds = seed_stability(scores)
    return {"seeds": seeds, "methods": method_agreement(scores), "column": stability_column(seeds)}
