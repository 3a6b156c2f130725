"""benchmarks/lds.py's score: Spearman between -sum of a subset's values and its validation loss."""

import importlib.util
from pathlib import Path

import numpy as np

spec = importlib.util.spec_from_file_location("lds_benchmark", Path(__file__).parents[2] / "benchmarks" / "lds.py")
lds_benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lds_benchmark)


def test_additive_truth_scores_one_and_its_reverse_minus_one():
    rng = np.random.default_rng(0)
    values = rng.normal(size=40)
    masks = rng.random((30, 40)) < 0.5
    # each validation point's loss falls by the values of the subset's points, plus point-specific offsets
    losses = -(masks @ values)[:, None] + rng.normal(size=(1, 25))
    point, low, high = lds_benchmark.lds(values, masks, losses, draws=200)
    assert point == 1.0 and low == high == 1.0
    assert lds_benchmark.lds(-values, masks, losses, draws=50)[0] == -1.0


def test_interval_is_over_validation_points():
    rng = np.random.default_rng(1)
    values = rng.normal(size=40)
    masks = rng.random((30, 40)) < 0.5
    losses = -(masks @ values)[:, None] + 3 * rng.normal(size=(30, 60))
    point, low, high = lds_benchmark.lds(values, masks, losses, draws=300)
    assert low < point < high and 0 < point < 1
