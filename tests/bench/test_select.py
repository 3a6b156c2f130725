"""``valbench select``: measured on the user's table, recommended by the verdict's rule, applied to every row."""

import numpy as np
import pandas as pd
import pytest

import valbench
from valbench.cli import main
from valbench.keep.candidates import DEFAULT_POOL, choose_candidates
from valbench.protocol import DataError


def blobs(n: int, classes: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` Gaussian blobs in 5 dimensions, centres 10 apart, ``spread`` their standard deviation."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = 10.0 * np.eye(classes, 5)
    return centres[y] + spread * rng.normal(size=(n, 5)), y


def test_label_issues_are_mostly_the_flipped_rows(tmp_path):
    x, y = blobs(600, 3, spread=1.0)
    rng = np.random.default_rng(1)
    flipped = rng.choice(600, 60, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 3, 60)) % 3
    selection = valbench.select(x, noisy, 0.2, methods=["random", "herding"], out=tmp_path, progress=False,
                                check_detection=True)
    assert 0.05 <= selection.noise.rate <= 0.15  # 10 % flipped
    assert selection.noise.low <= selection.noise.rate <= selection.noise.high
    issues = np.flatnonzero(selection.values.label_issue)
    found = np.isin(issues, flipped)
    assert found.mean() >= 0.8 and found.sum() >= 0.8 * len(flipped)  # mostly the flips, and most flips found
    # --check-detection: the detectors ranked on labels flipped again at the estimated rate; the best one flags
    detection = selection.detection
    assert set(detection.detector) == {"cleanlab", "enn", "aum"} and (detection.n_seeds == 3).all()
    assert selection.detector == detection.detector[0] and detection.mislabel_auc[0] > 0.8
    assert "lowest-scored" in selection.detection_rule and "best detector by ROC-AUC" in selection.detection_rule
    values = selection.values
    assert len(values) == 600 and values.row.tolist() == list(range(600))
    assert values.selected.sum() == 120 and (values.role == "valued").all()  # herding needs no validation rows
    assert set(values["rank"][values.selected]) == set(range(1, 121)) or selection.recommended == "herding"
    assert (tmp_path / "values.csv").is_file() and (tmp_path / "index.html").is_file()
    assert set(selection.evidence.label) == {"random", "herding"} and (selection.evidence.n_seeds == 3).all()


def test_when_every_method_is_as_good_as_random_the_answer_is_random(tmp_path):
    """Blobs 10 standard deviations apart: any 20 % of the rows gives a perfect model, so every candidate ties."""
    x, y = blobs(300, 2, spread=0.5)
    selection = valbench.select(x, y, 0.2, methods=["random", "herding", "facility-location"], out=tmp_path,
                                progress=False)
    assert np.allclose(selection.evidence.value, 1.0)
    assert selection.recommended == "random" and selection.recommendation.choice.random_within
    assert selection.sentence.startswith("random is within one point")


def evidence_row(label, value, vs, low, high, cost):
    return {"label": label, "value": value, "low": value, "high": value, "vs_random": vs, "vs_random_low": low,
            "vs_random_high": high, "n_seeds": 3, "cost_fits": cost, "fit_cpu_s": cost, "status": "ok"}


@pytest.mark.parametrize("low, said", [(-0.049, True), (0.0, True), (0.004, False)])
def test_a_gain_over_random_whose_interval_reaches_zero_is_said_in_the_sentence(low, said):
    from valbench.keep.recommend import recommend

    evidence = pd.DataFrame([evidence_row("random", 0.836, np.nan, np.nan, np.nan, 0.0),
                             evidence_row("herding", 0.878, 0.042, low, 0.132, 1.0)])
    recommendation = recommend(evidence, "accuracy")
    sentence = recommendation.sentence(evidence)
    assert recommendation.apply == "herding" and sentence.startswith("use herding: 0.878 accuracy at the budget")
    assert ("not separable from random on 3 seeds (the interval reaches 0" in sentence) is said


def test_the_cli_keys_the_output_by_the_id_column_and_never_uses_it_as_a_feature(tmp_path, capsys):
    x, y = blobs(300, 3, spread=1.0, seed=2)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    frame.insert(0, "sample", [f"s{i:04d}" for i in range(300)])
    frame["species"] = np.array(["oak", "pine", "yew"])[y]
    frame.loc[7, "f2"] = np.nan  # dropped by --drop-nonfinite, so absent from the output
    frame["note"] = "x"
    frame.to_csv(tmp_path / "trees.csv", index=False)
    out = tmp_path / "sel"
    assert main(["select", str(tmp_path / "trees.csv"), "--label", "species", "--id", "sample", "--budget", "30",
                 "--drop", "note", "--drop-nonfinite", "--methods", "random,knn-shapley", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "recommendation:" in printed and "index.html" in printed
    values = pd.read_csv(out / "values.csv")
    assert values["sample"].tolist() == [s for s in frame["sample"] if s != "s0007"]
    assert values.label.tolist() == frame.species.drop(index=7).tolist()
    valued = values[values.role == "valued"]
    assert values.selected.sum() == 30 and valued.score.notna().all()
    assert not values.selected[values.role == "validation"].any()
    recommended = [line for line in printed.splitlines() if line.startswith("recommendation:")][0]
    carved = (values.role == "validation").sum()
    # knn-shapley values against a carved-out validation split; random needs none
    assert carved == (60 if "use knn-shapley" in recommended else 0)
    (path,) = (out / "measure").glob("data-*.npz")
    data = np.load(path)
    assert data["x"].shape == (299, 5)  # the five features only: neither the id nor the dropped column


def test_a_method_that_reads_the_validation_split_values_the_other_rows():
    from valbench.keep.apply import fit_values, values_table
    from valbench.keep.candidates import Candidate

    x, y = blobs(200, 2, spread=2.0)
    values = fit_values(x, y, 2, Candidate("knn-shapley"), 0.25)
    assert len(values) == 160 and values["in_subset_0.25"].sum() == 40  # 20 % carved out, 25 % of the rest kept
    table = values_table(200, values, 0.25, None, 0.0)
    carved = table[table.role == "validation"]
    assert len(carved) == 40 and carved.score.isna().all() and not carved.selected.any()
    assert np.bincount(y[carved.index]).tolist() == [20, 20]  # stratified
    assert (table.loc[values.row_id, "score"].to_numpy() == values.score.to_numpy()).all()


@pytest.mark.parametrize("extra, message", [
    (["--budget", "0"], "budget 0 is invalid"),
    (["--budget", "1.5"], "budget 1.5 is invalid"),
    (["--budget", "5000"], "budget 5000 is invalid"),
    (["--budget", "0.1", "--methods", "random,nope"], "unknown method(s) ['nope']"),
    (["--budget", "0.1", "--seeds", "2"], "seeds=2"),
    (["--budget", "0.1", "--id", "f0"], "must hold a unique value per row"),
    (["--budget", "0.1", "--label", "missing"], "label column 'missing' not found"),
    (["--budget", "0.1", "--jobs", "0"], "--jobs 0 is invalid"),
    (["--budget", "0.1", "--memory-limit", "-1"], "--memory-limit -1 is invalid"),
])
def test_bad_input_is_refused_in_one_line_before_any_work(extra, message, tmp_path, capsys):
    x, y = blobs(60, 2, spread=1.0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)]).assign(f0=1.0, label=y)
    frame.to_csv(tmp_path / "t.csv", index=False)
    argv = ["select", str(tmp_path / "t.csv"), "--label", "label", "--out", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "measure" / "run").exists()


@pytest.mark.parametrize("x, y, message", [
    (np.ones((10, 2)), np.zeros(10), "one class only"),
    (np.full((20, 2), np.nan), np.arange(20) % 2, "NaN or inf"),
    (np.ones((20, 2)), np.arange(21) % 2, "one label per row"),
    (np.ones((12, 2)), np.r_[np.zeros(9), np.ones(3)], "fewer than 5 rows"),
])
def test_the_api_refuses_bad_arrays(x, y, message):
    with pytest.raises(DataError, match=message):
        valbench.select(x, y, 0.1, progress=False)


def test_default_candidates_follow_the_data_size_and_always_include_random():
    small, _ = choose_candidates(600)
    large, left_out = choose_candidates(60_000)
    assert len(small) == len(DEFAULT_POOL) and small[0].label == "random"
    assert "random" in [c.label for c in large] and len(large) < len(small)
    assert "kcenter" in left_out and "learner fits" in left_out["kcenter"]


def test_a_rerun_in_the_same_folder_resumes_and_other_data_never_reuses_its_cells(tmp_path):
    x, y = blobs(150, 3, spread=2.0)
    results = tmp_path / "measure" / "run" / "results.jsonl"

    def run(labels):
        valbench.select(x, labels, 0.2, methods=["random", "herding"], out=tmp_path, progress=False)
        return len(results.read_text().splitlines())

    assert run(y) == 6 and run(y) == 6  # 2 candidates x 3 seeds, measured once
    other = y.copy()
    other[:10] = (other[:10] + 1) % 3
    assert run(other) == 12


def test_a_cell_past_the_memory_limit_fails_alone_and_none_measured_is_said_in_one_line(tmp_path):
    x, y = blobs(100, 2, spread=2.0)
    with pytest.raises(DataError, match="no candidate could be measured on this data: random: failed"):
        valbench.select(x, y, 0.2, methods=["random"], out=tmp_path, progress=False, memory_limit_mb=1)
    record = (tmp_path / "measure" / "run" / "results.jsonl").read_text().splitlines()[0]
    assert "memory limit of 1 MB exceeded" in record
