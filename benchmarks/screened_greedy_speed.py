"""GLISTER's greedy and GRAD-MATCH's OMP with the float32 screen (``screened_argmax``), and GRAD-MATCH with its
support held in buffers (``RidgeSupport``), against the code they replace, on the real grid's cells (seed 0, 20 %
flipped labels, logistic regression, the grid's budgets 1-30 %).

Both selectors are memory-bound on Fashion-MNIST: every greedy step reads an n x d float64 matrix (GLISTER: the
20,000 x 784 inputs; OMP: a class's 2,000 x 7,850 gradients) to find one argmax. The screen reads a float32 copy and
computes in float64 only the points its rounding bound cannot rule out. On shuttle and caravan one class holds most
points, and OMP's support grows to thousands: rebuilding its Gram matrix and Cholesky factor by np.block each step
was O(|S|^3) over a run. The baseline is the same module at ``--baseline-rev`` (git), run on the same model and
gradients, one thread, alternating with the new code ``--repeats`` times; the output must be the same, or differ
only in which of two duplicate points (identical gradients) a pick takes (the script exits 1 otherwise).

    .venv/bin/python benchmarks/screened_greedy_speed.py [--baseline-rev fa2e923] [--repeats 1]
        [--workloads glister:fashion_mnist,gradmatch:shuttle]

Writes benchmarks/results/screened_greedy_speed.md (and .json).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from valbench.grid import GridConfig
from valbench.learners import learner_for
from valbench.methods import glister, gradmatch
from valbench.methods.selection import class_budgets, last_layer_gradients
from valbench.registry import load_installed
from valbench.runner import load_cell_data

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def module_at(rev: str, path: str, name: str):
    """The module at ``path`` as it was at git revision ``rev``, imported under ``name`` (its classes not
    registered again: the current module holds their names)."""
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.replace("@register_method\n", "")
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_seconds(run):
    """``run()``'s result and the CPU seconds it took (one thread)."""
    started = time.process_time()
    result = run()
    return result, time.process_time() - started


WORKLOADS = ("glister:fashion_mnist", "gradmatch:fashion_mnist", "gradmatch:shuttle", "gradmatch:caravan")


def real_cell(dataset: str):
    """The real grid's cell of ``dataset`` at seed 0 with 20 % flipped labels: its data and logistic regression."""
    cell = next(c for c in GridConfig.from_toml(ROOT / "configs/real.toml").cells()
                if c.dataset == dataset and c.method == "gradmatch" and c.seed == 0 and c.noise_rate == 0.2)
    data = load_cell_data(cell)
    model = learner_for("logreg", data, seed=0).fit(data.x_train, data.y_train)
    return data, model, [max(1, round(f * data.n_train)) for f in cell.budgets]


def glister_run(data, model, budgets):
    """Run GLISTER's greedy (a module's ``glister_greedy``) to the largest budget, and the check of equal output."""
    eta = float(glister.Glister.params["eta"])

    def same(before, after) -> bool:
        return (np.array_equal(before[0], after[0]) and np.array_equal(before[2], after[2])
                and np.allclose(before[1], after[1], rtol=1e-12, atol=0))
    return lambda module: module.glister_greedy(model, data, eta, max(budgets)), same


def gradmatch_run(data, model, budgets):
    """Run GRAD-MATCH's OMP (a module's ``omp_path``) for every class to its largest share, and the check of equal
    output (supports and weights bitwise)."""
    lam, tol = float(gradmatch.GradMatch.params["lam"]), float(gradmatch.GradMatch.params["tol"])
    grads = last_layer_gradients(model, data.x_train, data.y_train, True)
    shares = [class_budgets(data.y_train, k) for k in budgets]

    def run(module):
        paths = {}
        for cls in np.unique(data.y_train):
            members = np.flatnonzero(data.y_train == cls)
            steps = [split[int(cls)] for split in shares if split[int(cls)] > 0]
            paths[int(cls)] = module.omp_path(grads[members].T, grads[members].sum(0), steps, lam, tol)
        return paths

    def same(before, after) -> bool | str:
        """True if every class's supports and weights are bitwise equal; otherwise where they differ, and whether
        only between points with identical gradients (duplicate rows, which a float64 product may rank either way
        depending on where the BLAS kernel's row blocks fall)."""
        differ, duplicates, picks = 0, True, 0
        for c in before:
            members = np.flatnonzero(data.y_train == c)
            for t in before[c]:
                (s0, w0), (s1, w1) = before[c][t], after[c][t]
                picks += len(s0)
                if np.array_equal(s0, s1) and np.array_equal(w0, w1):
                    continue
                swapped = np.flatnonzero(s0 != s1) if len(s0) == len(s1) else np.arange(max(len(s0), len(s1)))
                differ += len(swapped)
                duplicates &= len(s0) == len(s1) and all(
                    np.array_equal(grads[members[s0[i]]], grads[members[s1[i]]]) for i in swapped)
        if not differ:
            return True
        return (f"{differ} of {picks} picks (over every budget) differ"
                + (", each between points with identical gradients (duplicate rows)" if duplicates else ""))
    return run, same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="fa2e923")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated method:dataset; rows not run are kept from the last results")
    args = parser.parse_args(argv)
    wanted = args.workloads.split(",")
    unknown = sorted(set(wanted) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown --workloads {unknown}; valid: {list(WORKLOADS)}")
    torch.set_num_threads(1)
    load_installed()
    modules = {name: (module_at(args.baseline_rev, f"methods/{name}.py", f"{name}_baseline"), current)
               for name, current in (("glister", glister), ("gradmatch", gradmatch))}
    builders = {"glister": glister_run, "gradmatch": gradmatch_run}
    previous = RESULTS / "screened_greedy_speed.json"
    kept = json.loads(previous.read_text())["rows"] if previous.exists() else []
    rows, all_same = [r for r in kept if r["workload"] not in wanted], True
    for workload in wanted:
        name, dataset = workload.split(":")
        data, model, budgets = real_cell(dataset)
        run, same = builders[name](data, model, budgets)
        old, new = modules[name]
        times = {"baseline": [], "screened": []}
        for _ in range(args.repeats):
            before, t_old = cpu_seconds(lambda: run(old))
            after, t_new = cpu_seconds(lambda: run(new))
            times["baseline"].append(t_old)
            times["screened"].append(t_new)
        identical = same(before, after)
        all_same &= identical is True or (isinstance(identical, str) and "duplicate rows" in identical)
        old_s, new_s = float(np.median(times["baseline"])), float(np.median(times["screened"]))
        rows.append({"workload": workload, "n_train": data.n_train, "n_features": data.n_features,
                     "largest_budget": max(budgets), "baseline_cpu_s": old_s, "screened_cpu_s": new_s,
                     "speedup": old_s / new_s, "identical": identical, "runs": times})
        print(f"{workload}: {old_s:.1f} -> {new_s:.1f} CPU s ({old_s / new_s:.2f}x), identical: {identical}",
              flush=True)
    rows.sort(key=lambda r: WORKLOADS.index(r["workload"]))
    RESULTS.mkdir(exist_ok=True)
    previous.write_text(json.dumps({"baseline_rev": args.baseline_rev, "rows": rows}, indent=2))
    lines = ["# GLISTER and GRAD-MATCH: the float32 screen and GRAD-MATCH's support buffers",
             "", f"`python benchmarks/screened_greedy_speed.py` (baseline: the same modules at `{args.baseline_rev}`, "
             "on the same model and gradients). The real grid's cells at seed 0 with 20 % flipped labels, logistic "
             "regression, each greedy run to the largest budget (30 %; GRAD-MATCH: one OMP run per class to its "
             f"share). CPU seconds, one thread, median of {args.repeats}; the machine ran other jobs beside it. "
             "Same output: GLISTER's picks and final gains bitwise, the gains of its picks within 1e-12; "
             "GRAD-MATCH's supports and weights bitwise, except where noted.", "",
             "| method | dataset | train points | features | greedy steps | before CPU s | after CPU s | speed-up "
             "| same output |", "|:--|:--|--:|--:|--:|--:|--:|--:|:--|"]
    for r in rows:
        name, dataset = r["workload"].split(":")
        lines.append(f"| {name} | {dataset} | {r['n_train']:,} | {r['n_features']} | {r['largest_budget']:,} | "
                     f"{r['baseline_cpu_s']:.1f} | {r['screened_cpu_s']:.1f} | {r['speedup']:.2f}x | "
                     f"{'yes' if r['identical'] is True else r['identical']} |")
    (RESULTS / "screened_greedy_speed.md").write_text("\n".join(lines) + "\n")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
