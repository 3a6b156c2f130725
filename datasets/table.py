"""``table``: the user's own data, from a CSV, Parquet or NPZ file, split and standardised like the built-ins.

``python -m valbench run --datasets table --data table.path=my.csv --data table.label=target ...``

* CSV (``.csv``, ``.tsv``, ``.txt``; ``sep`` sets the delimiter, tab by default for ``.tsv``) and Parquet
  (``.parquet``, ``.pq``) are tables with a header: ``label`` names the class column, every other column not
  in ``drop`` is a feature.
* NPZ (``.npz``): either arrays ``x`` (n rows, any trailing shape, flattened) and ``y`` (n labels), with
  ``label`` left empty or set to ``y``; or one 1-D array of length n per column, ``label`` naming one.

Labels may be strings or numbers (encoded as classes 0..C-1 in sorted order). Text, categorical and boolean
feature columns are one-hot encoded (at most ``max_categories`` values each); numeric columns are used as
they are; the features are then standardised on the train split. Every problem with the file is a
:class:`~valbench.protocol.DataError` naming the file and what to change, raised when the grid is checked,
before any cell runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from valbench.protocol import DataError, Dataset
from valbench.registry import register_dataset
from valbench.datasets.splits import make_splits

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".npz")


@register_dataset("table", "your own CSV, Parquet or NPZ file: --data table.path=FILE --data table.label=COLUMN")
def load_table(seed: int = 0, path: str = "", label: str = "", drop: str = "", sep: str = "",
               drop_nonfinite: bool = False, max_categories: int = 50, n_train: int | float | None = None,
               n_valid: int | float | None = None, n_test: int | float | None = None, id: str = "") -> Dataset:
    """Load ``path`` and split it for ``seed``.

    ``drop``: columns to leave out, joined by ``+`` (e.g. ``id+name``; a comma would expand the grid).
    ``drop_nonfinite``: drop the rows with NaN, inf or a missing value instead of refusing the file.
    ``n_train``/``n_valid``/``n_test``: point counts, or fractions of the rows in (0, 1); missing ones take
    60/20/20 % of what remains, as for every loader (:func:`valbench.datasets.splits.split_sizes`).
    ``id``: a column of unique row ids, never a feature; the train rows' ids (``meta["train_ids"]``) are its
    values, else the rows' 0-based positions in the file (rows dropped by ``drop_nonfinite`` keep theirs).
    """
    x, y, ids, features = read_table(path, label, drop, sep, drop_nonfinite, max_categories, id)
    return make_splits("table", x, y, seed, n_train=n_train, n_valid=n_valid, n_test=n_test,
                       meta={"path": str(Path(str(path)).expanduser()), "features": features, "id_column": str(id or "")}, row_ids=ids)


def read_table(path: str, label: str, drop: str = "", sep: str = "", drop_nonfinite: bool = False,
               max_categories: int = 50, id: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The file's encoded features, labels, row ids and feature names (the options as :func:`load_table`'s)."""
    file = _existing_file(path)
    where = f"dataset 'table' ({file.name})"
    frame = _read(file, sep, where)
    if isinstance(frame, tuple):  # NPZ with arrays x and y
        x, y = frame
        if label not in ("", "y"):
            raise DataError(f"{where}: holds arrays 'x' and 'y'; label must be empty or 'y', got {label!r}")
        columns = [f"x{i}" for i in range(x.shape[1])]
        frame = pd.DataFrame(x, columns=columns).assign(y=y)
        label = "y"
    frame = frame.reset_index(drop=True)  # row ids are positions in the file
    ids = _row_ids(frame, str(id or ""), label, where)
    x, y, features, kept = _encode(frame, label, _drop_list(drop) + ([str(id)] if id else []), bool(drop_nonfinite),
                                   int(max_categories), where)
    return x, y, ids[kept], features


def _row_ids(frame: pd.DataFrame, id_column: str, label: str, where: str) -> np.ndarray:
    """The values of ``id_column`` (unique, no gaps), or the row positions when it is empty."""
    if not id_column:
        return np.arange(len(frame))
    if id_column not in frame.columns:
        raise DataError(f"{where}: id column {id_column!r} not found; columns: {[str(c) for c in frame.columns]}")
    if id_column == label:
        raise DataError(f"{where}: the id column {id_column!r} is also the label column")
    ids = frame[id_column]
    if ids.isna().any() or ids.duplicated().any():
        raise DataError(f"{where}: id column {id_column!r} must hold a unique value per row; it has "
                        f"{int(ids.duplicated().sum())} duplicate(s) and {int(ids.isna().sum())} missing")
    values = ids.to_numpy()
    return values.astype(str) if values.dtype == object else values


def _existing_file(path: str) -> Path:
    if not path:
        raise DataError("dataset 'table' needs a file: --data table.path=FILE.csv (or .parquet, .npz) "
                        "and --data table.label=COLUMN")
    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise DataError(f"dataset 'table': file {str(path)!r} not found (looked in {file.absolute().parent})")
    if file.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"dataset 'table': cannot read {file.name!r}; supported suffixes: "
                        f"{', '.join(TABLE_SUFFIXES)}")
    return file


def _drop_list(drop: str | None) -> list[str]:
    return [c for c in str(drop or "").split("+") if c]


def _read(file: Path, sep: str, where: str) -> pd.DataFrame | tuple[np.ndarray, np.ndarray]:
    """The file as a data frame, or (x, y) for an NPZ holding arrays ``x`` and ``y``."""
    suffix = file.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(file)
        if suffix == ".npz":
            return _read_npz(file, where)
        return pd.read_csv(file, sep=sep or ("\t" if suffix == ".tsv" else ","))
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - a parser's message, on one line, with the file named
        raise DataError(f"{where}: cannot be read: {type(err).__name__}: {err}".splitlines()[0]) from err


def _read_npz(file: Path, where: str) -> pd.DataFrame | tuple[np.ndarray, np.ndarray]:
    with np.load(file, allow_pickle=False) as arrays:
        named = {key: arrays[key] for key in arrays.files}
    if {"x", "y"} <= set(named):
        x, y = named["x"], named["y"]
        if len(x) != len(y) or y.ndim != 1:
            raise DataError(f"{where}: 'x' has {len(x)} rows but 'y' has shape {y.shape}; expected ({len(x)},)")
        return x.reshape(len(x), -1), y
    lengths = {key: (a.ndim, len(a) if a.ndim else 0) for key, a in named.items()}
    if not named or any(ndim != 1 for ndim, _ in lengths.values()) or len({n for _, n in lengths.values()}) != 1:
        raise DataError(f"{where}: expected arrays 'x' and 'y', or one 1-D array per column of equal length; "
                        f"got {{name: (ndim, length)}} = {lengths}")
    return pd.DataFrame(named)


def _encode(frame: pd.DataFrame, label: str, drop: list[str], drop_nonfinite: bool, max_categories: int,
            where: str) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Numeric features (categorical columns one-hot encoded), the label column and the mask of the rows kept
    (all, unless ``drop_nonfinite`` dropped some)."""
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if label not in columns:
        raise DataError(f"{where}: label column {label!r} not found; columns: {columns}"
                        if label else f"{where}: give the label column with --data table.label=COLUMN; "
                                      f"columns: {columns}")
    unknown = sorted(set(drop) - set(columns))
    if unknown:
        raise DataError(f"{where}: cannot drop {unknown}: no such column(s); columns: {columns}")
    if label in drop:
        raise DataError(f"{where}: the label column {label!r} is also in drop")
    features = frame.drop(columns=[label, *drop])
    if features.shape[1] == 0:
        raise DataError(f"{where}: no feature columns left after taking the label {label!r} and dropping {drop}")
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(features[c])
               and not pd.api.types.is_bool_dtype(features[c])]
    categorical = [c for c in features if c not in numeric]
    _check_categorical(features, categorical, max_categories, where)

    finite = np.isfinite(features[numeric].to_numpy(dtype=np.float64, na_value=np.nan))
    missing = pd.concat([features[categorical], frame[[label]]], axis=1).isna().to_numpy()
    bad = ~finite.all(axis=1) | missing.any(axis=1)
    if bad.any():
        where_bad = [c for c, ok in zip(numeric, finite.all(axis=0)) if not ok] + \
                    [c for c, gap in zip([*categorical, label], missing.any(axis=0)) if gap]
        if not drop_nonfinite:
            raise DataError(f"{where}: {int(bad.sum())} of {len(bad)} rows contain NaN, inf or a missing value "
                            f"(columns {where_bad}); drop those rows with --data table.drop_nonfinite=true")
        features, frame = features[~bad], frame[~bad]
    _check_labels(frame[label], where)
    encoded = pd.get_dummies(features, columns=categorical, prefix_sep="=", dtype=np.float64)
    y = frame[label].to_numpy()
    return (encoded.to_numpy(dtype=np.float64), (y.astype(str) if y.dtype == object else y), list(encoded.columns),
            ~bad)


def _check_categorical(features: pd.DataFrame, categorical: list[str], max_categories: int, where: str) -> None:
    for column in categorical:
        values = features[column]
        if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
            raise DataError(f"{where}: column {column!r} holds dates or durations, which cannot be encoded; "
                            f"drop it with --data table.drop={column} or turn it into numbers in the file")
        n_values = values.nunique(dropna=True)
        if n_values > max_categories:
            raise DataError(f"{where}: column {column!r} is not numeric and has {n_values} distinct values "
                            f"(more than max_categories={max_categories} to one-hot encode, e.g. free text or an "
                            f"id); drop it with --data table.drop={column} or raise table.max_categories")


def _check_labels(labels: pd.Series, where: str) -> None:
    if pd.api.types.is_float_dtype(labels) and not np.all(np.mod(labels.to_numpy(), 1) == 0):
        raise DataError(f"{where}: label column {labels.name!r} holds non-integer numbers "
                        f"({labels.nunique()} distinct values); valbench needs class labels")
    classes = labels.value_counts()
    if len(classes) < 2:
        raise DataError(f"{where}: label column {labels.name!r} has one class only ({classes.index.tolist()}); "
                        "valuation needs at least two")
