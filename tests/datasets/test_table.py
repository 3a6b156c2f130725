"""The ``table`` dataset: the user's own CSV, Parquet or NPZ file.

The fixture ``data/animals.csv`` (90 rows) has an ``id`` column, a categorical ``colour``, two numeric
columns and string labels ``species`` (cat, dog, fox; 30 each).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valbench.cli import main
from valbench.protocol import DataError
from valbench.registry import get_dataset, load_installed

load_installed()
ANIMALS = Path(__file__).parent / "data" / "animals.csv"


def load(**params):
    return get_dataset("table")(**params)


def animals() -> pd.DataFrame:
    return pd.read_csv(ANIMALS)


def test_csv_with_string_labels_and_a_categorical_column():
    data = load(path=str(ANIMALS), label="species", drop="id", seed=0)
    assert data.meta["features"] == ["length_cm", "weight_kg", "colour=black", "colour=red", "colour=white"]
    assert data.n_classes == 3 and sorted(np.unique(data.y_train)) == [0, 1, 2]
    assert data.n_train + len(data.y_valid) + len(data.y_test) == 90
    assert np.allclose(data.x_train.mean(0), 0, atol=1e-5)  # standardised on the train split
    # classes are the sorted label strings: cat=0, dog=1, fox=2; every fox is red
    frame = animals()
    red = data.meta["features"].index("colour=red")
    fox_rows = data.x_train[data.y_train == 2]
    assert np.allclose(fox_rows[:, red], fox_rows[:, red].max())
    assert (frame.species == "fox").sum() == 30


def test_every_format_gives_the_same_data(tmp_path):
    frame = animals()
    frame.to_parquet(tmp_path / "animals.parquet")
    species = frame.species.to_numpy().astype(str)  # a unicode array: NPZ files are read without pickle
    np.savez(tmp_path / "columns.npz", length_cm=frame.length_cm.to_numpy(), weight_kg=frame.weight_kg.to_numpy(),
             species=species)
    np.savez(tmp_path / "xy.npz", x=frame[["length_cm", "weight_kg"]].to_numpy(), y=species)
    csv = load(path=str(ANIMALS), label="species", drop="id+colour", seed=3)
    for other in (load(path=str(tmp_path / "animals.parquet"), label="species", drop="id+colour", seed=3),
                  load(path=str(tmp_path / "columns.npz"), label="species", seed=3),
                  load(path=str(tmp_path / "xy.npz"), seed=3)):
        assert np.array_equal(other.x_train, csv.x_train) and np.array_equal(other.y_test, csv.y_test)


def test_sizes_seeds_and_dropping_nonfinite_rows(tmp_path):
    a = load(path=str(ANIMALS), label="species", seed=1, n_train=0.5, n_test=15)
    assert (a.n_train, len(a.y_test)) == (45, 15)
    b = load(path=str(ANIMALS), label="species", seed=2, n_train=0.5, n_test=15)
    assert not np.array_equal(a.x_train, b.x_train)
    frame = animals()
    frame.loc[[3, 10], "weight_kg"] = np.nan
    frame.loc[20, "length_cm"] = np.inf
    frame.to_csv(tmp_path / "holes.csv", index=False)
    kept = load(path=str(tmp_path / "holes.csv"), label="species", drop_nonfinite=True)
    assert kept.meta["n_total"] == 87


def write(tmp_path, frame, name="bad.csv"):
    frame.to_csv(tmp_path / name, index=False)
    return str(tmp_path / name)


def with_nan(tmp_path):
    frame = animals()
    frame.loc[[1, 2, 5], "weight_kg"] = np.nan
    frame.loc[7, "length_cm"] = np.inf
    return write(tmp_path, frame)


def with_gaps(tmp_path):
    frame = animals()
    frame.loc[4, "colour"] = None
    frame.loc[6, "species"] = None
    return write(tmp_path, frame)


def two_foxes():
    frame = animals()
    return pd.concat([frame[frame.species != "fox"], frame[frame.species == "fox"].head(2)])


BAD_FILES = {
    "missing file": (lambda tmp: str(tmp / "nope.csv"), {"label": "species"}, "file '.*nope.csv' not found"),
    "unknown label": (lambda tmp: str(ANIMALS), {"label": "kind"},
                      r"label column 'kind' not found; columns: \['id', 'colour', 'length_cm', 'weight_kg', "
                      r"'species'\]"),
    "no label given": (lambda tmp: str(ANIMALS), {}, "give the label column with --data table.label=COLUMN"),
    "nan or inf features": (with_nan, {"label": "species"},
                            r"4 of 90 rows contain NaN, inf or a missing value \(columns \['length_cm', "
                            r"'weight_kg'\]\); drop those rows with --data table.drop_nonfinite=true"),
    "missing category or label": (with_gaps, {"label": "species"},
                                  r"2 of 90 rows contain NaN, inf or a missing value \(columns \['colour', "
                                  r"'species'\]\)"),
    "one class": (lambda tmp: write(tmp, animals().assign(species="cat")), {"label": "species"},
                  r"label column 'species' has one class only \(\['cat'\]\)"),
    "too few rows in a class": (lambda tmp: write(tmp, two_foxes()), {"label": "species"},
                                r"class\(es\) \['fox'\] have fewer than 3 rows \(2 at least\)"),
    "split smaller than the classes": (lambda tmp: str(ANIMALS), {"label": "species", "n_test": 2},
                                       "n_test=2 is smaller than its 3 classes"),
    "text column": (lambda tmp: write(tmp, animals().assign(name=[f"animal {i}" for i in range(90)])),
                    {"label": "species"}, "column 'name' is not numeric and has 90 distinct values .* "
                                          "drop it with --data table.drop=name"),
    "regression target": (lambda tmp: str(ANIMALS), {"label": "weight_kg"}, "holds non-integer numbers"),
    "unknown drop column": (lambda tmp: str(ANIMALS), {"label": "species", "drop": "idx"},
                            r"cannot drop \['idx'\]: no such column"),
    "unsupported suffix": (lambda tmp: write(tmp, animals(), "bad.xlsx"), {"label": "species"},
                           "supported suffixes: .csv"),
    "not a table": (lambda tmp: (tmp / "bad.parquet").write_text("hello") and str(tmp / "bad.parquet"),
                    {"label": "species"}, "cannot be read: "),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_refused_with_one_clear_line(case, tmp_path):
    make_path, params, message = BAD_FILES[case]
    with pytest.raises(DataError, match=message) as info:
        load(path=make_path(tmp_path), **params)
    assert "\n" not in str(info.value)


def test_dates_cannot_be_encoded(tmp_path):
    frame = animals().assign(born=pd.date_range("2020-01-01", periods=90))
    frame.to_parquet(tmp_path / "dates.parquet")
    with pytest.raises(DataError, match="column 'born' holds dates"):
        load(path=str(tmp_path / "dates.parquet"), label="species")


def test_the_cli_runs_a_table_and_a_list_of_paths_expands_the_grid(tmp_path):
    second = tmp_path / "second.csv"
    animals().assign(weight_kg=lambda f: f.weight_kg * 2).to_csv(second, index=False)
    out = tmp_path / "out"
    assert main(["run", "--methods", "random,knn-shapley", "--datasets", "table", "--data",
                 f"table.path={ANIMALS},{second}", "--data", "table.label=species", "--data", "table.drop=id",
                 "--budgets", "0.2,0.5", "--no-progress", "--no-cache", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "latest" / "results.jsonl").read_text().splitlines()]
    assert sorted((r["method"], Path(r["dataset_params"]["path"]).name) for r in rows) == [
        ("knn-shapley", "animals.csv"), ("knn-shapley", "second.csv"),
        ("random", "animals.csv"), ("random", "second.csv")]
    assert all(r["status"] == "ok" and r["n_classes"] == 3 for r in rows), [r["error"] for r in rows]
    summary = (out / "latest" / "summary.md").read_text()  # one row per file and method, never the two averaged
    all_results = summary.split("## All results", 1)[1].split("\n## ", 1)[0]
    for path in (ANIMALS, second):
        assert sum(line.startswith(f"| table (path={path}) ") for line in all_results.splitlines()) == 2


def test_a_bad_file_exits_2_before_any_cell_runs(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--methods", "random", "--datasets", "table", "--data", f"table.path={with_nan(tmp_path)}",
                 "--data", "table.label=species", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4 of 90 rows contain NaN" in err
    assert not out.exists()


def test_more_points_than_rows():
    with pytest.raises(DataError, match="requested 100 points .* only 90 exist"):
        load(path=str(ANIMALS), label="species", n_train=100)


def test_row_ids_point_at_the_train_rows_of_the_file(tmp_path):
    """meta["train_ids"]: the id column's values, or the file positions (kept through drop_nonfinite)."""
    frame = animals()
    by_id = load(path=str(ANIMALS), label="species", id="id", seed=2, drop_nonfinite=True)
    assert "id" not in " ".join(by_id.meta["features"])  # the id is never a feature
    rows = frame.set_index("id").loc[by_id.meta["train_ids"]]
    species = np.array(sorted(frame.species.unique()))
    assert np.array_equal(species[by_id.y_train], rows.species.to_numpy())
    # unscaled features: the standardised train columns are an affine map of the file's columns
    length = by_id.meta["features"].index("length_cm")
    assert np.corrcoef(by_id.x_train[:, length], rows.length_cm.to_numpy())[0, 1] > 0.9999
    # positions survive dropped rows: blank out three rows, the ids still name the file's rows
    holes = frame.copy()
    holes.loc[[0, 5, 40], "weight_kg"] = np.nan
    holes.to_csv(tmp_path / "holes.csv", index=False)
    by_position = load(path=str(tmp_path / "holes.csv"), label="species", drop="id", drop_nonfinite=True, seed=2)
    ids = by_position.meta["train_ids"]
    assert not set(ids) & {0, 5, 40} and len(set(ids)) == len(ids)
    assert np.array_equal(species[by_position.y_train], holes.species.to_numpy()[ids])
    weight = by_position.meta["features"].index("weight_kg")
    assert np.corrcoef(by_position.x_train[:, weight], holes.weight_kg.to_numpy()[ids])[0, 1] > 0.9999


@pytest.mark.parametrize("id_column, message", [("nope", "id column 'nope' not found"),
                                                ("species", "is also the label column"),
                                                ("colour", "must hold a unique value per row")])
def test_a_bad_id_column_is_refused(id_column, message):
    with pytest.raises(DataError, match=message):
        load(path=str(ANIMALS), label="species", id=id_column)
