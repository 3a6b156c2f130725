"""``valbench select`` at 1k, 10k and 100k rows: wall time, CPU seconds and peak memory, per step.

Each size is a synthetic table written as CSV (``--features`` Gaussian columns, 5 classes whose means are one
standard deviation apart per column, so the classes overlap; 10 % of the labels flipped; an ``id`` column) and
run through the command line's own path (read the table, then :func:`valbench.select`) in a fresh process, one
job, budget 10 %, the default candidates. The CPU seconds of the process and of the workers its cells ran in, and
the larger of their peak resident memories (``ru_maxrss``), are read at the end; each step's wall and CPU seconds come from ``Selection.timings``.

Run: ``.venv/bin/python benchmarks/select_scale.py --sizes 1000,10000,100000`` (writes
``benchmarks/results/select_scale.json`` and ``.md``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STEPS = ("read", "noise", "measure", "refit", "write")


def write_table(path: Path, n: int, features: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    centres = rng.normal(size=(5, features)) * 0.35
    x = centres[y] + rng.normal(size=(n, features))
    flipped = rng.random(n) < 0.1
    y = np.where(flipped, (y + rng.integers(1, 5, n)) % 5, y)
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"f{i}" for i in range(features)])
    frame.insert(0, "id", np.arange(n) + 10_000_000)
    frame["label"] = np.array(list("abcde"))[y]
    frame.to_csv(path, index=False)


def one_run(table: str, out: str, budget: float) -> dict:
    """In this (fresh) process: read the table as the CLI does, run select, return the costs."""
    from valbench.datasets.table import read_table
    from valbench.keep import select

    wall, cpu = time.perf_counter(), time.process_time()
    x, y, ids, _ = read_table(table, "label", id="id")
    read = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    selection = select(x, y, budget, ids=ids, id_name="id", out=out, progress=False)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the cells' forked workers, reaped by the end of the run
    return {"rows": len(y), "features": x.shape[1], "recommended": selection.recommended,
            "noise_rate": selection.noise.rate, "candidates": selection.evidence.label.tolist(),
            "left_out": selection.left_out, "steps": {"read": read, **selection.timings},
            "wall_s": time.perf_counter() - wall,
            "cpu_s": usage.ru_utime + usage.ru_stime + workers.ru_utime + workers.ru_stime,
            "peak_rss_mb": max(usage.ru_maxrss, workers.ru_maxrss) / 1024,
            "parent_peak_rss_mb": usage.ru_maxrss / 1024, "worker_peak_rss_mb": workers.ru_maxrss / 1024,
            "evidence": selection.evidence[["label", "value", "vs_random", "cost_fits", "status"]].to_dict("records")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--child", nargs=2, metavar=("TABLE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(*args.child, args.budget)))
        return
    results_file = RESULTS / "select_scale.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "table.csv"
            write_table(table, n, args.features)
            done = subprocess.run([sys.executable, __file__, "--budget", str(args.budget), "--child", str(table),
                                   str(Path(tmp) / "out")], capture_output=True, text=True, check=True)
            results[str(n)] = json.loads(done.stdout.strip().splitlines()[-1])
        results_file.write_text(json.dumps(results, indent=1))
        r = results[str(n)]
        print(f"{n:>7,} rows: {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} CPU s, {r['peak_rss_mb']:.0f} MB peak; "
              f"recommended {r['recommended']}", flush=True)
    write_markdown(results, args.features)


def write_markdown(results: dict, features: int) -> None:
    lines = ["# `valbench select` at scale", "",
             f"`benchmarks/select_scale.py`: synthetic tables ({features} Gaussian features, 5 overlapping classes, "
             "10 % flipped labels, an id column) as CSV; one process, one job (`--jobs 1`), budget 10 %, default "
             "candidates. CPU s: the process and the workers the cells run in; peak: the larger of the process's and "
             "any worker's maximum resident memory. Wall seconds on a machine shared with other jobs (2 cores, 8 sessions): CPU seconds are "
             "the steadier number. Peak = the process's maximum resident memory.", "",
             "| rows | wall s | CPU s | peak MB | " + " | ".join(f"{s} wall / CPU s" for s in STEPS)
             + " | candidates measured | left out (predicted cost) | recommended |",
             "|---:|---:|---:|---:|" + "---:|" * len(STEPS) + "---|---|---|"]
    for n, r in sorted(results.items(), key=lambda item: int(item[0])):
        steps = " | ".join(f"{r['steps'][s]['wall_s']:.0f} / {r['steps'][s]['cpu_s']:.0f}" if s in r["steps"]
                           else "-" for s in STEPS)
        lines.append(f"| {int(n):,} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['peak_rss_mb']:.0f} | {steps} | "
                     f"{len(r['candidates'])} | {', '.join(r['left_out']) or '-'} | {r['recommended']} |")
    (RESULTS / "select_scale.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
