"""Per-point scores files: written with every ok cell, before its record; read back by ``valbench scores``."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from valbench import values
from valbench.cli import main
from valbench.grid import GridConfig
from valbench.runner import run_grid
from valbench.store import ResultsStore

GRID = dict(datasets=["wine"], seeds=[0, 1], noise=[0.2], budgets=[0.1, 0.5])


def run(tmp_path, *extra):
    assert main(["run", "--methods", "random,craig,knn-shapley", "--datasets", "wine", "--seeds", "0,1",
                 "--noise", "0.2", "--budgets", "0.1,0.5", "--no-progress", "--no-cache", "--out", str(tmp_path),
                 "--run-id", "r", *extra]) == 0
    return tmp_path / "r"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return run(tmp_path_factory.mktemp("values"))


def test_every_ok_cell_has_its_scores_with_ids_ranks_subsets_and_truth(run_dir):
    records = ResultsStore(run_dir).records()
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    wine = load_wine()
    for record in records:
        frame = pd.read_parquet(run_dir / record["scores_file"])
        n = record["n_train"]
        assert len(frame) == n and frame.row_id.is_unique and (frame.row_id_kind == "pool").all()
        # the ids point at wine's rows: a label the harness did not flip is the row's own class
        clean = ~frame.noisy.to_numpy()
        assert np.array_equal(frame.label.to_numpy()[clean], wine.target[frame.row_id.to_numpy()[clean]])
        assert int(frame.noisy.sum()) == record["n_noisy"]
        # rank 1 = the highest score; the ranks are a permutation
        assert sorted(frame["rank"]) == list(range(1, n + 1))
        assert frame.score.iloc[frame["rank"].argmin()] == frame.score.max()
        assert (frame.method == record["method"]).all() and (frame.seed == record["seed"]).all()
        assert json.loads(frame.params.iloc[0]) == record["method_params"]
        for row in record["budgets"]:
            member = frame[f"in_subset_{row['budget']:g}"]
            assert member.sum() == row["k"]
            assert frame.noisy[member].mean() == pytest.approx(row["noisy_selected"])  # the subset it measured
            if record["method"] != "craig":  # top-k by value: exactly the k best ranks
                assert set(frame["rank"][member]) == set(range(1, row["k"] + 1))
            weighted = f"weight_{row['budget']:g}" in frame
            assert weighted == row["weighted"] == (record["method"] == "craig")
            if weighted:
                weight = frame[f"weight_{row['budget']:g}"]
                assert (weight[member] > 0).all() and (weight[~member] == 0).all()


def test_the_scores_command_round_trips_as_parquet_and_csv(run_dir, tmp_path, capsys):
    everything = values.read_scores(run_dir)
    assert len(everything) == sum(r["n_train"] for r in ResultsStore(run_dir).records())
    assert main(["scores", str(run_dir), "--method", "craig,random", "--out", str(tmp_path / "s.parquet")]) == 0
    assert main(["scores", str(run_dir), "--method", "craig,random", "--out", str(tmp_path / "s.csv")]) == 0
    parquet, csv = pd.read_parquet(tmp_path / "s.parquet"), pd.read_csv(tmp_path / "s.csv")
    assert set(parquet.method) == {"craig", "random"}
    expected = everything[everything.method.isin(["craig", "random"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(parquet, expected)
    pd.testing.assert_frame_equal(csv, expected, check_dtype=False)


@pytest.mark.parametrize("argv, message", [
    (["scores", "{tmp}"], "not a run directory"),
    (["scores", "{run}", "--out", "{tmp}/x.txt"], "give a .parquet or .csv"),
    (["scores", "{run}", "--method", "loo"], "no scores stored for loo"),
])
def test_the_scores_command_refuses_bad_input_in_one_line(argv, message, run_dir, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, run=run_dir) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def cells():
    return GridConfig(methods=["random"], **GRID).cells()


def test_a_kill_between_scores_and_record_reruns_the_cell(tmp_path, monkeypatch):
    """The scores file is written first: a kill right after it leaves no record, so the cell reruns."""
    store = ResultsStore(tmp_path)

    def killed(record):
        raise KeyboardInterrupt  # the process dies between the two writes

    monkeypatch.setattr(store, "append", killed)
    with pytest.raises(KeyboardInterrupt):
        run_grid(cells()[:1], store, progress=False)
    assert len(list((tmp_path / "scores").glob("*.parquet"))) == 1 and not store.path.exists()
    monkeypatch.undo()
    assert run_grid(cells(), store, progress=False)["ok"] == 2
    assert all((tmp_path / r["scores_file"]).is_file() for r in store.records())


def test_a_record_whose_scores_file_is_missing_is_not_done(tmp_path):
    store = ResultsStore(tmp_path)
    run_grid(cells(), store, progress=False)
    lost = store.records()[0]
    (tmp_path / lost["scores_file"]).unlink()
    assert values.missing_scores(tmp_path, store.records()) == {lost["key"]}
    counts = run_grid(cells(), store, progress=False)
    assert (counts["ok"], counts["skipped"]) == (1, 1)
    assert (tmp_path / lost["scores_file"]).is_file() and not values.missing_scores(tmp_path, store.records())


def test_a_failed_scores_write_leaves_no_record_and_no_partial_file(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)

    def full_disk(self, path, **kwargs):
        Path(path).write_bytes(b"PAR1 partial")
        raise OSError("no space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    with pytest.raises(OSError):
        run_grid(cells()[:1], store, progress=False)
    assert not store.path.exists() and not list((tmp_path / "scores").iterdir())


def test_no_scores_keeps_none(tmp_path):
    store = ResultsStore(tmp_path)
    run_grid(cells(), store, progress=False, scores=False)
    assert not (tmp_path / "scores").exists() and all("scores_file" not in r for r in store.records())
    assert "_scores" not in store.path.read_text()
