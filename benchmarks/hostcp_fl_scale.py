"""hostcp-fl at real scale (issue 19, item 3): quality and cost before and after branch hostcp-scale.

    nice -n 10 python benchmarks/hostcp_fl_scale.py quality --tag before|after   # seeds 0-4, default sizes
    nice -n 10 python benchmarks/hostcp_fl_scale.py scale --tag after [--n 20000]  # one large synthetic cell
    python benchmarks/hostcp_fl_scale.py tables                                   # the comparison, md + png

``quality`` runs the harness's own cell evaluation (``valbench.runner.run_cell``: fit, subset accuracy
retrained from scratch, mislabel ROC-AUC) for ``hostcp-fl`` and ``hostcp`` on synthetic, digits and mnist at
the default grid's sizes (configs/default.toml), 10 % label noise, seeds 0-4, the default grid's budgets,
and stores one row per cell in ``benchmarks/results/hostcp_fl_scale_<tag>.json``. ``before`` was run on
commit 01f04f6 (dense N x N coverage scores, the active-set derivative re-solved in the readout too, the
look-ahead by a double backward, Clarabel on every whole opening program), ``after`` on this branch (blocked
exact kNN coverage, no derivative where none is wanted, the look-ahead from per-sample gradients, Clarabel on a
certified working set of each program: methods/hostcp/opening.py ``screened_solve``).
Costs are CPU seconds of the fit (one torch thread), so the load that other jobs put on the machine barely
moves them; the hostcp-fl / hostcp ratio is taken within one run.
``quality --tag choice-per-budget|choice-nested --seeds 10,11,12 --methods hostcp-fl`` (``--params
readout=nested`` for the second) compares the two readouts on the seeds used for choices (never on seeds 0-4).
``scale`` runs one cell at N train points in a fresh process (so its peak resident memory is its own) and one
learner fit on the same data, and appends to ``hostcp_fl_scale_large.json``.
Nothing here is tuned: the method's defaults are used as registered.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = {"synthetic": {"n_train": 500, "n_valid": 200, "n_test": 1000},
            "digits": {"n_train": 500, "n_valid": 200, "n_test": 500},
            "mnist": {"n_train": 500, "n_valid": 200, "n_test": 1000}}
BUDGETS = (0.05, 0.1, 0.2, 0.3, 0.5)
SHOWN = (0.05, 0.1, 0.3)
SEEDS = (0, 1, 2, 3, 4)
METHODS = ("hostcp-fl", "hostcp")
TIMINGS = ("solve_s", "lookahead_s", "readout_s", "coverage_s")


def quality(tag: str, seeds: tuple[int, ...] = SEEDS, methods: tuple[str, ...] = METHODS,
            method_params: dict | None = None) -> None:
    from valbench.grid import Cell
    from valbench.runner import run_cell

    rows = []
    for name, params in DATASETS.items():
        for seed in seeds:
            for method in methods:
                cell = Cell(dataset=name, method=method, seed=seed, noise_rate=0.1, budgets=BUDGETS,
                            dataset_params=params, method_params=method_params or {})
                record = run_cell(cell)
                if record["status"] != "ok":
                    raise RuntimeError(f"{cell.label}: {record['error']}")
                row = {"dataset": name, "method": method, "seed": seed, "cpu_s": record["cpu_s"],
                       "wall_s": record["wall_s"], "peak_rss_mb": record["peak_rss_mb"],
                       "mislabel_auc": record["mislabel_auc"],
                       **{f"acc@{b['budget']}": b["accuracy"] for b in record["budgets"]},
                       **{k: record["extra"].get(k) for k in TIMINGS if k in record["extra"]}}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"hostcp_fl_scale_{tag}.json").write_text(json.dumps(rows, indent=1))


def one_large_cell(n: int, method: str) -> dict:
    """Fit ``method`` on synthetic data of ``n`` train points (large.toml's split sizes) in this process."""
    import torch

    from valbench.datasets.noise import inject_noise
    from valbench.learners import LogisticRegression
    from valbench.measure import median_cpu_seconds
    from valbench.metrics import mislabel_auc
    from valbench.registry import get_dataset, get_method, load_installed

    torch.set_num_threads(1)
    load_installed()
    data = inject_noise(get_dataset("synthetic")(seed=0, n_train=n, n_valid=1000, n_test=2000), 0.1, seed=0)
    learner = LogisticRegression(data.n_features, data.n_classes)
    fit_s = median_cpu_seconds(lambda: learner.fit(data.x_train, data.y_train))
    budgets = [int(round(f * n)) for f in (0.05, 0.1, 0.2)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, w0 = time.process_time(), time.perf_counter()
    valuation = get_method(method)().fit(data, learner, 0, budgets=budgets)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    return {"method": method, "n_train": n, "cpu_s": cpu, "wall_s": wall, "learner_fit_s": fit_s,
            "ratio": cpu / fit_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_fit_mb": rss0, "mislabel_auc": mislabel_auc(valuation.scores, data.noisy_mask),
            **{k: v for k, v in valuation.extra.items() if k in TIMINGS}}


def scale(tag: str, n: int, methods: list[str]) -> None:
    path = RESULTS / "hostcp_fl_scale_large.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    for method in methods:
        out = subprocess.run([sys.executable, __file__, "_cell", str(n), method], check=True, capture_output=True,
                             text=True, cwd=ROOT).stdout
        row = {"tag": tag, **json.loads(out.strip().splitlines()[-1])}
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows = [r for r in rows if (r["tag"], r["method"], r["n_train"]) != (tag, method, n)] + [row]
    path.write_text(json.dumps(rows, indent=1))


def tables() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    runs = {tag: pd.DataFrame(json.loads((RESULTS / f"hostcp_fl_scale_{tag}.json").read_text()))
            for tag in ("before", "after") if (RESULTS / f"hostcp_fl_scale_{tag}.json").exists()}
    metrics = [f"acc@{b}" for b in SHOWN] + ["mislabel_auc"]
    lines = ["# hostcp-fl at real scale: before and after", "",
             "Written by `benchmarks/hostcp_fl_scale.py tables` (module docstring: what ran). "
             "`before` = commit 01f04f6 "
             "(dense N x N coverage, look-ahead by double backward, Clarabel on each whole opening program), `after` = "
             "branch hostcp-scale (blocked exact kNN coverage, look-ahead from per-sample gradients, Clarabel on a "
             "certified working set of each program). "
             "Mean ± standard error over seeds 0-4; the paired difference after - before with its standard error. "
             "10 % label noise, default grid sizes (500 train points), budgets 5, 10, 20, 30, 50 %.", "",
             "## Subset accuracy and mislabel AUC", "",
             "| method | dataset | metric | before | after | after - before (paired) |", "|---|---|---|---|---|---|"]
    for method in METHODS:
        per = {tag: df[df.method == method].set_index(["dataset", "seed"]).sort_index() for tag, df in runs.items()}
        for name in DATASETS:
            for m in metrics:
                cells = []
                for tag in ("before", "after"):
                    v = per[tag].loc[name, m] if tag in per else None
                    cells.append("-" if v is None else f"{v.mean():.3f} ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}")
                if len(per) == 2:
                    diff = per["after"].loc[name, m] - per["before"].loc[name, m]
                    cells.append(f"{diff.mean():+.3f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.3f}")
                else:
                    cells.append("-")
                lines.append(f"| {method} | {name} | {m} | " + " | ".join(cells) + " |")
    fl = {tag: df[df.method == "hostcp-fl"].set_index(["dataset", "seed"]).sort_index() for tag, df in runs.items()}
    lines += ["", "## Cost at the default sizes (median CPU seconds of the fit over seeds, one thread)", "",
              "| dataset | run | hostcp-fl (s) | hostcp (s) | hostcp-fl / hostcp |", "|---|---|---|---|---|"]
    for name in DATASETS:
        for tag, df in runs.items():
            med = df[df.dataset == name].groupby("method").cpu_s.median()
            lines.append(f"| {name} | {tag} | {med['hostcp-fl']:.2f} | {med['hostcp']:.2f} | "
                         f"{med['hostcp-fl'] / med['hostcp']:.1f}x |")
    parts = [k for k in TIMINGS if k in runs.get("after", pd.DataFrame()).columns]
    if parts:
        lines += ["", "Where hostcp-fl's time goes after (median seconds per fit; process time of each phase):", "",
                  "| dataset | " + " | ".join(parts) + " |", "|---" * (len(parts) + 1) + "|"]
        for name in DATASETS:
            d = runs["after"][(runs["after"].dataset == name) & (runs["after"].method == "hostcp-fl")]
            lines.append(f"| {name} | " + " | ".join(f"{d[p].median():.3f}" for p in parts) + " |")
    choice = {tag: RESULTS / f"hostcp_fl_scale_choice-{tag}.json" for tag in ("per-budget", "nested")}
    if all(path.exists() for path in choice.values()):
        per = {tag: pd.DataFrame(json.loads(path.read_text())).set_index(["dataset", "seed"]).sort_index()
               for tag, path in choice.items()}
        cols = [f"acc@{b}" for b in BUDGETS] + ["mislabel_auc", "cpu_s"]
        lines += ["", "## readout=nested against the per-budget readout (hostcp-fl, seeds 10-12, the choice seeds)",
                  "",
                  "Paired difference nested - per-budget, mean ± standard error over the 3 seeds (run before the "
                  "working-set solve: the CPU seconds are of whole-program solves):", "",
                  "| dataset | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name in DATASETS:
            diff = per["nested"].loc[name, cols] - per["per-budget"].loc[name, cols]
            lines.append(f"| {name} | " + " | ".join(
                f"{diff[m].mean():+.3f} ± {diff[m].std(ddof=1) / np.sqrt(len(diff)):.3f}" for m in cols) + " |")
    large = RESULTS / "hostcp_fl_scale_large.json"
    if large.exists():
        lines += ["", "## One large cell (synthetic, 10 % noise, budgets 5/10/20 %, seed 0, fresh process)", "",
                  "`before` was not re-run at 20,000 points: its three dense float64 N x N tensors held 13 GB "
                  "(issue 19).", "",
                  "| run | method | N | fit CPU (s) | one learner fit (s) | ratio | peak RSS (MB) | mislabel AUC |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in json.loads(large.read_text()):
            lines.append(f"| {r['tag']} | {r['method']} | {r['n_train']} | {r['cpu_s']:.1f} | "
                         f"{r['learner_fit_s']:.3f} | {r['ratio']:.0f}x | {r['peak_rss_mb']:.0f} | "
                         f"{r['mislabel_auc']:.3f} |")
    (RESULTS / "hostcp_fl_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if len(fl) == 2:
        fig, axes = plt.subplots(1, len(DATASETS), figsize=(4 * len(DATASETS), 3.4), sharey=False)
        for ax, name in zip(axes, DATASETS):
            xs = np.arange(len(metrics))
            for shift, tag in ((-0.15, "before"), (0.15, "after")):
                v = fl[tag].loc[name, metrics]
                ax.errorbar(xs + shift, v.mean(), yerr=v.std(ddof=1) / np.sqrt(len(v)), fmt="o", capsize=3, label=tag)
            ax.set_xticks(xs, [m.replace("mislabel_auc", "AUC") for m in metrics])
            ax.set_title(name)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("hostcp-fl: accuracy / AUC (mean ± se, seeds 0-4)")
        axes[-1].legend()
        fig.tight_layout()
        fig.savefig(RESULTS / "hostcp_fl_scale.png", dpi=110)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_cell":
        print(json.dumps(one_large_cell(int(sys.argv[2]), sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("quality", "scale", "tables"))
    parser.add_argument("--tag", default="after")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--methods", default=None, help="quality: hostcp-fl,hostcp; scale: hostcp-fl")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--params", default="", help="method parameters for quality, e.g. readout=nested")
    args = parser.parse_args()
    if args.what == "quality":
        params = dict(kv.split("=", 1) for kv in args.params.split(",") if kv)
        quality(args.tag, tuple(int(s) for s in args.seeds.split(",")),
                tuple((args.methods or ",".join(METHODS)).split(",")), params)
    elif args.what == "scale":
        scale(args.tag, args.n, (args.methods or "hostcp-fl").split(","))
    else:
        tables()


if __name__ == "__main__":
    main()
