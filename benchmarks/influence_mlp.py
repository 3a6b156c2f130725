"""Influence on the MLP against retraining, and leave-one-out's warm and cold starts against each other.

Part 1, ``influence`` with the ``mlp`` learner: on each dataset and seed, the first-order values are compared
with the actual change of validation loss when each point is removed and the MLP retrained (warm-started
from the full fit, as influence functions approximate): Pearson and Spearman correlation. Two Hessians:
Gauss-Newton with the default damping (``"auto"``, 1e-3 for the MLP) and the full Hessian with damping 0.01
(refused when it stays indefinite). Diagnostics say how well defined the question is: the full fit's largest
gradient entry, the full Hessian's smallest eigenvalue, and how many retrainings stalled (left the loss
exactly unchanged). ``blobs-small`` is the unit test's setting (40 points, 8 hidden units, l2 = 0.01, tight
tolerance; on the test's seed the full-batch fit is nearly stationary); the suite's datasets use the default
MLP (64 hidden units, l2 = 1e-3) with 10 % flipped labels.

Part 2, ``loo`` with the default logreg learner: the learner's float32 L-BFGS retraining (``newton_max_params
= 0``), warm- and cold-started, against the exact batched float64 Newton path (now the default), warm and cold:
the fraction of points whose value equals the exact one, the Spearman correlation with it, the test accuracy
of the top-10 % subset, and CPU seconds (one thread).

    .venv/bin/python benchmarks/influence_mlp.py [--seeds 0,1,2,3,4] [--n-train 100]

Writes ``benchmarks/results/influence_mlp.md`` (the tables) and ``benchmarks/results/influence_mlp.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from valbench.learners import MLP, LogisticRegression
from valbench.metrics import subset_value
from valbench.protocol import Dataset, MethodError, Valuation
from valbench.registry import get_dataset, get_method, load_installed
from valbench.datasets.noise import inject_noise
from valbench.methods.influence import FlatModel
from tests.conftest import blobs

RESULTS = pathlib.Path(__file__).parent / "results"
INFLUENCE_VARIANTS = {"gauss-newton, damping auto": {}, "full, damping 0.01": {"hessian": "full", "damping": 0.01}}
LOO_VARIANTS = {"lbfgs-warm": {"newton_max_params": 0}, "lbfgs-cold": {"newton_max_params": 0, "warm_start": False},
                "newton-warm": {}, "newton-cold": {"warm_start": False}}


def cpu_timed(run):
    start = time.process_time()
    out = run()
    return out, time.process_time() - start


def fit_diagnostics(module: torch.nn.Module, data: Dataset, l2: float) -> tuple[float, float]:
    """Largest |gradient| entry of the training objective at the fit, and its Hessian's smallest eigenvalue."""
    model = FlatModel(module)
    x, y = torch.as_tensor(data.x_train, dtype=torch.float64), torch.as_tensor(data.y_train)

    def objective(t):
        return model.losses(t, x, y).mean() + 0.5 * l2 * (model.decayed * t * t).sum()

    grad = torch.func.grad(objective)(model.theta)
    hessian = torch.func.hessian(objective)(model.theta)
    return float(grad.abs().max()), float(torch.linalg.eigvalsh(hessian)[0])


def retrained_loss_change(data: Dataset, learner: MLP) -> np.ndarray:
    full = learner.fit(data.x_train, data.y_train)
    base = full.loss(data.x_valid, data.y_valid)
    return np.array([learner.fit(np.delete(data.x_train, i, 0), np.delete(data.y_train, i), init=full.state)
                     .loss(data.x_valid, data.y_valid) - base for i in range(data.n_train)])


def influence_rows(seeds: list[int], n_train: int) -> list[dict]:
    rows = []
    for dataset in ("blobs-small", "synthetic", "breast_cancer"):
        for seed in seeds:
            if dataset == "blobs-small":
                data = blobs(n_train=40, n_valid=40, n_classes=3, dim=4, seed=seed)
                learner = MLP(data.n_features, data.n_classes, hidden=8, l2=0.01, max_iter=1000, tol=1e-9)
            else:
                data = inject_noise(get_dataset(dataset)(seed=seed, n_train=n_train, n_valid=100), 0.1, seed=seed)
                learner = MLP(data.n_features, data.n_classes, seed=seed)
            grad_max, lowest = fit_diagnostics(learner.fit(data.x_train, data.y_train).module, data, learner.l2)
            actual, retrain_s = cpu_timed(lambda: retrained_loss_change(data, learner))
            row = {"dataset": dataset, "seed": seed, "n_train": data.n_train, "grad_max": grad_max,
                   "hessian_min_eig": lowest, "stalled_retrainings": int(np.sum(actual == 0)),
                   "retrain_cpu_s": retrain_s}
            for name, params in INFLUENCE_VARIANTS.items():
                try:
                    got, seconds = cpu_timed(lambda: get_method("influence")(**params).fit(data, learner, seed))
                except MethodError:
                    row[name] = None
                    continue
                row[name] = {"pearson": float(pearsonr(got.scores, actual).statistic),
                             "spearman": float(spearmanr(got.scores, actual).statistic), "cpu_s": seconds}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def loo_rows(seeds: list[int]) -> list[dict]:
    rows = []
    for dataset, params in (("synthetic", {"n_train": 300, "n_valid": 200, "n_test": 1000}), ("breast_cancer", {})):
        for seed in seeds:
            data = inject_noise(get_dataset(dataset)(seed=seed, **params), 0.1, seed=seed)
            learner = LogisticRegression(data.n_features, data.n_classes, seed=seed)
            values, row = {}, {"dataset": dataset, "seed": seed, "n_train": data.n_train}
            for name, config in LOO_VARIANTS.items():
                values[name], seconds = cpu_timed(lambda: get_method("loo")(**config).fit(data, learner, seed).scores)
                acc = subset_value(data, learner, Valuation(scores=values[name]), [0.1], seed=seed)[0]["accuracy"]
                row[name] = {"cpu_s": seconds, "acc@0.1": acc}
            exact = values["newton-warm"]
            for name, v in values.items():
                row[name].update(equal_to_exact=float(np.mean(np.abs(v - exact) < 1e-12)),
                                 spearman_to_exact=float(spearmanr(v, exact).statistic))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _mean(rows: list[dict], *keys: str) -> str:
    values = []
    for row in rows:
        value = row
        for key in keys:
            value = None if value is None else value[key]
        values.append(value)
    finite = [v for v in values if v is not None and np.isfinite(v)]
    refused = len(values) - len(finite)
    text = f"{np.mean(finite):.3f}" if finite else "-"
    return text + (f" ({refused} refused)" if refused else "")


def markdown(influence: list[dict], loo: list[dict], seeds: list[int]) -> str:
    lines = [f"# Influence on the MLP, and LOO warm vs cold (seeds {','.join(map(str, seeds))}; means over seeds)",
             "", "Produced by `benchmarks/influence_mlp.py`; raw rows in `influence_mlp.json`.", "",
             "## influence (mlp) vs warm-started retraining: correlation with the change of validation loss", "",
             "| dataset | n | fit max gradient | Hessian min eigenvalue | stalled retrainings | "
             + " | ".join(f"{v}: Pearson / Spearman" for v in INFLUENCE_VARIANTS) + " | influence s | retraining s |",
             "|---|---|---|---|---|" + "---|" * len(INFLUENCE_VARIANTS) + "---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in influence):
        rows = [r for r in influence if r["dataset"] == dataset]
        cells = [f"{_mean(rows, v, 'pearson')} / {_mean(rows, v, 'spearman')}" for v in INFLUENCE_VARIANTS]
        lines.append(f"| {dataset} | {rows[0]['n_train']} | {np.mean([r['grad_max'] for r in rows]):.1e} | "
                     f"{np.mean([r['hessian_min_eig'] for r in rows]):.1e} | "
                     f"{np.mean([r['stalled_retrainings'] for r in rows]):.1f} | " + " | ".join(cells)
                     + f" | {_mean(rows, next(iter(INFLUENCE_VARIANTS)), 'cpu_s')} | "
                     f"{_mean(rows, 'retrain_cpu_s')} |")
    lines += ["", "## loo (logreg): L-BFGS retraining vs the exact Newton path, warm and cold starts", "",
              "| dataset | n | variant | values equal to exact | Spearman to exact | acc@0.1 | CPU s |",
              "|---|---|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in loo):
        rows = [r for r in loo if r["dataset"] == dataset]
        for name in LOO_VARIANTS:
            lines.append(f"| {dataset} | {rows[0]['n_train']} | {name} | {_mean(rows, name, 'equal_to_exact')} | "
                         f"{_mean(rows, name, 'spearman_to_exact')} | {_mean(rows, name, 'acc@0.1')} | "
                         f"{_mean(rows, name, 'cpu_s')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--n-train", type=int, default=100, help="train points of the MLP influence datasets")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    load_installed()
    influence, loo = influence_rows(seeds, args.n_train), loo_rows(seeds)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "influence_mlp.json").write_text(json.dumps({"influence": influence, "loo": loo}, indent=1) + "\n")
    (RESULTS / "influence_mlp.md").write_text(markdown(influence, loo, seeds))
    print(markdown(influence, loo, seeds))


if __name__ == "__main__":
    main()
