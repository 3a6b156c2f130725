"""The verdict: which entry to use, with one documented, deterministic rule.

:func:`choose` is the one place that picks a best entry; every output (HTML, ``summary.md``, the terminal
table, the README blocks, ``valbench select``) reads its :class:`Choice`, so no two outputs can name
different winners on the same numbers.

The rule, on one row per entry (``label``, ``value``: higher is better, ``cost_fits``, ``n_seeds``):

1. best = the highest ``value``; values within :data:`TIE_TOL` of each other are equal (exact ties);
2. among equal values, the lower ``cost_fits`` wins (random costs 0), then the label alphabetically;
3. ``ties`` = every label whose value equals the best's (same tolerance), best first, then in the same order;
4. ``cheapest_within`` = the lowest ``cost_fits`` (then label) among entries with
   ``value >= best.value - within``, random included: the cheap answer when cost matters;
5. ``random_within`` = random ran and ``random.value >= best.value - within``: no method is needed there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

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
    near = sorted((r for r in rows if r[1] >= best_value - within - TIE_TOL), key=lambda r: (r[2], r[0]))
    random_values = [value for label, value, _ in rows if label == RANDOM]
    return Choice(best=best_label, ties=tuple(label for label, _, _ in ties), cheapest_within=near[0][0],
                  random_within=bool(random_values) and random_values[0] >= best_value - within - TIE_TOL)
