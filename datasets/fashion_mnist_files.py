"""Fashion-MNIST's files as arrays: the one reader the image dataset and the frozen-feature extractor share
(both need the raw images; keeping it here keeps :mod:`~valbench.datasets.images` and
:mod:`~valbench.datasets.features` free of each other)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from valbench.datasets.datafiles import read_verified
from valbench.datasets.idx import parse_idx
from valbench.protocol import DataError


@lru_cache(maxsize=1)
def fashion_mnist_arrays(directory: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST's train (60,000) and t10k (10,000) images (uint8, flattened) and labels, read once per
    process and data folder from ``directory/fashion-mnist/`` after checking their checksums."""
    arrays = []
    for part in ("train", "t10k"):
        images = parse_idx(read_verified("fashion_mnist", f"fashion-mnist/{part}-images-idx3-ubyte.gz", directory))
        labels = parse_idx(read_verified("fashion_mnist", f"fashion-mnist/{part}-labels-idx1-ubyte.gz", directory))
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DataError(f"dataset 'fashion_mnist': {part} images of shape {images.shape} with "
                            f"{len(labels)} labels; expected (n, 28, 28) and n labels")
        arrays += [images.reshape(len(images), -1), labels.astype(np.int64)]
    for a in arrays:
        a.flags.writeable = False  # shared by every cell of this worker
    return tuple(arrays)  # type: ignore[return-value]
