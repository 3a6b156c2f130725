"""What the whole real grid costs, extrapolated from cells already run (``make bench-real``'s store).

For every (dataset, method) of ``configs/real.toml`` the CPU seconds of its measured cells (``cell_cpu_s``:
the method's fit and every metric's retraining, one thread) are averaged and multiplied by the number of
cells the config has for that pair (seeds x noise rates); the sum over pairs divided by the cores is the
grid's wall time on an otherwise idle machine. CPU seconds, not wall seconds, because the machine this was
measured on was shared with other jobs (wall time there was 5-15x the CPU time). Pairs never measured are
listed as missing. Usage::

    python benchmarks/real_grid_time.py reports/real/results.jsonl [more.jsonl ...] --cores 2
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from valbench.grid import GridConfig
from valbench.registry import load_installed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--config", type=Path, default=Path("configs/real.toml"))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    load_installed()
    config = GridConfig.from_toml(args.config)
    cells = defaultdict(int)
    for cell in config.cells():
        cells[(cell.dataset, cell.method)] += 1
    latest: dict[str, dict] = {}  # a cell's later record wins (--retry-failed), as in the results store
    for path in args.results:
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("cell_cpu_s") is not None:
                    latest[r["key"]] = r
    measured: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in latest.values():
        measured[(r["dataset"], r["method"])].append(r)
    print("| dataset | method | cells | CPU s per cell | fit CPU s | learner fits | peak RSS MiB | status |")
    print("|:--|:--|--:|--:|--:|--:|--:|:--|")
    total, by_dataset, missing = 0.0, defaultdict(float), []
    for (dataset, method), n in cells.items():
        rows = measured.get((dataset, method))
        if not rows:
            missing.append(f"{method} on {dataset}")
            continue
        per_cell = sum(r["cell_cpu_s"] for r in rows) / len(rows)
        total += per_cell * n
        by_dataset[dataset] += per_cell * n
        fit = [r["cpu_s"] for r in rows if r.get("cpu_s") is not None]
        fits = [r["cpu_s"] / r["learner_fit_cpu_s"] for r in rows if r.get("cpu_s") and r.get("learner_fit_cpu_s")]
        rss = [r["peak_rss_mb"] for r in rows if r.get("peak_rss_mb")]
        status = ", ".join(sorted({r["status"] for r in rows}))
        print(f"| {dataset} | {method} | {n} | {per_cell:.1f} | {sum(fit) / len(fit) if fit else float('nan'):.1f} | "
              f"{sum(fits) / len(fits) if fits else float('nan'):.1f} | {max(rss) if rss else float('nan'):.0f} | "
              f"{status} |")
    print()
    for dataset, seconds in by_dataset.items():
        print(f"* {dataset}: {seconds / 3600:.2f} CPU hours")
    print(f"* grid: {total / 3600:.2f} CPU hours = {total / 3600 / args.cores:.2f} hours on {args.cores} cores"
          + (f"; not measured: {', '.join(missing)}" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
