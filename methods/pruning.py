"""Data-pruning scores from training dynamics: EL2N, GraNd, forgetting events, area under the margin, margin.

Each trains the suite's learner's own module (logistic regression, MLP or CNN) by minibatches with the
shared helper :func:`valbench.training.train_minibatch` (the learner's :meth:`train_settings`: Adam, lr 1e-2,
batches of 32 for the full-batch learners, the CNN's own settings for the CNN) and reads the per-epoch logits
on the train split that the helper hands to its ``on_epoch`` hook. With z_i the logits of point i, p_i its
softmax and e_{y_i} the one-hot of its (possibly flipped) label:

* ``el2n`` (Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet", NeurIPS 2021): ||p_i - e_{y_i}||_2
  after a few epochs (``epochs``), averaged over ``runs`` independent initialisations and shuffles;
* ``grand`` (same paper): the norm of the per-example loss gradient ||grad_theta CE(f_theta(x_i), y_i)||_2
  at the same point of training, averaged the same way. For logistic regression it has the closed form
  ||p_i - e_{y_i}|| * ||[x_i, 1]|| (the gradient is the outer product (p_i - e_{y_i}) [x_i, 1]^T); other
  modules use ``torch.func`` per-example gradients over every parameter. ``epochs=0`` is GraNd at
  initialisation (for logistic regression, which starts at zero, it is then proportional to ||[x_i, 1]||);
* ``forgetting`` (Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural Network
  Learning", ICLR 2019): the number of forgetting events, epochs t at which point i goes from correctly to
  incorrectly classified (acc_{t-1} = 1, acc_t = 0), over ``epochs`` epochs; a point never classified
  correctly counts as forgotten ``epochs`` times, more than any learned point can be (at most
  floor(epochs / 2)), as the paper ranks never-learned points as the most forgettable;
* ``aum`` (Pleiss et al., "Identifying Mislabeled Data using the Area Under the Margin Ranking", NeurIPS
  2020): the margin M_t(i) = z_{i, y_i} - max_{j != y_i} z_{i, j} averaged over the epochs; low (negative)
  AUM marks a point the network keeps pulling towards another class, a mislabel suspect;
* ``margin``: the same assigned-label margin after the last epoch (the learner's margin at the end of
  training).

The papers read correctness and margins when a point is seen in its minibatch; we read them on the whole
train split after each epoch (one pass with the trained weights), the variant common in re-implementations.

**Direction.** ``scores`` always measure how *easy* (clean) a point is, whatever ``keep``: -EL2N, -GraNd,
-forgetting events, AUM, margin; low = hard or suspect, as each paper reads them (low AUM = mislabelled,
many forgetting events = hard or mislabelled). So the harness's mislabel AUC (suspicion = -score) is the
paper's detector for both directions, and the removal curve removes the easiest points first.
``keep`` chooses which end of that order the subsets take: ``keep="hard"`` the lowest-scored points (what
pruning papers keep at large budgets: EL2N/GraNd and forgetting prune the easy points), ``keep="easy"``
the highest-scored (better at small budgets, and AUM's use: drop the low-margin suspects). Both are
returned as the method's own subsets (``selects_sets``); ties are broken at random from the seed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from valbench.learners import Learner, as_tensor
from valbench.metrics import rank_by_value
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.training import train_minibatch

KEEP = ("hard", "easy")


def error_norms(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """EL2N: ||softmax(z_i) - e_{y_i}||_2 per row."""
    residual = torch.softmax(logits.double(), dim=1)
    residual[torch.arange(len(y)), y] -= 1.0
    return residual.norm(dim=1)


def assigned_margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_{i, y_i} - max_{j != y_i} z_{i, j} per row (AUM's margin; negative when another class wins)."""
    logits = logits.double()
    assigned = logits[torch.arange(len(y)), y]
    others = logits.clone()
    others[torch.arange(len(y)), y] = -torch.inf
    return assigned - others.max(dim=1).values


def forgetting_events(correct: torch.Tensor) -> torch.Tensor:
    """Toneva et al.'s count from a (T, n) boolean trajectory of correctness after each epoch.

    Events are transitions correct -> incorrect between consecutive epochs; a column never correct gets T,
    above any learned point's count (at most floor(T / 2)).
    """
    correct = correct.bool()
    events = (correct[:-1] & ~correct[1:]).sum(dim=0).double()
    events[~correct.any(dim=0)] = float(correct.shape[0])
    return events


def grad_norms(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """GraNd: ||grad_theta CE(f_theta(x_i), y_i)||_2 per row, over every parameter of ``module``.

    ``nn.Linear`` (logistic regression): the closed form ||p_i - e_{y_i}|| * ||[x_i, 1]||; otherwise
    ``torch.func`` per-example gradients, ``chunk`` rows at a time.
    """
    module = module.eval()
    if isinstance(module, torch.nn.Linear):
        with torch.no_grad():
            inputs = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
            return error_norms(module(x), y) * inputs.norm(dim=1)
    params = {k: v.detach() for k, v in module.named_parameters()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.func.functional_call(module, p, (xi[None],)), yi[None])

    per_example = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
    norms = []
    for start in range(0, len(x), chunk):
        grads = per_example(params, x[start:start + chunk], y[start:start + chunk])
        norms.append(torch.sqrt(sum(g.double().flatten(1).pow(2).sum(dim=1) for g in grads.values())))
    return torch.cat(norms)


class Trajectory:
    """Statistics of one minibatch training run, collected by :func:`train_minibatch`'s ``on_epoch`` hook.

    Keeps O(n) state (never the T x n x C logits): the running margin sum (AUM), the last margin, the
    previous epoch's correctness and the forgetting events so far, and whether each point was ever correct.
    """

    def __init__(self, y: torch.Tensor) -> None:
        n = len(y)
        self.y = y
        self.epochs = 0
        self.margin_sum = torch.zeros(n, dtype=torch.float64)
        self.margin = torch.zeros(n, dtype=torch.float64)
        self.forgets = torch.zeros(n, dtype=torch.float64)
        self.ever_correct = torch.zeros(n, dtype=torch.bool)
        self.correct: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None

    def __call__(self, epoch: int, logits: torch.Tensor) -> None:
        self.epochs = epoch
        self.logits = logits
        self.margin = assigned_margins(logits, self.y)
        self.margin_sum += self.margin
        correct = logits.argmax(dim=1) == self.y
        if self.correct is not None:
            self.forgets += (self.correct & ~correct).double()
        self.correct = correct
        self.ever_correct |= correct

    @property
    def aum(self) -> torch.Tensor:
        return self.margin_sum / max(self.epochs, 1)

    @property
    def forgetting(self) -> torch.Tensor:
        """Forgetting events, never-learned points set to the number of epochs (see :func:`forgetting_events`)."""
        return torch.where(self.ever_correct, self.forgets, torch.full_like(self.forgets, float(self.epochs)))


def run_seed(seed: int, run: int) -> int:
    """An independent 32-bit seed for run ``run`` of a cell with ``seed`` (initialisation and shuffles)."""
    return int(np.random.SeedSequence([int(seed), int(run)]).generate_state(1)[0])


def train_trajectory(data: Dataset, learner: Learner, seed: int, epochs: int) -> tuple[torch.nn.Module, Trajectory]:
    """The learner's module, initialised from ``seed`` and trained ``epochs`` epochs by minibatches on the
    (noisy) train split, with the trajectory statistics of every epoch. ``epochs=0``: the initial module."""
    x, y = as_tensor(data.x_train), as_tensor(data.y_train, torch.int64)
    module = learner.init_module(seed)
    learner.fits += 1
    trajectory = Trajectory(y)
    if epochs == 0:
        with torch.no_grad():
            trajectory(0, module.eval()(x))
        return module, trajectory
    module = train_minibatch(module, x, y, None, learner.train_settings(epochs), seed=seed, on_epoch=trajectory)
    return module, trajectory


def keep_subsets(scores: np.ndarray, keep: str, budgets: Sequence[int], seed: int) -> dict[int, np.ndarray]:
    """The ``keep`` end of the easiness order: the k highest scores (easy) or the k lowest (hard), seeded ties."""
    order = rank_by_value(scores if keep == "easy" else -scores, seed)
    return {int(k): np.sort(order[:k]) for k in budgets}


class TrainingDynamics(ValuationMethod):
    """Shared parameters, checks and read-out of the training-dynamics scores (not registered itself)."""

    family = "valuation"
    selects_sets = True
    min_epochs = 1
    params: dict[str, Any] = {"epochs": 20, "keep": "hard"}

    def check(self) -> dict[str, Any]:
        config = dict(self.config)
        for key, low in (("epochs", self.min_epochs), ("runs", 1)):
            if key not in config:
                continue
            value = config[key]
            if isinstance(value, bool) or not float(value).is_integer() or value < low:
                raise DataError(f"method {self.name!r}: {key}={value!r} must be a whole number >= {low}")
            config[key] = int(value)
        if config["keep"] not in KEEP:
            raise DataError(f"method {self.name!r}: keep={config['keep']!r} must be one of {list(KEEP)} "
                            "(hard: the lowest-scored points, pruning's choice at large budgets; "
                            "easy: the highest-scored)")
        return config

    def easiness(self, data: Dataset, learner: Learner, seed: int, config: dict[str, Any]) -> tuple[np.ndarray, dict]:
        """Scores (higher = easier / cleaner) and extra facts for the record."""
        raise NotImplementedError  # pragma: no cover - abstract

    def fit(self, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int] = ()) -> Valuation:
        config = self.check()
        fits_before = learner.fits
        scores, extra = self.easiness(data, learner, seed, config)
        scores = np.asarray(scores, dtype=np.float64)
        return Valuation(scores=scores, subsets=keep_subsets(scores, config["keep"], budgets, seed),
                         utility_evals=learner.fits - fits_before, extra={"keep": config["keep"], **extra})


class EarlyScore(TrainingDynamics):
    """EL2N / GraNd: a per-point statistic of the module after ``epochs`` epochs, averaged over ``runs``."""

    min_epochs = 0
    params = {"epochs": 3, "runs": 5, "keep": "hard"}

    def statistic(self, module: torch.nn.Module, trajectory: Trajectory, data: Dataset) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def easiness(self, data, learner, seed, config):
        total = torch.zeros(data.n_train, dtype=torch.float64)
        for run in range(config["runs"]):
            module, trajectory = train_trajectory(data, learner, run_seed(seed, run), config["epochs"])
            total += self.statistic(module, trajectory, data)
        mean = total / config["runs"]
        return -mean.numpy(), {"mean_" + self.name: float(mean.mean())}


@register_method
class EL2N(EarlyScore):
    """EL2N (Paul et al. 2021): error-vector norm early in training, averaged over initialisations; score -EL2N."""

    name = "el2n"
    description = "EL2N (Paul et al. 2021): ||softmax - onehot|| after a few epochs, averaged over runs; keep=hard|easy"

    def statistic(self, module, trajectory, data):
        return error_norms(trajectory.logits, trajectory.y)


@register_method
class GraNd(EarlyScore):
    """GraNd (Paul et al. 2021): per-example loss-gradient norm early in training, averaged; score -GraNd."""

    name = "grand"
    description = "GraNd (Paul et al. 2021): per-example gradient norm after a few epochs, averaged over runs; keep=hard|easy"

    def statistic(self, module, trajectory, data):
        return grad_norms(module, as_tensor(data.x_train), trajectory.y)


@register_method
class Forgetting(TrainingDynamics):
    """Forgetting events (Toneva et al. 2019) over minibatch training; never learned = most forgotten; score -events."""

    name = "forgetting"
    min_epochs = 2
    description = "forgetting events (Toneva et al. 2019) over minibatch training; keep=hard|easy"

    def easiness(self, data, learner, seed, config):
        _, trajectory = train_trajectory(data, learner, seed, config["epochs"])
        events = trajectory.forgetting
        return -events.numpy(), {"never_learned": int((~trajectory.ever_correct).sum()),
                                 "unforgettable": int(((events == 0) & trajectory.ever_correct).sum())}


@register_method
class AUM(TrainingDynamics):
    """Area under the margin (Pleiss et al. 2020): assigned-logit margin averaged over epochs; low = suspect."""

    name = "aum"
    params = {"epochs": 20, "keep": "easy"}
    description = "area under the margin (Pleiss et al. 2020), low = mislabel suspect; keep=easy|hard"

    def easiness(self, data, learner, seed, config):
        _, trajectory = train_trajectory(data, learner, seed, config["epochs"])
        aum = trajectory.aum
        return aum.numpy(), {"negative_aum": int((aum < 0).sum())}


@register_method
class Margin(TrainingDynamics):
    """The assigned-label margin z_y - max_{j != y} z_j after the last epoch of minibatch training."""

    name = "margin"
    description = "assigned-label logit margin at the end of minibatch training; keep=hard|easy"

    def easiness(self, data, learner, seed, config):
        _, trajectory = train_trajectory(data, learner, seed, config["epochs"])
        return trajectory.margin.numpy(), {"negative_margin": int((trajectory.margin < 0).sum())}
