"""Each method's cost in learner fits and its mislabel AUC, read from a run's store (e.g. the CNN grid's).

A cell records the CPU seconds of the method's fit (``cpu_s``) and of one fit of the learner on the whole train
split (``learner_fit_cpu_s``, timed in the same worker for the ``cap_fits`` cap); their ratio is the method's
cost in learner fits, the unit issue 28's goals are stated in (each attribution method within 10 CNN fits,
TracIn on the last layer within 2). Cells over the cap are listed with the cap they ran past. Usage::

    python benchmarks/grid_method_cost.py reports/real-cnn [--out benchmarks/results/cnn_grid_cost.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from valbench.registry import METHODS, load_installed


def entry(record: dict, varied: dict) -> str:
    """The method with the parameters its grid varies (``varied``: the config's method_params) and those that
    differ from its defaults (all of them when it is not installed)."""
    params = record.get("method_params") or {}
    defaults = getattr(METHODS.get(record["method"]), "params", {})
    shown = {k: v for k, v in params.items()
             if k in varied.get(record["method"], {}) or k not in defaults or defaults[k] != v}
    return record["method"] + (f" ({', '.join(f'{k}={v}' for k, v in sorted(shown.items()))})" if shown else "")


def summarise(records: list[dict], varied: dict) -> list[dict]:
    """Per entry: cells, ok cells, cost in learner fits (median over ok cells), mislabel AUC at the noisy cells."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[entry(r, varied)].append(r)
    rows = []
    for name, cells in groups.items():
        ok = [r for r in cells if r.get("status") == "ok" and r.get("learner_fit_cpu_s")]
        fits = [r["cpu_s"] / r["learner_fit_cpu_s"] for r in ok]
        auc = [r["mislabel_auc"] for r in ok if r.get("noise_rate", 0) > 0 and r.get("mislabel_auc") is not None]
        rows.append({"entry": name, "cells": len(cells), "ok": len(ok),
                     "statuses": sorted({r.get("status") for r in cells} - {"ok"}),
                     "fits": float(np.median(fits)) if fits else None,
                     "cpu_s": float(np.median([r["cpu_s"] for r in ok])) if ok else None,
                     "fit_cpu_s": float(np.median([r["learner_fit_cpu_s"] for r in ok])) if ok else None,
                     "auc": float(np.mean(auc)) if auc else None, "auc_cells": len(auc)})
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
    store = args.run_dir / "results.jsonl"
    if not store.is_file():
        raise SystemExit(f"{store} does not exist: give a run directory (one with results.jsonl)")
    load_installed()
    records = [json.loads(line) for line in store.read_text().splitlines() if line.strip()]
    config = args.run_dir / "config.json"
    varied = (json.loads(config.read_text()).get("method_params") or {}) if config.is_file() else {}
    text = markdown(args.run_dir, summarise(records, varied))
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
