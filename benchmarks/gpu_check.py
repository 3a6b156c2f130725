"""Ready for a GPU: train the CNN learner and the frozen-feature extractor on CUDA and on the CPU, check that they
agree, and print the speed-up. Without CUDA it says so and exits 0 (nothing to check).

    python benchmarks/gpu_check.py [--n 5000] [--tolerance 0.02]

Both runs use the same seed, data and settings (the learner's defaults; :mod:`valbench.datasets.features`'s
extractor at its default width and epochs on an ``--n``-image pool). cuDNN kernels are not bitwise the CPU's, so
the check is on test accuracy: the GPU's may differ from the CPU's by at most ``--tolerance``. Data: Fashion-MNIST
from ``$VALBENCH_DATA`` (``make data``). Exit status: 0 (agreed, or skipped without CUDA), 1 (a disagreement).
Sized to finish in under 5 minutes on one GPU and 16 cores (the CPU side dominates).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from valbench.datasets.datafiles import data_dir
from valbench.datasets.features import FeatureSettings, train_extractor
from valbench.datasets.fashion_mnist_files import fashion_mnist_arrays
from valbench.learners import make_learner


def timed(fn):
    started = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - started


def accuracy(module: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((module.eval()(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="training images of each run")
    parser.add_argument("--tolerance", type=float, default=0.02, help="largest GPU - CPU test accuracy gap")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: skipped, torch sees no CUDA device (nothing to compare); exit 0")
        return 0
    x, y, x_test, y_test = fashion_mnist_arrays(str(data_dir()))
    rows = np.random.default_rng(0).permutation(len(y))[:args.n]
    x, y = (x[rows] / np.float32(255)).astype(np.float32), y[rows]
    x_test = (x_test / np.float32(255)).astype(np.float32)
    print(f"gpu_check: {torch.cuda.get_device_name(0)}; {args.n:,} Fashion-MNIST images, CPU threads "
          f"{torch.get_num_threads()}")
    failed = False
    jobs = {
        "cnn learner": lambda device: make_learner("cnn", 784, 10, seed=0, image_shape=(1, 28, 28),
                                                   device=device).fit(x, y).module,
        "feature extractor": lambda device: train_extractor(x, y, FeatureSettings(pool=args.n), device=device),
    }
    for name, train in jobs.items():
        timings, accuracies = {}, {}
        for device in ("cuda", "cpu"):
            module, timings[device] = timed(lambda: train(device))
            accuracies[device] = accuracy(module, x_test, y_test)
        gap = accuracies["cuda"] - accuracies["cpu"]
        ok = abs(gap) <= args.tolerance
        failed |= not ok
        print(f"{name}: test accuracy cuda {accuracies['cuda']:.4f}, cpu {accuracies['cpu']:.4f} "
              f"(gap {gap:+.4f}, tolerance {args.tolerance}: {'ok' if ok else 'DISAGREE'}); "
              f"{timings['cuda']:.1f} s on cuda, {timings['cpu']:.1f} s on cpu: speed-up x{timings['cpu'] / timings['cuda']:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
