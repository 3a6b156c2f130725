"""Statistics of a run, numbers only: paired differences, the area under the subset-value curve, ranks.

All inputs are tidy frames of :mod:`valbench.report.frame` labelled by :mod:`valbench.report.labels`
(``setting``, ``method``, ``seed``, ...), so every variant of a method is its own entry. The value compared is
the column ``score``: the setting's judged metric (accuracy, or balanced accuracy on imbalanced data; see
:func:`valbench.metrics.judged_metric`). Seeds pair the comparisons: within a setting and seed every method sees
the same split, noise and learner, so a difference is taken per seed, on the seeds both sides have, before it
is averaged.

* :func:`mean_ci`: mean and Student-t interval over seeds, ``mean ± t_{n-1, 0.975} s / sqrt(n)``; no interval
  from fewer than two values (:data:`MIN_SEEDS`).
* :func:`paired_differences`: per (setting, budget, method) the mean over seeds of
  ``score(method, seed) - score(random, seed)`` with its t interval.
* :func:`subset_value_area`: one number per (setting, method, seed), the area under the subset-value
  curve over the budget fractions f_1 < ... < f_m by the trapezoid rule, divided by the budget range
  f_m - f_1: the mean score over the budget range (with a single budget, that score).
* :func:`rank_analysis`: ranks across independent blocks, one per (dataset setting, seed) of a regime, each
  method scored by its area over the budgets; Friedman test and Nemenyi critical difference by ``autorank``
  (Demšar 2006), on the largest complete table of methods x blocks. Budgets of one dataset and seed are the
  same subsets growing, so they are one block, never several.
* :func:`rank_analyses`, :func:`ordered_regimes`: the rank test within each regime (clean labels, each noise
  rate, each learner), never across them.
* :func:`family_bests`: per setting and budget the best entry of each family, paired against the best overall.
* :func:`attribution`: hostcp-fl against the best pipeline, and a pipeline's gain split into cleaning
  (vs its selector alone) and selection (vs the same cleaning then random), on the area paired over seeds.
* :func:`detection_ranking`, :func:`detection_table`: mislabel AUC and 2-means F1 per noisy setting, ranked.

Which entry is best, and which ties, is not decided here: :func:`valbench.report.verdict.choose` does it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

REFERENCE = "random"
LEVEL = 0.95
MIN_SEEDS = 2  # paired seeds below this: no interval, no wins / losses / ties ("1 seed: not tested")
MIN_BLOCKS = 5  # autorank needs at least five blocks (rows)
VALUE = "score"  # the column compared: the setting's judged metric (valbench.report.frame.budget_rows)
BLOCKS = "(dataset, seed)"  # what one block of the rank test is, within a regime (noise rate and learner fixed)


def mean_ci(values, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and the Student-t confidence interval of the mean; the interval collapses for a single value
    (callers say "not tested" there rather than print it: see :data:`MIN_SEEDS`)."""
    values = np.asarray(pd.Series(values).dropna(), dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = t_quantile(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


@functools.cache
def t_quantile(q: float, df: int) -> float:
    """Student's t quantile, computed once per (q, df): a report asks for the same few thousands of times."""
    return float(scipy_stats.t.ppf(q, df))


def _by_seed(budgets: pd.DataFrame) -> pd.DataFrame:
    """The score with rows (setting, fraction, seed) and one column per method."""
    return budgets.pivot_table(index=["setting", "fraction", "seed"], columns="method", values=VALUE,
                               aggfunc="mean", sort=False)


def paired_differences(budgets: pd.DataFrame, reference: str = REFERENCE, level: float = LEVEL) -> pd.DataFrame:
    """Per (setting, fraction, method): mean over seeds of the score minus the reference's, with its t interval.

    Only seeds where both ran are paired; ``n`` counts them. Empty when the run has no reference method.
    """
    columns = ["setting", "fraction", "method", "n", "diff", "low", "high"]
    wide = _by_seed(budgets)
    if reference not in wide.columns:
        return pd.DataFrame(columns=columns)
    diffs = wide.drop(columns=reference).sub(wide[reference], axis=0)
    rows = []
    for (setting, fraction), block in diffs.groupby(level=["setting", "fraction"], sort=False):
        for method in block.columns:
            values = block[method].dropna()
            if len(values):
                rows.append((setting, fraction, method, len(values), *mean_ci(values, level)))
    return pd.DataFrame(rows, columns=columns)


def subset_value_area(budgets: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, method, seed): trapezoid area under the score vs budget fraction, over the budget range.

    area = sum_i (f_{i+1} - f_i) (a_i + a_{i+1}) / 2 / (f_m - f_1), i.e. the curve's mean score (with a single
    budget, that score). Vectorised over all curves at once (a run has thousands); rows in first-seen order.
    """
    keys = ["setting", "method", "seed"]
    columns = [*keys, "area"]
    if budgets.empty:
        return pd.DataFrame(columns=columns)
    grouped = budgets.groupby(keys, sort=False)
    names = grouped.size().index
    curve = (budgets[["fraction", VALUE]].assign(_g=grouped.ngroup().to_numpy())
             .groupby(["_g", "fraction"], sort=True)[VALUE].mean().reset_index())
    g, f, a = curve._g.to_numpy(), curve.fraction.to_numpy(float), curve[VALUE].to_numpy(float)
    inside = g[1:] == g[:-1]  # consecutive points of the same curve
    pieces = np.where(inside, np.diff(f) * (a[1:] + a[:-1]) / 2, 0.0)
    integral = np.bincount(g[1:], weights=pieces, minlength=len(names))
    by_curve = curve.groupby("_g")
    span = (by_curve.fraction.max() - by_curve.fraction.min()).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        area = np.where(span > 0, integral / np.where(span > 0, span, 1.0), by_curve[VALUE].mean().to_numpy())
    frame = names.to_frame(index=False)
    frame["area"] = area
    return frame[columns]


def area_summary(budgets: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Per (setting, method): the area's mean over seeds with its t interval."""
    areas = subset_value_area(budgets)
    rows = [(s, m, len(g), *mean_ci(g.area, level)) for (s, m), g in areas.groupby(["setting", "method"], sort=False)]
    return pd.DataFrame(rows, columns=["setting", "method", "n", "area", "low", "high"])


# ---------------------------------------------------------------------------------------------------- ranks

@dataclass
class RankAnalysis:
    """The table autorank ranked and its result (``None`` with ``reason`` when no test was possible)."""

    table: pd.DataFrame  # rows: (setting, seed) blocks; columns: methods; the area over the budgets
    dropped: list[str]  # methods left out because they miss blocks the others have
    result: object | None
    reason: str = ""

    @property
    def mean_ranks(self) -> pd.Series:
        return self.result.rankdf["meanrank"].sort_values() if self.result is not None else pd.Series(dtype=float)

    @property
    def blocks(self) -> str:
        """What the test ranked, in words: "12 blocks (dataset, seed), 9 methods"."""
        return f"{self.table.shape[0]} blocks {BLOCKS}, {self.table.shape[1]} methods"


def complete_block_table(budgets: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The largest complete (blocks x methods) table of areas over the budgets, and the methods dropped.

    A block is one (setting, seed): independent splits, noise and learner initialisations. A Friedman test needs
    every method in every block. Methods missing from some datasets or seeds would empty the table, so among
    the candidate block sets (the blocks each method covers) the one maximising methods x blocks (then blocks)
    is kept, with every method that covers it.
    """
    table = subset_value_area(budgets).pivot_table(index=["setting", "seed"], columns="method", values="area",
                                                   aggfunc="mean", sort=False)
    present = table.notna()
    best: tuple[int, int, list[str], pd.Index] | None = None
    for method in table.columns:
        blocks = present.index[present[method]]
        methods = [m for m in table.columns if present.loc[blocks, m].all()]
        score = (len(methods) * len(blocks), len(blocks))
        if best is None or score > best[:2]:
            best = (*score, methods, blocks)
    if best is None:
        return table, []
    _, _, methods, blocks = best
    return table.loc[blocks, methods], sorted(set(table.columns) - set(methods))


def rank_analysis(budgets: pd.DataFrame, alpha: float = 0.05) -> RankAnalysis:
    """Friedman test over (setting, seed) blocks, scored by the area, with Nemenyi critical difference (autorank).

    Higher area ranks first (rank 1). autorank is forced to the non-parametric path (Friedman /
    Nemenyi): scores across datasets are neither normal nor homoscedastic.
    """
    table, dropped = complete_block_table(budgets)
    if table.shape[1] < 2 or table.shape[0] < MIN_BLOCKS:
        return RankAnalysis(table, dropped, None, f"a rank test needs at least 2 methods in {MIN_BLOCKS} "
                            f"{BLOCKS} blocks; this run has {table.shape[1]} in {table.shape[0]}")
    try:
        from autorank import autorank
    except ImportError:
        return RankAnalysis(table, dropped, None, "autorank is not installed (pip install autorank)")
    frame = table.copy()
    frame.columns = [str(c) for c in frame.columns]
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = autorank(frame.reset_index(drop=True), alpha=alpha, verbose=False, order="descending",
                              force_mode="nonparametric")
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as err:  # e.g. every method tied everywhere
        return RankAnalysis(table, dropped, None, f"autorank could not rank this table ({err})")
    if not np.isfinite(result.pvalue):
        return RankAnalysis(table, dropped, None, "the Friedman statistic is undefined (every block tied)")
    return RankAnalysis(table, dropped, result)


def interval_text(diff: tuple[float, float, float], n: int | None = None) -> str:
    """``+4.8 [+2.1, +7.5]`` in points; with ``n`` below :data:`MIN_SEEDS`, the difference alone and "not tested"."""
    mean, low, high = diff
    if math.isnan(mean):
        return "-"
    if n is not None and n < MIN_SEEDS:
        return f"{100 * mean:+.1f} ({n} seed: not tested)"
    return f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


# ---------------------------------------------------------------------------------------------------- attribution

def regime_of(frame: pd.DataFrame) -> dict[str, str]:
    """``{setting: regime}`` from a labelled frame (one regime for all when the frame has no regime column)."""
    if "regime" not in frame.columns:
        return {s: "" for s in frame.setting.unique()}
    return dict(zip(frame.setting, frame.regime))


def ordered_regimes(regimes) -> list[str]:
    """Distinct regimes, clean labels first, then by noise rate, then by learner."""
    def key(regime: str) -> tuple[float, str]:
        head = regime.split(",")[0]
        rate = 0.0 if not head or head.startswith("clean") else float(head.split()[-1])
        return rate, regime
    return sorted(set(regimes), key=key)


def rank_analyses(budgets: pd.DataFrame, alpha: float = 0.05) -> dict[str, RankAnalysis]:
    """:func:`rank_analysis` within each regime (clean labels, each noise rate, each learner) separately:
    a method that wins only by dropping flipped labels must not carry its noisy ranks into the clean ones."""
    if "regime" not in budgets.columns or budgets.regime.nunique() <= 1:
        return {(budgets.regime.iloc[0] if "regime" in budgets.columns and len(budgets) else ""):
                rank_analysis(budgets, alpha)}
    return {regime: rank_analysis(budgets[budgets.regime == regime], alpha)
            for regime in ordered_regimes(budgets.regime)}


FAMILY_ORDER = ("pipeline", "set-selection", "valuation", "peer", "reference")


def _family_position(family: str) -> tuple[int, str]:
    return (FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER), family)


def _top(means: pd.Series) -> str:
    """The highest mean, the label breaking exact ties: a deterministic pick among a family's members or pipelines."""
    return min(means.index, key=lambda m: (-means[m], str(m)))


def family_bests(budgets: pd.DataFrame, families: dict[str, str], bests: dict[tuple[str, float], str],
                 level: float = LEVEL) -> pd.DataFrame:
    """Per (setting, fraction, family): the family's best entry (highest mean score over seeds, then its label)
    and its paired difference to ``bests[(setting, fraction)]``, the verdict's best at that budget.

    ``diff``: the mean over the paired seeds of score(family best) - score(best), with its t interval and ``n``
    paired seeds (0 and n = the best's seeds for the best's own family). Budgets without a verdict are skipped.
    """
    columns = ["setting", "fraction", "family", "method", "value", "best", "diff", "n"]
    wide = _by_seed(budgets)
    rows = []
    for (setting, fraction), block in wide.groupby(level=["setting", "fraction"], sort=False):
        best = bests.get((setting, fraction))
        if best is None:
            continue
        means = block.mean().dropna()
        for family in sorted(set(families[m] for m in means.index), key=_family_position):
            top = _top(means[[families[m] == family for m in means.index]])
            paired = (block[top] - block[best]).dropna()
            diff = mean_ci(paired, level) if top != best else (0.0, 0.0, 0.0)
            rows.append((setting, fraction, family, top, means[top], best, diff, len(paired)))
    return pd.DataFrame(rows, columns=columns)


def family_best_table(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`family_bests` of one setting for display: rows budgets, a column per family."""
    if rows.empty:
        return pd.DataFrame()
    table: dict[str, dict[str, str]] = {}
    for row in rows.itertuples():
        text = f"{row.method} ({row.value:.3f})" + (
            "" if row.method == row.best else f" {interval_text(row.diff, row.n)}")
        table.setdefault(f"{100 * row.fraction:.3g}%", {})[f"best {row.family}"] = text
    frame = pd.DataFrame.from_dict(table, orient="index")
    frame.index.name = "budget"
    return frame.reset_index()


HOSTCP_FL = "hostcp-fl"
FACILITY_LOCATION = "facility-location"
DETECTORS = ("cleanlab", "enn", "aum", "odv-DataOob", "pydvl-data-oob", "knn-shapley", HOSTCP_FL)


@dataclass
class Attribution:
    """Per setting: does hostcp-fl beat the best pipeline, and does a pipeline's win come from cleaning or selection.

    ``entries``: role -> the entry playing it (``best pipeline`` -> ``pipeline (detector=enn, ...)``);
    ``areas``: the subset-value area (mean over seeds) of each entry; ``diffs``: paired differences of the
    area over seeds (mean, low, high) and the number of paired seeds, named by what they measure, with the two
    entries compared.
    """

    setting: str
    entries: dict[str, str]
    areas: dict[str, float]
    diffs: dict[str, tuple[str, str, tuple[float, float, float], int]]  # name -> (left, right, interval, seeds)


def _pipelines(identities: dict[str, tuple[str, dict]], labels: list[str], selector: str | None = None) -> list[str]:
    return [m for m in labels if identities.get(m, ("", {}))[0] == "pipeline"
            and (selector is None or identities[m][1].get("selector") == selector)
            and identities[m][1].get("detector") != "none"]


def attribution(budgets: pd.DataFrame, identities: dict[str, tuple[str, dict]],
                level: float = LEVEL) -> list[Attribution]:
    """Where a cleaning selector's win comes from, per setting, on the subset-value area (paired over seeds).

    Entries: ``hostcp-fl``; the best pipeline of any kind; the best pipeline(detector, facility-location) and,
    with the same detector, pipeline(detector, random); ``facility-location`` alone; ``random``. Differences:

    * hostcp-fl - best pipeline: does the convex program beat clean-then-select at all;
    * cleaning: pipeline(d, facility-location) - facility-location (same selector, suspects removed first);
    * selection: pipeline(d, facility-location) - pipeline(d, random) (same cleaning, a selector vs chance);
    * hostcp-fl - pipeline(d, facility-location): what hostcp-fl adds beyond cleaning then facility location.

    The best pipeline and detector are picked by mean area on the same data, which favours the pipeline: a
    hostcp-fl win against it is conservative. Settings without hostcp-fl or any pipeline are skipped.
    """
    areas = subset_value_area(budgets)
    out = []
    for setting, here in areas.groupby("setting", sort=False):
        wide = here.pivot_table(index="seed", columns="method", values="area")
        means = wide.mean()
        present = list(wide.columns)
        pipes = _pipelines(identities, present)
        if not pipes or (HOSTCP_FL not in present and FACILITY_LOCATION not in present):
            continue
        entries = {"best pipeline": _top(means[pipes])}
        fl_pipes = _pipelines(identities, present, FACILITY_LOCATION)
        if fl_pipes:
            clean_fl = _top(means[fl_pipes])
            entries["pipeline (·, facility-location)"] = clean_fl
            detector = identities[clean_fl][1].get("detector")
            with_random = [m for m in _pipelines(identities, present, "random")
                           if identities[m][1].get("detector") == detector]
            if with_random:
                entries["pipeline (same detector, random)"] = with_random[0]
        for name in (HOSTCP_FL, FACILITY_LOCATION, REFERENCE):
            if name in present:
                entries[name] = name

        def diff(left: str, right: str) -> tuple[str, str, tuple[float, float, float], int] | None:
            if left not in entries or right not in entries:
                return None
            a, b = entries[left], entries[right]
            paired = (wide[a] - wide[b]).dropna()
            return a, b, mean_ci(paired, level), len(paired)

        diffs = {name: d for name, d in (
            ("hostcp-fl - best pipeline", diff(HOSTCP_FL, "best pipeline")),
            ("cleaning (pipeline - facility-location)", diff("pipeline (·, facility-location)", FACILITY_LOCATION)),
            ("selection (facility-location - random, after cleaning)",
             diff("pipeline (·, facility-location)", "pipeline (same detector, random)")),
            ("hostcp-fl - clean-then-facility-location", diff(HOSTCP_FL, "pipeline (·, facility-location)")
             if entries.get("pipeline (·, facility-location)") != entries["best pipeline"] else None),
        ) if d is not None}
        out.append(Attribution(setting, entries, {m: float(means[m]) for m in entries.values()}, diffs))
    return out


def _verb(interval: tuple[float, float, float], n: int) -> str:
    """wins / loses (the 95 % interval excludes 0) / ties; "not tested" below :data:`MIN_SEEDS` paired seeds."""
    mean, low, high = interval
    if math.isnan(mean):
        return "?"
    if n < MIN_SEEDS:
        return f"{n} seed: not tested"
    if low > 0:
        return "wins"
    if high < 0:
        return "loses"
    return "ties"


def attribution_line(item: Attribution) -> str:
    """One sentence: hostcp-fl against the best pipeline, then the cleaning and the selection gains."""
    parts = []
    for name, (left, right, interval, n) in item.diffs.items():
        verb = _verb(interval, n)
        parts.append(f"{name}: {left} vs {right} {interval_text(interval, n)} points"
                     + ("" if n < MIN_SEEDS else f" ({verb})"))
    return "; ".join(parts) if parts else "no pipeline to compare"


def attribution_table(items: list[Attribution]) -> pd.DataFrame:
    """One row per (setting, comparison): the two entries, their areas and the paired difference in points."""
    rows = []
    for item in items:
        for name, (left, right, interval, n) in item.diffs.items():
            rows.append({"dataset": item.setting, "comparison": name, "left": f"{left} ({item.areas[left]:.3f})",
                         "right": f"{right} ({item.areas[right]:.3f})",
                         "left - right, points [95% CI]": interval_text(interval, n), "verdict": _verb(interval, n)})
    return pd.DataFrame(rows, columns=["dataset", "comparison", "left", "right", "left - right, points [95% CI]",
                                       "verdict"])


def detection_ranking(cells: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Per setting with flipped labels: every method with a mislabel AUC, ranked by mean AUC (1 = best), with
    the 2-means F1. Pipelines are left out: their scores are their detector's. Noise-free settings have no
    AUC and no rows."""
    columns = ["setting", "rank", "method", "AUC", "AUC low", "AUC high", "F1", "n"]
    ok = cells[(cells.status == "ok") & (cells.family != "pipeline")].dropna(subset=["mislabel_auc"])
    rows = []
    for setting, here in ok.groupby("setting", sort=False):
        stats_ = [(m, *mean_ci(g.mislabel_auc, level), float(g.kmeans_f1.mean()) if g.kmeans_f1.notna().any()
                   else math.nan, len(g)) for m, g in here.groupby("method", sort=False)]
        stats_.sort(key=lambda s: -s[1])
        rows += [(setting, i + 1, *s) for i, s in enumerate(stats_)]
    return pd.DataFrame(rows, columns=columns)


def detection_table(ranking: pd.DataFrame, detectors: tuple[str, ...] = DETECTORS) -> pd.DataFrame:
    """Rows: noisy settings; columns: the named label-error detectors present, each "AUC / F1 (rank)", and the
    best AUC of any method. Empty when none of the named detectors ran (the results table has every AUC)."""
    def variants(detector: str, methods) -> list[str]:  # "aum" also names "aum (keep=easy)" and its siblings
        return [m for m in methods if m == detector or m.startswith(f"{detector} (")]

    present = [d for d in detectors if variants(d, set(ranking.method))]
    rows = []
    if not present:
        return pd.DataFrame(columns=["dataset", "best AUC"])
    for setting, here in ranking.groupby("setting", sort=False):
        here = here.set_index("method")
        row = {"dataset": setting}
        for d in present:
            found = variants(d, here.index)  # the best-ranked variant (keep= changes subsets, not scores)
            best = min(found, key=lambda m: here["rank"][m]) if found else None
            row[d] = (f"{here.AUC[best]:.3f} / {here.F1[best]:.3f} ({int(here['rank'][best])})" if best else "-")
        row["best AUC"] = f"{here.AUC.idxmax()} ({here.AUC.max():.3f})"
        rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", *present, "best AUC"])
