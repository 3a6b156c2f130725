"""The floor every method must beat: independent uniform scores."""

from __future__ import annotations

from valbench.learners import Learner
from valbench.protocol import Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.streams import stream


@register_method
class RandomValuation(ValuationMethod):
    """Uniform random scores: random subsets and chance-level (AUC 0.5) mislabel detection.

    Drawn from the stream ``(seed, data.name, "random")``, independent of the split and of the flipped labels
    (with one shared ``default_rng(seed)`` the top-scored points were the flipped ones on every dataset of a size).
    """

    name = "random"
    family = "reference"
    params = {}

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        return Valuation(scores=stream(seed, data.name, "random").random(data.n_train), utility_evals=0)
