"""The CNN learner on Fashion-MNIST: test accuracy and fit time at 100, 1,000, 10,000 random train points and on
the full 60,000-image train split, against logistic regression on the same points.

Data: the four standard IDX files of Debian's ``dataset-fashion-mnist`` (``apt-get download
dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb DIR``; the files lie under
``DIR/usr/share/datasets/fashion-mnist/``), or the same files from the original repository
(zalandoresearch/fashion-mnist). Train on random subsets of the official train split (stratification is not
needed at these sizes), test on the official 10,000-image test split; pixels standardised per pixel on the
points trained on, as the suite's splits do.

    python benchmarks/cnn_fashion_mnist.py --data DIR/usr/share/datasets/fashion-mnist \
        --sizes 100,1000,10000,60000 --seeds 0,1,2 --epochs 5 --threads 1

writes ``benchmarks/results/cnn_fashion_mnist.{json,md}`` (rows are appended per (learner, size, seed), so an
interrupted run resumes).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import struct
import time
from pathlib import Path

import numpy as np
import torch

from valbench.datasets.splits import standardise
from valbench.learners import make_learner

RESULTS = Path(__file__).parent / "results"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or plain): magic 0x0000 0x08 ndim, big-endian dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype != 0x08:
            raise ValueError(f"{path}: not an unsigned-byte IDX file")
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def load(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    def find(stem: str) -> Path:
        for name in (stem + ".gz", stem):
            if (directory / name).exists():
                return directory / name
        raise SystemExit(f"{directory / stem}[.gz] not found: see this script's docstring for where to get it")

    x_train = read_idx(find("train-images-idx3-ubyte")).reshape(60000, -1) / 255.0
    y_train = read_idx(find("train-labels-idx1-ubyte")).astype(np.int64)
    x_test = read_idx(find("t10k-images-idx3-ubyte")).reshape(10000, -1) / 255.0
    y_test = read_idx(find("t10k-labels-idx1-ubyte")).astype(np.int64)
    return x_train, y_train, x_test, y_test


def measure(learner_name: str, params: dict, x: np.ndarray, y: np.ndarray, x_test: np.ndarray,
            y_test: np.ndarray, seed: int) -> dict:
    xs, xt = standardise(x, x_test)
    learner = make_learner(learner_name, 784, 10, seed=seed, image_shape=(1, 28, 28), **params)
    started, cpu = time.perf_counter(), time.process_time()
    model = learner.fit(xs, y)
    fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"learner": learner_name, "n": len(y), "seed": seed, "accuracy": model.accuracy(xt, y_test),
            "fit_s": fit_s, "fit_cpu_s": fit_cpu, "params": learner.describe()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/training_fmnist/root/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--sizes", default="100,1000,10000,60000")
    parser.add_argument("--seeds", default="0,1,2", help="seeds per size (the full split: the first seed only)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learners", default="cnn,logreg")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "cnn_fashion_mnist.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x_train, y_train, x_test, y_test = load(args.data)
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    done = {(r["learner"], r["n"], r["seed"]) for r in rows}
    settings = {"cnn": {"epochs": args.epochs}, "logreg": {}}
    for n in (int(s) for s in args.sizes.split(",")):
        seeds = [int(s) for s in args.seeds.split(",")]
        for seed in seeds[:1] if n >= len(y_train) else seeds:
            for learner in args.learners.split(","):
                if (learner, n, seed) in done:
                    continue
                idx = np.random.default_rng(seed).permutation(len(y_train))[:n]
                row = {**measure(learner, settings[learner], x_train[idx], y_train[idx], x_test, y_test, seed),
                       "threads": args.threads, "device": "cuda" if torch.cuda.is_available() else "cpu",
                       "machine": platform.processor() or platform.machine()}
                print(json.dumps({k: v for k, v in row.items() if k != "params"}), flush=True)
                rows.append(row)
                args.out.write_text(json.dumps(rows, indent=1))
    write_markdown(rows, args.out.with_suffix(".md"))


def write_markdown(rows: list[dict], path: Path) -> None:
    lines = ["# The CNN learner on Fashion-MNIST", "",
             "`python benchmarks/cnn_fashion_mnist.py` (random subsets of the official train split, the official "
             "10,000-image test split; mean ± std over seeds; fit seconds on the device shown).", "",
             "| learner | train points | seeds | test accuracy | fit s | fit CPU s | device, threads | settings |",
             "|:--|--:|--:|--:|--:|--:|:--|:--|"]
    keys = sorted({(r["learner"], r["n"]) for r in rows}, key=lambda k: (k[1], k[0]))
    for learner, n in keys:
        group = [r for r in rows if (r["learner"], r["n"]) == (learner, n)]
        acc = np.array([r["accuracy"] for r in group])
        fit = np.array([r["fit_s"] for r in group])
        cpu = np.array([r["fit_cpu_s"] for r in group])
        p = group[0]["params"]
        setting = (f"{p['epochs']} epochs (min {p['min_steps']} steps), batch {p['batch_size']}, {p['optimizer']} "
                   f"lr {p['lr']}, l2 {p['l2']}" if learner == "cnn" else f"L-BFGS, max_iter {p['max_iter']}, l2 {p['l2']}")
        lines.append(f"| {learner} | {n:,} | {len(group)} | {acc.mean():.3f} ± {acc.std():.3f} | {fit.mean():.1f} | "
                     f"{cpu.mean():.1f} | {group[0]['device']}, {group[0]['threads']} | {setting} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
