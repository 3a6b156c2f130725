"""Adapter: pyDVL 0.10's valuation methods as valbench methods ``pydvl-<name>``, run on the cell's own splits.

Every model-based method trains *this suite's learner* (wrapped as a scikit-learn classifier,
:class:`SuiteClassifier`) and scores it with the native utility (:mod:`valbench.methods.utility`: validation
accuracy by default, or ``neg_loss``), the empty set scoring what the native methods give it (the
untrained model's score). So ``pydvl-tmc-shapley`` and ``tmc-shapley`` value the same game and differ
only in their algorithms (the native ones warm-start and batch their fits; pyDVL retrains every subset
from scratch). Everything runs sequentially inside the cell (joblib ``n_jobs=1``).

=====================  ===================================================  ====================================
method                 pyDVL 0.10 class                                     stopping / budget
=====================  ===================================================  ====================================
pydvl-tmc-shapley      ShapleyValuation + PermutationSampler (truncated)    ``max_permutations``, HistoryDeviation
pydvl-beta-shapley     BetaShapleyValuation + PermutationSampler            as above; ``alpha``, ``beta``
pydvl-banzhaf          BanzhafValuation + MSRSampler (maximum sample reuse)  ``num_subsets``
pydvl-data-oob         DataOOBValuation on a BaggingClassifier of learners   ``num_models``, ``max_samples``
pydvl-knn-shapley      KNNShapleyValuation (exact, Jia et al. 2019)          model-free, ``k``
pydvl-loo              LOOValuation                                          n + 1 fits
=====================  ===================================================  ====================================

Conventions that differ from the native methods (the cross-checks in tests/methods/test_pydvl.py pin them):

* truncation: pyDVL's ``RelativeTruncation`` stops a permutation at the first prefix (after a burn-in
  fraction of the permutation) whose score is within ``truncation_rtol`` of U(D); the native one after
  ``patience`` consecutive such prefixes. ``truncation_rtol = 0`` disables it (exact Monte Carlo).
* KNN-Shapley: identical for N >= K. For N < K pyDVL starts the recursion at m_N / N (the paper's formula,
  which assumes N >= K) while the native one uses m_N / K, the value that keeps efficiency.

pyDVL 0.10 pins numpy<2; ``make install`` installs it without its pins (it works with numpy 2 for
everything used here, checked by a small KNN-Shapley run at import). When it cannot be imported, or that
check fails, this module registers nothing and records why in ``UNAVAILABLE["pydvl"]``, which
``python -m valbench list`` shows.
"""

from __future__ import annotations

import contextlib
import warnings
from types import ModuleType
from typing import Any, Iterator

import numpy as np
from joblib import parallel_config
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import BaggingClassifier
from sklearn.neighbors import KNeighborsClassifier

from valbench.learners import FittedModel, Learner
from valbench.protocol import DataError, Dataset, MethodError, Valuation, ValuationMethod
from valbench.registry import UNAVAILABLE, register_method
from valbench.methods.utility import UTILITIES, Utility, model_score

PYDVL_VERSION = "0.10.0"
INSTALL_HINT = ("install it with `make install`, or: pip install --no-deps pydvl==0.10.0 && "
                "pip install pyDeprecate==0.3.2 more-itertools==10.7.0 numcodecs==0.15.1 (see the Makefile)")


def _smoke_check(pv: ModuleType) -> None:
    """A four-point KNN-Shapley run through pyDVL's Dataset, Valuation and result types under our numpy.

    With K = 2 and one test point whose two nearest neighbours share its label, efficiency gives values
    summing to U(D) - U({}) = 1."""
    train = pv.Dataset(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
    test = pv.Dataset(np.array([[0.1]]), np.array([0]))
    with quiet_sequential():
        valuation = pv.KNNShapleyValuation(KNeighborsClassifier(n_neighbors=2), test, progress=False).fit(train)
    total = float(np.sum(valuation.result.values))
    if not np.isclose(total, 1.0):
        raise RuntimeError(f"pyDVL's KNN-Shapley values sum to {total} on a check problem, expected 1.0")


@contextlib.contextmanager
def quiet_sequential() -> Iterator[None]:
    """pyDVL's joblib loops run in the calling process (n_jobs=1; its semivalues refuse the sequential
    backend, which cannot return generators, so loky is named and falls back to sequential at n_jobs=1),
    with its warnings muted."""
    with warnings.catch_warnings(), parallel_config(backend="loky", n_jobs=1):
        warnings.simplefilter("ignore")
        yield


def _import_pydvl() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pydvl
        import pydvl.valuation
    if pydvl.__version__ != PYDVL_VERSION:
        raise ImportError(f"pydvl {pydvl.__version__} is installed, this adapter is written for {PYDVL_VERSION}")
    _smoke_check(pydvl.valuation)
    return pydvl.valuation


try:
    pv = _import_pydvl()
except Exception as err:  # ImportError, or a dependency (numpy 2) breaking pyDVL at import or in the check
    pv = None
    UNAVAILABLE["pydvl"] = f"pydvl cannot be used ({type(err).__name__}: {err}); {INSTALL_HINT}"


class SuiteClassifier(ClassifierMixin, BaseEstimator):
    """This suite's learner behind scikit-learn's fit / predict / score, as pyDVL's utilities expect.

    Cloning (pyDVL clones the model before every fit; bagging clones it per estimator) shares the learner,
    which keeps no fitted state, so ``learner.fits`` counts every model pyDVL trains."""

    def __init__(self, learner: Learner | None = None, metric: str = "accuracy") -> None:
        self.learner = learner
        self.metric = metric

    def __sklearn_clone__(self) -> "SuiteClassifier":
        return SuiteClassifier(self.learner, self.metric)

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "SuiteClassifier":
        self.model_: FittedModel = self.learner.fit(x, y, weight=sample_weight)
        self.classes_ = np.arange(self.learner.n_classes)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict(x)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(x)

    def score(self, x: np.ndarray, y: np.ndarray, sample_weight: None = None) -> float:
        """The native utility's metric (accuracy, or minus the mean cross-entropy) on ``(x, y)``."""
        return model_score(self.model_, x, y, self.metric)


def suite_utility(data: Dataset, learner: Learner, metric: str) -> Any:
    """pyDVL's ``ModelUtility`` of the suite's game: the learner on a subset, scored on the validation split.

    The empty set scores the untrained model (the native ``Utility.empty``, one fit); errors propagate
    (``catch_errors=False``): a failing fit fails the cell rather than silently scoring the default."""
    empty = Utility(data, learner, metric).empty
    scorer = pv.SupervisedScorer(lambda model, x, y: model.score(x, y), pv.Dataset(data.x_valid, data.y_valid),
                                 default=empty, range=(0.0, 1.0) if metric == "accuracy" else (-np.inf, 0.0),
                                 name=metric)
    return pv.ModelUtility(SuiteClassifier(learner, metric), scorer, catch_errors=False, show_warnings=False)


class PyDVLMethod(ValuationMethod):
    """Base of the ``pydvl-*`` methods: build the pyDVL valuation, fit it on the train split, read its result."""

    family = "peer"
    positive: tuple[str, ...] = ()  # integer parameters that must be >= 1

    def check(self) -> dict[str, Any]:
        """The parameters, checked before any work: integers >= 1, a known utility."""
        c = dict(self.config)
        for key in self.positive:
            c[key] = int(c[key])
            if c[key] < 1:
                raise DataError(f"method {self.name!r}: {key} must be >= 1, got {c[key]}")
        if "utility" in c and c["utility"] not in UTILITIES:
            raise DataError(f"method {self.name!r}: unknown utility {c['utility']!r}; valid: {list(UTILITIES)}")
        return c

    def build(self, c: dict[str, Any], data: Dataset, learner: Learner, seed: int) -> Any:
        """The pyDVL valuation object to fit (its model-based parts already built on ``learner``)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        c = self.check()
        fits_before = learner.fits if learner is not None else 0
        with quiet_sequential():
            valuation = self.build(c, data, learner, seed)
            valuation.fit(pv.Dataset(data.x_train, data.y_train))
        result = valuation.result
        scores = np.full(data.n_train, np.nan)
        scores[result.indices] = result.values
        if not np.isfinite(scores).all():
            raise MethodError(f"method {self.name!r}: pyDVL left {int((~np.isfinite(scores)).sum())} points "
                              f"without a value (too few samples for every point to be updated?)")
        stderr = np.full(data.n_train, np.nan)  # pyDVL's own stderr takes sqrt of log-space variances at -1e-17
        stderr[result.indices] = np.sqrt(np.clip(result.variances, 0, None) / np.maximum(result.counts, 1))
        extra = {"pydvl": PYDVL_VERSION, "status": result.status.name}
        if hasattr(valuation, "sampler"):  # permutations, subsets or leave-one-out samples drawn
            extra["samples"] = int(valuation.sampler.n_samples)
        return Valuation(scores=scores, stderr=stderr if np.isfinite(stderr).all() else None,
                         utility_evals=(learner.fits if learner is not None else 0) - fits_before, extra=extra)


def permutation_budget(c: dict[str, Any], seed: int) -> tuple[Any, Any]:
    """A seeded permutation sampler (truncated unless ``truncation_rtol`` is 0) and its stopping rule:
    ``max_permutations`` permutations, or earlier when pyDVL's HistoryDeviation (relative change of the
    values over the last ``window`` permutations below ``convergence``; 0 disables) is met."""
    rtol = float(c["truncation_rtol"])
    truncation = (pv.RelativeTruncation(rtol=rtol, burn_in_fraction=float(c["burn_in_fraction"])) if rtol > 0
                  else pv.NoTruncation())
    sampler = pv.PermutationSampler(truncation=truncation, seed=seed)
    stop = pv.MaxSamples(sampler, c["max_permutations"])
    if float(c["convergence"]) > 0:
        stop = stop | pv.HistoryDeviation(n_steps=c["window"], rtol=float(c["convergence"]))
    return sampler, stop


def replay_permutations(seed: int, count: int) -> Any:
    """A pyDVL permutation sampler (no truncation) that draws exactly the ``count`` permutations native
    ``tmc-shapley`` draws for ``seed``: with common random numbers the two libraries' estimates differ only
    by their implementations, which is what the cross-checks and benchmarks/native_vs_pydvl.py compare."""
    from pydvl.valuation.types import Sample

    from valbench.methods.tmc_shapley import permutation_order

    class ReplayedPermutations(pv.PermutationSampler):
        def generate(self, indices: np.ndarray) -> Iterator[Any]:
            for child in np.random.SeedSequence(seed).spawn(count):
                yield Sample(None, indices[permutation_order(child, len(indices))])

    return ReplayedPermutations(truncation=pv.NoTruncation())


PERMUTATION_PARAMS = {"utility": "accuracy", "max_permutations": 20, "truncation_rtol": 0.01,
                      "burn_in_fraction": 0.4, "convergence": 0.05, "window": 100}


class PyDVLTMCShapley(PyDVLMethod):
    """pyDVL's Monte-Carlo Data Shapley (Ghorbani & Zou 2019) over truncated permutations."""

    name = "pydvl-tmc-shapley"
    description = "pyDVL 0.10 TMC Data Shapley (ShapleyValuation, PermutationSampler; the suite's learner)"
    params = dict(PERMUTATION_PARAMS)
    positive = ("max_permutations", "window")

    def check(self) -> dict[str, Any]:
        c = super().check()
        for key in ("truncation_rtol", "burn_in_fraction", "convergence"):
            if not 0 <= float(c[key]) <= 1:
                raise DataError(f"method {self.name!r}: {key} must be in [0, 1], got {c[key]}")
        return c

    def build(self, c, data, learner, seed):
        sampler, stop = permutation_budget(c, seed)
        return pv.ShapleyValuation(suite_utility(data, learner, c["utility"]), sampler, stop)


class PyDVLBetaShapley(PyDVLTMCShapley):
    """pyDVL's Beta Shapley (Kwon & Zou 2022) on the same permutations, Beta(alpha, beta) weights."""

    name = "pydvl-beta-shapley"
    description = "pyDVL 0.10 Beta Shapley (BetaShapleyValuation, PermutationSampler; the suite's learner)"
    params = {**PERMUTATION_PARAMS, "alpha": 16.0, "beta": 1.0}

    def check(self) -> dict[str, Any]:
        c = super().check()
        if float(c["alpha"]) <= 0 or float(c["beta"]) <= 0:
            raise DataError(f"method {self.name!r}: alpha and beta must be > 0, got {c['alpha']}, {c['beta']}")
        return c

    def build(self, c, data, learner, seed):
        sampler, stop = permutation_budget(c, seed)
        return pv.BetaShapleyValuation(suite_utility(data, learner, c["utility"]), sampler, stop,
                                       alpha=float(c["alpha"]), beta=float(c["beta"]))


class PyDVLBanzhaf(PyDVLMethod):
    """pyDVL's Data Banzhaf (Wang & Jia 2023) by maximum sample reuse: one model per uniform random subset."""

    name = "pydvl-banzhaf"
    description = "pyDVL 0.10 Data Banzhaf (BanzhafValuation, MSRSampler; the suite's learner)"
    params = {"utility": "accuracy", "num_subsets": 200}
    positive = ("num_subsets",)

    def build(self, c, data, learner, seed):
        sampler = pv.MSRSampler(seed=seed)
        return pv.BanzhafValuation(suite_utility(data, learner, c["utility"]), sampler,
                                   pv.MaxSamples(sampler, c["num_subsets"]))


class PyDVLDataOOB(PyDVLMethod):
    """pyDVL's Data-OOB (Kwon & Zou 2023): mean out-of-bag accuracy of each point over a bagging ensemble."""

    name = "pydvl-data-oob"
    description = "pyDVL 0.10 Data-OOB (DataOOBValuation on a BaggingClassifier of the suite's learner)"
    params = {"num_models": 100, "max_samples": 1.0}
    positive = ("num_models",)

    def check(self) -> dict[str, Any]:
        c = super().check()
        if not 0 < float(c["max_samples"]) <= 1:
            raise DataError(f"method {self.name!r}: max_samples must be in (0, 1], got {c['max_samples']}")
        return c

    def build(self, c, data, learner, seed):
        bagging = BaggingClassifier(SuiteClassifier(learner), n_estimators=c["num_models"],
                                    max_samples=float(c["max_samples"]), bootstrap=True, random_state=seed)
        bagging.fit(data.x_train, data.y_train)
        return pv.DataOOBValuation(bagging)


class PyDVLKNNShapley(PyDVLMethod):
    """pyDVL's exact KNN-Shapley (Jia et al. 2019): model-free, on the raw features."""

    name = "pydvl-knn-shapley"
    description = "pyDVL 0.10 exact KNN-Shapley (KNNShapleyValuation)"
    params = {"k": 10}
    positive = ("k",)

    def build(self, c, data, learner, seed):
        return pv.KNNShapleyValuation(KNeighborsClassifier(n_neighbors=c["k"]),
                                      pv.Dataset(data.x_valid, data.y_valid), progress=False)


class PyDVLLeaveOneOut(PyDVLMethod):
    """pyDVL's leave-one-out, U(D) - U(D \\ {i}), every fit from scratch."""

    name = "pydvl-loo"
    description = "pyDVL 0.10 leave-one-out (LOOValuation; the suite's learner)"
    params = {"utility": "accuracy"}

    def build(self, c, data, learner, seed):
        return pv.LOOValuation(suite_utility(data, learner, c["utility"]))


PYDVL_METHODS = (PyDVLTMCShapley, PyDVLBetaShapley, PyDVLBanzhaf, PyDVLDataOOB, PyDVLKNNShapley, PyDVLLeaveOneOut)
if pv is not None:
    for _method in PYDVL_METHODS:
        register_method(_method)
