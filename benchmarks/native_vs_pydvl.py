"""Native methods against pyDVL 0.10 (the ``pydvl-*`` adapter) at equal work: time, models trained, Spearman.

Both libraries value breast_cancer (``--n-train`` points, ``--noise`` flipped labels, seed ``--seed``) in
the same game: the suite's logistic regression on a subset, scored by validation accuracy, the empty set
scoring the untrained model. Equal work means the same number of permutations (no truncation in either,
so both train ``permutations x n`` prefix models), the same number of MSR subsets, one leave-one-out fit
per point. pyDVL replays the very permutations native draws and draws the same Banzhaf subsets (same
seed, same generator), so "Spearman" measures whether the implementations agree; "native vs native"
gives, for scale, the Spearman between two native runs with different seeds (Monte-Carlo noise at that
work). Times are wall seconds of ``fit`` in this process, one thread each.

The second table calibrates the rank cross-check of tests/methods/test_pydvl.py: the Spearman between the
native estimator at the test's work and the test's precise native reference, over ``--calibration-seeds``
seeds; the test's thresholds are its 5th percentiles.

    nice -n 10 .venv/bin/python benchmarks/native_vs_pydvl.py [--n-train 200] [--permutations 5]
        [--subsets 200] [--out benchmarks/results/native_vs_pydvl.md]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any, Callable

import numpy as np
import torch
from scipy.stats import spearmanr

from valbench.learners import LogisticRegression
from valbench.protocol import Dataset
from valbench.registry import UNAVAILABLE, get_dataset, get_method, load_installed
from valbench.datasets.noise import inject_noise

Run = Callable[[LogisticRegression], tuple[np.ndarray, int]]  # a method run on a learner: scores, models trained


def timed(run: Run, data: Dataset) -> tuple[np.ndarray, int, float]:
    """Scores, models trained and wall seconds of one run on a fresh learner."""
    learner = LogisticRegression(data.n_features, data.n_classes)
    start = time.perf_counter()
    scores, fits = run(learner)
    return scores, fits, time.perf_counter() - start


def registered(name: str, data: Dataset, seed: int, **params: Any) -> Run:
    """A registered method's run: its scores and the models it reports having trained."""
    def run(learner: LogisticRegression) -> tuple[np.ndarray, int]:
        valuation = get_method(name)(**params).fit(data, learner, seed)
        return valuation.scores, int(valuation.utility_evals or 0)
    return run


def pydvl_replayed(kind: str, data: Dataset, seed: int, permutations: int) -> Run:
    """pyDVL's Shapley or Beta(16, 1) Shapley on native's permutations (no truncation)."""
    from valbench.methods import pydvl as adapter

    def run(learner: LogisticRegression) -> tuple[np.ndarray, int]:
        sampler = adapter.replay_permutations(seed, permutations)
        stop = adapter.pv.MaxSamples(sampler, permutations)
        with adapter.quiet_sequential():
            utility = adapter.suite_utility(data, learner, "accuracy")
            if kind == "tmc":
                valuation = adapter.pv.ShapleyValuation(utility, sampler, stop)
            else:
                valuation = adapter.pv.BetaShapleyValuation(utility, sampler, stop, alpha=16.0, beta=1.0)
            result = valuation.fit(adapter.pv.Dataset(data.x_train, data.y_train)).result
        scores = np.empty(data.n_train)
        scores[result.indices] = result.values
        return scores, learner.fits
    return run


def compare(data: Dataset, args: argparse.Namespace) -> list[str]:
    p, m, seed = args.permutations, args.subsets, args.seed
    exact_mc = dict(max_permutations=p, min_permutations=p, convergence=0, tolerance=0)
    pairs = [  # (label, work, native run, native run at another seed, pyDVL run)
        ("TMC Shapley", f"{p} permutations", registered("tmc-shapley", data, seed, **exact_mc),
         registered("tmc-shapley", data, seed + 1, **exact_mc), pydvl_replayed("tmc", data, seed, p)),
        ("Beta(16,1) Shapley", f"{p} permutations", registered("beta-shapley", data, seed, **exact_mc),
         registered("beta-shapley", data, seed + 1, **exact_mc), pydvl_replayed("beta", data, seed, p)),
        ("Banzhaf (MSR)", f"{m} subsets", registered("banzhaf", data, seed, num_subsets=m),
         registered("banzhaf", data, seed + 1, num_subsets=m),
         registered("pydvl-banzhaf", data, seed, num_subsets=m)),
        ("LOO (native warm-started)", "n + 1 fits", registered("loo", data, seed), None,
         registered("pydvl-loo", data, seed)),
        ("LOO (native cold)", "n + 1 fits", registered("loo", data, seed, warm_start=False), None,
         registered("pydvl-loo", data, seed)),
        ("KNN-Shapley (k=10)", "closed form", registered("knn-shapley", data, seed), None,
         registered("pydvl-knn-shapley", data, seed)),
    ]
    rows = ["| method | work | native s | pyDVL s | pyDVL / native | models native | models pyDVL | "
            "Spearman native vs pyDVL | max abs diff | Spearman native vs native (other seed) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    pydvl_cache: dict[str, tuple[np.ndarray, int, float]] = {}
    for label, work, native, other, theirs in pairs:
        ours, fits_ours, t_ours = timed(native, data)
        key = label.split(" (native")[0]
        if key not in pydvl_cache:  # the two LOO rows share one pyDVL run
            pydvl_cache[key] = timed(theirs, data)
        them, fits_them, t_them = pydvl_cache[key]
        noise = f"{spearmanr(ours, timed(other, data)[0]).statistic:.3f}" if other is not None else "-"
        rho = spearmanr(ours, them).statistic
        row = (f"| {label} | {work} | {t_ours:.2f} | {t_them:.2f} | {t_them / t_ours:.1f}x | {fits_ours} | "
               f"{fits_them} | {rho:.4f} | {np.abs(ours - them).max():.2e} | {noise} |")
        print(row, flush=True)
        rows.append(row)
    return rows


def solver_gap(data: Dataset, seed: int, step: int = 7) -> list[str]:
    """Why shared permutations still differ: along native's first permutation, every ``step``-th prefix is
    solved by native's batched Newton (tmc-shapley, banzhaf) and by the learner's L-BFGS (what pyDVL, and
    native's cold paths, train); count the prefixes whose validation accuracy differs, with L-BFGS's final
    gradient (the learner asks for 1e-6)."""
    from valbench.methods.tmc_shapley import BatchedPrefixFits, permutation_order
    from valbench.methods.utility import Utility

    learner = LogisticRegression(data.n_features, data.n_classes)
    solver = BatchedPrefixFits(Utility(data, learner), learner.max_iter)
    order = permutation_order(np.random.SeedSequence(seed).spawn(1)[0], data.n_train)
    start = torch.zeros(solver.c, solver.d1, dtype=torch.float64)
    differ, gradients = [], []
    for size in range(1, data.n_train + 1, step):
        newton = float(solver.scores(solver.solve(torch.as_tensor(order[:size]), torch.tensor([size]), start))[0])
        model = learner.fit(data.x_train[order[:size]], data.y_train[order[:size]])
        x = torch.as_tensor(data.x_train[order[:size]], dtype=torch.float64)
        weight, bias = model.module.weight.detach().double(), model.module.bias.detach().double()
        residual = (torch.softmax(x @ weight.T + bias, 1)
                    - torch.nn.functional.one_hot(torch.as_tensor(data.y_train[order[:size]]), data.n_classes)) / size
        gradients.append(max(float((residual.T @ x + learner.l2 * weight).abs().max()),
                             float(residual.sum(0).abs().max())))
        if newton != model.accuracy(data.x_valid, data.y_valid):
            differ.append(size)
    return [f"Prefixes of native's first permutation checked: {len(gradients)} (every {step}th); validation "
            f"accuracy differs between batched Newton and L-BFGS at {len(differ)} (sizes {differ}); L-BFGS's "
            f"final gradient (max abs): median {np.median(gradients):.1e}, max {max(gradients):.1e} (asked: "
            f"{learner.tol:.0e})."]


def calibrate(seeds: int) -> list[str]:
    """Native's own Spearman to the rank test's reference at the test's work, over ``seeds`` seeds."""
    from tests.methods import test_pydvl as rank_test

    data = rank_test.rank_problem()
    rows = ["| estimator | work | reference | seeds | min | 5th percentile | median | test threshold |",
            "|---|---|---|---:|---:|---:|---:|---:|"]
    for kind, unit in (("tmc", "permutations"), ("banzhaf", "subsets")):
        reference = rank_test.native_estimate(kind, data, rank_test.RANK_REFERENCE[kind], seed=999)
        estimates = [rank_test.native_estimate(kind, data, rank_test.RANK_WORK[kind], seed=s) for s in range(seeds)]
        rhos = [spearmanr(estimate, reference).statistic for estimate in estimates]
        row = (f"| native {kind} | {rank_test.RANK_WORK[kind]} {unit} | {rank_test.RANK_REFERENCE[kind]} {unit}, "
               f"seed 999 | {seeds} | {min(rhos):.3f} | {np.percentile(rhos, 5):.3f} | {np.median(rhos):.3f} | "
               f"{rank_test.RANK_THRESHOLD[kind]} |")
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--permutations", type=int, default=5)
    parser.add_argument("--subsets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration-seeds", type=int, default=50)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results/native_vs_pydvl.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_installed()
    if "pydvl" in UNAVAILABLE:
        print(UNAVAILABLE["pydvl"], file=sys.stderr)
        return 2
    data = inject_noise(get_dataset("breast_cancer")(seed=args.seed, n_train=args.n_train), args.noise, args.seed)
    LogisticRegression(data.n_features, data.n_classes).fit(data.x_train, data.y_train)  # torch warm-up
    lines = ["# Native methods vs pyDVL 0.10 at equal work", "",
             f"breast_cancer, {data.n_train} train points, {args.noise:.0%} flipped labels, seed {args.seed}, "
             f"logistic regression, validation accuracy; one thread. Produced by "
             f"`nice -n 10 python benchmarks/native_vs_pydvl.py --n-train {args.n_train} "
             f"--permutations {args.permutations} --subsets {args.subsets}`.", ""]
    lines += compare(data, args)
    lines += ["", "## Where shared randomness still disagrees: the solver", ""]
    lines += solver_gap(data, args.seed)
    lines += ["", "## Calibration of the rank cross-check (tests/methods/test_pydvl.py)", ""]
    lines += calibrate(args.calibration_seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
