import numpy as np
import pytest

from tests.conftest import blobs
from valbench.cli import build_parser, grid_from_args
from valbench.grid import GridConfig
from valbench.report.labels import Labels
from valbench.learners import LogisticRegression
from valbench.methods.enn import enn_scores
from valbench.methods.facility_location import FacilityLocation
from valbench.methods.pipeline import Pipeline, suspects
from valbench.metrics import select_subset, two_means_split
from valbench.protocol import DataError
from valbench.registry import get_method


def noisy_blobs(seed=0, n_train=120):
    data = blobs(n_train=n_train, n_classes=3, seed=seed)
    flipped = np.zeros(data.n_train, bool)
    flipped[::9] = True
    data.y_train[flipped] = (data.y_train[flipped] + 1) % 3
    data.noisy_mask = flipped
    return data


def learner(data):
    return LogisticRegression(data.n_features, data.n_classes)


@pytest.mark.parametrize("selector", ["facility-location", "random", "knn-shapley", "herding"])
def test_detector_none_equals_its_selector(selector):
    data, budgets = noisy_blobs(), [6, 12, 36]
    piped = Pipeline(detector="none", selector=selector).fit(data, learner(data), 3, budgets)
    cls = get_method(selector)
    alone = cls().fit(data, learner(data), 3, **({"budgets": budgets} if cls.selects_sets else {}))
    for k in budgets:
        assert np.array_equal(piped.subsets[k], np.sort(select_subset(alone, k, 3)))
    np.testing.assert_array_equal(piped.scores, alone.scores)


def test_suspects_never_selected_and_indices_map_back():
    data, budgets = noisy_blobs(seed=1), [6, 12, 30]
    val = Pipeline(detector="enn", selector="facility-location").fit(data, learner(data), 0, budgets)
    scores = enn_scores(data.x_train, data.y_train, 10)
    np.testing.assert_array_equal(val.scores, scores)  # the pipeline's mislabel scores are the detector's
    dropped = np.sort(two_means_split(scores))  # auto: the split the 2-means F1 metric uses
    assert val.extra["dropped"] == len(dropped) > 0
    keep = np.setdiff1d(np.arange(data.n_train), dropped)
    # the same selector run by hand on the kept rows, its positions mapped back through `keep`
    by_hand = FacilityLocation().fit(type(data)(**{**data.__dict__, "x_train": data.x_train[keep],
                                                   "y_train": data.y_train[keep], "noisy_mask": data.noisy_mask[keep],
                                                   "y_train_clean": data.y_train_clean[keep]}), None, 0, budgets)
    for k in budgets:
        assert not set(val.subsets[k]) & set(dropped)
        assert np.array_equal(val.subsets[k], np.sort(keep[by_hand.subsets[k]]))
    val.validate("pipeline", data.n_train, budgets)


def test_fraction_drop_and_budgets_beyond_the_kept_points():
    data = noisy_blobs(seed=2, n_train=60)
    val = Pipeline(detector="enn", selector="random", drop=0.25).fit(data, learner(data), 0, [10, 50])
    dropped = suspects(val.scores, 0.25, 0)
    assert len(dropped) == 15 and val.scores[dropped].max() <= np.delete(val.scores, dropped).min()
    assert not set(val.subsets[10]) & set(dropped)
    # 50 > 45 kept: every kept point, then the 5 least suspicious dropped ones
    assert set(np.setdiff1d(np.arange(60), dropped)) <= set(val.subsets[50])
    extra = np.intersect1d(val.subsets[50], dropped)
    assert len(extra) == 5 and val.scores[extra].min() >= np.setdiff1d(val.scores[dropped], val.scores[extra]).max()


def test_checks_list_the_valid_names_before_any_work():
    with pytest.raises(DataError, match="valid detectors: none, .*enn"):
        Pipeline(detector="nope").check()
    with pytest.raises(DataError, match="valid selectors: .*facility-location"):
        Pipeline(selector="pipeline").check()
    for drop in ("half", 1.0, -0.1):
        with pytest.raises(DataError, match="drop"):
            Pipeline(drop=drop).check()
    grid = GridConfig(methods=["pipeline"], datasets=["synthetic"], method_params={"pipeline": {"selector": ["kcenter", "bad"]}})
    with pytest.raises(DataError, match="selector='bad'"):
        grid.validate()


def test_grid_syntax_gives_four_labelled_variants():
    args = build_parser().parse_args(["run", "--methods", "pipeline", "--datasets", "synthetic",
                                      "--set", "pipeline.detector=enn,cleanlab",
                                      "--set", "pipeline.selector=facility-location,random"])
    cells = grid_from_args(args).cells()
    records = [{"method": c.method, "method_params": c.method_params, "dataset": c.dataset, "noise_rate": 0.1}
               for c in cells]
    labels = Labels(records)
    assert sorted(labels.method(r) for r in records) == [
        "pipeline (detector=cleanlab, selector=facility-location)", "pipeline (detector=cleanlab, selector=random)",
        "pipeline (detector=enn, selector=facility-location)", "pipeline (detector=enn, selector=random)"]
    assert {labels.family(r) for r in records} == {"pipeline"}
