"""The recommendation: the verdict's one choice rule (:func:`valbench.report.verdict.choose`) on the evidence.

The entry applied is random when the rule says ``random_within`` (no method measured here beats a random
subset of this size on this data by more than one point: a measured cost that rounds to random's 0 does not
make a method worth using), else the rule's ``cheapest_within``: the cheapest entry in learner fits whose
value is within one point of the best.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from valbench.protocol import DataError
from valbench.report.verdict import RANDOM, Choice, choose


@dataclass(frozen=True)
class Recommendation:
    """The rule's outcome on the evidence, the entry to apply, and the sentence that says why."""

    choice: Choice
    apply: str
    metric: str

    def sentence(self, evidence: pd.DataFrame) -> str:
        row = evidence.set_index("label")
        best = self.choice.best
        if self.choice.random_within:
            return (f"random is within one point of the best ({best}: {row.value[best]:.3f} {self.metric} vs "
                    f"random {row.value['random']:.3f}): keep a random subset; no method measured here is worth "
                    "its cost on this data")
        text = f"use {self.apply}: {row.value[self.apply]:.3f} {self.metric} at the budget"
        if pd.notna(row.vs_random[self.apply]):
            text += (f", {100 * row.vs_random[self.apply]:+.1f} points vs random "
                     f"[{100 * row.vs_random_low[self.apply]:+.1f}, {100 * row.vs_random_high[self.apply]:+.1f}]")
            if row.vs_random_low[self.apply] <= 0:
                text += (f", not separable from random on {int(row.n_seeds[self.apply])} seeds (the interval "
                         "reaches 0; more --seeds narrow it)")
        if self.apply != best:
            text += f" (the cheapest within one point of the best, {best}: {row.value[best]:.3f})"
        return text


def recommend(evidence: pd.DataFrame, metric: str) -> Recommendation:
    """Apply the verdict's rule to the evidence's (label, value, cost_fits, n_seeds)."""
    if evidence.value.isna().all():
        raise DataError("no candidate could be measured on this data: "
                        + "; ".join(f"{r.label}: {r.status}" for r in evidence.itertuples()))
    choice = choose(evidence[["label", "value", "cost_fits", "n_seeds"]])
    return Recommendation(choice=choice, apply=RANDOM if choice.random_within else choice.cheapest_within,
                          metric=metric.replace("_", " "))
