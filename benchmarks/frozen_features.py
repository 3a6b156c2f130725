"""The frozen-feature regime's heads: test accuracy of logistic regression and the MLP trained on the ConvNet
embeddings of Fashion-MNIST (``fashion_mnist features="cnn"``) on the whole benchmark pool (the 40,000 train images
outside the extractor's pool) and on random 1 % and 10 % of it, against the standard t10k test split.

    python benchmarks/frozen_features.py --seeds 0,1,2

writes ``benchmarks/results/frozen_features.md``. Features are standardised on the points trained on, as the
dataset does; the learners run at their defaults. Builds the features first if they are not cached.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from valbench.datasets.datafiles import data_dir
from valbench.datasets.features import DEFAULT, cnn_features, feature_path
from valbench.datasets.fashion_mnist_files import fashion_mnist_arrays
from valbench.datasets.splits import standardise
from valbench.learners import make_learner

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=RESULTS / "frozen_features.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    directory = data_dir()
    rows, train, test = cnn_features(str(directory), DEFAULT)
    _, y, _, y_test = fashion_mnist_arrays(str(directory))
    y_pool = y[rows]
    record = json.loads(feature_path(directory, DEFAULT).with_suffix(".json").read_text())
    lines = ["# Frozen ConvNet features of Fashion-MNIST: the heads", "",
             f"`python benchmarks/frozen_features.py` (features {feature_path(directory, DEFAULT).name}: a width-"
             f"{DEFAULT.width} ConvNet trained {DEFAULT.epochs} epochs on {DEFAULT.pool:,} train images kept out "
             f"of every split, whose own test accuracy is {record['extractor_test_accuracy']:.3f}; built in "
             f"{record['build_s']:.0f} s wall on a shared machine). Heads trained on the {len(rows):,} other "
             "train images (or a random share of them, one draw per seed), tested on t10k; mean ± std over seeds; "
             "fit CPU seconds with one thread.", "",
             "| head | train points | seeds | test accuracy | fit CPU s |", "|:--|--:|--:|--:|--:|"]
    for learner in ("logreg", "mlp"):
        for share in (0.01, 0.1, 1.0):
            n = int(round(share * len(rows)))
            seeds = [int(s) for s in args.seeds.split(",")] if share < 1 else [0]
            accuracy, cpu = [], []
            for seed in seeds:
                pick = np.sort(np.random.default_rng(seed).permutation(len(rows))[:n])
                x_fit, x_test = standardise(train[pick], test)
                started = time.process_time()
                model = make_learner(learner, train.shape[1], 10, seed=seed).fit(x_fit, y_pool[pick])
                cpu.append(time.process_time() - started)
                accuracy.append(model.accuracy(x_test, y_test))
            print(learner, n, np.round(accuracy, 4), flush=True)
            lines.append(f"| {learner} | {n:,} ({share:.0%}) | {len(seeds)} | {np.mean(accuracy):.3f} ± "
                         f"{np.std(accuracy):.3f} | {np.mean(cpu):.2f} |")
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
