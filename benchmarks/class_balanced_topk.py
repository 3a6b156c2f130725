"""Ablation: the attribution methods' top-valued subsets against their class-balanced top-k, from a run's stored values.

`benchmarks/subset_class_balance.py` shows that the highest values of TracIn and dattri's methods come from few
classes. This asks how much of their poor subset value that explains: for every ok cell of the chosen methods at
one noise rate, it reads the cell's stored values (``RUN/scores/KEY.parquet``, train order), rebuilds the cell's
data and learner from the grid's config, and retrains the learner on (1) the top-k values, the grid's own
subset, whose accuracy the record holds (recomputed for the first ``--check`` cells, where it must equal the
record's: a check that the rebuild is the grid's), and (2) the class-balanced top-k: each class's k_c highest
values, k_c its share of k (largest remainder; DeepCore's ``balance``, the pruning scores' ``per_class``). Both
through :func:`valbench.metrics.subset_value`, the grid's metric, with the fit cache, on one thread (a grid
worker's). Usage::

    python benchmarks/class_balanced_topk.py reports/real-embed-mlp configs/real-embed-mlp.toml \
        [--methods tracin,dattri-tracin] [--noise 0.0] [--check 1] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from valbench.cache import FitCache, default_cache_dir
from valbench.grid import GridConfig
from valbench.learners import learner_for
from valbench.methods.pruning import keep_subsets
from valbench.metrics import budget_sizes, subset_value
from valbench.protocol import DataError, Valuation
from valbench.registry import load_installed
from valbench.report.frame import OK, RunFrames, load_run
from valbench.runner import load_cell_data
from valbench.values import scores_path

METHODS = "tracin,dattri-tracin,dattri-trak,dattri-arnoldi,influence,knn-shapley,data-oob"


def ablate(frames: RunFrames, config: Path, methods: list[str], noise: float, cache: FitCache | None,
           check: int) -> pd.DataFrame:
    """One row per cell and budget: the record's top-k score, the rebuilt one (first ``check`` cells; NaN after),
    the class-balanced one."""
    run_dir = frames.run_dir
    grid = {cell.key: cell for cell in GridConfig.from_toml(config).cells()}
    wanted = frames.cells[(frames.cells["status"] == OK) & (frames.cells["noise_rate"] == noise)
                          & frames.cells["method_name"].isin(methods)]
    rows = []
    for cell_row in wanted.itertuples():
        path = scores_path(run_dir, cell_row.key)
        if cell_row.key not in grid or not path.exists():
            continue
        cell = grid[cell_row.key]
        data = load_cell_data(cell)
        params = {k: v for k, v in cell.learner.items() if k != "name"}
        evaluator = learner_for(cell.learner.get("name", "logreg"), data, seed=cell.seed, **params)
        scores = pd.read_parquet(path, columns=["score"])["score"].to_numpy()
        ks = budget_sizes(cell.budgets, data.n_train, data.name)
        balanced = keep_subsets(scores, "easy", ks, cell.seed, data.y_train)
        per_class = subset_value(data, evaluator, Valuation(scores=scores, subsets=balanced), cell.budgets,
                                 seed=cell.seed, cache=cache)
        top = [{"accuracy": np.nan}] * len(per_class)
        if check > 0:
            check -= 1
            top = subset_value(data, evaluator, Valuation(scores=scores), cell.budgets, seed=cell.seed, cache=cache)
        for recorded, again, bal in zip(cell_row.record["budgets"], top, per_class):
            rows.append({"method": cell_row.method, "seed": cell.seed, "budget": bal["budget"],
                         "top_k": recorded["accuracy"], "rebuilt": again["accuracy"],
                         "class_balanced": bal["accuracy"]})
        print(json.dumps(rows[-1]), flush=True)
    if not rows:
        raise DataError(f"{run_dir}: no ok cell of {methods} at noise {noise} with stored values and a grid cell "
                        f"in {config}")
    return pd.DataFrame(rows)


def markdown(rows: pd.DataFrame, run_dir: Path, noise: float, random: pd.Series | None) -> str:
    """Per method and budget, the mean over seeds of the top-k and the class-balanced top-k test accuracy."""
    mean = rows.groupby(["method", "budget"])[["top_k", "class_balanced"]].mean().unstack("budget")
    budgets = sorted(rows["budget"].unique())
    checked = rows.dropna(subset=["rebuilt"])
    mismatch = float((checked["rebuilt"] - checked["top_k"]).abs().max())
    lines = [f"# Top-k against class-balanced top-k ({run_dir.name}, noise {noise:g})", "",
             "`benchmarks/class_balanced_topk.py`: test accuracy of the learner retrained on each method's k highest "
             "values (the grid's subset) and on its class-balanced top-k (each class its share of k), mean over "
             f"{rows['seed'].nunique()} seeds. The top-k rebuilt here for {checked['seed'].size // len(budgets)} "
             f"cell(s) matches the grid's records to {mismatch:.1e}.", "",
             "| method | " + " | ".join(f"{b:g}: top-k / balanced" for b in budgets) + " |",
             "|---|" + "---:|" * len(budgets)]
    if random is not None:
        lines.append("| random (the grid's) | " + " | ".join(f"{random.get(b, np.nan):.3f}" for b in budgets) + " |")
    for method, row in mean.iterrows():
        lines.append(f"| {method} | " + " | ".join(
            f"{row[('top_k', b)]:.3f} / {row[('class_balanced', b)]:.3f}" for b in budgets) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("config", type=Path)
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--check", type=int, default=1, help="cells whose top-k is retrained to match the record")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_installed()
    cache = None if args.no_cache else FitCache(default_cache_dir(args.run.parent))
    try:
        frames = load_run(args.run)
        rows = ablate(frames, args.config, args.methods.split(","), args.noise, cache, args.check)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    budgets = frames.budgets
    random = budgets[(budgets["method_name"] == "random") & (budgets["noise_rate"] == args.noise)]
    text = markdown(rows, args.run, args.noise, random.groupby("fraction")["accuracy"].mean() if len(random) else None)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
