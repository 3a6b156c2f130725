"""The mlbench/kernlab loaders on tiny ``.rda`` fixtures in the real format (the real files: test_realdata.py)."""

import numpy as np
import pandas as pd
import pytest

from valbench.datasets.uci import SETS, encode_features, rda_table
from valbench.registry import get_dataset

from .fixtures import letter_like, mixed_factors, write_rda


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VALBENCH_DATA", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", sorted(SETS))
def test_each_loader_reads_its_file_and_label_column(name, data_dir, monkeypatch):
    path, label, _ = SETS[name]
    frame = letter_like(np.random.default_rng(0), label)
    write_rda(data_dir, path, path.split("/")[1].removesuffix(".rda"), frame, monkeypatch)
    data = get_dataset(name)(seed=2, n_train=30, n_valid=15, n_test=15)
    assert (data.n_train, len(data.y_valid), len(data.y_test), data.n_features) == (30, 15, 15, 4)
    assert data.n_classes == 3 and data.meta["classes"] == ("A", "B", "C") and data.meta["source"] == path
    assert np.allclose(data.x_train.mean(0), 0, atol=1e-5)  # standardised on train (the constant stays 0)
    assert set(np.unique(data.y_test)) == {0, 1, 2}
    # labels follow the factor: feature f0 is the class code plus noise, so class means are ordered
    x = data.x_train[:, data.meta["features"].index("f0")]
    assert x[data.y_train == 0].mean() < x[data.y_train == 1].mean() < x[data.y_train == 2].mean()
    again = get_dataset(name)(seed=2, n_train=30, n_valid=15, n_test=15)
    assert np.array_equal(data.x_train, again.x_train) and np.array_equal(data.y_train, again.y_train)


def test_factors_are_encoded_by_kind():
    frame = pd.DataFrame({
        "bit": pd.Categorical(["1", "0", "1"], categories=["0", "1"]),
        "band": pd.Categorical(["high", "low", "mid"], categories=["low", "mid", "high"], ordered=True),
        "kind": pd.Categorical(["y", "x", "y"], categories=["x", "y"]),
        "amount": [0.5, -1.0, 2.0],
    })
    x, names = encode_features(frame)
    assert names == ["bit", "band", "kind=x", "kind=y", "amount"]
    assert np.array_equal(x, [[1, 2, 0, 1, 0.5], [0, 0, 1, 0, -1.0], [1, 1, 0, 1, 2.0]])


def test_mixed_factor_table_loads_as_caravan(data_dir, monkeypatch):
    frame = mixed_factors(np.random.default_rng(1), "CARAVAN")
    write_rda(data_dir, "kernlab/ticdata.rda", "ticdata", frame, monkeypatch)
    data = get_dataset("caravan")(seed=0, n_train=20, n_valid=10, n_test=10)
    assert data.meta["features"] == ("V1", "band", "kind=x", "kind=y", "kind=z", "amount")
    assert data.meta["classes"] == ("no", "yes") and data.n_classes == 2
    x, y, _, _ = rda_table("caravan", "kernlab/ticdata.rda", "CARAVAN", str(data_dir))
    assert np.array_equal(x[:, 1], frame["band"].cat.codes)  # the ordered factor survived the file: its codes
    assert np.array_equal(x[:, 0], frame["V1"].astype(float)) and np.array_equal(y, frame["CARAVAN"].cat.codes)
