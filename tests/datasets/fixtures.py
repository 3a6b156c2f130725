"""Tiny stand-ins for the real data files, in their real formats (gzipped IDX, ``.rda`` written by ``rdata``),
placed in a temporary ``$VALBENCH_DATA`` with the catalogue's checksums pointed at them."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from valbench.datasets import datafiles
from valbench.datasets.idx import write_idx


def letter_like(rng: np.random.Generator, label: str, n: int = 60, classes=("A", "B", "C")) -> pd.DataFrame:
    """Numeric features, one of them constant, and a factor label column placed first (like LetterRecognition)."""
    y = np.arange(n) % len(classes)
    frame = pd.DataFrame({f"f{i}": rng.normal(size=n) + y for i in range(3)}).assign(const=1.0)
    frame.insert(0, label, pd.Categorical.from_codes(y, categories=list(classes)))
    return frame


def mixed_factors(rng: np.random.Generator, label: str, n: int = 40) -> pd.DataFrame:
    """DNA's '0'/'1' factors, ticdata's ordered bands and a nominal factor, a number, and the label last."""
    return pd.DataFrame({
        "V1": pd.Categorical(rng.choice(["0", "1"], size=n), categories=["0", "1"]),
        "band": pd.Categorical(rng.choice(["low", "mid", "high"], size=n), categories=["low", "mid", "high"],
                               ordered=True),
        "kind": pd.Categorical(rng.choice(["x", "y", "z"], size=n), categories=["x", "y", "z"]),
        "amount": rng.normal(size=n),
        label: pd.Categorical.from_codes(np.arange(n) % 2, categories=["no", "yes"]),
    })


def write_file(directory: Path, path: str, content: bytes, monkeypatch) -> None:
    """Write ``content`` at ``directory/path`` and make the catalogue expect exactly it."""
    target = directory / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    digest = datafiles.content_sha256(target)[0]
    monkeypatch.setitem(datafiles.FILES, path, dataclasses.replace(datafiles.FILES[path], sha256=digest))


def ordered_factor_constructor(data: pd.Categorical, converter):
    """rdata 1.1.0 writes every categorical as a plain factor; R marks an ordered one with the class
    c("ordered", "factor"), as ticdata's bands are stored."""
    from rdata.conversion.to_r import build_r_object
    from rdata.parser import RObjectType

    classes = np.array(["ordered", "factor"]) if data.ordered else "factor"
    attributes = converter.convert_to_r_attributes({"levels": data.categories.to_numpy(), "class": classes})
    return build_r_object(RObjectType.INT, value=data.codes + 1, is_object=True, attributes=attributes)


def write_rda(directory: Path, path: str, name: str, frame: pd.DataFrame, monkeypatch) -> None:
    import rdata
    from rdata.conversion.to_r import DEFAULT_CLASS_MAP

    scratch = directory / ".scratch.rda"
    constructors = {**DEFAULT_CLASS_MAP, pd.Categorical: ordered_factor_constructor}
    rdata.write_rda(scratch, {name: frame}, constructor_dict=constructors)
    write_file(directory, path, scratch.read_bytes(), monkeypatch)
    scratch.unlink()


def write_fashion(directory: Path, monkeypatch, n_train: int = 80, n_test: int = 30, seed: int = 0) -> dict:
    """Gzipped IDX files of random 28x28 uint8 images, classes 0..9 in turn; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{part}-images"] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        arrays[f"{part}-labels"] = (np.arange(n) % 10).astype(np.uint8)
        for kind, ndim in (("images", 3), ("labels", 1)):
            write_file(directory, f"fashion-mnist/{part}-{kind}-idx{ndim}-ubyte.gz",
                       gzip.compress(write_idx(arrays[f"{part}-{kind}"])), monkeypatch)
    return arrays
