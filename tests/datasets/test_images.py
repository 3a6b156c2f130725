"""fashion_mnist on tiny gzipped IDX fixtures (the real files: test_realdata.py)."""

import gzip

import numpy as np
import pytest

from valbench.datasets.idx import parse_idx, write_idx
from valbench.protocol import DataError
from valbench.registry import get_dataset

from .fixtures import write_fashion, write_file


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_idx_round_trip(dtype):
    a = (np.arange(24) - 5).astype(dtype).reshape(2, 3, 4) if dtype != "u1" else np.arange(24, dtype=dtype)
    assert np.array_equal(parse_idx(write_idx(a)), a)


def test_idx_refuses_malformed_files():
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(b"PK\3\4 not idx")
    with pytest.raises(ValueError, match=r"needs 20 bytes, the file has 19"):
        parse_idx(bytes([0, 0, 8, 1]) + np.array([12], ">u4").tobytes() + b"\0" * 11)


def test_fashion_mnist_keeps_the_t10k_test_split_and_pixels_in_unit_range(tmp_path, monkeypatch):
    monkeypatch.setenv("VALBENCH_DATA", str(tmp_path))
    arrays = write_fashion(tmp_path, monkeypatch)
    data = get_dataset("fashion_mnist")(seed=0, n_train=40, n_valid=20, n_test=20)
    assert (data.n_train, len(data.y_valid), len(data.y_test), data.n_features) == (40, 20, 20, 784)
    assert data.meta["image_shape"] == (1, 28, 28) and len(data.meta["classes"]) == 10
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1 and data.x_train.max() > 0.99
    test_rows = {r.tobytes() for r in (arrays["t10k-images"].reshape(30, -1) / 255.0).astype(np.float32)}
    assert all(r.tobytes() in test_rows for r in data.x_test)  # test comes from t10k only
    assert np.bincount(data.y_test).tolist() == [2] * 10
    full = get_dataset("fashion_mnist")(seed=0)
    assert (full.n_train, len(full.y_valid), len(full.y_test)) == (60, 20, 30)  # 75/25 of train, all of t10k


def test_fashion_mnist_refuses_images_of_another_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("VALBENCH_DATA", str(tmp_path))
    write_fashion(tmp_path, monkeypatch)
    write_file(tmp_path, "fashion-mnist/t10k-images-idx3-ubyte.gz",
               gzip.compress(write_idx(np.zeros((30, 32, 32), np.uint8))), monkeypatch)
    with pytest.raises(DataError, match=r"t10k images of shape \(30, 32, 32\)"):
        get_dataset("fashion_mnist")()
