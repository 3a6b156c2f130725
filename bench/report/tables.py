"""The report's tables and sentences as text: the one place for headings, formats and flags.

Everything here reads the frozen :class:`valbench.report.verdict.Verdict` (and, for the full results table, the
frames it was built from); nothing recomputes a best, a tie or an interval. The HTML, ``summary.md``, the
terminal and the README blocks all print these, so they name the same best, ties and cheapest entry.

* :func:`answer_table`: the one-screen answer, one row per regime x dataset (x learner);
* :func:`headline`: the setting's verdict in one sentence, its first words the strongest claim the data allow;
* :func:`entries_table`, :func:`budget_table`: the details of one setting;
* :func:`results_table`: every (dataset, method) with its metrics, mean ± standard error over seeds.
"""

from __future__ import annotations

from typing import Mapping

import math
import re

import pandas as pd

from valbench.report.frame import METRIC_NAMES, OK, OVER_CAP, RunFrames
from valbench.report.stats import MIN_SEEDS, area_summary, interval_text
from valbench.report.verdict import RANDOM, SettingVerdict, Verdict

RANDOM_WITHIN = "random is within one point: no method needed here"
AT_CONSTANT = "no better than the constant majority-class predictor"
NOT_TESTED = "not tested"
GAIN_UNRESOLVED = "not separable from random (the gain interval reaches 0)"
ANSWER_COLUMNS = ["regime", "dataset", "judged on", "recommended", "gain over random, points [95% CI] (seeds)",
                  "cost", "cheapest within one point", "values across seeds", "flags"]  # "dataset": the setting without its regime


def seeds_text(n: int) -> str:
    """``1 seed`` / ``3 seeds``."""
    return f"{n} seed{'s' * (n != 1)}"


def cost_text(cost: float, unit: str) -> str:
    """``5.8 fits`` (learner fits on the full train split) or ``0.95 CPU s`` where the run did not time a fit."""
    if math.isnan(cost):
        return "not recorded"
    return f"{cost:.3g} fits" if unit == "learner fits" else f"{cost:.3g} CPU s"


def gain_text(verdict: SettingVerdict) -> str:
    """The best's gain over random in points with its interval and seeds; no interval below two paired seeds."""
    if verdict.choice.best == RANDOM:
        return "random is the best"
    mean = verdict.gain[0]
    if math.isnan(mean):
        return "no random to compare"
    if not verdict.tested:
        return f"{100 * mean:+.1f} ({seeds_text(verdict.gain_seeds)}: {NOT_TESTED})"
    return f"{interval_text(verdict.gain)} ({seeds_text(verdict.gain_seeds)})"


def metric_text(verdict: SettingVerdict) -> str:
    """The judged metric's name; ``accuracy*`` where the records could not say whether the data are imbalanced."""
    return METRIC_NAMES[verdict.metric] + ("*" if verdict.metric_note else "")


def footnotes(verdict: Verdict, derived: int = 0) -> list[str]:
    """The notes the answer table's ``*`` refers to (one per distinct note, with its datasets), and where the
    class shares came from when the cells did not record them."""
    notes: dict[str, list[str]] = {}
    for s in verdict.settings:
        if s.metric_note:
            notes.setdefault(s.metric_note, []).append(s.setting)
    out = [f"* {note}: {', '.join(settings)}" for note, settings in notes.items()]
    if derived:
        out.append(f"{derived} cells did not record their class shares: derived from the data when rendering "
                   "(the constant majority-class predictor's score on each test split)")
    return out


def dataset_text(verdict: SettingVerdict) -> str:
    """The setting's label without its regime (noise rate, learner), which the regime column already gives."""
    return re.sub(r"(, noise [^,]+)?(, learner .+)?$", "", verdict.setting)


def short_text(verdict: SettingVerdict) -> str:
    """Entries with fewer ok seeds than the grid asks for: ``craig 2/3``; a large group at one count is counted,
    not listed (``glister 0/3; 22 methods 1/3``)."""
    if not verdict.short:
        return ""
    expected = verdict.expected_seeds
    n_all = len({e.label for e in verdict.entries} | {m for m, _ in verdict.short})
    groups: dict[int, list[str]] = {}
    for label, n in verdict.short:
        groups.setdefault(n, []).append(label)
    parts = []
    for n, labels in sorted(groups.items()):
        if len(labels) > 3:
            parts.append(f"{'every method' if len(labels) == n_all else f'{len(labels)} methods'} {n}/{expected}")
        else:
            parts.append(", ".join(f"{m} {n}/{expected}" for m in labels))
    return "seeds below the grid's: " + "; ".join(parts)


def flags(verdict: SettingVerdict) -> list[str]:
    """What a reader must know before trusting the row: random within a point, a gain whose interval reaches 0,
    the constant floor, exact ties, partial seeds or cells, methods over the cap."""
    out = []
    if verdict.at_constant:
        out.append(f"{AT_CONSTANT} ({verdict.constant:.3f})")
    if verdict.choice.random_within and verdict.choice.best != RANDOM:
        out.append("random within one point")
    if verdict.gain_unresolved:
        out.append(GAIN_UNRESOLVED)
    if len(verdict.choice.ties) > 1:
        out.append("exact tie: " + ", ".join(verdict.choice.ties))
    if verdict.short:
        out.append(short_text(verdict))
    if verdict.not_run:
        out.append(f"partial: {verdict.not_run} cells not run")
    if verdict.over_cap:
        out.append("over cap: " + ", ".join(f"{m} ({n})" for m, n in verdict.over_cap))
    return out


def recommended_text(verdict: SettingVerdict) -> str:
    """The best with its value; first, where it applies, that no winner is named or that random will do."""
    if verdict.recommended is None:
        return f"none ({AT_CONSTANT})"
    best = f"{verdict.best.label} ({verdict.best.value:.3f})"
    if verdict.choice.random_within and verdict.choice.best != RANDOM:
        return f"{RANDOM_WITHIN}; best: {best}"
    return best


def cheapest_text(verdict: SettingVerdict) -> str:
    """The cheapest entry within one point (random included) with its value and cost, or "the best itself"."""
    cheap = verdict.cheapest
    if cheap.label == verdict.best.label:
        return "the best itself"
    return f"{cheap.label} ({cheap.value:.3f}, {cost_text(cheap.cost, verdict.cost_unit)})"


def headline(verdict: SettingVerdict) -> str:
    """The setting's verdict in one sentence; its first words are the strongest claim the data allow."""
    best = verdict.best
    parts = []
    if verdict.at_constant:
        parts.append(f"{AT_CONSTANT} ({verdict.constant:.3f} {METRIC_NAMES[verdict.metric]}): no winner named; "
                     f"highest: {best.label} ({best.value:.3f})")
    elif verdict.choice.best == RANDOM:
        parts.append(f"random is the best ({best.value:.3f}): no method measured beats it")
    elif verdict.choice.random_within:
        parts.append(f"{RANDOM_WITHIN}; best: {best.label} ({best.value:.3f}), random "
                     f"{verdict.random.value:.3f}")
    else:
        parts.append(f"best: {best.label} ({best.value:.3f}, {cost_text(best.cost, verdict.cost_unit)})")
    if len(verdict.choice.ties) > 1:
        parts.append("tied exactly with " + ", ".join(t for t in verdict.choice.ties if t != best.label)
                     + " (the tie goes to the cheaper, then the name)")
    if verdict.choice.best != RANDOM:  # random has no gain over itself, and nothing is cheaper than it
        parts.append(f"gain over random {gain_text(verdict)}"
                     + (": the seeds measured cannot tell it from random" if verdict.gain_unresolved else ""))
        parts.append(f"cheapest within one point: {cheapest_text(verdict)}" if verdict.cheapest.label != best.label
                     else "nothing cheaper is within one point")
    parts.append(f"judged on {metric_text(verdict)}, area over the budgets")
    return "; ".join(parts) + "."


def answer_table(verdict: Verdict, stability: Mapping[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """The one-screen answer: one row per regime x dataset (x learner), clean labels first, datasets in the
    frames' fixed order; indexed by the setting's full label (the key of its details). ``stability``: the
    recommended entry's ranking stability across seeds, by (setting, label) (:attr:`Report.entry_stability`);
    "-" where the run kept no values or ran one seed."""
    stability = stability or {}
    rows, index = [], []
    for regime in verdict.regimes():
        for s in verdict.in_regime(regime):
            rows.append([regime, dataset_text(s), metric_text(s), recommended_text(s), gain_text(s),
                         cost_text(s.best.cost, s.cost_unit), cheapest_text(s),
                         stability.get((s.setting, s.best.label), "-"), "; ".join(flags(s)) or "-"])
            index.append(s.setting)
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS, index=pd.Index(index, name="setting"))


def entries_table(verdict: SettingVerdict) -> pd.DataFrame:
    """Every entry of the setting: its judged value, seeds (flagged below the grid's), cost; best first."""
    short = dict(verdict.short)
    rows = []
    for e in verdict.entries:
        seeds = f"{e.n_seeds}/{verdict.expected_seeds}" + (" (fewer than the grid)" if e.label in short else "")
        rows.append([e.label, e.family, f"{e.value:.3f}", seeds, cost_text(e.cost, verdict.cost_unit)])
    for label, n in verdict.over_cap:
        if label not in {e.label for e in verdict.entries}:
            rows.append([label, "-", OVER_CAP, f"0/{verdict.expected_seeds}", OVER_CAP])
    return pd.DataFrame(rows, columns=["method", "family", f"{METRIC_NAMES[verdict.metric]} (area)", "seeds",
                                       "cost"])


def budget_table(verdict: SettingVerdict) -> pd.DataFrame:
    """Per budget: the best by the same rule, its exact ties, the entries the data cannot separate from it, and
    its paired difference to random (no interval below two paired seeds)."""
    rows = []
    for b in verdict.per_budget:
        tested = b.vs_random_seeds >= MIN_SEEDS
        rows.append([f"{100 * b.fraction:.3g}%", f"{b.choice.best} ({b.best_value:.3f})",
                     ", ".join(t for t in b.choice.ties if t != b.choice.best) or "-",
                     ", ".join(b.not_separable) or ("-" if tested else f"{NOT_TESTED} ({seeds_text(b.vs_random_seeds)})"),
                     interval_text(b.vs_random, b.vs_random_seeds) if b.choice.best != RANDOM else "random is the best"])
    return pd.DataFrame(rows, columns=["budget", "best", "tied exactly", "not separable from the best (95%)",
                                       "best - random, points [95% CI]"])


# ---------------------------------------------------------------------------------------------------- results

def mean_se(values: pd.Series, digits: int = 3) -> str:
    """``mean ± standard error`` over seeds; the standard error of one value is not shown (one seed: ``n=1``)."""
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if values.empty:
        return "-"
    if len(values) < MIN_SEEDS:
        return f"{values.mean():.{digits}f} (n=1)"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1) / math.sqrt(len(values)):.{digits}f}"


def _budget_heading(budget: float) -> str:
    return f"acc@{budget * 100:.3g}%" if budget <= 1 else f"acc@{int(budget)} pts"


def results_table(frames: RunFrames, expected_seeds: int | None = None) -> pd.DataFrame:
    """Rows (dataset, method): accuracy per budget and on all data, balanced accuracy on all data, the judged
    area with its 95 % interval, mislabel AUC, 2-means F1, median fit seconds, and ok seeds out of the grid's."""
    cells, budgets = frames.cells, frames.budgets
    keys = ["setting", "method"]
    table = pd.DataFrame(index=pd.MultiIndex.from_frame(cells[keys].drop_duplicates()))
    if not budgets.empty:
        by_budget = budgets.pivot_table(index=keys, columns="budget", values="accuracy", aggfunc=mean_se, sort=False)
        by_budget.columns = [_budget_heading(b) for b in by_budget.columns]
        table = table.join(by_budget)
    ok = cells[cells.status == OK].groupby(keys, sort=False)
    table = table.join(ok.full_accuracy.agg(mean_se).rename("acc (all data)"))
    table = table.join(ok.full_balanced_accuracy.agg(mean_se).rename("balanced acc (all data)"))
    if not budgets.empty:
        areas = area_summary(budgets).set_index(keys)
        text = [f"{a:.3f} [{lo:.3f}, {hi:.3f}]" if n >= MIN_SEEDS else f"{a:.3f} (n=1)"
                for a, lo, hi, n in zip(areas.area, areas.low, areas.high, areas.n)]
        table = table.join(pd.Series(text, index=areas.index, name="area (95% CI)"))
    table = table.join(ok.mislabel_auc.agg(mean_se).rename("mislabel AUC"))
    table = table.join(ok.kmeans_f1.agg(mean_se).rename("2-means F1"))
    table = table.join(ok.wall_s.median().map("{:.3g}".format).rename("fit s (median)"))
    expected = expected_seeds or frames.grid.expected_seeds or int(cells.groupby(keys).seed.nunique().max())

    def seeds(statuses: pd.Series) -> str:
        n_ok = int((statuses == OK).sum())
        text = f"{n_ok}/{expected}"
        if (statuses == OVER_CAP).any():
            text += f" ({(statuses == OVER_CAP).sum()} over cap)"
        return text + (" (fewer than the grid)" if n_ok < expected else "")

    table["seeds ok / grid"] = cells.groupby(keys, sort=False).status.agg(seeds)
    over = cells.groupby(keys, sort=False).status.agg(lambda s: (s == OVER_CAP).all())
    table = table.astype(object).fillna("-")
    table.loc[over[over].index, [c for c in table.columns if c != "seeds ok / grid"]] = OVER_CAP
    table.index = table.index.set_names(["dataset", "method"])
    return table.reset_index()
