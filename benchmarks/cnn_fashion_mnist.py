"""The CNN learner on Fashion-MNIST: test accuracy and fit time at 100, 1,000, 20,000 random train points and on
the full 60,000-image train split, against logistic regression on the same points, beside the published ConvNet.

Data: the four standard IDX files that ``make data`` places in the data folder (``$VALBENCH_DATA``, default
``data/``), read and verified by the suite's ``fashion_mnist`` loader. Train on random subsets of the official
train split (uniform, not stratified: "random points"), test on the official 10,000-image test split; pixels in
[0, 1], as the suite's ``fashion_mnist`` dataset gives them to every learner. Both learners run at their defaults
(``valbench.learners``); the CNN's were chosen on a validation split of the train images (docs/learners.md),
never on this test split.

    python benchmarks/cnn_fashion_mnist.py --sizes 100,1000,20000,60000 --seeds 0,1,2 --threads 1

writes ``benchmarks/results/cnn_fashion_mnist.{json,md}`` (rows are appended per (learner, size, seed), so an
interrupted run resumes).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from valbench.datasets.datafiles import data_dir
from valbench.datasets.fashion_mnist_files import fashion_mnist_arrays
from valbench.learners import make_learner

RESULTS = Path(__file__).parent / "results"


def load(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four official arrays, read and checksum-verified by the suite's loader from ``directory`` (the data
    folder that ``make data`` fills), flattened, pixels in [0, 1] (float32)."""
    x_train, y_train, x_test, y_test = fashion_mnist_arrays(str(directory))
    return (x_train / np.float32(255)).astype(np.float32), y_train, (x_test / np.float32(255)).astype(np.float32), \
        y_test


def measure(learner_name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
            seed: int) -> dict:
    learner = make_learner(learner_name, 784, 10, seed=seed, image_shape=(1, 28, 28))
    started, cpu = time.perf_counter(), time.process_time()
    model = learner.fit(x, y)
    fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"learner": learner_name, "n": len(y), "seed": seed, "accuracy": model.accuracy(x_test, y_test),
            "fit_s": fit_s, "fit_cpu_s": fit_cpu, "params": learner.describe()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=data_dir(), help="the data folder of `make data`")
    parser.add_argument("--sizes", default="100,1000,20000,60000")
    parser.add_argument("--seeds", default="0,1,2", help="seeds per size (each draws its own random subset)")
    parser.add_argument("--learners", default="cnn,logreg")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "cnn_fashion_mnist.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x_train, y_train, x_test, y_test = load(args.data)
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    done = {(r["learner"], r["n"], r["seed"]) for r in rows}
    for n in (int(s) for s in args.sizes.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            for learner in args.learners.split(","):
                if (learner, n, seed) in done:
                    continue
                idx = np.random.default_rng(seed).permutation(len(y_train))[:n]
                row = {**measure(learner, x_train[idx], y_train[idx], x_test, y_test, seed),
                       "threads": args.threads, "device": "cuda" if torch.cuda.is_available() else "cpu",
                       "machine": platform.processor() or platform.machine()}
                print(json.dumps({k: v for k, v in row.items() if k != "params"}), flush=True)
                rows.append(row)
                args.out.write_text(json.dumps(rows, indent=1))
    write_markdown(rows, args.out.with_suffix(".md"))


# Zhao et al. 2021 (ICLR), Table 1, Fashion-MNIST, the "Random" coreset: 10 and 50 images per class
PUBLISHED = {100: ("0.738 ± 0.007", "width 128, random 10 img/cls"), 500: ("0.825 ± 0.007", "width 128, random 50 img/cls")}


def write_markdown(rows: list[dict], path: Path) -> None:
    lines = ["# The CNN learner on Fashion-MNIST", "",
             "`python benchmarks/cnn_fashion_mnist.py` (random subsets of the official train split, the official "
             "10,000-image test split, pixels in [0, 1]; mean ± std over seeds, each seed its own subset). Fit "
             "CPU seconds with one thread; the wall seconds are those of a shared machine (2 cores, 8 jobs), "
             "so the CPU seconds are the measure of cost. Published: the ConvNet (width 128, instance norm) "
             "trained on random 10 and 50 images per class (Zhao, Mopuri & Bilen 2021, \"Dataset Condensation "
             "with Gradient Matching\", Table 1, the coreset baselines).", "",
             "| learner | train points | seeds | test accuracy | published ConvNet | fit s | fit CPU s | "
             "device, threads | settings |",
             "|:--|--:|--:|--:|--:|--:|--:|:--|:--|"]
    keys = sorted({(r["learner"], r["n"]) for r in rows} | {("ConvNet", n) for n in PUBLISHED},
                  key=lambda k: (k[1], k[0] != "ConvNet", k[0]))
    for learner, n in keys:
        if learner == "ConvNet":
            accuracy, setting = PUBLISHED[n]
            lines.append(f"| ConvNet (published) | {n:,} | | | {accuracy} | | | | {setting} |")
            continue
        group = [r for r in rows if (r["learner"], r["n"]) == (learner, n)]
        acc = np.array([r["accuracy"] for r in group])
        fit = np.array([r["fit_s"] for r in group])
        cpu = np.array([r["fit_cpu_s"] for r in group])
        p = group[0]["params"]
        setting = (f"width {p['width']}, depth {p['depth']}, {p['epochs']} epochs (min {p['min_steps']} steps), "
                   f"batch {p['batch_size']}, {p['optimizer']} lr {p['lr']} {p['schedule']}, l2 {p['l2']}, "
                   f"augment {p['augment']}" if learner == "cnn" else
                   f"L-BFGS, max_iter {p['max_iter']}, l2 {p['l2']}")
        lines.append(f"| {learner} | {n:,} | {len(group)} | {acc.mean():.3f} ± {acc.std():.3f} | | {fit.mean():.1f} | "
                     f"{cpu.mean():.2f} | {group[0]['device']}, {group[0]['threads']} | {setting} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
