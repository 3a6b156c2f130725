"""How class-balanced each method's selected subsets are, beside their subset value, read from a run's stored values.

Why the attribution methods' top-valued subsets select badly on clean labels (on the MLP frozen-feature grid
their subset-value area is 0.52-0.72 where random reaches 0.880): a point's influence on the validation loss
depends on its class, so the top-k by value can come from a few classes, and a subset without some classes
cannot predict them. For every ok cell at one noise rate this reads the cell's selected subsets
(``RUN/scores/KEY.parquet``, the ``in_subset_<budget>`` columns) and reports, per method and budget (mean over
seeds): the classes the subset covers, the largest class's share of it, and the test score of the learner
retrained on it (the record's). Usage::

    python benchmarks/subset_class_balance.py reports/real-embed-mlp [--noise 0.0] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from valbench.protocol import DataError
from valbench.report.frame import OK, load_run
from valbench.report.stability import subset_columns
from valbench.values import scores_path


def balance_rows(run_dir: Path, noise: float) -> pd.DataFrame:
    """One row per ok cell and budget: method, seed, budget, classes covered, largest class share, score."""
    frames = load_run(run_dir)
    cells = frames.cells[(frames.cells["status"] == OK) & (frames.cells["noise_rate"] == noise)]
    scores = frames.budgets.set_index(["method", "seed", "noise_rate", "fraction"])["score"]
    rows = []
    for cell in cells.itertuples():
        path = scores_path(run_dir, cell.key)
        if not path.exists():
            continue
        stored = pd.read_parquet(path)
        n_classes = int(stored["label"].max()) + 1
        for fraction, column in subset_columns(stored).items():
            counts = np.bincount(stored.loc[stored[column], "label"], minlength=n_classes)
            rows.append({"method": cell.method, "seed": cell.seed, "budget": fraction,
                         "classes": int((counts > 0).sum()), "n_classes": n_classes,
                         "largest_share": float(counts.max() / max(counts.sum(), 1)),
                         "score": float(scores.get((cell.method, cell.seed, noise, fraction), np.nan))})
    if not rows:
        raise DataError(f"{run_dir}: no ok cell at noise {noise} with stored values (scores/*.parquet)")
    return pd.DataFrame(rows)


def markdown(rows: pd.DataFrame, run_dir: Path, noise: float) -> str:
    """A table per budget pair: methods sorted by their score at the smallest budget."""
    mean = rows.groupby(["method", "budget"])[["classes", "largest_share", "score"]].mean().unstack("budget")
    budgets = sorted(rows["budget"].unique())
    n_classes = int(rows["n_classes"].max())
    mean = mean.sort_values(("score", budgets[0]), ascending=False)
    head = "| method | " + " | ".join(f"{b:g}: score / classes / largest share" for b in budgets) + " |"
    lines = [f"# Class balance of the selected subsets ({run_dir.name}, noise {noise:g})", "",
             "`benchmarks/subset_class_balance.py`: per method and budget (fraction of the train split), the mean "
             f"over seeds of the retrained learner's test score, the classes the subset covers (of {n_classes}) and "
             "the largest class's share of the subset (1/C = balanced).", "", head,
             "|---|" + "---:|" * len(budgets)]
    for method, row in mean.iterrows():
        lines.append(f"| {method} | " + " | ".join(
            f"{row[('score', b)]:.3f} / {row[('classes', b)]:.1f} / {row[('largest_share', b)]:.2f}"
            for b in budgets) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    try:
        text = markdown(balance_rows(args.run, args.noise), args.run, args.noise)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
