"""Does HOST-CP's learned metric improve the subsets? (issue 19, item 2)

    python benchmarks/hostcp_learning.py run --out /tmp/hostcp-learning [--part tune|main|real|all] [--jobs 2]
    python benchmarks/hostcp_learning.py tables --out /tmp/hostcp-learning  # -> benchmarks/results/hostcp_learning.*

``hostcp-fl`` three ways on synthetic, digits and mnist (the default grid's sizes: 500 train points, 10 % label
noise), budgets 5, 10 and 30 %, through the harness (``python -m valbench run``, one run id per variant):

- ``frozen``: ``freeze_phi=true``, phi stays the identity (raw distances), nothing is learned;
- ``lookahead``: phi learned through the paper's one-step look-ahead (``outer=lookahead``);
- ``hypergradient``: phi learned through the exact hypergradient of the validation loss of the logreg learner
  retrained on the pass's weighted selection (``outer=hypergradient``, methods/hostcp/hypergradient.py).

``--part real`` runs the same three variants on one real set, ``satellite`` (Statlog Landsat, 6 classes,
36 features, a classic GLISTER/CORDS set; needs ``make data``), at the same sizes as synthetic and mnist (500
train points), the same noise, seeds and budgets. It runs as its own harness runs (``frozen-real``,
``lookahead-real``, ``hypergradient-real``); ``tables`` reads them as the same variants, so the synthetic rows
need no rerun. The set was chosen before any result on it was seen, and nothing was tuned on it: every
setting, the hypergradient's lr_selector included, is the one chosen for the synthetic sets on seeds 10-12.

``tables`` pairs the variants by (dataset, seed, budget) and reports the mean difference in subset test accuracy
(and mislabel ROC-AUC) with a 95 % paired t-interval over the seeds, and checks the issue's goal: a learned
variant gains +0.02 or more at both 5 % and 10 % on at least two datasets, and loses beyond noise (its interval
wholly below 0) nowhere.

Settings: every other parameter is hostcp-fl's as registered (chosen earlier on seeds 10-12; the results were
measured when ``freeze_phi=false`` was still the default, which the variants now set explicitly). The
hypergradient's selector learning rate was chosen here, on seeds 10-12 only (``--part tune``: lr_selector 0.01
vs 0.05, the higher mean accuracy over the three datasets at 5 % and 10 %), before seeds 0-4 were run; nothing
was tuned on seeds 0-4. (The tune ran while the hypergradient still solved digits' 650-parameter systems densely;
they are solved by conjugate gradients now: the same quantities to the solver's tolerance and faster, though
the rounding makes trajectories differ; seeds 0-4 were run with the current code.)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostcp_plus import load  # noqa: E402  (one loader of harness runs for the HOST-CP benchmarks)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = {"synthetic": {"n_train": 500, "n_valid": 200, "n_test": 1000},
            "digits": {"n_train": 500, "n_valid": 200, "n_test": 500},
            "mnist": {"n_train": 500, "n_valid": 200, "n_test": 1000}}
REAL_DATASETS = {"satellite": {"n_train": 500, "n_valid": 200, "n_test": 1000}}
REAL_SUFFIX = "-real"  # run ids of the real-data runs: the variant's name + this
BUDGETS = (0.05, 0.1, 0.3)
METHOD = "hostcp-fl"
TUNE_SEEDS = "10,11,12"
TUNE_LR = (0.01, 0.05)
HYPER_LR = 0.01  # chosen by `--part tune` on seeds 10-12 (see the tables' "Settings" section)
VARIANTS = {"frozen": ["freeze_phi=true"], "lookahead": ["freeze_phi=false", "outer=lookahead"],
            "hypergradient": ["freeze_phi=false", "outer=hypergradient", f"lr_selector={HYPER_LR}"]}
GOAL_GAIN = 0.02


def harness(run_id: str, settings: list[str], seeds: str, args: argparse.Namespace,
            datasets: dict[str, dict[str, int]] = DATASETS) -> None:
    cmd = [sys.executable, "-m", "valbench", "run", "--methods", METHOD, "--datasets", ",".join(datasets),
           "--seeds", seeds, "--noise", "0.1", "--budgets", ",".join(map(str, BUDGETS)), "--jobs", str(args.jobs),
           "--out", str(args.out), "--run-id", run_id, "--time-limit", "900", "--no-progress"]
    for name, params in datasets.items():
        cmd += [arg for key, value in params.items() for arg in ("--data", f"{name}.{key}={value}")]
    for text in settings:
        cmd += ["--set", f"{METHOD}.{text}"]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def run(args: argparse.Namespace) -> None:
    if args.part in ("tune", "all"):
        harness("tune", ["freeze_phi=false", "outer=hypergradient", "lr_selector=" + ",".join(map(str, TUNE_LR))],
                TUNE_SEEDS, args)
    if args.part in ("main", "all"):
        for name, settings in VARIANTS.items():
            harness(name, settings, args.seeds, args)
    if args.part in ("real", "all"):
        for name, settings in VARIANTS.items():
            harness(name + REAL_SUFFIX, settings, args.seeds, args, REAL_DATASETS)


def paired(frame: pd.DataFrame, a: str, b: str, column: str) -> pd.DataFrame:
    """Per (dataset, budget): mean of a - b over the seeds both ran, and its 95 % paired t-interval."""
    wide = frame.pivot_table(index=["dataset", "budget", "seed"], columns="variant", values=column)
    diff = (wide[a] - wide[b]).dropna()
    rows = []
    for (dataset, budget), d in diff.groupby(level=[0, 1]):
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
        rows.append({"dataset": dataset, "budget": budget, "mean": d.mean(), "low": d.mean() - half,
                     "high": d.mean() + half, "seeds": len(d)})
    return pd.DataFrame(rows)


def interval(row: pd.Series) -> str:
    return f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def goal(diff: pd.DataFrame) -> tuple[bool, str]:
    """+GOAL_GAIN or more at both 5 % and 10 % on at least two datasets, and no interval wholly below 0."""
    small = diff[diff.budget.isin([0.05, 0.1])]
    winners = [d for d, part in small.groupby("dataset") if (part["mean"] >= GOAL_GAIN).all() and len(part) == 2]
    losses = diff[diff.high < 0]
    met = len(winners) >= 2 and losses.empty
    text = (f"gains >= {GOAL_GAIN:+.2f} at 5 % and 10 %: {', '.join(winners) or 'no dataset'}; "
            f"losses beyond noise: {', '.join(f'{r.dataset} {r.budget:g}' for r in losses.itertuples()) or 'none'}"
            f" -> goal {'met' if met else 'missed'}")
    return met, text


def tables(args: argparse.Namespace) -> None:
    frame = load(args.out)
    frame = frame[frame.method == METHOD].rename(columns={"run": "variant"})
    frame["variant"] = frame.variant.str.removesuffix(REAL_SUFFIX)
    tune = frame[frame.variant == "tune"]
    main = frame[frame.variant.isin(list(VARIANTS))]
    main = main[main.seed.isin([int(s) for s in args.seeds.split(",")])]
    RESULTS.mkdir(parents=True, exist_ok=True)
    main.to_csv(RESULTS / "hostcp_learning.csv", index=False)

    seeds = sorted(int(s) for s in main.seed.unique())
    parts = [f"# Does HOST-CP's learned metric improve the subsets?\n\nProduced by `python benchmarks/"
             f"hostcp_learning.py run` then `tables`: hostcp-fl on seeds {seeds}, 10 % label noise, logreg learner, "
             f"sizes {DATASETS | REAL_DATASETS}. Differences are paired by (dataset, seed, budget): mean and 95 % "
             f"paired t-interval over the seeds. The real set ({', '.join(REAL_DATASETS)}) was picked before any "
             f"result on it was seen and runs with the settings chosen for the other sets; nothing was tuned on it."]
    acc = main.groupby(["dataset", "budget", "variant"]).accuracy.agg(["mean", "std", "count"])
    acc = (acc["mean"].map("{:.3f}".format) + " ± " + (acc["std"] / np.sqrt(acc["count"])).map("{:.3f}".format))
    parts += ["## Subset test accuracy (mean ± standard error)", acc.unstack("variant")[list(VARIANTS)].to_markdown()]
    verdicts = []
    for learned in ("lookahead", "hypergradient"):
        diff = paired(main, learned, "frozen", "accuracy")
        met, text = goal(diff)
        verdicts.append(f"- {learned} - frozen: {text}")
        parts += [f"## {learned} minus frozen: subset test accuracy",
                  diff.assign(difference=diff.apply(interval, axis=1))[["dataset", "budget", "difference"]]
                  .to_markdown(index=False)]
    diff = paired(main, "hypergradient", "lookahead", "accuracy")
    parts += ["## hypergradient minus lookahead: subset test accuracy",
              diff.assign(difference=diff.apply(interval, axis=1))[["dataset", "budget", "difference"]]
              .to_markdown(index=False)]
    cells = main.drop_duplicates(["variant", "dataset", "seed"])
    auc_rows = []
    for learned in ("lookahead", "hypergradient"):
        d = paired(cells.assign(budget=0), learned, "frozen", "mislabel_auc")
        auc_rows += [{"comparison": f"{learned} - frozen", "dataset": r.dataset, "difference": interval(pd.Series(
            {"mean": r.mean, "low": r.low, "high": r.high}))} for r in d.itertuples()]
    parts += ["## Mislabel ROC-AUC, learned minus frozen", pd.DataFrame(auc_rows).to_markdown(index=False),
              "## Fit CPU seconds per cell (median; wall seconds in the CSV are inflated by a shared, loaded machine)",
              cells.groupby(["dataset", "variant"]).cpu_s.median().unstack("variant")[list(VARIANTS)].round(2)
              .to_markdown()]
    parts += ["## Goal (issue 19): +0.02 or more at 5 % and 10 % on at least two datasets, no loss beyond noise",
              "\n".join(verdicts)]
    if not tune.empty:
        parts += ["## Settings: the hypergradient's lr_selector, chosen on seeds 10-12 only",
                  f"Mean subset accuracy at 5 % and 10 % over synthetic, digits and mnist (seeds {TUNE_SEEDS}); "
                  f"the higher is used above (lr_selector={HYPER_LR}).",
                  tune_table(args.out).to_markdown(index=False)]
    text = "\n\n".join(parts) + "\n"
    (RESULTS / "hostcp_learning.md").write_text(text)
    print(text)


def tune_table(out: Path) -> pd.DataFrame:
    """The tune run per learning rate: mean accuracy at 5 % and 10 % (over datasets and seeds 10-12)."""
    from valbench.report.frame import load_records

    rows = []
    for r in load_records(out / "tune"):
        if r.get("status") == "ok":
            rows += [{"lr_selector": r["method_params"]["lr_selector"], "dataset": r["dataset"],
                      "budget": b["budget"], "accuracy": b["accuracy"]} for b in r["budgets"]]
    frame = pd.DataFrame(rows)
    frame = frame[frame.budget.isin([0.05, 0.1])]
    table = frame.pivot_table(index="lr_selector", columns="dataset", values="accuracy", aggfunc="mean")
    table["mean"] = frame.groupby("lr_selector").accuracy.mean()
    return table.round(3).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, default=Path("/tmp/hostcp-learning"))
    r.add_argument("--seeds", default="0,1,2,3,4")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--part", choices=["tune", "main", "real", "all"], default="all")
    t = sub.add_parser("tables")
    t.add_argument("--out", type=Path, default=Path("/tmp/hostcp-learning"))
    t.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args()
    run(args) if args.command == "run" else tables(args)


if __name__ == "__main__":
    main()
