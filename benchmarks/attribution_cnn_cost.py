"""Cost of the attribution methods with the CNN learner on Fashion-MNIST, in CNN fits (one cell each, seed 0).

One CNN fit (the learner's own settings) on the train split is the unit; each method's fit is timed in CPU
seconds and divided by it, with the peak resident memory of the process while it ran and, with ``--noise``, the
mislabel AUC of its scores at that rate of flipped labels. Data-OOB with the CNN trains its ``num_models`` models
in a loop, each on the points its sample drew (a fraction 1 - e^-max_samples of the train split), so its cost is
about ``num_models`` x that fraction fits; it runs here with the CNN grid's settings.

    .venv/bin/python benchmarks/attribution_cnn_cost.py [--n-train 5000] [--n-valid 1000] [--noise 0.2]

Writes benchmarks/results/attribution_cnn_cost.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from valbench.datasets.noise import inject_noise
from valbench.learners import learner_for
from valbench.measure import measure
from valbench.metrics import mislabel_auc
from valbench.registry import METHODS, get_dataset, get_method, load_installed

RESULTS = Path(__file__).parent / "results"
METHODS_RUN = [("tracin", {}), ("tracin", {"target": "self"}), ("dattri-tracin", {"max_valid": 250}),
               ("dattri-trak", {"max_valid": 250}), ("dattri-arnoldi", {"max_valid": 250}),
               ("data-oob", {"num_models": 20, "max_samples": 0.5})]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-valid", type=int, default=1000)
    parser.add_argument("--methods", default="", help="comma-separated subset of the method names below")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.0, help="share of flipped train labels (seeded)")
    parser.add_argument("--out", default=str(RESULTS / "attribution_cnn_cost.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_installed()
    data = inject_noise(get_dataset("fashion_mnist")(seed=0, n_train=args.n_train, n_valid=args.n_valid),
                        args.noise, seed=0)
    learner = learner_for("cnn", data, seed=0, device="cpu")
    start = time.process_time()
    learner.fit(data.x_train, data.y_train)
    fit_s = time.process_time() - start
    rows = [{"method": "cnn fit", "params": {}, "cpu_s": fit_s, "fits": 1.0}]
    print(rows[-1], flush=True)
    for name, params in METHODS_RUN:
        if args.methods and name not in args.methods.split(","):
            continue
        if name not in METHODS:
            rows.append({"method": name, "params": params, "cpu_s": None, "fits": None})
            continue
        valuation, cost = measure(lambda: get_method(name)(**params).fit(data, learner, 0))
        auc = mislabel_auc(valuation.scores, data.noisy_mask) if args.noise else None
        rows.append({"method": name, "params": params, "cpu_s": cost.cpu_s, "fits": cost.cpu_s / fit_s,
                     "peak_rss_mb": cost.peak_rss_mb, "mislabel_auc": auc})
        print(rows[-1], flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "learner": learner.describe(),
                                                    "rows": rows}, indent=1) + "\n")
    lines = ["# Attribution methods with the CNN: cost in CNN fits (benchmarks/attribution_cnn_cost.py)", "",
             f"Fashion-MNIST, {args.n_train:,} train / {args.n_valid:,} validation points, seed 0, "
             f"{args.noise:.0%} flipped train labels, {args.threads} thread(s), CPU seconds on a shared 2-core machine; "
             f"learner {learner.describe()}.",
             "",
             "| method | params | CPU s | CNN fits | peak memory, MB | mislabel AUC |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        cost = "- | -" if r["cpu_s"] is None else f"{r['cpu_s']:.1f} | {r['fits']:.2f}"
        peak = "-" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:,.0f}"
        auc = "-" if r.get("mislabel_auc") is None else f"{r['mislabel_auc']:.3f}"
        lines.append(f"| {r['method']} | {r['params'] or ''} | {cost} | {peak} | {auc} |")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
