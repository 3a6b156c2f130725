"""Does ``valbench select`` recommend well? Letter and Fashion-MNIST as tables, with 0 and 20 % flipped labels.

Per dataset, a stratified draw of ``--rows`` rows is what ``select`` sees (its labels flipped at the noise rate
by :func:`valbench.datasets.noise.flip_labels`), and a disjoint stratified test split of ``--test`` rows with
clean labels is what it never sees. ``select`` runs with its defaults (budget ``--budget``); then every candidate
it measured is refitted on all its rows (:func:`valbench.keep.apply.fit_values`, as ``select`` applies the
recommended one) and the learner retrained on that candidate's subset is scored on the untouched test split.
Reported: the recommended entry, its untouched-test value, random's, and the best in hindsight.

Run: ``.venv/bin/python benchmarks/select_real.py`` (needs ``make data``); writes
``benchmarks/results/select_real.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from valbench.datasets.noise import flip_labels
from valbench.datasets.splits import standardise, stratified_parts
from valbench.keep import select
from valbench.keep.apply import fit_values
from valbench.keep.candidates import DEFAULT_POOL
from valbench.learners import make_learner
from valbench.registry import get_dataset, load_installed
from valbench.streams import stream
from valbench.values import budget_label

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def pool(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every row of the dataset as one table (train + valid + test of its loader, unscaled order kept)."""
    data = get_dataset(name)(seed=0)
    return (np.concatenate([data.x_train, data.x_valid, data.x_test]),
            np.concatenate([data.y_train_clean, data.y_valid, data.y_test]))


def untouched_value(x: np.ndarray, y_noisy: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, n_classes: int,
                    label: str, budget: float) -> float:
    """Refit ``label`` on all of select's rows; accuracy on the untouched test split of the learner retrained
    on its subset (standardised on select's rows)."""
    candidate = next(c for c in DEFAULT_POOL if c.label == label)
    values = fit_values(x, y_noisy, n_classes, candidate, budget)
    chosen = values.row_id.to_numpy()[values[f"in_subset_{budget_label(budget)}"].to_numpy()]
    x_fit, x_eval = standardise(x[chosen], x_test)
    model = make_learner("logreg", x.shape[1], n_classes, seed=0).fit(x_fit, y_noisy[chosen])
    return float(model.accuracy(x_eval, y_test))


def one(name: str, noise: float, rows: int, test: int, budget: float) -> dict:
    x_all, y_all = pool(name)
    n_classes = int(y_all.max()) + 1
    mine, held = stratified_parts(y_all, (rows, test), stream(0, name, "select-benchmark"))
    y_noisy, _ = flip_labels(y_all[mine], noise, n_classes, stream(0, name, "select-benchmark-noise"))
    with tempfile.TemporaryDirectory() as tmp:
        selection = select(x_all[mine], y_noisy, budget, out=tmp, progress=False)
    evidence = selection.evidence.dropna(subset=["value"])
    test_values = {label: untouched_value(x_all[mine], y_noisy, x_all[held], y_all[held], n_classes, label, budget)
                   for label in evidence.label}
    hindsight = max(test_values, key=test_values.get)
    return {"dataset": name, "noise": noise, "rows": rows, "test": test, "budget": budget,
            "recommended": selection.recommended, "estimated_noise": selection.noise.rate,
            "recommended_test": test_values[selection.recommended], "random_test": test_values["random"],
            "hindsight": hindsight, "hindsight_test": test_values[hindsight], "test_values": test_values,
            "measured": dict(zip(evidence.label, evidence.value))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="letter,fashion_mnist")
    parser.add_argument("--noise", default="0,0.2")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--budget", type=float, default=0.1)
    args = parser.parse_args()
    load_installed()
    out = RESULTS / "select_real.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.datasets.split(","):
        for noise in (float(v) for v in args.noise.split(",")):
            key = f"{name} {noise:g}"
            results[key] = one(name, noise, args.rows, args.test, args.budget)
            out.write_text(json.dumps(results, indent=1))
            r = results[key]
            print(f"{key}: recommended {r['recommended']} {r['recommended_test']:.3f}, random {r['random_test']:.3f}, "
                  f"hindsight {r['hindsight']} {r['hindsight_test']:.3f}", flush=True)
    lines = ["# Does `valbench select` recommend well?", "",
             f"`benchmarks/select_real.py`: per dataset a stratified {args.rows:,} rows go to `select` (labels flipped "
             f"at the noise rate), a disjoint stratified {args.test:,} rows with clean labels are never seen by it; "
             f"budget {args.budget:g}, default candidates, 3 seeds. Every measured candidate is then refitted on all "
             "of select's rows and the learner retrained on its subset is scored on the untouched rows (accuracy).",
             "", "| dataset | flipped | estimated | recommended | its untouched accuracy | random | best in hindsight |",
             "|---|---:|---:|---|---:|---:|---|"]
    for r in results.values():
        lines.append(f"| {r['dataset']} | {r['noise']:.0%} | {r['estimated_noise']:.1%} | {r['recommended']} | "
                     f"{r['recommended_test']:.3f} | {r['random_test']:.3f} | {r['hindsight']} ({r['hindsight_test']:.3f}) |")
    (RESULTS / "select_real.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
