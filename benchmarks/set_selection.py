"""Set selection vs per-point valuation: subset value, mislabel AUC and cost, and the headroom to oracle-greedy.

    nice -n 10 python benchmarks/set_selection.py run [--out /tmp/set-selection] [--seeds 0,1,2,3,4] [--jobs 2]
    python benchmarks/set_selection.py tables [--out /tmp/set-selection]

``run`` drives the harness (``python -m valbench run``, so every number is the suite's own metric) on
synthetic, breast_cancer, digits and mnist (300 train points each, 10 % flipped labels, budgets 5-50 %) in
three runs under ``--out``: ``selectors`` (every set selector, with CRAIG and GradMatch both weighted and
unweighted, hostcp, random and the cheap valuation methods knn-shapley and influence, on every dataset),
``retraining`` (loo and tmc-shapley, on the two small-feature datasets where they are affordable) and
``oracle`` (oracle-greedy, pool 32, everywhere) and ``glister`` (everywhere). Reruns resume: cells already stored are skipped.
``tables`` writes benchmarks/results/set_selection.{md,csv,png}: mean test accuracy ± s.e. over seeds per
(dataset, budget, method), mislabel ROC-AUC and fit seconds per method, each family's best against
oracle-greedy, and where hostcp ranks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = {"synthetic": {"n_train": 300, "n_valid": 200, "n_test": 1000},
            "breast_cancer": {"n_train": 300, "n_valid": 114, "n_test": 155},
            "digits": {"n_train": 300, "n_valid": 200, "n_test": 400},
            "mnist": {"n_train": 300, "n_valid": 200, "n_test": 1000}}
RUNS = {
    "selectors": (["random", "knn-shapley", "influence", "kcenter", "facility-location", "craig", "gradmatch",
                   "hostcp"], list(DATASETS), ["craig.weighted=true,false", "gradmatch.weighted=true,false"]),
    "retraining": (["loo", "tmc-shapley"], ["synthetic", "breast_cancer"],
                   ["tmc-shapley.max_permutations=30", "tmc-shapley.min_permutations=10"]),
    "oracle": (["oracle-greedy"], list(DATASETS), []),
    "glister": (["glister"], list(DATASETS), []),
}
FAMILY_ORDER = ["set-selection", "valuation", "reference"]


def run(args: argparse.Namespace) -> None:
    for run_id, (methods, datasets, sets) in RUNS.items():
        cmd = [sys.executable, "-m", "valbench", "run", "--methods", ",".join(methods),
               "--datasets", ",".join(datasets), "--seeds", args.seeds, "--noise", "0.1",
               "--budgets", "0.05,0.1,0.2,0.3,0.5", "--jobs", str(args.jobs), "--out", str(args.out),
               "--run-id", run_id, "--time-limit", str(args.time_limit), "--no-progress"]
        for name in datasets:
            cmd += [a for key, value in DATASETS[name].items() for a in ("--data", f"{name}.{key}={value}")]
        for text in sets:
            cmd += ["--set", text]
        print(" ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)


def label(record: dict) -> str:
    """Method name, with the weighting for the weighted coresets (they run both ways)."""
    if "weighted" in record["method_params"]:
        return f"{record['method']}({'w' if record['method_params']['weighted'] else 'unw'})"
    return record["method"]


def load(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from valbench.registry import get_method, load_installed
    from valbench.report.frame import load_records

    load_installed()
    records = [r for run_id in RUNS if (out / run_id).exists() for r in load_records(out / run_id)]
    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        print(f"{len(failed)} failed cells: " + "; ".join(sorted({r['error'][:120] for r in failed})), file=sys.stderr)
    cells = pd.DataFrame([{"dataset": r["dataset"], "method": label(r), "family": get_method(r["method"]).family,
                           "seed": r["seed"], "auc": r["mislabel_auc"], "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
                           "cell_s": r["cell_wall_s"], "full": r["full_accuracy"]} for r in ok])
    budgets = pd.DataFrame([{"dataset": r["dataset"], "method": label(r), "family": get_method(r["method"]).family,
                             "seed": r["seed"], **b} for r in ok for b in r["budgets"]])
    return cells, budgets


def mean_se(values: pd.Series) -> str:
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {se:.3f}"


def tables(args: argparse.Namespace) -> None:
    cells, budgets = load(args.out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    acc = budgets.pivot_table(index=["dataset", "family", "method"], columns="budget", values="accuracy",
                              aggfunc=mean_se)
    acc.columns = [f"acc@{b:g}" for b in acc.columns]
    per_cell = cells.groupby(["dataset", "family", "method"]).agg(
        auc=("auc", mean_se), fit_wall_s=("wall_s", "median"), fit_cpu_s=("cpu_s", "median"),
        cell_wall_s=("cell_s", "median"), seeds=("seed", "nunique"))
    table = acc.join(per_cell.round({"fit_wall_s": 3, "fit_cpu_s": 3, "cell_wall_s": 2})).reset_index()
    table["family"] = pd.Categorical(table["family"], FAMILY_ORDER + sorted(set(table["family"]) - set(FAMILY_ORDER)))
    table = table.sort_values(["dataset", "family", "method"])
    table.to_csv(RESULTS / "set_selection.csv", index=False)

    means = budgets.groupby(["dataset", "budget", "family", "method"]).accuracy.mean().reset_index()
    contenders = means[means.method != "oracle-greedy"]
    best = contenders.loc[contenders.groupby(["dataset", "budget", "family"]).accuracy.idxmax()]
    best = best.assign(best=best.method + " " + best.accuracy.round(3).astype(str))
    headroom = best.pivot_table(index=["dataset", "budget"], columns="family", values="best", aggfunc="first")
    oracle = means[means.method == "oracle-greedy"].set_index(["dataset", "budget"]).accuracy
    if len(oracle):
        headroom["oracle-greedy"] = oracle.round(3)
        headroom["best - oracle"] = (contenders.groupby(["dataset", "budget"]).accuracy.max() - oracle).round(3)
    ranks = means.assign(rank=means.groupby(["dataset", "budget"]).accuracy.rank(ascending=False, method="min"))
    hostcp = ranks[ranks.method == "hostcp"].pivot_table(index="dataset", columns="budget", values="rank")
    hostcp.columns = [f"rank@{b:g}" for b in hostcp.columns]
    n_methods = ranks.groupby("dataset").method.nunique().rename("methods")
    full = cells.groupby("dataset").full.mean().round(3).rename("full-data accuracy")
    text = ["# Set selection vs per-point valuation", "",
            "Generated by `nice -n 10 python benchmarks/set_selection.py run && python benchmarks/set_selection.py "
            "tables`: logistic regression, 300 train points, 10 % flipped labels, seeds "
            f"{sorted(cells.seed.unique().tolist())}. Test accuracy of the learner retrained on each method's "
            "subset (mean ± s.e. over seeds), mislabel ROC-AUC (suspicion = -score), median fit seconds per cell "
            "(wall and CPU; the machine was shared, so CPU is the steadier figure), median wall seconds of the "
            "whole cell (fit + metrics). (w) / (unw): CRAIG and GradMatch retrained with / without their weights.",
            "", "## Subset value, mislabel AUC and cost", "", table.to_markdown(index=False), "",
            "## Best of each family (mean test accuracy), against the reference oracle-greedy", "",
            "(families' best exclude oracle-greedy; `best - oracle` > 0 where some method beats the oracle)", "",
            headroom.to_markdown(), "", "## Where hostcp ranks (1 = best mean accuracy of all methods)", "",
            hostcp.join(n_methods).to_markdown(), "", "## Full-data accuracy", "", full.to_frame().to_markdown()]
    (RESULTS / "set_selection.md").write_text("\n".join(text) + "\n")
    plot(means, RESULTS / "set_selection.png")
    print("\n".join(text))


def plot(means: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"set-selection": "-", "valuation": "--", "reference": ":"}
    datasets = sorted(means.dataset.unique())
    methods = sorted(means.method.unique())
    colours = dict(zip(methods, plt.cm.tab20(np.linspace(0, 1, len(methods)))))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 4.8), squeeze=False)
    for ax, name in zip(axes[0], datasets):
        for method, part in means[means.dataset == name].groupby("method"):
            part = part.sort_values("budget")
            ax.plot(part.budget, part.accuracy, styles.get(part.family.iloc[0], "-"), marker="o", ms=3,
                    color=colours[method], lw=2.5 if method in ("oracle-greedy", "hostcp") else 1.4, label=method)
        ax.set_title(name)
        ax.set_xlabel("fraction of train kept")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (mean over seeds)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(8, len(labels)), fontsize=8, frameon=False)
    fig.suptitle("Subset value: set selectors (solid), valuation (dashed), references (dotted)")
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seeds", default="0,1,2,3,4")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--time-limit", type=float, default=900)
    t = sub.add_parser("tables")
    for p in (r, t):
        p.add_argument("--out", type=Path, default=Path("/tmp/set-selection"))
    args = parser.parse_args()
    run(args) if args.command == "run" else tables(args)


if __name__ == "__main__":
    main()
