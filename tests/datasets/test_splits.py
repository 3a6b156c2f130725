"""Stratified splits keep every class in every split, however rare (Shuttle: 10 and 13 of 58,000 rows)."""

import numpy as np
import pytest

from valbench.datasets.noise import inject_noise
from valbench.datasets.splits import bounded_shares, make_splits, stratified_parts
from valbench.protocol import DataError

SHUTTLE_LIKE = np.repeat(np.arange(7), [4558, 890, 326, 17, 5, 3, 4])  # Shuttle's shares, 1/10 the rows


def test_bounded_shares_against_enumeration():
    """The shares minimise the largest |share - quota| over every integer vector within the bounds
    (brute force over small cases), and sum to the total exactly."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(1, 9, size=3)
        total = int(rng.integers(3, counts.sum() + 1))
        low, high = np.ones(3, int), counts
        if not low.sum() <= total <= high.sum():
            continue
        out = bounded_shares(total, counts, low, high)
        assert out.sum() == total and (low <= out).all() and (out <= high).all()
        quota = total * counts / counts.sum()
        grid = np.stack(np.meshgrid(*[np.arange(lo, hi + 1) for lo, hi in zip(low, high)]), -1).reshape(-1, 3)
        best = np.abs(grid[grid.sum(1) == total] - quota).max(1).min()
        assert np.abs(out - quota).max() <= best + 1e-9


@pytest.mark.parametrize("sizes", [(100, 50, 50), (3000, 1000, 1000), (7, 7, 7), (5000, 400, 400)])
def test_every_class_in_every_split_and_sizes_exact(sizes):
    x = np.random.default_rng(1).normal(size=(len(SHUTTLE_LIKE), 2))
    data = make_splits("shuttle-like", x, SHUTTLE_LIKE, seed=3, n_train=sizes[0], n_valid=sizes[1], n_test=sizes[2])
    for y, size in zip((data.y_train, data.y_valid, data.y_test), sizes):
        assert len(y) == size and set(np.unique(y)) == set(range(7))
    big = np.bincount(data.y_train) / sizes[0]
    assert abs(big[0] - 4558 / len(SHUTTLE_LIKE)) < 0.01 + 7 / sizes[0]  # otherwise proportional
    # no row twice, and noise injection copes with the rare classes
    rows = {tuple(r) for split in (data.x_train, data.x_valid, data.x_test) for r in split}
    assert len(rows) == sum(sizes)
    noisy = inject_noise(data, 0.2, seed=3)
    assert noisy.noisy_mask.sum() == round(0.2 * sizes[0])
    assert (noisy.y_train[noisy.noisy_mask] != data.y_train[noisy.noisy_mask]).all() and noisy.y_train.max() < 7


def test_splits_are_deterministic_and_keyed_by_dataset_name():
    x = np.random.default_rng(1).normal(size=(600, 2))
    y = np.arange(600) % 3
    a1, a2 = make_splits("a", x, y, seed=0), make_splits("a", x, y, seed=0)
    b = make_splits("b", x, y, seed=0)
    assert np.array_equal(a1.x_train, a2.x_train) and np.array_equal(a1.y_test, a2.y_test)
    assert not np.array_equal(a1.x_train, b.x_train)


def test_a_class_too_small_to_reach_every_split_is_refused():
    y = np.repeat([0, 1], [50, 2])
    with pytest.raises(DataError, match=r"class\(es\) \[1\] have fewer than 3 rows"):
        make_splits("tiny", np.zeros((52, 1)), y, seed=0)


def test_stratified_parts_partition_the_rows():
    y = np.repeat(np.arange(4), [40, 3, 9, 100])
    parts = stratified_parts(y, (30, 60, 50), np.random.default_rng(0))
    allrows = np.concatenate(parts)
    assert len(np.unique(allrows)) == len(allrows) == 140
    assert all(set(y[p]) == {0, 1, 2, 3} for p in parts)


def test_standard_test_split_is_kept_and_subsampled_stratified():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 2)), np.arange(400) % 4
    xt, yt = rng.normal(size=(100, 2)), np.arange(100) % 4
    full = make_splits("t", x, y, seed=0, test=(xt, yt))
    assert (full.n_train, len(full.y_valid), len(full.y_test)) == (300, 100, 100)
    unscaled = make_splits("t", x, y, seed=0, test=(xt, yt), scale=False)
    assert sorted(map(tuple, unscaled.x_test)) == sorted(map(tuple, xt.astype(np.float32)))  # all of it
    part = make_splits("t", x, y, seed=0, n_train=200, n_valid=40, n_test=20, test=(xt, yt), scale=False)
    assert np.bincount(part.y_test).tolist() == [5, 5, 5, 5]
    assert {tuple(r) for r in part.x_test} <= {tuple(r) for r in xt.astype(np.float32)}
    with pytest.raises(DataError, match="n_test=101 but its standard test split has 100 points"):
        make_splits("t", x, y, seed=0, n_test=101, test=(xt, yt))


def test_train_ids_are_the_pool_rows_of_the_train_split():
    x = np.arange(200, dtype=np.float64).reshape(100, 2)  # row i holds 2i, 2i+1: its id can be read off
    y = np.arange(100) % 3
    data = make_splits("ids", x, y, seed=4, scale=False)
    assert np.array_equal(data.x_train[:, 0] / 2, data.meta["train_ids"])
    named = make_splits("ids", x, y, seed=4, scale=False, row_ids=np.array([f"r{i}" for i in range(100)]))
    assert [f"r{int(v // 2)}" for v in named.x_train[:, 0]] == list(named.meta["train_ids"])
