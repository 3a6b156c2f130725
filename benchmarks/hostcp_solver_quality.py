"""HOST-CP quality with each solver backend, and the authors' settings against our former defaults.

    nice -n 10 python benchmarks/hostcp_solver_quality.py [--seeds 0,1,2,3,4] [--out /tmp/hostcp-solver-quality]

Runs the harness (``python -m valbench run``) on synthetic, digits and mnist (500 train points, 10 % label
noise) for each variant below, then writes ``benchmarks/results/hostcp_solver_quality.{md,json}``: subset
test accuracy (mean over the budgets 0.1, 0.2, 0.3) and mislabel ROC-AUC per variant and dataset (mean and
standard error over seeds), and the paired per-seed differences fast - cvxpylayers. The solver changes speed,
not the method, so the backends should agree within noise; the QP trajectories still diverge after a few
steps (Adam turns the reference's rounding-level gradient entries into full steps), so agreement is judged
on the statistics, not point by point.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = {"synthetic": {"n_train": 500, "n_valid": 200, "n_test": 1000},
            "digits": {"n_train": 500, "n_valid": 200, "n_test": 400},
            "mnist": {"n_train": 500, "n_valid": 200, "n_test": 1000}}
BUDGETS = "0.1,0.2,0.3"
AUTHORS = {"batch_size": 40, "neighbours": 40, "dim": 100, "epochs": 5, "fraction": 0.2, "tau": 0.9}
FORMER = {"batch_size": 32, "neighbours": 16, "dim": 32, "epochs": 3, "fraction": 0.15, "tau": 0.9}
VARIANTS = {  # label -> (method, parameters)
    "hostcp fast (authors')": ("hostcp", {**AUTHORS, "solver": "fast"}),
    "hostcp cvxpylayers (authors')": ("hostcp", {**AUTHORS, "solver": "cvxpylayers"}),
    "hostcp-lp fast (authors')": ("hostcp-lp", {**AUTHORS, "solver": "fast"}),
    "hostcp-lp cvxpylayers (authors')": ("hostcp-lp", {**AUTHORS, "solver": "cvxpylayers"}),
    "hostcp fast (former 32/16/32/3/0.15)": ("hostcp", {**FORMER, "solver": "fast"}),
    "hostcp-lp fast (former 32/16/32/3/0.15)": ("hostcp-lp", {**FORMER, "solver": "fast"}),
}
PAIRS = [("hostcp fast (authors')", "hostcp cvxpylayers (authors')"),
         ("hostcp-lp fast (authors')", "hostcp-lp cvxpylayers (authors')"),
         ("hostcp fast (authors')", "hostcp fast (former 32/16/32/3/0.15)"),
         ("hostcp-lp fast (authors')", "hostcp-lp fast (former 32/16/32/3/0.15)")]


def run_variant(label: str, out: Path, seeds: str, jobs: int) -> Path:
    method, params = VARIANTS[label]
    run_id = "".join(c if c.isalnum() else "-" for c in label)
    cmd = [sys.executable, "-m", "valbench", "run", "--methods", method, "--datasets", ",".join(DATASETS),
           "--seeds", seeds, "--noise", "0.1", "--budgets", BUDGETS, "--jobs", str(jobs), "--out", str(out),
           "--run-id", run_id, "--time-limit", "1800", "--no-progress"]
    for name, sizes in DATASETS.items():
        cmd += [arg for key, value in sizes.items() for arg in ("--data", f"{name}.{key}={value}")]
    cmd += [arg for key, value in params.items() for arg in ("--set", f"{method}.{key}={value}")]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out / run_id


def per_seed(run_dir: Path) -> dict[str, dict[int, dict[str, float]]]:
    """dataset -> seed -> {accuracy (mean over budgets), auc, wall_s}."""
    from valbench.report.frame import load_records

    table: dict[str, dict[int, dict[str, float]]] = {}
    for r in load_records(run_dir):
        if r.get("status") != "ok":
            print(f"warning: {run_dir.name} {r['dataset']} seed {r['seed']}: {r.get('status')} {r.get('error')}",
                  file=sys.stderr)
            continue
        table.setdefault(r["dataset"], {})[r["seed"]] = {
            "accuracy": float(np.mean([b["accuracy"] for b in r["budgets"]])),
            "auc": float(r["mislabel_auc"]), "wall_s": float(r["wall_s"])}
    return table


def mean_se(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():.3f} ± {se:.3f}"


def tables(results: dict[str, dict]) -> str:
    lines = ["# HOST-CP: quality per solver backend and per settings",
             "", "Written by `benchmarks/hostcp_solver_quality.py` (500 train points, 10 % label noise, budgets "
             f"{BUDGETS}; mean ± standard error over seeds).", "",
             "| variant | dataset | subset accuracy | mislabel AUC | wall s per cell |", "|---|---|---|---|---|"]
    for label, data in results.items():
        for dataset, seeds in data.items():
            rows = list(seeds.values())
            lines.append(f"| {label} | {dataset} | {mean_se([r['accuracy'] for r in rows])} | "
                         f"{mean_se([r['auc'] for r in rows])} | {np.mean([r['wall_s'] for r in rows]):.2f} |")
    lines += ["", "Paired differences (first - second, same seed):", "",
              "| first | second | dataset | Δ subset accuracy | Δ mislabel AUC |", "|---|---|---|---|---|"]
    for first, second in PAIRS:
        if first not in results or second not in results:
            continue
        for dataset in results[first]:
            common = sorted(set(results[first][dataset]) & set(results[second].get(dataset, {})))
            if not common:
                continue
            a, b = results[first][dataset], results[second][dataset]
            lines.append(f"| {first} | {second} | {dataset} | "
                         f"{mean_se([a[s]['accuracy'] - b[s]['accuracy'] for s in common])} | "
                         f"{mean_se([a[s]['auc'] - b[s]['auc'] for s in common])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--out", type=Path, default=Path("/tmp/hostcp-solver-quality"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated labels (default: all)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    results = {label: per_seed(run_variant(label, args.out, args.seeds, args.jobs))
               for label in args.variants.split(",")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hostcp_solver_quality.json").write_text(json.dumps(results, indent=2))
    text = tables(results)
    (RESULTS / "hostcp_solver_quality.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
