"""The linear datamodeling score (LDS; Ilyas et al. 2022, the metric TRAK and dattri report) of per-point values.

For a learner and a dataset: draw M random subsets holding 50 % of the train split (seeded), retrain the
learner on each and record its cross-entropy on every validation point (cached in
``reports/.cache/lds/``, keyed by dataset, learner, M and seed). A method's values predict a subset's validation
loss additively: points that help lower it, so

    predicted(S) = - sum_{i in S} value_i,        LDS = Spearman over the M subsets (predicted(S), actual(S)),

with actual(S) the subset model's mean validation loss. The suite's methods return one value per train point,
already averaged over the validation split (influence, tracin and dattri-trak average per-validation-point
attributions; knn-shapley, tmc-shapley and banzhaf value the validation utility; data-oob ignores it), so the
LDS here is computed on the mean validation loss, not per validation point and then averaged as dattri does
for its per-test-sample attributions; the interval is a 95 % bootstrap over validation points (resampled,
subsets and values fixed), 1,000 draws. Each method runs once (seed 0) on the full train split with the learner
of the row; tmc-shapley and banzhaf use the ``neg_loss`` utility (what LDS measures); tmc-shapley runs 10
permutations (50 with the MLP took over 15 minutes).

    .venv/bin/python benchmarks/lds.py [--subsets 50] [--n-train 200] [--dataset breast_cancer]

Writes benchmarks/results/lds.md and lds.json (``make bench-lds``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch.nn import functional as F

from valbench.learners import as_tensor, learner_for
from valbench.registry import METHODS, get_dataset, get_method, load_installed

RESULTS = Path(__file__).parent / "results"
CACHE = Path(__file__).parent.parent / "reports" / ".cache" / "lds"
METHOD_PARAMS = {"influence": {}, "tracin": {}, "dattri-trak": {}, "knn-shapley": {}, "data-oob": {},
                 "tmc-shapley": {"utility": "neg_loss", "max_permutations": 10},
                 "banzhaf": {"utility": "neg_loss", "num_subsets": 500}}


def subset_losses(data, learner_name: str, subsets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, n_train) membership masks of the random half subsets and (M, n_valid) validation losses, cached."""
    key = f"{data.name}-{data.n_train}-{learner_name}-{subsets}-{seed}.npz"
    path = CACHE / key
    if path.exists():
        cached = np.load(path)
        return cached["masks"], cached["losses"]
    rng = np.random.default_rng(seed)
    masks = np.zeros((subsets, data.n_train), dtype=bool)
    losses = np.zeros((subsets, data.y_valid.size))
    for m in range(subsets):
        masks[m, rng.choice(data.n_train, data.n_train // 2, replace=False)] = True
        model = learner_for(learner_name, data, seed=0).fit(data.x_train[masks[m]], data.y_train[masks[m]])
        losses[m] = F.cross_entropy(model.logits(data.x_valid), as_tensor(data.y_valid, torch.int64),
                                    reduction="none").numpy()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, masks=masks, losses=losses)
    return masks, losses


def lds(values: np.ndarray, masks: np.ndarray, losses: np.ndarray, draws: int = 1000,
        seed: int = 0) -> tuple[float, float, float]:
    """The LDS and its 95 % bootstrap interval over validation points."""
    predicted = -(masks @ values)
    point = float(spearmanr(predicted, losses.mean(1)).statistic)
    rng = np.random.default_rng(seed)
    boot = [spearmanr(predicted, losses[:, rng.integers(0, losses.shape[1], losses.shape[1])].mean(1)).statistic
            for _ in range(draws)]
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    return point, float(low), float(high)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="breast_cancer")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-valid", type=int, default=150)
    parser.add_argument("--subsets", type=int, default=50)
    parser.add_argument("--learners", default="logreg,mlp")
    parser.add_argument("--methods", default=",".join(METHOD_PARAMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "lds.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_installed()
    data = get_dataset(args.dataset)(seed=args.seed, n_train=args.n_train, n_valid=args.n_valid)
    rows = []
    started = time.perf_counter()
    for learner_name in args.learners.split(","):
        masks, losses = subset_losses(data, learner_name, args.subsets, args.seed)
        for name in args.methods.split(","):
            cls = METHODS.get(name)
            if cls is None or (cls.learners is not None and learner_name not in cls.learners):
                rows.append({"learner": learner_name, "method": name, "lds": None,
                             "note": "not registered" if cls is None else f"does not support {learner_name}"})
                continue
            t = time.process_time()
            values = get_method(name)(**METHOD_PARAMS.get(name, {})).fit(
                data, learner_for(learner_name, data, seed=args.seed), args.seed).scores
            point, low, high = lds(values, masks, losses)
            rows.append({"learner": learner_name, "method": name, "lds": point, "low": low, "high": high,
                         "cpu_s": time.process_time() - t})
            print(rows[-1], flush=True)
    elapsed = time.perf_counter() - started
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "rows": rows, "wall_s": elapsed}, indent=1))
    learners = args.learners.split(",")
    lines = [f"# Linear datamodeling score (benchmarks/lds.py)", "",
             f"{args.dataset}, {data.n_train} train / {data.y_valid.size} validation points, M = {args.subsets} "
             f"random 50 % subsets, seed {args.seed}; Spearman between -sum of the subset's values and the retrained "
             f"model's mean validation cross-entropy; [95 % bootstrap interval over validation points]; CPU seconds "
             f"of the method's fit. Wall time of the whole run: {elapsed:.0f} s (shared 2-core machine).", "",
             "| method | " + " | ".join(learners) + " |", "|---|" + "---|" * len(learners)]
    for name in args.methods.split(","):
        cells = []
        for learner_name in learners:
            r = next(r for r in rows if r["method"] == name and r["learner"] == learner_name)
            cells.append(f"- ({r['note']})" if r["lds"] is None else
                         f"{r['lds']:.3f} [{r['low']:.3f}, {r['high']:.3f}] ({r['cpu_s']:.1f} s)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
