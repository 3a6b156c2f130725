"""dattri 0.3.0 (NeurIPS 2024 Datasets and Benchmarks) as the peer for network attribution: ``dattri-*`` methods.

=================  =====================================================  ======================================
method             dattri                                                 models
=================  =====================================================  ======================================
dattri-tracin      ``TracInAttributor`` (no projection), lr-weighted      one run, a checkpoint per epoch
dattri-trak        ``TRAKAttributor`` (Park et al. 2023), Gaussian proj.  ``num_models`` runs, final states
dattri-arnoldi     ``IFAttributorArnoldi`` (Schioppa et al. 2022)         one run, final state
=================  =====================================================  ======================================

Every method trains the suite's learner (MLP or CNN) by the shared minibatch trainer exactly as native
``tracin`` does (:func:`valbench.methods.tracin.train_with_checkpoints`, same seed, same checkpoints), gives
dattri the per-sample cross-entropy through ``torch.func`` and values each train point by the mean of its
attribution scores over the validation points (at most ``max_valid`` of them, a seeded draw: dattri forms the
n_train x n_valid matrix). dattri's scores say how much a train point lowers a validation point's loss
(TracIn's gradient dot product; TRAK's and the influence function's g_test^T H^-1 g_train), so higher = more
valuable, as in the suite. ``layers`` (``last`` or ``all``) picks the parameters, by dattri's ``layer_name``.

dattri is optional: ``make install`` installs it ``--no-deps`` (its own requirements are numpy, scipy, pyyaml,
tqdm, which the suite has, and pretty_midi, only for its music benchmark). When it cannot be imported this
module registers nothing and records why in ``UNAVAILABLE["dattri"]``. dattri's TracIn and TRAK keep their
projection settings in a module-level dict that each instance updates in place, so every call here passes a
complete one.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from valbench.learners import Learner, as_tensor
from valbench.protocol import DataError, Dataset, MethodError, Valuation, ValuationMethod
from valbench.registry import UNAVAILABLE, register_method
from valbench.methods.tracin import LAYERS, Checkpoint, split_last_layer, train_with_checkpoints

DATTRI_VERSION = "0.3.0"
INSTALL_HINT = "install it with `make install`, or: pip install --no-deps dattri==0.3.0"

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dattri
        from dattri.algorithm.influence_function import IFAttributorArnoldi
        from dattri.algorithm.tracin import TracInAttributor
        from dattri.algorithm.trak import TRAKAttributor
        from dattri.task import AttributionTask
    if getattr(dattri, "__version__", DATTRI_VERSION) != DATTRI_VERSION:
        raise ImportError(f"dattri {dattri.__version__} is installed, this adapter is written for {DATTRI_VERSION}")
except Exception as err:  # ImportError, or a dependency failing at import time
    dattri = None
    UNAVAILABLE["dattri"] = f"dattri cannot be imported ({type(err).__name__}: {err}); {INSTALL_HINT}"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """dattri draws tqdm bars on stderr and warns about vmap internals; a benchmark cell wants neither."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


LOADER_BATCH = 256  # dattri's TracIn recomputes every validation batch's gradients once per train batch: few, large


def loader(x: np.ndarray, y: np.ndarray, batch: int = LOADER_BATCH) -> DataLoader:
    """An unshuffled DataLoader of (features, label) pairs, as dattri's attributors read them."""
    return DataLoader(TensorDataset(as_tensor(x), as_tensor(y, torch.int64)), batch_size=batch, shuffle=False)


def make_task(module: nn.Module, states: list[dict[str, torch.Tensor]], layers: str) -> tuple[Any, list[str] | None]:
    """dattri's ``AttributionTask`` (the mean cross-entropy of ``module`` at each checkpoint state) and its
    ``layer_name``: the last layer's parameter names, or None for all parameters.

    With ``layers="last"`` the other parameters stop requiring gradients: dattri substitutes only the last
    layer's, and through the rest autograd would otherwise keep every activation of every batch it is given
    (the convolutions' at 20,000 images passed 23 GB in dattri-arnoldi's Hessian-vector products).
    """
    names = last_layer_names(module) if layers == "last" else None
    for name, param in module.named_parameters():
        param.requires_grad_(names is None or name in names)

    def loss(params: dict[str, torch.Tensor], pair: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = pair
        if y.dim() == 0:  # one point (vmap-ed per-sample gradients); a batch for the Hessian-vector products
            x, y = x.unsqueeze(0), y.unsqueeze(0)
        return F.cross_entropy(torch.func.functional_call(module, params, x), y)

    return AttributionTask(loss_func=loss, model=module, checkpoints=states), names


def last_layer_names(module: nn.Module) -> list[str]:
    """The parameter names of the module's last ``nn.Linear`` (dattri's ``layer_name``)."""
    _, last = split_last_layer(module)
    ids = {id(p) for p in last.parameters()}
    return [name for name, p in module.named_parameters() if id(p) in ids]


def sample_rows(x: np.ndarray, y: np.ndarray, max_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_rows`` of the points (a seeded draw without replacement, in their order; all when fewer)."""
    if y.size <= max_rows:
        return x, y
    idx = np.sort(np.random.default_rng(seed).choice(y.size, max_rows, replace=False))
    return x[idx], y[idx]


def dattri_tracin_scores(module: nn.Module, checkpoints: list[Checkpoint], x_train: np.ndarray, y_train: np.ndarray,
                         x_valid: np.ndarray, y_valid: np.ndarray, layers: str = "last") -> np.ndarray:
    """dattri's TracIn matrix (n_train, n_valid) on these checkpoints, learning-rate weighted, no projection."""
    task, names = make_task(module, [ck.state for ck in checkpoints], layers)
    attributor = TracInAttributor(task, weight_list=torch.tensor([ck.lr for ck in checkpoints]),
                                  normalized_grad=False, layer_name=names, projector_kwargs=None)
    attributor.projector_kwargs = None  # dattri 0.3 always projects unless this is cleared after construction
    with quiet():
        return attributor.attribute(loader(x_train, y_train), loader(x_valid, y_valid)).double().numpy()


class DattriMethod(ValuationMethod):
    """Base of the ``dattri-*`` methods: train like native tracin, hand dattri the checkpoints, average over valid."""

    family = "peer"
    learners = ("mlp", "cnn")
    base_params: dict[str, Any] = {"epochs": 10, "layers": "last", "max_valid": 1000}

    def check(self) -> dict[str, Any]:
        c = super().check()
        if c["layers"] not in LAYERS:
            raise DataError(f"method {self.name!r}: layers must be one of {list(LAYERS)}, got {c['layers']!r}")
        for key in ("epochs", "max_valid", *self.positive):
            value = c[key]
            if isinstance(value, bool) or not float(value).is_integer() or value < 1:
                raise DataError(f"method {self.name!r}: {key} must be a whole number >= 1, got {value!r}")
            c[key] = int(value)
        return c

    positive: tuple[str, ...] = ()

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        c = self.check()
        x_valid, y_valid = sample_rows(data.x_valid, data.y_valid, c["max_valid"], seed)
        with torch.random.fork_rng():
            matrix, models = self.attribute(c, data, learner, seed, x_valid, y_valid)
        if not np.isfinite(matrix).all():  # seen with dattri-arnoldi on all parameters of a small MLP
            raise MethodError(f"method {self.name!r}: dattri returned {int((~np.isfinite(matrix)).sum())} NaN/inf "
                              f"scores (layers={c['layers']!r})")
        return Valuation(scores=np.asarray(matrix, dtype=np.float64).mean(1), utility_evals=models,
                         extra={"dattri": DATTRI_VERSION, "n_valid": int(len(y_valid))})

    def attribute(self, c: dict[str, Any], data: Dataset, learner: Learner, seed: int, x_valid: np.ndarray,
                  y_valid: np.ndarray) -> tuple[np.ndarray, int]:  # pragma: no cover - abstract
        """The (n_train, n_valid) attribution matrix and the models trained."""
        raise NotImplementedError


class DattriTracIn(DattriMethod):
    """dattri's TracIn on the same per-epoch checkpoints as native ``tracin``."""

    name = "dattri-tracin"
    description = "dattri 0.3 TracIn (TracInAttributor; the suite's learner, its per-epoch checkpoints)"
    params = dict(DattriMethod.base_params)

    def attribute(self, c, data, learner, seed, x_valid, y_valid):
        module, checkpoints = train_with_checkpoints(learner, data.x_train, data.y_train, c["epochs"], seed)
        return dattri_tracin_scores(module, checkpoints, data.x_train, data.y_train, x_valid, y_valid,
                                    c["layers"]), 1


class DattriTRAK(DattriMethod):
    """dattri's TRAK: projected gradients of ``num_models`` independently trained models (seeds seed, seed+1, ...)."""

    name = "dattri-trak"
    description = "dattri 0.3 TRAK (TRAKAttributor, Gaussian projection; num_models runs of the suite's learner)"
    params = {**DattriMethod.base_params, "num_models": 3, "proj_dim": 512}
    positive = ("num_models", "proj_dim")

    def attribute(self, c, data, learner, seed, x_valid, y_valid):
        states, module = [], None
        for m in range(c["num_models"]):
            module, checkpoints = train_with_checkpoints(learner, data.x_train, data.y_train, c["epochs"], seed + m)
            states.append(checkpoints[-1].state)
        task, names = make_task(module, states, c["layers"])

        def correct_probability(params, pair):
            x, y = pair
            return torch.exp(-F.cross_entropy(torch.func.functional_call(module, params, x.unsqueeze(0)),
                                              y.unsqueeze(0)))

        projector = {"proj_dim": c["proj_dim"], "proj_max_batch_size": 32, "proj_seed": seed, "device": "cpu"}
        attributor = TRAKAttributor(task, correct_probability, projector_kwargs=projector, layer_name=names)
        with quiet():
            attributor.cache(loader(data.x_train, data.y_train))
            return attributor.attribute(loader(x_valid, y_valid)).double().numpy(), c["num_models"]


class DattriArnoldi(DattriMethod):
    """dattri's influence function with the Arnoldi approximation of the inverse Hessian (top ``proj_dim``
    eigen-directions), at the final model of one run.

    The Hessian is that of the mean loss on a seeded sample of at most ``hessian_points`` train points (all of
    them when there are fewer): dattri evaluates every Hessian-vector product of its ``max_iter`` Arnoldi steps
    on one batch of all the points it is given, a forward pass through the whole network each. dattri's own
    ``precompute_data_ratio`` would take the loader's first batches, so the sample is drawn here instead. Every
    train point is still scored (its gradient against the projected inverse Hessian).
    """

    name = "dattri-arnoldi"
    description = "dattri 0.3 influence function, Arnoldi inverse-Hessian (IFAttributorArnoldi; the suite's learner)"
    params = {**DattriMethod.base_params, "proj_dim": 50, "max_iter": 60, "damping": 1e-3, "hessian_points": 2000}
    positive = ("proj_dim", "max_iter", "hessian_points")

    def check(self) -> dict[str, Any]:
        c = super().check()
        if not float(c["damping"]) >= 0:
            raise DataError(f"method {self.name!r}: damping must be >= 0, got {c['damping']!r}")
        return c

    def attribute(self, c, data, learner, seed, x_valid, y_valid):
        module, checkpoints = train_with_checkpoints(learner, data.x_train, data.y_train, c["epochs"], seed)
        task, names = make_task(module, [checkpoints[-1].state], c["layers"])
        # dattri's Arnoldi breaks down into NaN when its Krylov space nears the parameters in play (measured on
        # a 27-parameter last layer): at most half of them, and keep half of the space's eigen-directions
        n_params = sum(p.numel() for name, p in module.named_parameters() if names is None or name in names)
        max_iter = max(2, min(c["max_iter"], n_params // 2))
        attributor = IFAttributorArnoldi(task, layer_name=names, device="cpu",
                                         proj_dim=max(1, min(c["proj_dim"], max_iter // 2)), max_iter=max_iter,
                                         regularization=float(c["damping"]), seed=seed)
        x_hessian, y_hessian = sample_rows(data.x_train, data.y_train, c["hessian_points"], seed)
        with quiet():
            attributor.cache(loader(x_hessian, y_hessian))
            return attributor.attribute(loader(data.x_train, data.y_train), loader(x_valid, y_valid)).double().numpy(), 1


DATTRI_METHODS = (DattriTracIn, DattriTRAK, DattriArnoldi)
if dattri is not None:
    for _method in DATTRI_METHODS:
        register_method(_method)
