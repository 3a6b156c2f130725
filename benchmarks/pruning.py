"""The data-pruning scores (el2n, grand, forgetting, aum, margin): subset value in both keep directions, mislabel
AUC, and cost relative to one learner fit.

    nice -n 10 python benchmarks/pruning.py run [--out /tmp/pruning] [--seeds 0,1,2,3,4] [--jobs 2]
    nice -n 10 python benchmarks/pruning.py cost [--fmnist DIR] [--learners logreg,cnn]
    python benchmarks/pruning.py tables [--out /tmp/pruning]

``run`` drives the harness (``python -m valbench run``: every number is the suite's own metric) on the default
grid's datasets and sizes (synthetic, digits and mnist 500 train points, breast_cancer 341), seeds 0-4, clean
labels and 10 % flipped labels, budgets 5-50 %, logistic regression; each score with ``keep=hard`` and
``keep=easy``, over the whole train split (the papers) and per class (``per_class=true``, a second run), beside
random and knn-shapley (the suite's best cheap mislabel detector). ``cost`` times one
``fit`` of each method against one fit of the learner on the same train split (median of 3 repeats, one
thread, seed 0) at the default sizes and at 10,000 points (synthetic, and Fashion-MNIST from the IDX files of
Debian's ``dataset-fashion-mnist``, see benchmarks/cnn_fashion_mnist.py); ``--learners cnn`` adds the CNN on
Fashion-MNIST. ``tables`` writes benchmarks/results/pruning.md from both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ["el2n", "grand", "forgetting", "aum", "margin"]
DATASETS = {"synthetic": {"n_train": 500, "n_valid": 200, "n_test": 1000}, "breast_cancer": {},
            "digits": {"n_train": 500, "n_valid": 200, "n_test": 500},
            "mnist": {"n_train": 500, "n_valid": 200, "n_test": 1000}}
COST_FILE = RESULTS / "pruning_cost.json"


RUNS = {"pruning": ([*METHODS, "random", "knn-shapley"], ["keep=hard,easy"]),
        "pruning-per-class": (METHODS, ["keep=hard,easy", "per_class=true"])}


def run(args: argparse.Namespace) -> None:
    for run_id, (methods, sets) in RUNS.items():
        if args.only and run_id != args.only:
            continue
        cmd = [sys.executable, "-m", "valbench", "run", "--methods", ",".join(methods),
               "--datasets", ",".join(DATASETS), "--seeds", args.seeds, "--noise", "0,0.1",
               "--budgets", "0.05,0.1,0.2,0.3,0.5", "--jobs", str(args.jobs), "--out", str(args.out),
               "--run-id", run_id, "--no-progress"]
        for name, params in DATASETS.items():
            cmd += [a for key, value in params.items() for a in ("--data", f"{name}.{key}={value}")]
        for name in METHODS:
            cmd += [a for text in sets for a in ("--set", f"{name}.{text}")]
        print(" ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)


def fashion_mnist(directory: Path, n_train: int, seed: int = 0):
    sys.path.insert(0, str(Path(__file__).parent))
    from cnn_fashion_mnist import load

    from valbench.datasets.splits import make_splits

    x_train, y_train, x_test, y_test = load(directory)
    x, y = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    return make_splits("fashion_mnist", x, y, seed, n_train=n_train, n_valid=1000, n_test=2000,
                       meta={"image_shape": (1, 28, 28)})


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return float(np.median(times))


def cost(args: argparse.Namespace) -> None:
    import torch

    from valbench.datasets.noise import inject_noise
    from valbench.learners import learner_for
    from valbench.registry import get_dataset, get_method, load_installed

    torch.set_num_threads(1)
    load_installed()
    cases = [(name, "logreg", lambda name=name: get_dataset(name)(seed=0, **DATASETS[name])) for name in DATASETS]
    cases.append(("synthetic-10k", "logreg",
                  lambda: get_dataset("synthetic")(seed=0, n_train=10000, n_valid=1000, n_test=1000)))
    for learner_name in args.learners.split(","):
        cases.append(("fashion_mnist-10k", learner_name, lambda: fashion_mnist(args.fmnist, 10000)))
    rows = json.loads(COST_FILE.read_text()) if COST_FILE.exists() else []
    done = {(r["dataset"], r["learner"], r["method"]) for r in rows}
    for dataset, learner_name, load in cases:
        if all((dataset, learner_name, m) in done for m in METHODS):
            continue
        data = inject_noise(load(), 0.1, seed=0)
        params = {"device": "cpu"} if learner_name == "cnn" else {}
        learner = learner_for(learner_name, data, seed=0, **params)
        repeats = 1 if data.n_train > 5000 else 3
        fit_s = timed(lambda: learner.fit(data.x_train, data.y_train), repeats)
        for name in METHODS:
            if (dataset, learner_name, name) in done:
                continue
            method = get_method(name)()
            method_s = timed(lambda: method.fit(data, learner, 0, budgets=[data.n_train // 10]), repeats)
            row = {"dataset": dataset, "learner": learner_name, "n_train": data.n_train, "method": name,
                   "method_cpu_s": method_s, "learner_fit_cpu_s": fit_s, "ratio": method_s / fit_s,
                   "params": method.check()}
            print(json.dumps(row), flush=True)
            rows.append(row)
            COST_FILE.write_text(json.dumps(rows, indent=1))


def label(record: dict) -> str:
    params = record["method_params"]
    if "keep" not in params:
        return record["method"]
    return f"{record['method']} ({params['keep']}{', per class' if params.get('per_class') else ''})"


def tables(args: argparse.Namespace) -> None:
    from valbench.report.frame import load_records

    lines = ["# Data-pruning scores: subset value, mislabel detection and cost", "",
             "`python benchmarks/pruning.py run|cost|tables`. Scores measure easiness (low = hard or suspect) in "
             "both directions; `keep=hard` retrains on the lowest-scored points, `keep=easy` on the highest.", ""]
    records = [r for run_id in RUNS if (args.out / run_id).exists() for r in load_records(args.out / run_id)
               if r.get("status") == "ok"]
    if records:
        budgets = pd.DataFrame([{"dataset": r["dataset"], "noise": r["noise_rate"], "method": label(r),
                                 "seed": r["seed"], "budget": b["budget"], "accuracy": b["accuracy"]}
                                for r in records for b in r["budgets"]])
        seeds = ", ".join(str(s) for s in sorted(budgets["seed"].unique()))
        for noise in sorted(budgets["noise"].unique()):
            part = budgets[budgets["noise"] == noise]
            table = part.groupby(["dataset", "method", "budget"])["accuracy"].mean().unstack("budget")
            table.columns = [f"acc@{c:g}" for c in table.columns]
            lines += [f"## Subset test accuracy, {noise:.0%} flipped labels (mean of seeds {seeds})", "",
                      table.round(3).reset_index().to_markdown(index=False), ""]
        cells = pd.DataFrame([{"dataset": r["dataset"], "noise": r["noise_rate"], "method": r["method"],
                               "seed": r["seed"], "auc": r["mislabel_auc"], "wall_s": r["wall_s"]}
                              for r in records if r["method_params"].get("keep", "hard") == "hard"
                              and not r["method_params"].get("per_class")])
        noisy = cells[cells["noise"] > 0]
        auc = noisy.pivot_table(index="method", columns="dataset", values="auc", aggfunc="mean")
        lines += ["## Mislabel ROC-AUC at 10 % flipped labels (suspicion = -score; the same for both keeps)", "",
                  auc.round(3).reset_index().to_markdown(index=False), ""]
    if COST_FILE.exists():
        rows = pd.DataFrame(json.loads(COST_FILE.read_text()))
        rows["learner_fit_cpu_s"] = rows["learner_fit_cpu_s"].round(3)
        table = rows.pivot_table(index=["dataset", "learner", "n_train", "learner_fit_cpu_s"], columns="method",
                                 values="ratio")
        lines += ["## Cost: CPU seconds of one fit / one learner fit on the same train split (1 thread, defaults)",
                  "", table.round(1).reset_index().to_markdown(index=False), ""]
    (RESULTS / "pruning.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "cost", "tables"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/pruning"))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fmnist", type=Path, default=Path("/tmp/training_fmnist/root/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--learners", default="logreg")
    parser.add_argument("--only", choices=list(RUNS), help="run: only this run")
    args = parser.parse_args()
    {"run": run, "cost": cost, "tables": tables}[args.command](args)


if __name__ == "__main__":
    main()
