import numpy as np
import pytest

from valbench.protocol import DataError
from valbench.registry import get_dataset
from valbench.datasets.splits import make_splits


@pytest.mark.parametrize("name, kwargs", [
    ("digits", {}), ("breast_cancer", {}), ("wine", {}), ("gaussian", {"n": 300}),
    ("synthetic", {"n_train": 200}), ("mnist1d", {"n": 600}), ("mnist", {"n_train": 500}),
])
def test_offline_loaders_are_deterministic_and_standardised(name, kwargs):
    a = get_dataset(name)(seed=1, **kwargs)
    b = get_dataset(name)(seed=1, **kwargs)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert np.allclose(a.x_train.mean(0), 0, atol=1e-3)
    assert a.n_classes == len(np.unique(a.y_train))
    c = get_dataset(name)(seed=2, **kwargs)
    assert not np.array_equal(a.x_train, c.x_train)


def test_splits_are_stratified_and_sized():
    x = np.random.default_rng(0).normal(size=(400, 3))
    y = np.repeat([0, 1, 2, 3], 100)
    data = make_splits("s", x, y, seed=0, n_train=200, n_valid=100, n_test=100)
    assert (data.n_train, len(data.y_valid), len(data.y_test)) == (200, 100, 100)
    assert np.bincount(data.y_train).tolist() == [50, 50, 50, 50]


def test_too_many_points_requested():
    with pytest.raises(DataError, match="dataset 'wine': requested 500 points .* only 178 exist"):
        get_dataset("wine")(n_train=500)


def test_synthetic_has_redundant_and_rare_points():
    data = get_dataset("synthetic")(seed=0, n_train=400, redundancy=0.5, rare=0.1)
    kinds = data.meta["kind"]
    assert (kinds == "redundant").sum() == 200 and (kinds == "rare").sum() == 40
    redundant = data.x_train[kinds == "redundant"]
    regular = data.x_train[kinds == "regular"]
    nearest = lambda pts: np.sort(((pts[:, None] - pts[None]) ** 2).sum(-1), axis=1)[:, 1].mean()  # noqa: E731
    assert nearest(redundant) < 0.01 * nearest(regular)  # near-duplicates, as designed
    with pytest.raises(DataError, match="redundancy=0.8 and rare=0.3"):
        get_dataset("synthetic")(redundancy=0.8, rare=0.3)


def test_local_file_sets_name_the_file_they_need(tmp_path, monkeypatch):
    monkeypatch.setenv("VALBENCH_DATA", str(tmp_path))
    with pytest.raises(DataError, match=f"needs the file {tmp_path}/cifar10.npz"):
        get_dataset("cifar10")()
