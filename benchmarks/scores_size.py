"""What the per-point scores files of the real grid weigh on disk (``configs/real.toml``).

Writes one cell's scores file at 20,000 train points (Fashion-MNIST seed 0 at the real grid's size, 20 %
flipped labels, the real grid's four budgets) for a plain valuation (float scores, no weights) and for a
weighted coreset (a weight column per budget), then scales bytes per row by every cell's train size.
Run: ``.venv/bin/python benchmarks/scores_size.py`` (needs ``make data``); writes
``benchmarks/results/scores_size.md``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from valbench.datasets.noise import inject_noise
from valbench.grid import GridConfig
from valbench.metrics import budget_sizes
from valbench.protocol import Valuation
from valbench.registry import get_dataset, load_installed
from valbench.values import scores_frame, write_scores

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "scores_size.md"


def cell_bytes(data, budgets, weighted: bool, directory: Path) -> int:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=data.n_train)
    subsets = weights = None
    if weighted:
        ks = budget_sizes(budgets, data.n_train, data.name)
        subsets = {k: rng.choice(data.n_train, k, replace=False) for k in ks}
        weights = {k: rng.integers(1, 40, k).astype(float) for k in ks}
    valuation = Valuation(scores=scores, subsets=subsets, weights=weights)
    frame = scores_frame(data, valuation, budgets, method="craig" if weighted else "knn-shapley", seed=0,
                         noise_rate=0.2, params={"weighted": True} if weighted else {"k": 10})
    return write_scores(directory, f"w{weighted}", frame).stat().st_size


def main() -> None:
    load_installed()
    config = GridConfig.from_toml(ROOT / "configs" / "real.toml")
    cells = config.cells()
    fashion = inject_noise(get_dataset("fashion_mnist")(seed=0, **config.dataset_params.get("fashion_mnist", {})),
                           0.2, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        plain, weighted = (cell_bytes(fashion, config.budgets, w, Path(tmp)) for w in (False, True))
    sizes = {name: get_dataset(name)(seed=0, **config.dataset_params.get(name, {})).n_train
             for name in config.datasets}
    weighted_methods = {"craig", "gradmatch"}
    total = sum((weighted if c.method in weighted_methods else plain) / fashion.n_train * sizes[c.dataset]
                for c in cells)
    lines = [
        "# Per-point scores files of the real grid: size on disk",
        "",
        f"Measured by `benchmarks/scores_size.py`: one cell at {fashion.n_train:,} train points (Fashion-MNIST, "
        f"seed 0, 20 % flipped labels, budgets {config.budgets}), Parquet with pandas' default compression "
        "(snappy); float64 scores drawn at random (incompressible, like real values).",
        "",
        "| cell | bytes | bytes per train point |",
        "|---|---:|---:|",
        f"| plain valuation (row_id, score, rank, 4 x in_subset, label, noisy, cell columns) | {plain:,} | "
        f"{plain / fashion.n_train:.1f} |",
        f"| weighted coreset (+ 4 x weight) | {weighted:,} | {weighted / fashion.n_train:.1f} |",
        "",
        f"The real grid (`configs/real.toml`): {len(cells)} cells over "
        + ", ".join(f"{name} {n:,}" for name, n in sizes.items())
        + f" train points: **{total / 1e6:.0f} MB** of scores files in all "
        f"(bytes per point of the measured cell times each cell's train size; craig and gradmatch weighted).",
    ]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
