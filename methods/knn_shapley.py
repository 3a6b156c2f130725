"""Exact Data Shapley of the K-nearest-neighbour utility (Jia et al., VLDB 2019, Theorem 1).

For a validation point (x, y) with train points sorted by distance a_1 .. a_N (nearest first) and
m_j = 1[y_{a_j} = y], the Shapley value of the utility U(S) = (1/K) sum over the min(K, |S|) nearest
points of S of m, is

    s_{a_N} = m_N min(K, N) / (N K),     s_{a_j} = s_{a_{j+1}} + (m_j - m_{j+1}) / K * min(K, j) / j,

averaged over the validation split (s_{a_N} is the paper's m_N / N when N >= K). One sort per validation point: O(N log N), vectorised over chunks.
"""

from __future__ import annotations

import numpy as np
import torch

from valbench.learners import Learner
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method


def knn_shapley_values(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
                       k: int, chunk: int = 256) -> np.ndarray:
    """Exact KNN-Shapley values of every train point, averaged over the validation points."""
    n = len(y_train)
    xt, yt = torch.as_tensor(x_train, dtype=torch.float64), torch.as_tensor(y_train)
    j = torch.arange(1, n, dtype=torch.float64)  # positions 1 .. N-1 (1-based)
    step_weight = torch.clamp(j, max=k) / (j * k)
    values = torch.zeros(n, dtype=torch.float64)
    for start in range(0, len(y_valid), chunk):
        xv = torch.as_tensor(x_valid[start:start + chunk], dtype=torch.float64)
        yv = torch.as_tensor(y_valid[start:start + chunk])
        # stable sort: equidistant points keep their index order, like a sequential reference would
        order = torch.argsort(torch.cdist(xv, xt), dim=1, stable=True)
        match = (yt[order] == yv[:, None]).double()                       # m_j in sorted order
        steps = (match[:, :-1] - match[:, 1:]) * step_weight                # (m_j - m_{j+1}) min(K,j) / (jK)
        tail = torch.flip(torch.cumsum(torch.flip(steps, [1]), 1), [1])     # sum_{j' >= j} of the steps
        sorted_values = torch.cat([tail, torch.zeros(len(yv), 1, dtype=torch.float64)], 1) + match[:, -1:] * min(k, n) / (n * k)
        values += torch.zeros_like(sorted_values).scatter_(1, order, sorted_values).sum(0)
    return (values / len(y_valid)).numpy()


@register_method
class KNNShapley(ValuationMethod):
    """Exact KNN-Shapley (Jia et al. 2019): closed form, O(N log N) per validation point."""

    name = "knn-shapley"
    params = {"k": 10}

    def check(self) -> dict:
        c = super().check()
        if int(c["k"]) < 1:
            raise DataError(f"method 'knn-shapley': k must be >= 1, got {c['k']}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        k = int(self.check()["k"])
        values = knn_shapley_values(data.x_train, data.y_train, data.x_valid, data.y_valid, k)
        return Valuation(scores=values, utility_evals=0)
