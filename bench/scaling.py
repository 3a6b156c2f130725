"""How each method's cost grows with the train size: ``python -m valbench.scaling`` (``make scaling``).

Every native method is fitted on a dataset (``synthetic`` by default; ``--dataset``, ``--data k=v`` for its
parameters) at train sizes N (250 ... 20,000 by default; the validation and test splits stay fixed) and its
``fit`` is timed in a forked child (killed at the cap, :mod:`valbench.isolate`): CPU seconds of that process (torch on one thread by default, so CPU time is compute time
and other jobs sharing the machine barely move it) and wall seconds, the median of a few repeats when a fit
is fast, with the peak resident memory seen during the fit (:func:`valbench.measure.measure`: the process's
RSS, the data and the interpreter included). Beside it, one learner fit on the same N points is timed, so
``fits`` = method CPU s / learner CPU s is the cost in learner fits (the real grid caps it at 60). A method
stops at the first size whose fit exceeds the (wall) time cap: that point is recorded as censored
(``seconds >= cap``) and larger sizes are skipped. The empirical complexity exponent is the least-squares
slope of log(CPU seconds) on log(N) over the completed points: seconds ~ c * N^slope.

Writes ``scaling.json`` (every point, and the slope per method), ``scaling.csv`` and ``scaling.png``
(log-log seconds and peak memory vs N, one line per method, slope in the legend) under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from valbench.grid import parse_assignment
from valbench.learners import make_learner
from valbench.measure import measure
from valbench.metrics import budget_sizes
from valbench.registry import METHODS, get_dataset, get_method, load_installed
from valbench.isolate import ChildDied, ChildTimeout, call_in_child

DEFAULT_SIZES = (250, 500, 1000, 2000, 5000, 10000, 20000)
SMALL_FIT_S = 0.5  # fits faster than this are repeated (up to REPEATS) and the median is kept
REPEATS = 5
WARMUP_N, WARMUP_CAP_S = 100, 5.0


def native_methods() -> list[str]:
    """Registered methods implemented in this repository (not the peers adapted from other libraries, not plugins)."""
    load_installed()
    return sorted(name for name, cls in METHODS.items()
                  if cls.__module__.startswith("valbench.methods.") and cls.family != "peer")


def time_fit(method: str, n_train: int, cap_s: float, dataset: str = "synthetic", seed: int = 0,
             n_valid: int = 200, n_test: int = 200, budgets: tuple[float, ...] = (0.1, 0.2),
             data_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """CPU and wall seconds and peak RSS of one ``fit`` of ``method`` at ``n_train`` points (status ok, timeout
    or failed), with one learner fit on the same points for scale (``learner_s``, ``fits``)."""
    data = get_dataset(dataset)(seed=seed, n_train=n_train, n_valid=n_valid, n_test=n_test, **(data_params or {}))
    cls = get_method(method)
    kwargs = {"budgets": budget_sizes(budgets, data.n_train, data.name)} if cls.selects_sets else {}
    row: dict[str, Any] = {"method": method, "n_train": n_train, "seconds": None, "wall_s": None, "repeats": 0,
                           "peak_rss_mb": None, "learner_s": None, "fits": None, "status": "ok", "error": None}

    def fits() -> dict[str, Any]:  # in a forked child: a fit past the cap is killed from outside
        _, one = measure(lambda: make_learner("logreg", data.n_features, data.n_classes, seed=seed).fit(
            data.x_train, data.y_train))
        times, walls, peaks = [], [], []
        while True:
            learner = make_learner("logreg", data.n_features, data.n_classes, seed=seed)
            _, cost = measure(lambda: cls().fit(data, learner, seed, **kwargs))
            times.append(cost.cpu_s)
            walls.append(cost.wall_s)
            peaks.append(cost.peak_rss_mb)
            if sum(walls) > SMALL_FIT_S or len(times) >= REPEATS:
                break
        return {"learner_s": one.cpu_s, "seconds": statistics.median(times), "wall_s": statistics.median(walls),
                "repeats": len(times), "peak_rss_mb": max(peaks)}

    try:
        row.update(call_in_child(fits, (), deadline_s=cap_s))
    except ChildTimeout:
        row.update(status="timeout", seconds=cap_s, wall_s=cap_s, error=f"over the cap of {cap_s:g} s")
    except (ChildDied, RuntimeError) as err:  # one method's failure is a row, not the end of the sweep
        row.update(status="failed", error=str(err))
    if row["seconds"] and row["learner_s"]:
        row["fits"] = row["seconds"] / row["learner_s"]
    return row


def loglog_slope(rows: list[dict[str, Any]]) -> float | None:
    """Least-squares slope of log(seconds) on log(N) over a method's completed points (None under 2)."""
    pts = [(r["n_train"], r["seconds"]) for r in rows if r["status"] == "ok" and r["seconds"]]
    if len(pts) < 2:
        return None
    n, s = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(n, s, 1)[0])


def sweep(methods: list[str], sizes: list[int], cap_s: float, log=print, **options: Any) -> dict[str, Any]:
    """Every method at every size (``options``: :func:`time_fit`'s dataset, budgets and data parameters)."""
    rows: list[dict[str, Any]] = []
    for method in methods:
        time_fit(method, WARMUP_N, min(WARMUP_CAP_S, cap_s), **options)  # lazy imports, first-call costs, untimed
        for n in sorted(sizes):
            row = time_fit(method, n, cap_s, **options)
            rows.append(row)
            shown = "-" if row["seconds"] is None else f"{row['seconds']:.4g} s"
            extra = "".join(f"  {fmt.format(row[k])}" for k, fmt in (("fits", "{:.1f} learner fits"),
                                                                      ("peak_rss_mb", "peak {:.0f} MiB"))
                            if row.get(k) is not None)
            log(f"{method:<14} N={n:<6} {row['status']:<8} {shown} CPU{extra}"
                + (f"  ({row['error']})" if row["error"] else ""))
            if row["status"] != "ok" or row["wall_s"] > cap_s:
                break  # larger sizes would only take longer
    slopes = {m: loglog_slope([r for r in rows if r["method"] == m]) for m in methods}
    return {"cap_s": cap_s, "sizes": sorted(sizes), "rows": rows, "slopes": slopes,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}}


def write_outputs(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(result, indent=2))
    with open(out / "scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["method", "n_train", "seconds", "wall_s", "repeats", "peak_rss_mb",
                                               "learner_s", "fits", "status", "error"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result["rows"])
    paths = [out / "scaling.json", out / "scaling.csv"]
    try:
        paths.append(plot(result, out / "scaling.png"))
    except ImportError as err:  # the numbers are written; the figure is optional
        print(f"warning: no plot ({err})", file=sys.stderr)
    return paths


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, mem) = plt.subplots(1, 2, figsize=(15, 5.5))
    colours = plt.get_cmap("tab20").colors  # distinct up to 20 methods; markers tell apart the rest
    for i, (method, slope) in enumerate(result["slopes"].items()):
        rows = [r for r in result["rows"] if r["method"] == method and r["seconds"]]
        ok = [r for r in rows if r["status"] == "ok"]
        label = f"{method} (slope {slope:.2f})" if slope is not None else method
        line, = ax.plot([r["n_train"] for r in ok], [r["seconds"] for r in ok], "osD^v"[i // 20 % 5] + "-",
                        color=colours[i % 20], label=label)
        capped = [r for r in rows if r["status"] == "timeout"]
        if capped:
            ax.plot([r["n_train"] for r in capped], [r["seconds"] for r in capped], "^", color=line.get_color())
        measured = [r for r in ok if r.get("peak_rss_mb")]
        mem.plot([r["n_train"] for r in measured], [r["peak_rss_mb"] / 1024 for r in measured], "o-",
                 color=line.get_color())
    ax.axhline(result["cap_s"], color="grey", ls=":", lw=1, label=f"cap {result['cap_s']:g} s (triangles: censored)")
    dataset = result.get("options", {}).get("dataset", "synthetic")
    ax.set(xscale="log", yscale="log", xlabel="train points N", ylabel="fit CPU seconds (1 thread)",
           title=f"Valuation cost vs train size ({dataset}, logreg)")
    ax.grid(True, which="both", alpha=0.3)
    mem.axhline(4, color="grey", ls=":", lw=1, label="4 GiB goal per cell")
    mem.set(xscale="log", xlabel="train points N", ylabel="peak resident memory during fit (GiB)",
            title="Peak memory (process RSS, data included)")
    mem.grid(True, which="both", alpha=0.3)
    handles = ax.get_legend_handles_labels()
    goal = mem.get_legend_handles_labels()
    fig.legend(handles[0] + goal[0], handles[1] + goal[1], fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m valbench.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--methods", help="comma-separated (default: every native method)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="train sizes N")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds per point; larger N skipped past it")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data", action="append", default=[], metavar="PARAM=V",
                        help="a dataset parameter, e.g. dim=784 (numbers parsed)")
    parser.add_argument("--budgets", default="0.1,0.2", help="the set selectors' budgets, fractions of N")
    parser.add_argument("--valid", type=int, default=200, help="validation points (fixed across N)")
    parser.add_argument("--out", type=Path, default=Path("reports/scaling"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    load_installed()
    methods = args.methods.split(",") if args.methods else native_methods()
    for m in methods:
        get_method(m)
    data_params = {}
    for item in args.data:
        _, key, value = parse_assignment(f"{args.dataset}.{item}")
        data_params[key] = value
    options = {"dataset": args.dataset, "budgets": tuple(float(b) for b in args.budgets.split(",")),
               "n_valid": args.valid, "data_params": data_params}
    result = sweep(methods, [int(s) for s in args.sizes.split(",")], args.cap,
                   log=lambda line: print(line, file=sys.stderr, flush=True), **options)
    for path in write_outputs(result, args.out):
        print(path)
    for method, slope in result["slopes"].items():
        last = [r for r in result["rows"] if r["method"] == method and r["status"] == "ok"][-1:]
        at = (f"  at N={last[0]['n_train']}: {last[0]['seconds']:.3g} s, {last[0]['fits'] or 0:.1f} learner fits, "
              f"peak {last[0]['peak_rss_mb'] or 0:.0f} MiB") if last else ""
        print(f"{method:<14} slope {'n/a' if slope is None else f'{slope:.2f}'}{at}")
    return 0



if __name__ == "__main__":
    sys.exit(main())
