"""What a selection found (:class:`Selection`): the result type that :func:`valbench.keep.api.select` returns and
:mod:`valbench.keep.page` renders, in a module of its own so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from valbench.keep.noise import NoiseEstimate
from valbench.keep.recommend import Recommendation


@dataclass
class Selection:
    """What :func:`select` found: ``recommended`` (the entry applied), ``evidence`` (one row per candidate),
    ``values`` (one row per input row), the noise estimate, the detection check, cost per step, output paths."""

    recommended: str
    evidence: pd.DataFrame
    values: pd.DataFrame
    noise: NoiseEstimate
    recommendation: Recommendation
    metric: str
    budget_text: str
    detector: str
    detection_rule: str
    detection: pd.DataFrame | None = None
    left_out: dict[str, str] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def sentence(self) -> str:
        return self.recommendation.sentence(self.evidence)
