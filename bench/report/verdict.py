"""The verdict: which entry to use, with one documented, deterministic rule, built once per run.

:func:`choose` is the one place that picks a best entry; every output (HTML, ``summary.md``, the terminal
table, the README blocks, ``valbench select``) reads its :class:`Choice`, so no two outputs can name
different winners on the same numbers.

The rule, on one row per entry (``label``, ``value``: higher is better, ``cost_fits``, ``n_seeds``):

1. best = the highest ``value``; values within :data:`TIE_TOL` of each other are equal (exact ties);
2. among equal values, the lower ``cost_fits`` wins (random costs 0), then the label alphabetically;
3. ``ties`` = every label whose value equals the best's (same tolerance), best first, then in the same order;
4. ``cheapest_within`` = the lowest ``cost_fits`` among entries with ``value >= best.value - within``, random
   included: the cheap answer when cost matters; at equal cost random comes first (it needs no method at all:
   a method whose measured CPU time rounds to 0 must not win on its name), then the label;
5. ``random_within`` = random ran and ``random.value >= best.value - within``: no method is needed there.

:func:`build_verdict` applies it once per setting (regime x dataset x learner) of a run, to the area under the
subset-value curve of the setting's judged metric (mean over the seeds each entry shares with random), and at
each budget, and returns a frozen :class:`Verdict`. Never more than was measured: every row counts its paired
seeds, and below two there is no interval and no "wins/loses/ties" ("1 seed: not tested"); entries with fewer
seeds than the grid asks for, over-cap cells and cells not run are flagged; a best no better than the constant
majority-class predictor is never named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from valbench.report.frame import OK, OVER_CAP, GridStatus, RunFrames
from valbench.report.stats import (LEVEL, MIN_SEEDS, RankAnalysis, mean_ci, ordered_regimes, rank_analyses,
                                   subset_value_area)

TIE_TOL = 1e-12  # two values this close are the same number (an exact tie, not a statistical one)
ONE_POINT = 0.01  # "within one point": one percentage point of the judged metric
RANDOM = "random"
CANDIDATE_COLUMNS = ("label", "value", "cost_fits", "n_seeds")


@dataclass(frozen=True)
class Choice:
    """The outcome of :func:`choose`: the best entry, those exactly tied with it, the cheap near-best."""

    best: str
    ties: tuple[str, ...]
    cheapest_within: str
    random_within: bool


def _cost(value: float) -> float:
    """A missing cost sorts last: an entry whose cost was not measured is never called the cheap one."""
    return math.inf if value is None or math.isnan(value) else float(value)


def choose(candidates: pd.DataFrame, within: float = ONE_POINT) -> Choice:
    """Apply the rule of this module to ``candidates`` (one row per entry; see the module docstring).

    Rows whose ``value`` is missing are left out (an entry with no result is not a candidate).
    Raises ``ValueError`` when no row has a value, or a column is missing.
    """
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack column(s) {missing}; needed: {list(CANDIDATE_COLUMNS)}")
    rows = [(str(r.label), float(r.value), _cost(r.cost_fits)) for r in candidates.itertuples()
            if r.value is not None and not math.isnan(r.value)]
    if not rows:
        raise ValueError("no candidate has a value: nothing to choose from")
    top = max(value for _, value, _ in rows)
    ties = sorted((r for r in rows if r[1] >= top - TIE_TOL), key=lambda r: (r[2], r[0]))
    best_label, best_value, _ = ties[0]
    near = sorted((r for r in rows if r[1] >= best_value - within - TIE_TOL), key=lambda r: (r[2], r[0] != RANDOM, r[0]))
    random_values = [value for label, value, _ in rows if label == RANDOM]
    return Choice(best=best_label, ties=tuple(label for label, _, _ in ties), cheapest_within=near[0][0],
                  random_within=bool(random_values) and random_values[0] >= best_value - within - TIE_TOL)


# ---------------------------------------------------------------------------------------------------- per run

@dataclass(frozen=True)
class Entry:
    """One candidate of a setting: its judged value (mean over ``n_seeds`` seeds shared with random) and cost."""

    label: str
    family: str
    value: float
    cost: float  # in the setting's cost unit (learner fits; CPU seconds where fits were not timed); random 0
    n_seeds: int


@dataclass(frozen=True)
class BudgetVerdict:
    """The rule at one budget, with the entries the data cannot separate from the best (paired 95 % interval of
    best - other reaching 0, on 2+ paired seeds) and the best's paired difference to random."""

    fraction: float
    choice: Choice
    best_value: float
    not_separable: tuple[str, ...]
    vs_random: tuple[float, float, float]
    vs_random_seeds: int


@dataclass(frozen=True)
class SettingVerdict:
    """The verdict of one setting (a dataset with its parameters, in one regime: noise rate and learner)."""

    setting: str
    regime: str
    metric: str  # "accuracy" or "balanced_accuracy"
    metric_note: str
    choice: Choice
    entries: tuple[Entry, ...]  # best value first, then the rule's order
    cost_unit: str
    gain: tuple[float, float, float]  # the best's area minus random's, paired over seeds (NaN without random)
    gain_seeds: int
    constant: float  # the constant majority-class predictor's score on the judged metric (NaN: not recorded)
    expected_seeds: int  # seeds the grid asks for per entry (or the most any entry has, without a config)
    short: tuple[tuple[str, int], ...]  # entries with fewer ok seeds than expected: (label, ok seeds)
    over_cap: tuple[tuple[str, int], ...]  # entries with cells over the cap: (label, cells)
    not_run: int  # cells of this setting's dataset and noise rate the config asks for that never ran
    per_budget: tuple[BudgetVerdict, ...]

    def entry(self, label: str) -> Entry:
        """The entry of that label (a label of :attr:`choice` always has one)."""
        return next(e for e in self.entries if e.label == label)

    @property
    def best(self) -> Entry:
        return self.entry(self.choice.best)

    @property
    def cheapest(self) -> Entry:
        return self.entry(self.choice.cheapest_within)

    @property
    def random(self) -> Entry | None:
        return next((e for e in self.entries if e.label == RANDOM), None)

    @property
    def at_constant(self) -> bool:
        """The best is no better than predicting the train split's majority class for every point."""
        return not math.isnan(self.constant) and self.best.value <= self.constant + 1e-9

    @property
    def recommended(self) -> str | None:
        """The entry to use: the best, unless it is no better than the constant predictor (then none)."""
        return None if self.at_constant else self.choice.best

    @property
    def tested(self) -> bool:
        """The gain over random rests on enough paired seeds for an interval."""
        return self.gain_seeds >= MIN_SEEDS

    @property
    def gain_unresolved(self) -> bool:
        """A named best whose gain over random is more than a point, yet its paired interval reaches 0: the
        seeds measured cannot tell it from random (said beside the name, never hidden behind it)."""
        return (self.tested and self.choice.best != RANDOM and not self.choice.random_within
                and not math.isnan(self.gain[1]) and self.gain[1] <= 0)


@dataclass(frozen=True)
class Verdict:
    """The whole run's verdict: its status against the grid, one :class:`SettingVerdict` per setting in the
    frames' fixed order, and the rank test of each regime."""

    status: GridStatus
    settings: tuple[SettingVerdict, ...]
    ranks: Mapping[str, RankAnalysis] = field(default_factory=dict)

    def regimes(self) -> list[str]:
        """Distinct regimes, clean labels first (:func:`valbench.report.stats.ordered_regimes`)."""
        return ordered_regimes(s.regime for s in self.settings)

    def in_regime(self, regime: str) -> list[SettingVerdict]:
        """The settings of one regime, in the frames' order."""
        return [s for s in self.settings if s.regime == regime]


def _paired(wide: pd.DataFrame, left: str, right: str) -> pd.Series:
    """left - right on the rows (seeds) both have."""
    return (wide[left] - wide[right]).dropna()


def _setting_verdict(setting: str, budgets: pd.DataFrame, cells: pd.DataFrame, metric: str, note: str,
                     expected_seeds: int | None, not_run: int, within: float, level: float) -> SettingVerdict | None:
    """The rule applied to one setting's budget rows and cells (both already restricted to it)."""
    families = dict(zip(cells.method, cells.family))
    candidates = [m for m in dict.fromkeys(cells.method) if families.get(m) != "reference" or m == RANDOM]
    budgets = budgets[budgets.method.isin(candidates)]
    if budgets.empty:
        return None
    areas = subset_value_area(budgets).pivot_table(index="seed", columns="method", values="area")
    random_seeds = set(areas[RANDOM].dropna().index) if RANDOM in areas.columns else None
    ok = cells[cells.status == OK]
    timed = ok[ok.method != RANDOM].cost_fits.notna().all()
    cost_unit = "learner fits" if timed else "CPU s"
    entries = []
    for method in areas.columns:
        seeds = set(areas[method].dropna().index) & (random_seeds if random_seeds is not None else set(areas.index))
        if not seeds:
            continue
        mine = ok[ok.method == method]
        cost = 0.0 if method == RANDOM else float((mine.cost_fits if timed else mine.cpu_s).median())
        entries.append(Entry(method, families[method], float(areas.loc[sorted(seeds), method].mean()), cost,
                             len(seeds)))
    frame = pd.DataFrame([(e.label, e.value, e.cost, e.n_seeds) for e in entries], columns=list(CANDIDATE_COLUMNS))
    choice = choose(frame, within)
    order = {label: i for i, label in enumerate(choice.ties)}
    entries.sort(key=lambda e: (-e.value, order.get(e.label, len(order)), _cost(e.cost), e.label))
    gain, gain_seeds = (math.nan,) * 3, 0
    if RANDOM in areas.columns and choice.best != RANDOM:
        paired = _paired(areas, choice.best, RANDOM)
        gain, gain_seeds = mean_ci(paired, level), len(paired)
    elif choice.best == RANDOM:
        gain, gain_seeds = (0.0, 0.0, 0.0), len(random_seeds or ())
    expected = expected_seeds or max(cells.groupby("method").seed.nunique())
    ok_seeds = ok.groupby("method", sort=False).seed.nunique()
    short = tuple((m, int(ok_seeds.get(m, 0))) for m in dict.fromkeys(cells.method) if ok_seeds.get(m, 0) < expected)
    over = cells[cells.status == OVER_CAP].groupby("method", sort=False).size()
    constant = float(budgets.constant.mean()) if budgets.constant.notna().any() else math.nan
    return SettingVerdict(setting=setting, regime=str(cells.regime.iloc[0]), metric=metric, metric_note=note,
                          choice=choice, entries=tuple(entries), cost_unit=cost_unit, gain=gain,
                          gain_seeds=gain_seeds, constant=constant, expected_seeds=int(expected), short=short,
                          over_cap=tuple((m, int(n)) for m, n in over.items()), not_run=not_run,
                          per_budget=_per_budget(budgets, entries, random_seeds, within, level))


def _per_budget(budgets: pd.DataFrame, entries: list[Entry], random_seeds: set | None, within: float,
                level: float) -> tuple[BudgetVerdict, ...]:
    """The rule at each budget, on the same seeds and costs as the setting's entries."""
    wide = budgets.pivot_table(index=["fraction", "seed"], columns="method", values="score", sort=True)
    out = []
    for fraction, block in wide.groupby(level="fraction"):
        block = block.droplevel("fraction")
        if random_seeds is not None:
            block = block.loc[block.index.isin(random_seeds)]
        rows = [(e.label, float(block[e.label].mean()), e.cost, int(block[e.label].notna().sum()))
                for e in entries if e.label in block.columns and block[e.label].notna().any()]
        if not rows:
            continue
        choice = choose(pd.DataFrame(rows, columns=list(CANDIDATE_COLUMNS)), within)
        not_separable = []
        for label, _, _, _ in rows:
            paired = _paired(block, choice.best, label)
            if label != choice.best and len(paired) >= MIN_SEEDS and mean_ci(paired, level)[1] <= 0:
                not_separable.append(label)
        vs = _paired(block, choice.best, RANDOM) if RANDOM in block.columns else pd.Series(dtype=float)
        out.append(BudgetVerdict(float(fraction), choice, float(block[choice.best].mean()), tuple(not_separable),
                                 mean_ci(vs, level), len(vs)))
    return tuple(out)


def build_verdict(frames: RunFrames, within: float = ONE_POINT, level: float = LEVEL) -> Verdict:
    """The verdict of a run, once: one :class:`SettingVerdict` per setting in the frames' order, and the rank
    test per regime (:func:`valbench.report.stats.rank_analyses`)."""
    cells, budgets = frames.cells, frames.budgets
    settings = []
    for setting, here in cells.groupby("setting", sort=False):
        first = here.iloc[0]
        not_run = frames.grid.missing.get((first.dataset, float(first.noise_rate or 0.0)), 0)
        verdict = _setting_verdict(setting, budgets[budgets.setting == setting], here,
                                   frames.metrics.get(setting, "accuracy"), frames.metric_notes.get(setting, ""),
                                   frames.grid.expected_seeds, not_run, within, level)
        if verdict is not None:
            settings.append(verdict)
    ranks = rank_analyses(budgets) if not budgets.empty else {}
    return Verdict(frames.grid, tuple(settings), ranks)
