"""``random``'s picks and the flipped labels come from independent streams (issue 17): with one shared
``default_rng(seed)`` the 5 % subset held the same positions as the flips on every dataset of the same size."""

import numpy as np

from valbench.datasets.noise import inject_noise
from valbench.protocol import Dataset
from valbench.registry import get_method

N = 1000


def same_size(name: str) -> Dataset:
    rng = np.random.default_rng(0)  # identical arrays: only the name tells the datasets apart
    x, y = rng.normal(size=(N, 3)), np.arange(N) % 4
    return Dataset(name=name, x_train=x, y_train=y, x_valid=x[:8], y_valid=y[:8], x_test=x[:8], y_test=y[:8],
                   n_classes=4)


def test_random_subset_and_flips_are_independent_across_datasets_and_of_each_other():
    method, k, seeds = get_method("random")(), N // 20, range(20)
    flipped_in_subset, shared_flips, shared_picks = [], [], []
    for seed in seeds:
        picks, flips = [], []
        for name in ("digits", "mnist", "synthetic"):
            data = inject_noise(same_size(name), 0.1, seed)
            scores = method.fit(data, learner=None, seed=seed).scores
            top = set(np.argsort(-scores)[:k].tolist())
            picks.append(top)
            flips.append(set(np.flatnonzero(data.noisy_mask).tolist()))
            flipped_in_subset.append(len(top & flips[-1]))
        shared_flips += [len(flips[0] & flips[1]), len(flips[1] & flips[2])]
        shared_picks += [len(picks[0] & picks[1]), len(picks[1] & picks[2])]
    # chance: 50 of 1,000 picked, 100 flipped -> 5 flipped per subset; two draws of 100 share 10, of 50 share 2.5
    # (means over 60 subsets and 40 pairs, each well inside 4 standard errors; identical streams would give
    # 100 shared flips and 50 shared picks)
    assert 3.8 < np.mean(flipped_in_subset) < 6.2
    assert 8.0 < np.mean(shared_flips) < 12.0 and max(shared_flips) < 25
    assert 1.5 < np.mean(shared_picks) < 3.5 and max(shared_picks) < 12


def test_random_is_deterministic_for_a_seed_and_dataset():
    method = get_method("random")()
    a, b = same_size("digits"), same_size("mnist")
    assert np.array_equal(method.fit(a, None, 3).scores, method.fit(a, None, 3).scores)
    assert not np.array_equal(method.fit(a, None, 3).scores, method.fit(b, None, 3).scores)
