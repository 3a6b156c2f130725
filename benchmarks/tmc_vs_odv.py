"""Native ``tmc-shapley`` against OpenDataVal's ``DataShapley`` (``odv-DataShapley``) at equal permutation count.

Both value breast_cancer (200 train points) under the same game: the suite's logistic regression retrained
on prefixes of random permutations, scored by validation accuracy, truncated by each one's own rule, and
both start from the empty set (``min_cardinality=0`` for OpenDataVal). By default OpenDataVal replays the
very permutations native draws (common random numbers), so the Spearman correlation measures whether the
two implementations agree rather than Monte-Carlo noise, which at tens of permutations dominates
(``--independent`` draws OpenDataVal's own). The script prints models trained and seconds for each, the
speed ratio and the Spearman correlation, and exits non-zero unless native is >= 5x faster and
Spearman >= 0.8.

    .venv/bin/python benchmarks/tmc_vs_odv.py [--permutations 30] [--n-train 200] [--n-jobs 1] [--independent]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from valbench.learners import LogisticRegression
from valbench.registry import UNAVAILABLE, get_dataset, get_method, load_installed


class ReplayPermutations(np.random.RandomState):
    """A RandomState whose ``permutation`` replays given orders: OpenDataVal's TMC sampler draws only those."""

    def __init__(self, orders: list[np.ndarray]) -> None:
        super().__init__(0)
        self.orders = iter(orders)

    def permutation(self, x):  # noqa: D102 - numpy's signature
        return next(self.orders).copy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--permutations", type=int, default=30)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-jobs", type=int, default=1, help="native tmc-shapley's joblib workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--independent", action="store_true", help="OpenDataVal draws its own permutations")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_installed()
    if "opendataval" in UNAVAILABLE:
        print(UNAVAILABLE["opendataval"], file=sys.stderr)
        return 2
    data = get_dataset("breast_cancer")(seed=args.seed, n_train=args.n_train)
    LogisticRegression(data.n_features, data.n_classes).fit(data.x_train, data.y_train)  # torch warm-up

    from valbench.methods.opendataval import run_evaluator
    from valbench.methods.tmc_shapley import permutation_order

    orders = [permutation_order(ss, data.n_train) for ss in np.random.SeedSequence(args.seed).spawn(args.permutations)]
    odv_random = np.random.RandomState(args.seed) if args.independent else ReplayPermutations(orders)
    native_method = get_method("tmc-shapley")(max_permutations=args.permutations,
                                              min_permutations=args.permutations, n_jobs=args.n_jobs)
    runs = {
        "tmc-shapley": lambda learner: native_method.fit(data, learner, args.seed),
        "odv-DataShapley": lambda learner: run_evaluator("DataShapley", {"mc_epochs": args.permutations,
                                                                         "min_cardinality": 0},
                                                         data, learner, odv_random),
    }
    results = {}
    for name, run in runs.items():
        learner = LogisticRegression(data.n_features, data.n_classes)
        start = time.perf_counter()
        out = run(learner)
        seconds = time.perf_counter() - start
        scores, fits = (out.scores, out.utility_evals) if hasattr(out, "scores") else out
        results[name] = (scores, fits, seconds)
        print(f"{name:16s} permutations={args.permutations}  models trained={fits:6d}  seconds={seconds:8.2f}",
              flush=True)
    (native, fits_native, t_native), (odv, fits_odv, t_odv) = results["tmc-shapley"], results["odv-DataShapley"]
    ratio = t_odv / t_native
    rho = spearmanr(native, odv).statistic
    print(f"speed ratio (odv / native) = {ratio:.1f}x   Spearman = {rho:.3f} "
          f"({'independent' if args.independent else 'shared'} permutations)   "
          f"models trained: native {fits_native}, odv {fits_odv}")
    ok = ratio >= 5 and rho >= 0.8
    print("PASS" if ok else "FAIL: need ratio >= 5 and Spearman >= 0.8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
