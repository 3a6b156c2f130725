import numpy as np
import pytest

from valbench.protocol import DataError, Dataset, MethodError, Valuation
from tests.conftest import blobs


def _arrays(n=10, d=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)), np.arange(n) % 2


def _dataset(**overrides):
    x, y = _arrays()
    fields = dict(name="toy", x_train=x, y_train=y, x_valid=x, y_valid=y, x_test=x, y_test=y, n_classes=2)
    return Dataset(**{**fields, **overrides})


def test_valid_dataset_is_converted_to_float32_and_int64():
    data = _dataset()
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.noisy_mask.shape == (10,) and not data.noisy_mask.any()


@pytest.mark.parametrize("overrides, message", [
    (dict(x_train=np.full((10, 3), np.nan)), "NaN or inf"),
    (dict(x_valid=np.array([[np.inf, 0, 0]] * 10)), "valid split: 10 rows contain NaN or inf"),
    (dict(y_train=np.zeros(10, dtype=int)), "one class only"),
    (dict(y_train=np.arange(9) % 2), "10 feature rows but labels of shape (9,)"),
    (dict(x_test=np.zeros((10, 4))), "4 features, but the train split has 3"),
    (dict(n_classes=1), "at least two classes"),
    (dict(y_test=np.arange(10) % 3), "labels must lie in [0, 2)"),
])
def test_bad_datasets_name_the_dataset_and_the_problem(overrides, message):
    with pytest.raises(DataError, match="dataset 'toy'") as err:
        _dataset(**overrides)
    assert message in str(err.value)


def test_valuation_rejects_wrong_length_and_nan_naming_the_method():
    with pytest.raises(MethodError, match="method 'm' returned \\(3,\\) scores, expected \\(4,\\)"):
        Valuation(scores=np.zeros(3)).validate("m", 4)
    with pytest.raises(MethodError, match="method 'm' returned 1 NaN/inf"):
        Valuation(scores=np.array([0, 1, np.nan, 2])).validate("m", 4)


def test_valuation_checks_subsets():
    ok = Valuation(scores=np.zeros(5), subsets={2: np.array([0, 3])}).validate("m", 5, [2])
    assert ok.subsets[2].tolist() == [0, 3]
    with pytest.raises(MethodError, match="none of size 3"):
        Valuation(scores=np.zeros(5), subsets={2: np.array([0, 3])}).validate("m", 5, [2, 3])
    with pytest.raises(MethodError, match="2 distinct indices"):
        Valuation(scores=np.zeros(5), subsets={2: np.array([1, 1])}).validate("m", 5, [2])


def test_blobs_fixture_is_deterministic():
    a, b = blobs(seed=3), blobs(seed=3)
    assert np.array_equal(a.x_train, b.x_train)


def test_every_registered_method_names_a_known_family():
    from valbench.protocol import FAMILIES
    from valbench.registry import METHODS, load_installed

    load_installed()
    families = {name: cls.family for name, cls in METHODS.items()}
    assert set(families.values()) <= set(FAMILIES)
    assert families["random"] == "reference" and families["hostcp"] == "set-selection"
    assert families["knn-shapley"] == "valuation"
    assert all(f == "peer" for name, f in families.items() if name.startswith("odv-"))
