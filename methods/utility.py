"""The utility U(S) shared by retraining-based methods: the learner trained on subset S, scored on validation.

``accuracy`` is the utility of the Data Shapley and leave-one-out papers; ``neg_loss`` (minus the mean
validation cross-entropy) is a smoother alternative that separates points accuracy leaves tied.
"""

from __future__ import annotations

import numpy as np
import torch

from valbench.learners import FittedModel, Learner
from valbench.protocol import DataError, Dataset

UTILITIES = ("accuracy", "neg_loss")


def model_score(model: FittedModel, x: np.ndarray, y: np.ndarray, metric: str) -> float:
    """The utility's metric of a fitted model on ``(x, y)``: accuracy, or minus the mean cross-entropy."""
    if metric == "accuracy":
        return model.accuracy(x, y)
    return -model.loss(x, y)


def check_utility(method: str, metric: str) -> None:
    """Refuse an unknown utility name up front, naming the method and the valid names."""
    if metric not in UTILITIES:
        raise DataError(f"method {method!r}: unknown utility {metric!r}; valid: {list(UTILITIES)}")


class Utility:
    """U(S) for subsets of ``data``'s train split; ``empty`` is the value of the empty set (chance level)."""

    def __init__(self, data: Dataset, learner: Learner, metric: str = "accuracy") -> None:
        if metric not in UTILITIES:
            raise DataError(f"unknown utility {metric!r}; valid: {list(UTILITIES)}")
        self.data, self.learner, self.metric = data, learner, metric
        self.x_train = torch.from_numpy(data.x_train)
        self.y_train = torch.from_numpy(data.y_train)
        self.empty = self.score(learner.fit(data.x_train[:0], data.y_train[:0]))

    def score(self, model: FittedModel) -> float:
        return model_score(model, self.data.x_valid, self.data.y_valid, self.metric)

    def fit(self, indices: np.ndarray | torch.Tensor, init: dict[str, torch.Tensor] | None = None) -> FittedModel:
        return self.learner.fit(self.x_train[indices], self.y_train[indices], init=init)

    def __call__(self, indices: np.ndarray | torch.Tensor, init: dict[str, torch.Tensor] | None = None) -> float:
        """U(S) for the train indices S; the empty set scores ``self.empty``."""
        if len(indices) == 0:
            return self.empty
        return self.score(self.fit(indices, init))
