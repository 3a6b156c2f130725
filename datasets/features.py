"""Frozen CNN features for Fashion-MNIST: the regime of most published image valuation (HOST-CP's authors embed
CIFAR-10 with a frozen ResNet-18, OpenDataVal with a pretrained network) on data the suite ships.

A ConvNet (:class:`valbench.learners.CNN`, its default settings for ``epochs`` epochs) is trained once on a
fixed *extractor pool*: ``pool`` of Fashion-MNIST's 60,000 train images, a stratified draw by a stream of its
own (never the benchmark's seed). Each remaining image, and each image of the t10k test split, is then
represented by the network's penultimate layer (``module[:-1]``: width x 3 x 3 = 288 numbers). The benchmark's
train and valid rows are drawn from the remaining images only (:func:`benchmark_rows`), so the extractor has
never seen a train, valid or test row of any cell: disjoint by construction, and the cache file does not even
hold the pool's embeddings.

The embeddings are built on first use (or ahead of a grid by ``python -m valbench.datasets.features``, which
``make data-embed`` runs), with progress on stderr, on the CPU with one thread, so a build is a function of the
settings alone (bitwise, on one platform). They are cached in ``$VALBENCH_DATA/derived/`` under a name keyed by
the settings (:meth:`FeatureSettings.key`), beside a JSON record of the settings, the file's SHA-256, the
build time and the extractor's own test accuracy; a file whose checksum does not match is rebuilt. A lock file
keeps parallel workers from building it twice.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from valbench.datasets.datafiles import data_dir
from valbench.datasets.fashion_mnist_files import fashion_mnist_arrays
from valbench.datasets.splits import stratified_parts
from valbench.streams import stream

RECIPE = 1  # bump when the way features are built changes: the key, hence the file, changes with it


@dataclass(frozen=True)
class FeatureSettings:
    """What a feature file depends on: the extractor pool's size, the ConvNet's width, epochs and seed."""

    pool: int = 20_000
    width: int = 32
    epochs: int = 5
    seed: int = 0

    def key(self) -> str:
        text = json.dumps({**asdict(self), "recipe": RECIPE}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


DEFAULT = FeatureSettings()  # what ``fashion_mnist(features="cnn")`` uses (tests swap in a tiny one)


def extractor_rows(y_train: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Row ids (into the 60,000 train images) of the extractor pool: a stratified draw of ``settings.pool``
    from a stream named for the pool, fixed whatever seed a benchmark cell uses."""
    rng = stream(settings.seed, "fashion_mnist", "feature-extractor-pool")
    (rows,) = stratified_parts(np.asarray(y_train), (settings.pool,), rng)
    return np.sort(rows)


def benchmark_rows(y_train: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Row ids of the train images the benchmark may draw train and valid rows from: all but the pool's."""
    keep = np.ones(len(y_train), dtype=bool)
    keep[extractor_rows(y_train, settings)] = False
    return np.flatnonzero(keep)


def train_extractor(x_pool: np.ndarray, y_pool: np.ndarray, settings: FeatureSettings,
                    image_shape: tuple[int, int, int] = (1, 28, 28), device: str = "cpu") -> torch.nn.Module:
    """The ConvNet trained on the pool (pixels in [0, 1]), on ``device`` (the cache's build: the CPU), returned on
    the CPU; its ``module[:-1]`` is the extractor."""
    from valbench.learners import make_learner

    learner = make_learner("cnn", int(np.prod(image_shape)), int(y_pool.max()) + 1, seed=settings.seed,
                           image_shape=image_shape, width=settings.width, epochs=settings.epochs, device=device)
    return learner.fit(x_pool, y_pool).module


@torch.no_grad()
def embed(module: torch.nn.Module, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    """The penultimate layer (``module[:-1]``) of every row of ``x``, float32."""
    features = module.eval()[:-1]
    parts = [features(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32)))
             for i in range(0, len(x), batch)]
    return torch.cat(parts).numpy()


def build(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
          settings: FeatureSettings, log=print) -> dict[str, np.ndarray | float]:
    """Train the extractor on the pool and embed the other train rows and the test split (pixels in [0, 1]).

    Returns ``rows`` (the embedded train rows' ids), ``train`` and ``test`` (their embeddings) and the
    extractor's test accuracy. One thread, CPU: the result depends on the settings alone.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pool, rows = extractor_rows(y_train, settings), benchmark_rows(y_train, settings)
        started = time.perf_counter()
        log(f"frozen CNN features: training the extractor on {len(pool):,} pool images "
            f"({settings.epochs} epochs, width {settings.width}, seed {settings.seed}; ~{settings.epochs * 15} CPU s)")
        module = train_extractor(x_train[pool], y_train[pool], settings)
        log(f"frozen CNN features: extractor trained in {time.perf_counter() - started:.0f} s; embedding "
            f"{len(rows):,} train and {len(y_test):,} test images")
        test = embed(module, x_test)
        accuracy = float((module[-1](torch.from_numpy(test)).argmax(1).numpy() == y_test).mean())
        return {"rows": rows, "train": embed(module, x_train[rows]), "test": test, "extractor_accuracy": accuracy}
    finally:
        torch.set_num_threads(threads)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def feature_path(directory: Path, settings: FeatureSettings) -> Path:
    return directory / "derived" / f"fashion_mnist-cnn-features-{settings.key()}.npz"


def _valid(path: Path) -> bool:
    record = path.with_suffix(".json")
    if not (path.exists() and record.exists()):
        return False
    return json.loads(record.read_text()).get("sha256") == file_sha256(path)


def ensure_features(directory: Path, settings: FeatureSettings, log=None) -> Path:
    """The verified feature file for ``settings`` under ``directory``, built first when missing or altered."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    path = feature_path(directory, settings)
    if _valid(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it: wait, then look again
        if _valid(path):
            return path
        started = time.perf_counter()
        x, y, x_test, y_test = fashion_mnist_arrays(str(directory))
        built = build(x / np.float32(255), y, x_test / np.float32(255), y_test, settings, log)
        accuracy = built.pop("extractor_accuracy")
        temporary = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
        np.savez(temporary, **built)
        record = {"settings": asdict(settings), "recipe": RECIPE, "sha256": file_sha256(temporary),
                  "build_s": round(time.perf_counter() - started, 1), "extractor_test_accuracy": accuracy,
                  "pool_images": settings.pool, "embedded_train_images": int(len(built["rows"])),
                  "dimension": int(built["train"].shape[1])}
        path.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
        os.replace(temporary, path)
        log(f"frozen CNN features: {path} written in {record['build_s']:.0f} s "
            f"(extractor test accuracy {accuracy:.3f})")
    return path


@lru_cache(maxsize=2)
def cnn_features(directory: str, settings: FeatureSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, train embeddings, test embeddings)`` from the verified cache (built on first use), read once per
    process; read-only, shared by every cell of a worker."""
    with np.load(ensure_features(Path(directory), settings)) as f:
        arrays = (f["rows"], f["train"], f["test"])
    for a in arrays:
        a.flags.writeable = False
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the frozen CNN features of Fashion-MNIST (make data-embed)")
    parser.add_argument("--dir", type=Path, default=None, help="the data folder (default: $VALBENCH_DATA or data/)")
    args = parser.parse_args(argv)
    path = ensure_features(args.dir or data_dir(), DEFAULT)
    print(f"{path}: {json.loads(path.with_suffix('.json').read_text())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
