"""HOST-CP study: subset quality against the baselines, and cost against one plain learner fit.

    python benchmarks/hostcp_study.py quality --out /tmp/hostcp-study [--seeds 0,1,2] [--jobs 2]
    python benchmarks/hostcp_study.py speed [--sizes 1000,2000,5000] [--epochs 3]

``quality`` runs the harness (``python -m valbench run``) on synthetic, digits and mnist at 10 % label noise,
with hostcp, hostcp-lp, random, loo, knn-shapley, and tmc-shapley / influence where registered, then
prints subset test accuracy per (dataset, budget), mislabel ROC-AUC and wall seconds per method.
``speed`` times hostcp on synthetic sets of N points against one full-data learner fit and prints where
the time goes (nearest-neighbour search, convex solve, look-ahead, backward through the layer, model).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"synthetic": {"n_train": 400, "n_valid": 200, "n_test": 1000},
            "digits": {"n_train": 400, "n_valid": 200, "n_test": 400},
            "mnist": {"n_train": 400, "n_valid": 200, "n_test": 1000}}
BASELINES = ["random", "loo", "knn-shapley"]
OPTIONAL = ["tmc-shapley", "influence"]


def quality(args: argparse.Namespace) -> None:
    from valbench.registry import METHODS, load_installed

    load_installed()

    wanted = args.methods.split(",") if args.methods else \
        ["hostcp", "hostcp-lp", *BASELINES, *[m for m in OPTIONAL if m in METHODS]]
    datasets = args.datasets.split(",")
    cmd = [sys.executable, "-m", "valbench", "run", "--methods", ",".join(wanted),
           "--datasets", ",".join(datasets), "--seeds", args.seeds, "--noise", "0.1",
           "--jobs", str(args.jobs), "--out", str(args.out), "--run-id", "study",
           "--time-limit", str(args.time_limit), "--no-progress"]
    for name in datasets:
        for key, value in DATASETS.get(name, {}).items():
            cmd += ["--data", f"{name}.{key}={value}"]
    for text in args.set:
        cmd += ["--set", text]
    print(" ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=ROOT)
    print(quality_tables(args.out / "study"))


def _label(record: dict) -> str:
    """The method's name, with the fraction for hostcp variants (a grid over it gives separate columns)."""
    if record["method"].startswith("hostcp"):
        return f"{record['method']}(f={record['method_params'].get('fraction')})"
    return record["method"]


def quality_tables(run_dir: Path) -> str:
    from valbench.report.frame import load_records

    records = load_records(run_dir)
    ok = [r for r in records if r.get("status") == "ok"]
    cells = pd.DataFrame([{"dataset": r["dataset"], "method": _label(r), "seed": r["seed"],
                           "mislabel_auc": r["mislabel_auc"], "wall_s": r["wall_s"],
                           "full_accuracy": r["full_accuracy"]} for r in ok])
    budgets = pd.DataFrame([{"dataset": r["dataset"], "method": _label(r), "seed": r["seed"], **b}
                            for r in ok for b in r["budgets"]])
    failed = pd.DataFrame([{"dataset": r["dataset"], "method": r["method"], "seed": r["seed"],
                            "status": r["status"], "error": r.get("error")} for r in records
                           if r.get("status") != "ok"])
    acc = budgets.pivot_table(index=["dataset", "budget"], columns="method", values="accuracy", aggfunc="mean")
    noisy = budgets.pivot_table(index=["dataset", "budget"], columns="method", values="noisy_selected",
                                aggfunc="mean")
    mean_acc = budgets.pivot_table(index="dataset", columns="method", values="accuracy", aggfunc="mean")
    auc = cells.pivot_table(index="dataset", columns="method", values="mislabel_auc", aggfunc="mean")
    wall = cells.pivot_table(index="dataset", columns="method", values="wall_s", aggfunc="mean")
    full = cells.groupby("dataset").full_accuracy.mean().rename("full-data accuracy")
    parts = ["## subset test accuracy (mean over seeds)", acc.round(3).to_markdown(),
             "## mean over budgets", mean_acc.round(3).to_markdown(),
             "## share of flipped labels in the subset", noisy.round(3).to_markdown(),
             "## mislabel ROC-AUC", auc.round(3).to_markdown(),
             "## wall seconds per cell (fit only)", wall.round(2).to_markdown(),
             "## full-data accuracy", full.round(3).to_markdown()]
    if len(failed):
        parts += ["## failed cells", failed.to_markdown()]
    return "\n\n".join(parts)


def speed(args: argparse.Namespace) -> None:
    from valbench.learners import LogisticRegression
    from valbench.registry import get_dataset, load_installed
    from valbench.methods.hostcp.faithful import HostCP

    torch.set_num_threads(1)
    load_installed()
    rows = []
    for n in (int(v) for v in args.sizes.split(",")):
        data = get_dataset("synthetic")(seed=0, n_train=n, n_valid=300, n_test=500)
        learner = LogisticRegression(data.n_features, data.n_classes)
        t0 = time.perf_counter()
        learner.fit(data.x_train, data.y_train)
        fit_s = time.perf_counter() - t0
        method = HostCP(epochs=args.epochs)
        t0 = time.perf_counter()
        valuation = method.fit(data, learner, seed=0, budgets=[n // 10])
        wall = time.perf_counter() - t0
        extra = valuation.extra
        parts = {k: extra[k] for k in ("search_s", "solve_s", "lookahead_s", "layer_backward_s", "model_s")}
        rows.append({"n_train": n, "epochs": args.epochs, "learner_fit_s": fit_s, "hostcp_s": wall,
                     "ratio": wall / fit_s, **parts, "other_s": wall - sum(parts.values()),
                     "s_per_batch": wall / (args.epochs * int(np.ceil(n / method.config["batch_size"])))})
        print(rows[-1], file=sys.stderr, flush=True)
    print(pd.DataFrame(rows).round(3).to_markdown(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--out", type=Path, default=Path("/tmp/hostcp-study"))
    q.add_argument("--seeds", default="0,1,2")
    q.add_argument("--datasets", default="synthetic,digits,mnist")
    q.add_argument("--methods", default="")
    q.add_argument("--jobs", type=int, default=2)
    q.add_argument("--time-limit", type=float, default=300)
    q.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=V")
    t = sub.add_parser("tables", help="print the quality tables of a finished run directory")
    t.add_argument("run_dir", type=Path)
    s = sub.add_parser("speed")
    s.add_argument("--sizes", default="1000,2000,5000")
    s.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if args.command == "quality":
        quality(args)
    elif args.command == "tables":
        print(quality_tables(args.run_dir))
    else:
        speed(args)


if __name__ == "__main__":
    main()
