"""HOST-CP's cost with the exact solver: per mini-batch against cvxpylayers, and whole fits against a learner fit.

    nice -n 10 python benchmarks/hostcp_solver_speed.py [--sizes 1000,5000,20000] [--batches 16,40,64,128]

Writes ``benchmarks/results/hostcp_solver_speed.{md,json}`` with
1. solve + backward of one mini-batch program (B' = B, distances of random 100-d features divided by
   gamma = 0.1 x their mean, budget 0.2 B, the gradient of a smooth scalar of Z_new), fast vs cvxpylayers,
   per B and mode: median seconds and the speed-up;
2. ``hostcp`` at the authors' settings (B = B' = 40, d = 100, 5 epochs, fraction 0.2, tau 0.9) on synthetic
   data of N points against one logistic-regression fit on the same data, per N, the log-log slope of
   hostcp's seconds in N, and where hostcp's time goes (the ``extra`` timings the method records).
Times are CPU seconds of this process (one torch thread), so other jobs sharing the machine barely move
them, and everything runs in one process, so the ratios compare like with like. The method's own phase
timings (its `extra`) are wall seconds, so the shares are approximate on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
AUTHORS = {"batch_size": 40, "neighbours": 40, "dim": 100, "epochs": 5, "fraction": 0.2, "tau": 0.9}
PARTS = ("search_s", "solve_s", "lookahead_s", "layer_backward_s", "model_s")
REFERENCE_MAX_B = 64  # cvxpylayers' QP at B = 128 was killed here (out of memory, 23 GB machine), so it stops at 64


def program(b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(2 * b, 100, generator=g, dtype=torch.float64)
    d = torch.cdist(f, f)
    d = d / (0.1 * d[:b, :b].sum() / (b * (b - 1)))
    return d[:b, :b].contiguous(), d[:b, b:].contiguous()


def time_solve(b: int, mode: str, solver: str, repeats: int) -> float:
    """Median seconds of solve + backward of one program."""
    from valbench.methods.hostcp.layer import solve_facility

    d_new, d_old = program(b)
    weights = torch.linspace(0.5, 2.0, b, dtype=torch.float64)
    times = []
    for _ in range(repeats):
        dn, do = d_new.clone().requires_grad_(True), d_old.clone().requires_grad_(True)
        t0 = time.process_time()
        z_new, _ = solve_facility(dn, do, 0.2, mode, solver)
        (weights * z_new.sum(0) ** 2).sum().backward()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def solver_table(batches: list[int]) -> list[dict]:
    rows = []
    for mode in ("qp", "lp"):
        for b in batches:
            fast = time_solve(b, mode, "fast", repeats=30)
            ref = time_solve(b, mode, "cvxpylayers", repeats=3) if b <= REFERENCE_MAX_B else None
            rows.append({"mode": mode, "B": b, "fast_s": fast, "cvxpylayers_s": ref,
                         "speedup": None if ref is None else ref / fast})
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def fit_table(sizes: list[int], mode: str) -> list[dict]:
    from valbench.learners import LogisticRegression
    from valbench.measure import median_cpu_seconds
    from valbench.registry import get_dataset, load_installed
    from valbench.methods.hostcp.faithful import HostCP

    load_installed()
    rows = []
    for n in sizes:
        data = get_dataset("synthetic")(seed=0, n_train=n, n_valid=300, n_test=500)
        learner = LogisticRegression(data.n_features, data.n_classes)
        fit_s = median_cpu_seconds(lambda: learner.fit(data.x_train, data.y_train))
        t0 = time.process_time()
        valuation = HostCP(**AUTHORS, mode=mode).fit(data, learner, seed=0, budgets=[n // 10])
        wall = time.process_time() - t0
        parts = {k: valuation.extra[k] for k in PARTS}
        rows.append({"mode": mode, "n_train": n, "learner_fit_s": fit_s, "hostcp_s": wall,
                     "ratio": wall / fit_s, **parts, "other_s": wall - sum(parts.values()),
                     "ms_per_batch": 1e3 * wall / (AUTHORS["epochs"] * int(np.ceil(n / AUTHORS["batch_size"])))})
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def slope(rows: list[dict]) -> float:
    return float(np.polyfit(np.log([r["n_train"] for r in rows]), np.log([r["hostcp_s"] for r in rows]), 1)[0])


def markdown(solves: list[dict], fits: dict[str, list[dict]]) -> str:
    lines = ["# HOST-CP solver speed", "",
             "Written by `benchmarks/hostcp_solver_speed.py` (CPU seconds, one torch thread).", "",
             "## Solve + backward of one mini-batch program (B' = B, budget 0.2 B)", "",
             "| mode | B | fast (ms) | cvxpylayers (ms) | speed-up |", "|---|---|---|---|---|"]
    for r in solves:
        ref = "skipped (memory)" if r["cvxpylayers_s"] is None else f"{1e3 * r['cvxpylayers_s']:.1f}"
        up = "-" if r["speedup"] is None else f"{r['speedup']:.0f}x"
        lines.append(f"| {r['mode']} | {r['B']} | {1e3 * r['fast_s']:.2f} | {ref} | {up} |")
    for mode, rows in fits.items():
        lines += ["", f"## hostcp ({mode}, authors' settings B = B' = 40, d = 100, 5 epochs, fraction 0.2) "
                  "vs one learner fit, synthetic", "",
                  "| N | learner fit (s) | hostcp (s) | ratio | ms per mini-batch |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['n_train']} | {r['learner_fit_s']:.3f} | {r['hostcp_s']:.2f} | {r['ratio']:.0f}x | "
                         f"{r['ms_per_batch']:.2f} |")
        lines += ["", f"Slope of hostcp's seconds in N (log-log least squares): {slope(rows):.2f}", "",
                  "Where the time goes (share of hostcp's seconds):", "",
                  "| N | " + " | ".join(p[:-2] for p in PARTS) + " | other |", "|---" * (len(PARTS) + 2) + "|"]
        for r in rows:
            shares = [100 * r[p] / r["hostcp_s"] for p in (*PARTS, "other_s")]
            lines.append(f"| {r['n_train']} | " + " | ".join(f"{s:.0f} %" for s in shares) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--batches", default="16,40,64,128")
    parser.add_argument("--modes", default="qp,lp", help="hostcp modes for the whole-fit timings")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    torch.set_num_threads(1)
    solves = solver_table([int(b) for b in args.batches.split(",")])
    fits = {mode: fit_table([int(n) for n in args.sizes.split(",")], mode) for mode in args.modes.split(",")}
    result = {"solves": solves, "fits": fits, "slopes": {m: slope(rows) for m, rows in fits.items()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hostcp_solver_speed.json").write_text(json.dumps(result, indent=2))
    text = markdown(solves, fits)
    (RESULTS / "hostcp_solver_speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
