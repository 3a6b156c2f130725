"""Each method's cost in learner fits and its mislabel AUC, read from a run's store (e.g. the CNN grid's).

A cell records the CPU seconds of the method's fit (``cpu_s``) and of one fit of the learner on the whole train
split (``learner_fit_cpu_s``, timed in the same worker for the ``cap_fits`` cap); their ratio is the method's
cost in learner fits, the unit issue 28's goals are stated in (each attribution method within 10 CNN fits,
TracIn on the last layer within 2). Cells not ok are counted, with their statuses. Usage::

    python benchmarks/grid_method_cost.py reports/real-cnn [--out benchmarks/results/cnn_grid_cost.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from valbench.protocol import DataError
from valbench.report.frame import OK, load_run


def summarise(cells: pd.DataFrame) -> list[dict]:
    """Per report entry: cells, ok cells, cost in learner fits (median over ok cells), mislabel AUC at the noisy
    cells. ``cells``: :func:`valbench.report.frame.load_run`'s frame (its entry names, its ``cost_fits``, and the
    latest record of each grid cell)."""
    rows = []
    for name, group in cells.groupby("method", sort=False):
        ok = group[(group["status"] == OK) & group["cost_fits"].notna()]
        fit_cpu_s = ok["record"].map(lambda r: r.get("learner_fit_cpu_s"))
        auc = ok.loc[(ok["noise_rate"] > 0) & ok["mislabel_auc"].notna(), "mislabel_auc"]
        rows.append({"entry": name, "cells": len(group), "ok": len(ok),
                     "statuses": sorted(set(group["status"]) - {OK}),
                     "fits": float(ok["cost_fits"].median()) if len(ok) else None,
                     "cpu_s": float(ok["cpu_s"].median()) if len(ok) else None,
                     "fit_cpu_s": float(fit_cpu_s.median()) if len(ok) else None,
                     "auc": float(auc.mean()) if len(auc) else None, "auc_cells": len(auc)})
    return sorted(rows, key=lambda r: (r["fits"] is None, r["fits"] or 0))


def markdown(run_dir: Path, rows: list[dict]) -> str:
    """The table, one line per entry."""
    lines = [f"# Cost per method in learner fits, and mislabel AUC ({run_dir.name}; benchmarks/grid_method_cost.py)",
             "", "Median over the entry's ok cells of (the method's fit CPU s) / (one learner fit on the whole train "
             "split, CPU s, timed in the same worker); mislabel AUC: mean over its cells with flipped labels.", "",
             "| method | cells (ok) | CPU s | one learner fit, CPU s | learner fits | mislabel AUC (cells) | not ok |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        def num(v: float | None, fmt: str) -> str:
            return "-" if v is None else format(v, fmt)
        auc = "-" if r["auc"] is None else f"{r['auc']:.3f} ({r['auc_cells']})"
        lines.append(f"| {r['entry']} | {r['cells']} ({r['ok']}) | {num(r['cpu_s'], '.1f')} | "
                     f"{num(r['fit_cpu_s'], '.1f')} | {num(r['fits'], '.2f')} | {auc} | {', '.join(r['statuses'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, help="write the markdown table here (default: print it)")
    args = parser.parse_args(argv)
    try:
        cells = load_run(args.run_dir).cells
    except DataError as err:  # not a run directory: one line, not a traceback
        raise SystemExit(str(err)) from None
    text = markdown(args.run_dir, summarise(cells))
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
