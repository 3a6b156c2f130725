"""Native ``data-oob`` (B logistic regressions in one batched fit) against OpenDataVal's ``DataOob`` at equal B.

Fashion-MNIST at 2,000 and 20,000 train points, one thread each, B = 100 models, the same bootstrap draws
(OpenDataVal's for the seed). Where OpenDataVal's full run would take too long (``--odv-models`` below B),
it trains that many models and its CPU seconds are extrapolated linearly to B (its models are independent fits
of the same size, so its cost is linear in B); the table says so. Agreement: the share of points whose values are
equal (within OpenDataVal's float32) and the Spearman correlation of the two value vectors where OpenDataVal ran
all B models. OpenDataVal trains the suite's learner, whose L-BFGS stops at ``max_iter`` = 100 iterations; the
native models are solved to a gradient tolerance, so a few predictions near the decision boundary differ. How
close each is to the objective's optimum: the share of points whose values equal those of the same bootstrap
models solved to 1e-8 in float64 (where OpenDataVal ran all B models).

Then a 100,000-row synthetic table (``synthetic`` dataset, 10 features, 4 classes) with B = 100, on
``--threads`` threads (default 2), against the goal of 10 minutes.

    .venv/bin/python benchmarks/data_oob_speed.py [--sizes 2000,20000] [--odv-models 100,10] [--repeats 3]
        [--table-rows 100000]

Writes benchmarks/results/data_oob_speed.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from valbench.learners import LogisticRegression
from valbench.measure import measure
from valbench.methods.data_oob import bootstrap_counts, fit_bagged_logreg, out_of_bag_values
from valbench.registry import UNAVAILABLE, get_dataset, get_method, load_installed

RESULTS = Path(__file__).parent / "results"


def optimum_values(data, learner: LogisticRegression, models: int, seed: int) -> np.ndarray:
    """Data-OOB's values with every bootstrap model solved to max |gradient| 1e-8 in float64 (the optimum)."""
    counts = bootstrap_counts(data.n_train, models, 1.0, seed)
    full, _ = fit_bagged_logreg(data.x_train, data.y_train, np.ones((1, data.n_train)), data.n_classes, learner.l2,
                                tol=1e-8, max_iter=5000, dtype=torch.float64)
    theta, _ = fit_bagged_logreg(data.x_train, data.y_train, counts, data.n_classes, learner.l2, tol=1e-8,
                                 max_iter=5000, dtype=torch.float64, init=full[0])
    x1 = torch.cat([torch.as_tensor(data.x_train, dtype=torch.float64),
                    torch.ones(data.n_train, 1, dtype=torch.float64)], dim=1)
    predicted = torch.einsum("nd,bcd->bnc", x1, theta).argmax(2).numpy()
    return out_of_bag_values(predicted == data.y_train, counts)[0]


def fashion_row(n: int, models: int, odv_models: int, seed: int, repeats: int) -> dict:
    """Native and OpenDataVal ``repeats`` times each, alternating; the medians give the speed-up, the runs its range."""
    torch.set_num_threads(1)
    data = get_dataset("fashion_mnist")(seed=seed, n_train=n, n_valid=1000)
    learner = LogisticRegression(data.n_features, data.n_classes)
    learner.fit(data.x_train[:100], data.y_train[:100])  # torch warm-up
    native_s, odv_s = [], []
    for _ in range(repeats):
        native, native_cost = measure(lambda: get_method("data-oob")(num_models=models).fit(data, learner, seed))
        odv, odv_cost = measure(lambda: get_method("odv-DataOob")(num_models=odv_models).fit(data, learner, seed))
        native_s.append(native_cost.cpu_s)
        odv_s.append(odv_cost.cpu_s * models / odv_models)
    ratios = [o / s for o, s in zip(odv_s, native_s)]
    row = {"dataset": "fashion_mnist", "n_train": n, "models": models, "native_cpu_s": float(np.median(native_s)),
           "native_runs": native_s, "native_iterations": native.extra["iterations"], "odv_models_run": odv_models,
           "odv_cpu_s": float(np.median(odv_s)), "odv_runs": odv_s, "odv_extrapolated": odv_models < models,
           "speedup": float(np.median(odv_s)) / float(np.median(native_s)), "speedup_range": [min(ratios), max(ratios)],
           "native_peak_mb": native_cost.peak_rss_mb}
    if odv_models == models:
        row["equal_share"] = float(np.mean(np.abs(native.scores - odv.scores) <= 1e-6))
        row["spearman"] = float(spearmanr(native.scores, odv.scores).statistic)
        row["max_abs_diff"] = float(np.max(np.abs(native.scores - odv.scores)))
        optimum = optimum_values(data, learner, models, seed)
        row["native_equal_optimum"] = float(np.mean(np.abs(native.scores - optimum) <= 1e-6))
        row["odv_equal_optimum"] = float(np.mean(np.abs(odv.scores - optimum) <= 1e-6))
    print(row, flush=True)
    return row


def table_row(rows: int, models: int, threads: int, seed: int) -> dict:
    torch.set_num_threads(threads)
    data = get_dataset("synthetic")(seed=seed, n_train=rows, n_valid=1000, n_test=1000)
    learner = LogisticRegression(data.n_features, data.n_classes)
    native, cost = measure(lambda: get_method("data-oob")(num_models=models).fit(data, learner, seed))
    row = {"dataset": "synthetic", "n_train": rows, "features": data.n_features, "classes": data.n_classes,
           "models": models, "threads": threads, "wall_s": cost.wall_s, "cpu_s": cost.cpu_s,
           "peak_mb": cost.peak_rss_mb, "iterations": native.extra["iterations"]}
    print(row, flush=True)
    return row


def write_markdown(fashion: list[dict], table: dict | None, path: Path) -> None:
    lines = ["# Native Data-OOB against OpenDataVal's DataOob (benchmarks/data_oob_speed.py)", "",
             f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}; timings are noisy (OpenDataVal's "
             "run to run most: the same work took 31-45 CPU s at 2,000 points on an idle machine), so each size "
             "runs both methods several times, alternating, in one process: medians, and the range of the per-run "
             "ratios. CPU seconds, one thread each, B models, the same bootstrap draws.", "",
             "| points | B | runs | native CPU s | iterations | OpenDataVal CPU s | speed-up (range) | values equal | "
             "Spearman | equal to the optimum's: native / OpenDataVal |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in fashion:
        odv = f"{r['odv_cpu_s']:.1f}" + (f" (extrapolated from {r['odv_models_run']} models)"
                                         if r["odv_extrapolated"] else "")
        equal = f"{r['equal_share']:.3f}" if "equal_share" in r else "-"
        rho = f"{r['spearman']:.4f}" if "spearman" in r else "-"
        optimum = (f"{r['native_equal_optimum']:.3f} / {r['odv_equal_optimum']:.3f}" if "native_equal_optimum" in r
                   else "-")
        low, high = r["speedup_range"]
        lines.append(f"| {r['n_train']:,} | {r['models']} | {len(r['native_runs'])} | {r['native_cpu_s']:.1f} | "
                     f"{r['native_iterations']} | {odv} | {r['speedup']:.1f}x ({low:.1f}-{high:.1f}x) | {equal} | "
                     f"{rho} | {optimum} |")
    if table is not None:
        lines += ["", f"Synthetic table: {table['n_train']:,} rows x {table['features']} features, "
                  f"{table['classes']} classes, B = {table['models']}, {table['threads']} threads: "
                  f"{table['wall_s']:.1f} s wall ({table['cpu_s']:.1f} s CPU, peak {table['peak_mb']:.0f} MB; "
                  f"goal: 600 s)."]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--odv-models", default="100,10", help="OpenDataVal's models per size (extrapolated to B)")
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each method per size (medians reported)")
    parser.add_argument("--table-rows", type=int, default=100_000, help="0: skip the synthetic table")
    parser.add_argument("--threads", type=int, default=2, help="threads for the synthetic table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "data_oob_speed.md"))
    args = parser.parse_args()
    load_installed()
    if "opendataval" in UNAVAILABLE:
        print(UNAVAILABLE["opendataval"], file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    odv_models = [int(s) for s in args.odv_models.split(",")]
    fashion = [fashion_row(n, args.models, k, args.seed, args.repeats) for n, k in zip(sizes, odv_models)]
    table = table_row(args.table_rows, args.models, args.threads, args.seed) if args.table_rows else None
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"fashion_mnist": fashion, "table": table}, indent=1) + "\n")
    write_markdown(fashion, table, out)
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
