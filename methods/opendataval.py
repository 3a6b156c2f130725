"""Adapter: OpenDataVal 1.3.0's evaluators as valbench methods ``odv-<Name>``, run on the cell's own splits.

Every model-based evaluator trains *this suite's learner* (wrapped as an OpenDataVal ``Model``), scored
with OpenDataVal's default classification metric (validation accuracy), so ``odv-DataShapley`` and
``tmc-shapley`` value the same game and differ only in their algorithms. Model-free evaluators
(KNNShapley, LavaEvaluator, RandomEvaluator) see the raw features.

OpenDataVal is optional (``make install`` installs it without its pins; see architecture.md). When it
cannot be imported this module registers nothing and records why in ``UNAVAILABLE["opendataval"]``,
which ``python -m valbench list`` shows. The import needs one shim, kept here only: the torchvision wheel on
this index is a CUDA build whose ``_meta_registrations`` module fails on a CPU torch, and OpenDataVal
never uses those compiled ops, so an empty module stands in for it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
import types
import warnings
from typing import Any, Callable, Iterator

import numpy as np
import torch

from valbench.learners import Learner
from valbench.protocol import Dataset, MethodError, Valuation, ValuationMethod
from valbench.registry import UNAVAILABLE, register_method

INSTALL_HINT = ("install it with `make install`, or: pip install --no-deps opendataval==1.3.0 geomloss==0.2.6 "
                "torchvision==0.28.0 && pip install tqdm requests transformers")


def _import_opendataval() -> types.ModuleType:
    """Import opendataval behind the torchvision shim, with its progress bars silenced."""
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import opendataval.dataval  # noqa: F401
        import opendataval.dataloader  # noqa: F401
        import opendataval.model  # noqa: F401
    import tqdm as tqdm_module

    # OpenDataVal draws a tqdm bar per sampling loop; inside a benchmark cell those are noise on stderr.
    quiet = types.SimpleNamespace(tqdm=functools.partial(tqdm_module.tqdm, disable=True),
                                  trange=functools.partial(tqdm_module.trange, disable=True))
    for name, module in list(sys.modules.items()):
        if name.startswith("opendataval") and getattr(module, "tqdm", None) is tqdm_module:
            module.tqdm = quiet
    return sys.modules["opendataval"]


try:
    odv = _import_opendataval()
except Exception as err:  # ImportError, or a broken dependency failing at import time
    odv = None
    UNAVAILABLE["opendataval"] = f"opendataval cannot be imported ({type(err).__name__}: {err}); {INSTALL_HINT}"


@contextlib.contextmanager
def quiet_run() -> Iterator[None]:
    """OpenDataVal prints progress and its torch models warn about pin_memory on every fit: mute both."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", message=".*pin_memory.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="opendataval")
        warnings.filterwarnings("ignore", message=".*(did not converge|Duality gap).*")  # AME's LassoCV
        yield


def _rows(x: Any) -> torch.Tensor:
    """A tensor of the rows of ``x``: a tensor, a ``Subset`` of one (indexed directly), or any Dataset."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, torch.utils.data.Subset):
        base = _rows(x.dataset)
        return base[torch.as_tensor(np.asarray(x.indices, dtype=np.int64))]
    if len(x) == 0:
        return torch.zeros(0)
    return torch.stack([torch.as_tensor(x[i]) for i in range(len(x))])


@functools.cache
def make_model_class() -> type:
    """The OpenDataVal ``Model`` that trains a valbench ``Learner`` (built lazily: the base class is optional)."""

    class LearnerModel(odv.model.Model):
        """This suite's learner behind OpenDataVal's fit/predict API (one-hot labels, probability outputs)."""

        def __init__(self, learner: Learner) -> None:
            self.learner = learner
            self.fitted = None

        def fit(self, x_train: Any, y_train: Any, *args: Any, sample_weight: Any = None, **kwargs: Any):
            x, y = _rows(x_train).float(), _rows(y_train)
            labels = y.argmax(dim=1) if y.ndim == 2 else y.long()
            weight = None
            if sample_weight is not None and len(x):
                weight = torch.as_tensor(sample_weight, dtype=torch.float32).reshape(-1)
                if not float(weight.sum()) > 0:  # DVRL can select nothing; an empty selection trains nothing
                    x, labels, weight = x[:0], labels[:0], None
            self.fitted = self.learner.fit(x.flatten(1), labels, weight=weight)
            return self

        def predict(self, x: Any) -> torch.Tensor:
            rows = _rows(x).float()
            return torch.as_tensor(self.fitted.predict_proba(rows.flatten(1)))

        def clone(self) -> "LearnerModel":
            return LearnerModel(self.learner)  # the learner keeps no fitted state, so clones may share it

    return LearnerModel


# OpenDataVal evaluator name -> (constructor from the method's params and a RandomState, default params).
# Budgets are small so every evaluator finishes a ~300-point cell in seconds to minutes; raise them per
# cell from the config (e.g. method_params."odv-DataShapley".mc_epochs = 200).
def _tmc_sampler(p: dict[str, Any], rs: np.random.RandomState) -> Any:
    return odv.dataval.TMCSampler(mc_epochs=int(p["mc_epochs"]), min_cardinality=int(p["min_cardinality"]),
                                  cache_name=None, random_state=rs)


EVALUATORS: dict[str, tuple[Callable[[dict[str, Any], np.random.RandomState], Any], dict[str, Any]]] = {
    "DataShapley": (lambda p, rs: odv.dataval.DataShapley(sampler=_tmc_sampler(p, rs)),
                    {"mc_epochs": 10, "min_cardinality": 5}),
    "BetaShapley": (lambda p, rs: odv.dataval.BetaShapley(sampler=_tmc_sampler(p, rs), alpha=p["alpha"],
                                                          beta=p["beta"]),
                    {"mc_epochs": 10, "min_cardinality": 5, "alpha": 4, "beta": 1}),
    "DataBanzhaf": (lambda p, rs: odv.dataval.DataBanzhaf(num_models=int(p["num_models"]), random_state=rs),
                    {"num_models": 100}),
    "AME": (lambda p, rs: odv.dataval.AME(num_models=int(p["num_models"]), random_state=rs), {"num_models": 25}),
    "DVRL": (lambda p, rs: odv.dataval.DVRL(rl_epochs=int(p["rl_epochs"]), hidden_dim=int(p["hidden_dim"]),
                                            random_state=rs),
             {"rl_epochs": 20, "hidden_dim": 100}),
    "DataOob": (lambda p, rs: odv.dataval.DataOob(num_models=int(p["num_models"]), random_state=rs),
                {"num_models": 100}),
    "InfluenceSubsample": (lambda p, rs: odv.dataval.InfluenceSubsample(num_models=int(p["num_models"]),
                                                                        proportion=p["proportion"],
                                                                        random_state=rs),
                           {"num_models": 100, "proportion": 0.7}),
    "KNNShapley": (lambda p, rs: odv.dataval.KNNShapley(k_neighbors=int(p["k_neighbors"]), random_state=rs),
                   {"k_neighbors": 10}),
    "LeaveOneOut": (lambda p, rs: odv.dataval.LeaveOneOut(random_state=rs), {}),
    "LavaEvaluator": (lambda p, rs: odv.dataval.LavaEvaluator(random_state=rs), {}),
    "RandomEvaluator": (lambda p, rs: odv.dataval.RandomEvaluator(random_state=rs), {}),
}


def fetcher_for(data: Dataset) -> Any:
    """An OpenDataVal ``DataFetcher`` over the cell's own splits (one-hot labels; nothing read or written)."""
    eye = np.eye(data.n_classes, dtype=np.float32)
    return odv.dataloader.DataFetcher.from_data_splits(
        data.x_train, eye[data.y_train], data.x_valid, eye[data.y_valid], data.x_test, eye[data.y_test],
        one_hot=True)


def run_evaluator(name: str, params: dict[str, Any], data: Dataset, learner: Learner,
                  random_state: np.random.RandomState) -> tuple[np.ndarray, int]:
    """Values of every train point by OpenDataVal's evaluator ``name``, and the models it trained."""
    build, _ = EVALUATORS[name]
    evaluator = build(dict(params), random_state)
    fits_before = learner.fits if learner is not None else 0
    with quiet_run():
        evaluator.setup(fetcher_for(data), None if learner is None else make_model_class()(learner))
        evaluator.train_data_values()
        values = np.asarray(evaluator.evaluate_data_values(), dtype=np.float64).reshape(-1)
    if values.shape != (data.n_train,):
        raise MethodError(f"method 'odv-{name}': OpenDataVal returned {values.shape} values for "
                          f"{data.n_train} train points")
    return values, (learner.fits if learner is not None else 0) - fits_before


class OpenDataValMethod(ValuationMethod):
    """Base of the ``odv-*`` methods: build the evaluator, feed it the splits and the learner, read values."""

    evaluator: str = ""
    family = "peer"

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        torch.manual_seed(seed)  # DVRL's value network and torch-side sampling
        values, fits = run_evaluator(self.evaluator, self.config, data, learner, np.random.RandomState(seed))
        return Valuation(scores=values, utility_evals=fits, extra={"opendataval": "1.3.0"})


def _register(name: str, defaults: dict[str, Any]) -> type[ValuationMethod]:
    cls = type(f"ODV{name}", (OpenDataValMethod,), {
        "name": f"odv-{name}", "evaluator": name, "params": dict(defaults),
        "description": f"OpenDataVal 1.3.0 {name} (adapter; the suite's learner and splits)",
        "__module__": __name__, "__qualname__": f"ODV{name}"})
    return register_method(cls)


if odv is not None:
    for _name, (_, _defaults) in EVALUATORS.items():
        globals()[f"ODV{_name}"] = _register(_name, _defaults)  # module attributes, so workers can unpickle
