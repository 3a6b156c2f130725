"""fashion_mnist(features="cnn"): frozen ConvNet embeddings, disjoint from the benchmark's rows, cached and
verified, on tiny gzipped IDX fixtures with a tiny extractor (the real build: docs/learners.md)."""

import json

import numpy as np
import pytest
import torch

from valbench.datasets import features
from valbench.datasets.features import FeatureSettings, benchmark_rows, embed, extractor_rows, train_extractor
from valbench.datasets.splits import standardise
from valbench.protocol import DataError
from valbench.registry import get_dataset

from .fixtures import write_fashion

TINY = FeatureSettings(pool=30, width=4, epochs=1, seed=0)


@pytest.fixture
def fashion(tmp_path, monkeypatch):
    monkeypatch.setenv("VALBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(features, "DEFAULT", TINY)
    features.cnn_features.cache_clear()
    arrays = write_fashion(tmp_path, monkeypatch)
    yield tmp_path, arrays
    features.cnn_features.cache_clear()


def test_the_extractor_pool_is_fixed_stratified_and_disjoint_from_every_split(fashion):
    _, arrays = fashion
    y = arrays["train-labels"].astype(np.int64)
    pool = extractor_rows(y, TINY)
    assert len(pool) == 30 and np.bincount(y[pool]).tolist() == [3] * 10
    assert np.array_equal(pool, extractor_rows(y, TINY))  # the same pool whatever the benchmark's seed
    assert sorted(np.concatenate([pool, benchmark_rows(y, TINY)]).tolist()) == list(range(80))
    from valbench.datasets.images import embedded_split_rows

    for seed in range(4):
        ids = embedded_split_rows(seed, 30, 10, None)
        train, valid = ids.x_train[:, 0].astype(int), ids.x_valid[:, 0].astype(int)
        assert len(train) == 30 and len(valid) == 10 and not set(train) & set(valid)
        assert not (set(train) | set(valid)) & set(pool.tolist())


def test_embedded_rows_are_the_extractors_penultimate_layer_of_those_images(fashion, capsys):
    directory, arrays = fashion
    data = get_dataset("fashion_mnist")(seed=1, n_train=30, n_valid=10, features="cnn")
    assert "training the extractor on 30 pool images" in capsys.readouterr().err  # progress, on first use
    assert (data.n_train, len(data.y_valid), len(data.y_test), data.n_features) == (30, 10, 30, 4 * 3 * 3)
    assert "image_shape" not in data.meta and data.meta["features"] == "cnn"
    # an independent rebuild: the same extractor (deterministic for its seed) applied to the rows drawn
    x = arrays["train-images"].reshape(80, -1) / np.float32(255)
    y = arrays["train-labels"].astype(np.int64)
    pool = extractor_rows(y, TINY)
    module = train_extractor(x[pool], y[pool], TINY)
    from valbench.datasets.images import embedded_split_rows

    ids = embedded_split_rows(1, 30, 10, None)
    rows = [ids.x_train[:, 0].astype(int), ids.x_valid[:, 0].astype(int)]
    test = arrays["t10k-images"].reshape(30, -1)[ids.x_test[:, 0].astype(int)] / np.float32(255)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the build runs
    expected = standardise(embed(module, x[rows[0]]), embed(module, x[rows[1]]), embed(module, test))
    torch.set_num_threads(threads)
    for got, want in zip((data.x_train, data.x_valid, data.x_test), expected):
        assert np.allclose(got, want, atol=1e-5)
    assert np.array_equal(data.y_train, y[rows[0]])


def test_features_are_cached_verified_and_keyed_by_their_settings(fashion, monkeypatch):
    directory, _ = fashion
    path = features.ensure_features(directory, TINY)
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == features.file_sha256(path) and record["settings"]["pool"] == 30
    with np.load(path) as f:
        assert not set(f["rows"].tolist()) & set(extractor_rows(np.arange(80) % 10, TINY).tolist())
        first = f["train"].copy()
    built = []
    real_build = features.build
    monkeypatch.setattr(features, "build", lambda *a, **k: built.append(1) or real_build(*a, **k))
    assert features.ensure_features(directory, TINY) == path and built == []  # a verified file is reused
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # altered: rebuilt, to the same content
    assert features.ensure_features(directory, TINY) == path and built == [1]
    with np.load(path) as f:
        assert np.array_equal(f["train"], first)  # deterministic for its seed
    other = features.feature_path(directory, FeatureSettings(pool=30, width=4, epochs=1, seed=1))
    assert other != path and FeatureSettings().key() != TINY.key()


def test_bad_feature_names_and_the_cnn_on_embeddings_are_refused(fashion):
    with pytest.raises(DataError, match=r"features='hog' is not one of \['pixels', 'cnn'\]"):
        get_dataset("fashion_mnist")(features="hog")
    from valbench.learners import learner_for

    data = get_dataset("fashion_mnist")(seed=0, n_train=30, n_valid=10, features="cnn")
    with pytest.raises(ValueError, match="needs an image dataset"):
        learner_for("cnn", data)
    assert learner_for("logreg", data).n_features == 36
