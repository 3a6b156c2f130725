"""What running every cell in a forked, watched worker costs: one grid run by two code trees, alternating.

"before" is a checkout whose runner uses joblib's loky pool (cells in reused worker processes, in-process
limits), "after" is this one (:mod:`valbench.isolate`). Each run is the whole ``valbench run`` command
(`--no-cache`, a fresh output folder: nothing is reused between runs), timed by wall clock (the grid alone,
and the whole command) and by the CPU seconds of the command and every process under it (``RUSAGE_CHILDREN``). Runs alternate before/after so
that a change in the machine's load falls on both; the ratio after/before is the overhead::

    python benchmarks/isolation_overhead.py --before /work/main --repeats 2 \\
        --out benchmarks/results/isolation_overhead.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["--config", "configs/default.toml", "--datasets", "breast_cancer", "--seeds", "0", "--noise", "0.1"]


def one_run(tree: Path, jobs: int) -> dict[str, float]:
    """One ``valbench run`` by ``tree``'s code: wall seconds of the grid (from its "N cells ->" line to its
    "done:" line, so the report's rendering, the same code in both, is left out) and of the whole command,
    and CPU seconds of the command with every process under it."""
    out = Path(tempfile.mkdtemp(prefix="valbench-overhead-"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen([str(tree / ".venv" / "bin" / "python"), "-m", "valbench", "run", *GRID, "--jobs",
                             str(jobs), "--no-cache", "--no-progress", "--out", str(out)], cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marks, tail = {}, []
    for line in proc.stderr:
        tail = (tail + [line])[-20:]
        if " cells -> " in line:
            marks["grid_start"] = time.perf_counter()
        elif line.startswith("done: "):
            marks["grid_end"] = time.perf_counter()
    proc.wait()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode or len(marks) != 2:
        raise SystemExit(f"{tree}: exit {proc.returncode}: {''.join(tail)}")
    cells = [json.loads(line) for line in next(out.glob("run-*/results.jsonl")).read_text().splitlines()]
    shutil.rmtree(out)
    return {"grid_wall_s": marks["grid_end"] - marks["grid_start"], "wall_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "cells": len(cells), "failed": sum(c["status"] != "ok" for c in cells),
            "cell_wall_s": sum(c.get("cell_wall_s") or 0 for c in cells)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout (with .venv) of the code before")
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/isolation_overhead.json"))
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for i in range(args.repeats):
        for label in (("before", "after") if i % 2 == 0 else ("after", "before")):
            runs[label].append(one_run(getattr(args, label), args.jobs))
            print(label, json.dumps(runs[label][-1]), file=sys.stderr, flush=True)
    median = {label: {k: statistics.median(r[k] for r in rs) for k in ("grid_wall_s", "wall_s", "cpu_s", "cell_wall_s")}
              for label, rs in runs.items()}
    result = {"grid": GRID, "jobs": args.jobs, "repeats": args.repeats, "runs": runs, "median": median,
              "ratio_after_over_before": {k: median["after"][k] / median["before"][k] for k in median["after"]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["ratio_after_over_before"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
