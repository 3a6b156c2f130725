import numpy as np
import pytest

from valbench.learners import LogisticRegression
from valbench.registry import METHODS, UNAVAILABLE, get_method
from valbench.methods.knn_shapley import knn_shapley_values
from valbench.methods import opendataval as odv
from tests.conftest import blobs

# skipped without OpenDataVal (a failure in CI), failed when it is installed but unusable: tests/conftest.py
pytestmark = pytest.mark.peer("opendataval")

# the smallest budgets that still exercise each evaluator's whole code path
TINY = {"DataShapley": {"mc_epochs": 2}, "BetaShapley": {"mc_epochs": 2}, "DataBanzhaf": {"num_models": 10},
        "AME": {"num_models": 4}, "DVRL": {"rl_epochs": 3}, "DataOob": {"num_models": 10},
        "InfluenceSubsample": {"num_models": 10}}


def test_every_listed_evaluator_is_registered():
    assert set(odv.EVALUATORS) == {"DataShapley", "BetaShapley", "DataBanzhaf", "AME", "DVRL", "DataOob",
                                   "InfluenceSubsample", "KNNShapley", "LeaveOneOut", "LavaEvaluator",
                                   "RandomEvaluator"}
    for name in odv.EVALUATORS:
        assert f"odv-{name}" in METHODS and "opendataval" not in UNAVAILABLE


@pytest.mark.parametrize("name", sorted(odv.EVALUATORS))
def test_evaluator_runs_on_100_points(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written to the working directory (./data_files/)
    data = blobs(n_train=100, n_valid=40, n_classes=3, dim=5, seed=1)
    learner = LogisticRegression(data.n_features, data.n_classes, max_iter=50)
    valuation = get_method(f"odv-{name}")(**TINY.get(name, {})).fit(data, learner, seed=0)
    valuation.validate(f"odv-{name}", data.n_train)
    assert valuation.scores.shape == (100,)
    assert list(tmp_path.iterdir()) == []


def test_native_knn_shapley_equals_odv_knn_shapley():
    data = blobs(n_train=80, n_valid=30, n_classes=3, dim=4, seed=7)
    for k in (1, 5, 10):
        odv_values = get_method("odv-KNNShapley")(k_neighbors=k).fit(data, None, seed=0).scores
        native = knn_shapley_values(data.x_train, data.y_train, data.x_valid, data.y_valid, k)
        assert np.allclose(native, odv_values, atol=1e-6)


def test_unavailable_reason_names_the_install_command():
    assert "pip install --no-deps opendataval==1.3.0" in odv.INSTALL_HINT
