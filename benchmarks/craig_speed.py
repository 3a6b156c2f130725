"""CRAIG's fit with its medoid weights gathered row-major and its marginal gains in one buffer, against the code
they replace, on the real grid's CRAIG cells (seed 0, logistic regression, the grid's budgets 1-30 %).

On shuttle one class holds 78 % of the 20,000 points, so CRAIG's per-class similarity is 15,700 x 15,700. Two
steps read it far more slowly than they need to: ``medoid_weights`` gathered the medoids' columns with
``similarity[:, medoids]``, which numpy returns column-major (a 15,700 x 4,710 temporary whose gather and
row-wise argmax both stride through memory), and ``facility_location_gains`` made two fresh temporaries a chunk.
The baseline is ``methods/selection.py`` at ``--baseline-rev`` (git), its two functions patched into the running
CRAIG; the same model and data, one thread, alternating with the new code ``--repeats`` times after one warm-up
fit each (apricot's kernels compile on first use: about 3 CPU s a process, in both). The output must be bitwise
the same: scores, subsets and weights at every budget (the script exits 1 otherwise).

    .venv/bin/python benchmarks/craig_speed.py [--baseline-rev 97742b5] [--repeats 2]

Writes benchmarks/results/craig_speed.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from screened_greedy_speed import cpu_seconds, module_at
from valbench.grid import GridConfig
from valbench.learners import learner_for
from valbench.methods import craig, selection
from valbench.metrics import budget_sizes
from valbench.registry import load_installed
from valbench.runner import load_cell_data

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CELLS = (("shuttle", 0.0), ("shuttle", 0.2), ("fashion_mnist", 0.2), ("letter", 0.2))


@contextmanager
def baseline(old) -> Iterator[None]:
    """CRAIG running the baseline's ``medoid_weights`` and ``facility_location_gains``."""
    saved = craig.medoid_weights, selection.facility_location_gains
    craig.medoid_weights, selection.facility_location_gains = old.medoid_weights, old.facility_location_gains
    try:
        yield
    finally:
        craig.medoid_weights, selection.facility_location_gains = saved


def same(before, after) -> bool:
    """Scores, subsets and weights bitwise equal at every budget."""
    return (np.array_equal(before.scores, after.scores) and before.subsets.keys() == after.subsets.keys()
            and all(np.array_equal(before.subsets[k], after.subsets[k])
                    and np.array_equal(before.weights[k], after.weights[k]) for k in before.subsets))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="97742b5")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_installed()
    old = module_at(args.baseline_rev, "methods/selection.py", "selection_baseline")
    grid = list(GridConfig.from_toml(ROOT / "configs/real.toml").cells())
    rows, all_same = [], True
    for dataset, noise in CELLS:
        cell = next(c for c in grid if (c.dataset, c.noise_rate, c.method, c.seed) == (dataset, noise, "craig", 0))
        data = load_cell_data(cell)
        learner = learner_for("logreg", data, seed=0)
        budgets = budget_sizes(cell.budgets, data.n_train, data.name)
        method = craig.Craig(**cell.method_params)
        fit = lambda: method.fit(data, learner, 0, budgets)  # noqa: E731
        fit()  # warm-up: apricot's kernels compile once per process
        times = {"baseline": [], "new": []}
        for _ in range(args.repeats):
            with baseline(old):
                before, t_old = cpu_seconds(fit)
            after, t_new = cpu_seconds(fit)
            times["baseline"].append(t_old)
            times["new"].append(t_new)
        identical = same(before, after)
        all_same &= identical
        old_s, new_s = float(np.median(times["baseline"])), float(np.median(times["new"]))
        largest = int(np.bincount(data.y_train).max())
        rows.append({"dataset": dataset, "noise_rate": noise, "n_train": data.n_train, "largest_class": largest,
                     "baseline_cpu_s": old_s, "new_cpu_s": new_s, "speedup": old_s / new_s, "identical": identical,
                     "runs": times})
        print(f"craig {dataset} noise {noise}: {old_s:.1f} -> {new_s:.1f} CPU s ({old_s / new_s:.2f}x), "
              f"identical: {identical}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "craig_speed.json").write_text(json.dumps({"baseline_rev": args.baseline_rev, "rows": rows}, indent=2))
    lines = ["# CRAIG: medoid weights gathered row-major, marginal gains in one buffer", "",
             f"`python benchmarks/craig_speed.py` (baseline: `methods/selection.py` at `{args.baseline_rev}`, its "
             "`medoid_weights` and `facility_location_gains` patched into the same CRAIG). The real grid's CRAIG "
             "cells at seed 0, logistic regression, budgets 1-30 %: the method's whole fit (a learner fit, the "
             "gradients, the per-class similarity, apricot's lazy greedy, the weights), after one warm-up fit. "
             f"CPU seconds, one thread, median of {args.repeats}. Same output: scores, subsets and weights bitwise.",
             "", "| dataset | noise | train points | largest class | before CPU s | after CPU s | speed-up | same output |",
             "|:--|--:|--:|--:|--:|--:|--:|:--|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['noise_rate']:g} | {r['n_train']:,} | {r['largest_class']:,} | "
                     f"{r['baseline_cpu_s']:.1f} | {r['new_cpu_s']:.1f} | {r['speedup']:.2f}x | "
                     f"{'yes' if r['identical'] else 'NO'} |")
    (RESULTS / "craig_speed.md").write_text("\n".join(lines) + "\n")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
