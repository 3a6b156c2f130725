"""Cost of the label-error detectors, herding and the detector-then-selector pipelines, relative to one learner fit.

    nice -n 10 python benchmarks/attribution_cost.py [--sizes default,10000] [--skip hostcp-fl@10000]

For each dataset at the default grid's size (synthetic, breast_cancer, digits, mnist: about 500 train points)
and synthetic at 10,000 train points (10 % flipped labels, seed 0): the CPU and wall seconds of one fit of
the default learner (logistic regression, full batch L-BFGS) on the whole train split (median of 3), and of
each method's ``fit`` (one run; the harness's budgets 5-50 %), with their ratio to the learner fit. torch
runs on one thread, as in a benchmark cell. Writes benchmarks/results/attribution_cost.{csv,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from valbench.datasets.noise import inject_noise
from valbench.learners import make_learner
from valbench.metrics import DEFAULT_BUDGETS, budget_sizes
from valbench.registry import get_dataset, get_method, load_installed

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
DEFAULT_SIZES = {"synthetic": {"n_train": 500, "n_valid": 200, "n_test": 1000}, "breast_cancer": {},
                 "digits": {"n_train": 500, "n_valid": 200, "n_test": 500},
                 "mnist": {"n_train": 500, "n_valid": 200, "n_test": 1000}}
LARGE = {"synthetic (n_train=10000)": ("synthetic", {"n_train": 10000, "n_valid": 500, "n_test": 1000})}
METHODS = [("enn", {}), ("cleanlab", {}), ("herding", {}), ("facility-location", {}), ("hostcp-fl", {}),
           *(("pipeline", {"detector": d, "selector": s}) for d in ("enn", "cleanlab")
             for s in ("facility-location", "random"))]


def timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    out = call()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def warm_up() -> None:
    """One untimed run of every method on a small set: imports and numba's compilation (apricot) are paid once
    per process in a benchmark run too, not per cell."""
    data = inject_noise(get_dataset("synthetic")(seed=0, n_train=200, n_valid=100, n_test=100), 0.1, seed=0)
    for method, method_params in METHODS:
        cls = get_method(method)
        kwargs = {"budgets": [10, 40]} if cls.selects_sets else {}
        cls(**method_params).fit(data, make_learner("logreg", data.n_features, data.n_classes, seed=0), 0, **kwargs)


def measure(label: str, name: str, params: dict, skip: set[str]) -> list[dict]:
    data = inject_noise(get_dataset(name)(seed=0, **params), 0.1, seed=0)
    learner = make_learner("logreg", data.n_features, data.n_classes, seed=0)
    fits = sorted((timed(lambda: learner.fit(data.x_train, data.y_train))[1:] for _ in range(3)), key=lambda t: t[1])
    fit_wall, fit_cpu = fits[1]
    ks = budget_sizes(DEFAULT_BUDGETS, data.n_train, name)
    rows = []
    for method, method_params in METHODS:
        entry = method + (f" ({', '.join(f'{k}={v}' for k, v in method_params.items())})" if method_params else "")
        if f"{method}@{data.n_train}" in skip:
            continue
        cls = get_method(method)
        kwargs = {"budgets": ks} if cls.selects_sets else {}
        _, wall, cpu = timed(lambda: cls(**method_params).fit(data, make_learner("logreg", data.n_features,
                                                                                 data.n_classes, seed=0), 0, **kwargs))
        rows.append({"dataset": label, "n_train": data.n_train, "method": entry, "fit wall s": wall, "fit CPU s": cpu,
                     "learner fit CPU s": fit_cpu, "ratio (CPU)": cpu / fit_cpu})
        print(f"{label:28s} {entry:55s} {cpu:8.2f} s CPU  {cpu / fit_cpu:8.1f} x one fit", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="default,10000")
    parser.add_argument("--skip", default="", help="method@n_train pairs to leave out, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_installed()
    skip = set(filter(None, args.skip.split(",")))
    warm_up()
    jobs = []
    if "default" in args.sizes:
        jobs += [(name, name, params) for name, params in DEFAULT_SIZES.items()]
    if "10000" in args.sizes:
        jobs += [(label, name, params) for label, (name, params) in LARGE.items()]
    rows = [row for label, name, params in jobs for row in measure(label, name, params, skip)]
    table = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "attribution_cost.csv", index=False)
    (RESULTS / "attribution_cost.md").write_text(table.to_markdown(index=False, floatfmt=".3g") + "\n")


if __name__ == "__main__":
    main()
