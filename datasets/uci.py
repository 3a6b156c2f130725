"""Real tabular sets from the R packages mlbench and kernlab (UCI / Statlog / CoIL 2000), read from the ``.rda``
files ``make data`` places in ``$VALBENCH_DATA`` (parsed by the pure-Python ``rdata`` package; no R needed).

| name | file | rows x features | classes |
|---|---|---|---|
| ``letter`` | mlbench/LetterRecognition.rda | 20,000 x 16 | 26 letters (label ``lettr``) |
| ``shuttle`` | mlbench/Shuttle.rda | 58,000 x 9 | 7 (``Class``; 78.6 % Rad.Flow, the rarest 13 and 10 rows) |
| ``satellite`` | mlbench/Satellite.rda | 6,435 x 36 | 6 soil types (``classes``) |
| ``dna`` | mlbench/DNA.rda | 3,186 x 180 | 3 splice-junction types (``Class``) |
| ``spam`` | kernlab/spam.rda | 4,601 x 57 | 2 (``type``) |
| ``caravan`` | kernlab/ticdata.rda | 9,822 x 137 (85 columns encoded) | 2 (``CARAVAN``: 6.0 % insurance) |

The sources pool their train and test files (the Statlog splits are not marked), so every set is split like
the built-ins: stratified, every class in every split, standardised on the train split
(:func:`~valbench.datasets.splits.make_splits`). Features are encoded once (:func:`encode_features`):
numbers as they are; factors whose levels are numbers (DNA's '0'/'1' indicators) as those numbers; ordered
factors (59 of ticdata's percentage and amount bands) as their level codes 0..L-1; other factors (ticdata's
customer subtype, main type and age band) one-hot.

shuttle (78.6 %) and caravan (94 %) have a majority class above :data:`valbench.metrics.IMBALANCE_SHARE`, so the
report judges subsets there on balanced accuracy, not accuracy (predicting the majority class alone scores 0.94
accuracy on caravan); the others are judged on accuracy.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd

from valbench.protocol import DataError, Dataset
from valbench.registry import register_dataset
from valbench.datasets.datafiles import data_dir, read_verified
from valbench.datasets.splits import make_splits


def encode_features(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The feature columns as one float64 matrix and its column names (rules in the module docstring)."""
    columns = []
    for name, column in frame.items():
        if isinstance(column.dtype, pd.CategoricalDtype):
            levels = pd.to_numeric(pd.Series(column.cat.categories), errors="coerce")
            if not levels.isna().any():
                columns.append(pd.Series(np.asarray(levels)[column.cat.codes], name=name))
            elif column.cat.ordered:
                columns.append(pd.Series(column.cat.codes, name=name, dtype=np.float64))
            else:
                columns.append(pd.get_dummies(column, prefix=name, prefix_sep="=", dtype=np.float64))
        elif pd.api.types.is_numeric_dtype(column):
            columns.append(column.astype(np.float64).rename(name))
        else:
            raise DataError(f"column {name!r} of dtype {column.dtype} is neither numeric nor a factor")
    table = pd.concat([c.reset_index(drop=True) for c in columns], axis=1)
    return table.to_numpy(dtype=np.float64), [str(c) for c in table.columns]


@lru_cache(maxsize=8)
def rda_table(dataset: str, path: str, label: str, directory: str) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    """``(x, y, class names, feature names)`` of the data frame in ``directory/path``, the label column's
    levels as classes 0..C-1; parsed once per process (Shuttle's 58,000 rows take about 2 s)."""
    import rdata

    content = read_verified(dataset, path, directory)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unknown encoding", UserWarning)  # ASCII files saved without a flag
        frames = rdata.conversion.convert(rdata.parser.parse_data(content))
    if len(frames) != 1:
        raise DataError(f"dataset {dataset!r}: {path} holds {sorted(frames)}, expected one data frame")
    (frame,) = frames.values()
    if label not in frame.columns or not isinstance(frame[label].dtype, pd.CategoricalDtype):
        raise DataError(f"dataset {dataset!r}: {path} has no factor column {label!r}")
    if frame.isna().any().any():
        raise DataError(f"dataset {dataset!r}: {path} has missing values")
    x, features = encode_features(frame.drop(columns=[label]))
    y = frame[label].cat.codes.to_numpy(dtype=np.int64)
    for a in (x, y):
        a.flags.writeable = False  # shared by every cell of this worker
    return x, y, tuple(frame[label].cat.categories), tuple(features)


def rda_dataset(name: str, path: str, label: str, seed: int, n_train, n_valid, n_test) -> Dataset:
    x, y, classes, features = rda_table(name, path, label, str(data_dir()))
    return make_splits(name, x, y, seed, n_classes=len(classes), n_train=n_train, n_valid=n_valid,
                       n_test=n_test, meta={"classes": classes, "features": features, "source": path})


# name: (file in $VALBENCH_DATA, label column, one-line description for `valbench list`)
SETS = {
    "letter": ("mlbench/LetterRecognition.rda", "lettr",
               "UCI letter recognition: 20,000 x 16, 26 classes; needs `make data`"),
    "shuttle": ("mlbench/Shuttle.rda", "Class",
                "Statlog shuttle: 58,000 x 9, 7 classes (78.6 % one, the rarest 13 and 10 rows; judged on "
                "balanced accuracy); needs `make data`"),
    "satellite": ("mlbench/Satellite.rda", "classes",
                  "Statlog Landsat satellite: 6,435 x 36, 6 classes; needs `make data`"),
    "dna": ("mlbench/DNA.rda", "Class",
            "Statlog DNA splice junctions: 3,186 x 180 binary, 3 classes; needs `make data`"),
    "spam": ("kernlab/spam.rda", "type", "UCI spambase: 4,601 x 57, 2 classes (39 % spam); needs `make data`"),
    "caravan": ("kernlab/ticdata.rda", "CARAVAN",
                "CoIL 2000 insurance (ticdata): 9,822 x 137 encoded, 2 classes (6.0 % positive; judged on balanced "
                "accuracy); needs `make data`"),
}


def _register(name: str, path: str, label: str, about: str) -> None:
    def load(seed: int = 0, n_train: int | float | None = None, n_valid: int | float | None = None,
             n_test: int | float | None = None) -> Dataset:
        return rda_dataset(name, path, label, seed, n_train, n_valid, n_test)

    load.__name__ = f"load_{name}"
    load.__doc__ = f"{about}. Sizes: point counts or fractions; missing ones take 60/20/20 % of what remains."
    register_dataset(name, about)(load)


for _name, (_path, _label, _about) in SETS.items():
    _register(_name, _path, _label, _about)
