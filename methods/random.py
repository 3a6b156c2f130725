"""The floor every method must beat: independent uniform scores."""

from __future__ import annotations

import numpy as np

from valbench.learners import Learner
from valbench.protocol import Dataset, Valuation, ValuationMethod
from valbench.registry import register_method


@register_method
class RandomValuation(ValuationMethod):
    """Uniform random scores: random subsets and chance-level (AUC 0.5) mislabel detection."""

    name = "random"
    family = "reference"
    params = {}

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        return Valuation(scores=np.random.default_rng(seed).random(data.n_train), utility_evals=0)
