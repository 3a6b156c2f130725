"""The HTML report of a run: figures, tables and provenance in ``RUN_DIR/index.html``.

``render_report(run_dir)`` reads ``results.jsonl`` (and ``config.json`` when present) and writes, beside
them: ``index.html`` (self-contained: figures embedded as base64 PNG), the same figures as PNG files,
and ``summary.md`` / ``results.csv`` from :mod:`valbench.report.markdown`. Tables give mean ± standard error over
seeds; figures give mean with a 95 % confidence interval.

Cells are grouped into *settings* (one dataset with its parameters, at one noise rate) and *methods*
(one method with its parameters), labelled by :class:`valbench.report.labels.Labels` like every other output. The
page answers first: the verdict (:mod:`valbench.report.stats`), the rank diagram and quality against cost; the
detailed figures and tables follow.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valbench.report import plots
from valbench.report import stats
from valbench.report.labels import Labels
from valbench.protocol import DataError
from valbench.report.frame import load_records
from valbench.report.markdown import write_summary

INDEX = "index.html"
OVER_CAP = "over cap"  # valbench.runner.STATUS_OVER_CAP: the fit ran past the run's cap of learner fits
PACKAGES = ["torch", "numpy", "scipy", "scikit-learn", "pandas", "cvxpy", "cvxpylayers", "diffcp", "clarabel",
            "joblib", "matplotlib", "seaborn", "mlxtend", "mnist1d", "opendataval", "valbench"]


# ---------------------------------------------------------------------------------------------------- labels

def _natural(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def label_cells(records: list[dict], config: dict | None = None) -> pd.DataFrame:
    """One row per cell with its ``setting`` and ``method`` labels, ordered by dataset (config order), params, noise."""
    labels = Labels(records)
    order = {name: i for i, name in enumerate((config or {}).get("datasets") or [])}
    rows = []
    for r in records:
        params = r.get("dataset_params") or {}
        rows.append({
            "setting": labels.setting(r), "regime": labels.regime(r), "method": labels.method(r),
            "family": labels.family(r),
            "dataset": r["dataset"], "method_name": r["method"],
            "seed": r.get("seed"), "noise_rate": r.get("noise_rate"), "status": r.get("status"),
            "error": r.get("error"), "traceback": r.get("traceback"), "n_train": r.get("n_train"),
            "n_noisy": r.get("n_noisy"), "full_accuracy": r.get("full_accuracy"),
            "mislabel_auc": r.get("mislabel_auc"), "kmeans_f1": r.get("kmeans_f1"), "wall_s": r.get("wall_s"), "cpu_s": r.get("cpu_s"),
            "peak_rss_mb": r.get("peak_rss_mb"), "utility_evals": r.get("utility_evals"),
            "sort_key": (order.get(r["dataset"], len(order)), r["dataset"],
                       tuple(_natural(params[k]) for k in sorted(params)), r.get("noise_rate") or 0.0),
            "record": r,
        })
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame.sort_values(["sort_key", "method", "seed"], kind="stable",
                              key=lambda s: s if s.name in ("sort_key", "seed") else s.map(str))
    for column in ("full_accuracy", "mislabel_auc", "kmeans_f1", "wall_s", "cpu_s", "peak_rss_mb"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame.reset_index(drop=True)


def budget_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (successful cell, budget) with the budget as a fraction of the train set."""
    rows = []
    for cell in cells[cells.status == "ok"].itertuples():
        for b in cell.record.get("budgets") or []:
            fraction = b["budget"] if b["budget"] <= 1 else b["k"] / cell.n_train
            rows.append({"setting": cell.setting, "regime": cell.regime, "method": cell.method, "seed": cell.seed,
                         "budget": b["budget"], "fraction": fraction, "accuracy": b.get("accuracy"),
                         "full_accuracy": cell.full_accuracy})
    return pd.DataFrame(rows, columns=["setting", "regime", "method", "seed", "budget", "fraction", "accuracy",
                                       "full_accuracy"]).astype({"accuracy": float, "fraction": float})


def detection_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (successful cell with flipped labels, inspected fraction)."""
    rows = []
    for cell in cells[cells.status == "ok"].itertuples():
        curve = cell.record.get("detection_curve")
        if not curve:
            continue
        n_noisy = cell.n_noisy if cell.n_noisy is not None and not pd.isna(cell.n_noisy) else None
        noisy_fraction = n_noisy / cell.n_train if n_noisy and cell.n_train else (cell.noise_rate or 0.0)
        for inspected, found in zip(curve["inspected"], curve["found"]):
            rows.append({"setting": cell.setting, "method": cell.method, "seed": cell.seed, "inspected": inspected,
                         "found": found, "noisy_fraction": noisy_fraction})
    return pd.DataFrame(rows, columns=["setting", "method", "seed", "inspected", "found", "noisy_fraction"])


def removal_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (successful cell with a removal curve, removed fraction), the full-data fit at 0 removed."""
    rows = []
    for cell in cells[cells.status == "ok"].itertuples():
        curve = cell.record.get("removal_curve")
        if not curve:
            continue
        points = [(0.0, cell.full_accuracy), *zip(curve["removed"], curve["accuracy"])]
        rows += [{"setting": cell.setting, "method": cell.method, "seed": cell.seed, "removed": removed,
                  "accuracy": accuracy} for removed, accuracy in points]
    return pd.DataFrame(rows, columns=["setting", "method", "seed", "removed", "accuracy"]).astype(
        {"removed": float, "accuracy": float})


# ---------------------------------------------------------------------------------------------------- tables

def mean_se(values: pd.Series, digits: int = 3) -> str:
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if values.empty:
        return "-"
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {se:.{digits}f}"


def _seconds(values: pd.Series) -> str:
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if values.empty:
        return "-"
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{values.mean():.3g} ± {se:.2g}"


def _budget_heading(budget: float) -> str:
    return f"acc@{budget * 100:.3g}%" if budget <= 1 else f"acc@{int(budget)} pts"


def value_table(cells: pd.DataFrame, budgets: pd.DataFrame) -> pd.DataFrame:
    """Rows (setting, method): accuracy per budget, on all data, and mislabel AUC, as mean ± SE over seeds."""
    keys = ["setting", "method"]
    index = pd.MultiIndex.from_frame(cells[keys].drop_duplicates())
    table = pd.DataFrame(index=index)
    if not budgets.empty:
        by_budget = budgets.pivot_table(index=keys, columns="budget", values="accuracy", aggfunc=mean_se, sort=False)
        by_budget.columns = [_budget_heading(b) for b in by_budget.columns]
        table = table.join(by_budget)
    ok = cells[cells.status == "ok"].groupby(keys, sort=False)
    table = table.join(ok.full_accuracy.agg(mean_se).rename("acc (all data)"))
    table = table.join(ok.mislabel_auc.agg(mean_se).rename("mislabel AUC"))
    table = table.join(ok.kmeans_f1.agg(mean_se).rename("2-means F1"))
    table["cells ok / run"] = cells.groupby(keys, sort=False).status.agg(
        lambda s: f"{(s == 'ok').sum()} / {len(s)}" + (f" ({(s == OVER_CAP).sum()} over cap)" if (s == OVER_CAP).any()
                                                        else ""))
    over = cells.groupby(keys, sort=False).status.agg(lambda s: (s == OVER_CAP).all())
    table = table.astype(object).fillna("-")
    table.loc[over[over].index, [c for c in table.columns if c != "cells ok / run"]] = OVER_CAP
    return table.reset_index().rename(columns={"setting": "dataset"})


def cost_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Rows (setting, method): fit seconds, CPU seconds, peak memory and models trained, mean ± SE."""
    ok = cells[cells.status == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["setting", "method"])
    grouped = ok.groupby(["setting", "method"], sort=False)
    table = pd.DataFrame({
        "train points": grouped.n_train.agg(lambda s: ", ".join(str(int(v)) for v in sorted(set(s.dropna())))),
        "fit wall s": grouped.wall_s.agg(_seconds), "fit CPU s": grouped.cpu_s.agg(_seconds),
        "peak RSS MiB": grouped.peak_rss_mb.agg(lambda s: mean_se(s, 0)),
        "models trained": grouped.utility_evals.agg(lambda s: mean_se(s, 0)),
    })
    return table.reset_index().rename(columns={"setting": "dataset"})


RANK_METRICS = {  # column -> (heading, higher is better)
    "subset_value": ("subset value (mean acc over budgets)", True),
    "mislabel_auc": ("mislabel AUC", True),
    "wall_s": ("fit time", False),
}


def ranking_table(cells: pd.DataFrame, budgets: pd.DataFrame) -> pd.DataFrame:
    """Mean rank of each method across settings per metric (1 = best), ± SE over settings, with the count.

    Within a setting a method's metric is its mean over seeds; methods without a value there (failed, or
    no flipped labels) are not ranked in that setting.
    """
    ok = cells[cells.status == "ok"]
    per_cell = ok[["setting", "method", "seed", "mislabel_auc", "wall_s"]].copy()
    if not budgets.empty:
        value = budgets.groupby(["setting", "method", "seed"], sort=False).accuracy.mean().rename("subset_value")
        per_cell = per_cell.merge(value.reset_index(), on=["setting", "method", "seed"], how="left")
    else:
        per_cell["subset_value"] = np.nan
    means = per_cell.groupby(["setting", "method"], sort=False)[list(RANK_METRICS)].mean()
    methods = sorted(cells.method.unique())
    table = pd.DataFrame(index=pd.Index(methods, name="method"))
    for column, (heading, higher) in RANK_METRICS.items():
        ranks = means[column].dropna().groupby(level="setting").rank(ascending=not higher, method="average")
        by_method = ranks.groupby(level="method")
        table[f"{heading} rank"] = [
            f"{by_method.get_group(m).mean():.2f} ± {_se(by_method.get_group(m)):.2f} ({len(by_method.get_group(m))})"
            if m in by_method.groups else "-" for m in methods]
    table["_sort"] = [_leading_float(v) for v in table.iloc[:, 0]]
    return table.sort_values("_sort").drop(columns="_sort").reset_index()


def _se(values: pd.Series) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def _leading_float(text: str) -> float:
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return math.inf


def failures_table(cells: pd.DataFrame) -> pd.DataFrame:
    failed = cells[cells.status != "ok"]
    return failed[["setting", "method", "seed", "noise_rate", "status", "error", "traceback"]].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------- provenance

def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine() -> dict[str, str]:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cores (os.cpu_count)": str(os.cpu_count())}
    if hasattr(os, "sched_getaffinity"):
        info["cores usable by this process"] = str(len(os.sched_getaffinity(0)))
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        info["memory"] = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return info


# ---------------------------------------------------------------------------------------------------- HTML

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: .8em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .85em; }
.note { color: #555; font-size: .9em; } .failed td { background: #fff4f4 !important; }
details summary { cursor: pointer; color: #555; }
"""


def _table_html(frame: pd.DataFrame, css_class: str = "") -> str:
    if frame.empty:
        return "<p class='note'>(nothing to show)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        tds = []
        for value in row:
            text = "-" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
            tds.append(f"<td{' class=num' if _is_number(text.split(' ')[0]) else ''}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table class='{css_class}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _failures_html(failures: pd.DataFrame) -> str:
    if failures.empty:
        return "<p>No cell failed.</p>"
    rows = []
    for f in failures.itertuples(index=False):
        trace = (f"<details><summary>traceback</summary><pre>{html.escape(f.traceback)}</pre></details>"
                 if isinstance(f.traceback, str) and f.traceback else "")
        rows.append(f"<tr><td>{html.escape(str(f.setting))}</td><td>{html.escape(str(f.method))}</td>"
                    f"<td class=num>{f.seed}</td><td class=num>{f.noise_rate:g}</td><td>{html.escape(str(f.status))}</td>"
                    f"<td>{html.escape(str(f.error))}{trace}</td></tr>")
    return ("<table class='failed'><thead><tr><th>dataset</th><th>method</th><th>seed</th><th>noise</th>"
            "<th>status</th><th>error</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _figure_html(path: Path, alt: str, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(alt)}'>"
            f"<figcaption class='note'>{caption} (<a href='{path.name}'>{path.name}</a>)</figcaption></figure>")


def _dict_table(values: dict[str, str]) -> str:
    return _table_html(pd.DataFrame({"name": list(values), "value": list(values.values())}))


# ---------------------------------------------------------------------------------------------------- entry point

FIGURES = {
    "ranks": "ranks.png",
    "quality_cost": "quality_vs_cost.png",
    "subset_value": "subset_value.png",
    "removal": "removal_curves.png",
    "detection_curves": "detection_curves.png",
    "mislabel_auc": "mislabel_auc.png",
    "cost": "cost.png",
    "cost_vs_size": "cost_vs_train_size.png",
}


def quality_cost_points(cells: pd.DataFrame, budgets: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, method): the subset-value area (mean, 95 % CI) and the median fit seconds."""
    ok = cells[cells.status == "ok"]
    seconds = ok.groupby(["setting", "method"], sort=False).wall_s.median().rename("seconds")
    points = stats.area_summary(budgets).join(seconds, on=["setting", "method"])
    return points.dropna(subset=["area", "seconds"])


def rank_figure_name(regime: str, several: bool) -> str:
    """``ranks.png`` for a run with one regime, ``ranks-<regime>.png`` (e.g. ``ranks-noise-0.1.png``) for each of several."""
    if not several:
        return FIGURES["ranks"]
    slug = "".join(c if c.isalnum() or c == "." else "-" for c in regime.lower()).strip("-")
    return f"ranks-{'-'.join(filter(None, slug.split('-')))}.png"


def render_figures(cells: pd.DataFrame, budgets: pd.DataFrame, detection: pd.DataFrame, run_dir: Path,
                   ranks: dict[str, stats.RankAnalysis] | None = None) -> dict[str, Path]:
    """Write every figure the data supports; return {figure id: PNG path} (rank figures: ``ranks:<regime>``)."""
    families = dict(zip(cells.method, cells.family))
    palette = plots.method_palette(list(cells.method), families)
    ok = cells[cells.status == "ok"]
    out: dict[str, Path] = {}
    for regime, analysis in (ranks or {}).items():
        if analysis.result is not None:
            name = rank_figure_name(regime, len(ranks) > 1)
            key = f"ranks:{regime}" if len(ranks) > 1 else "ranks"
            out[key] = plots.rank_figure(analysis, run_dir / name, regime if len(ranks) > 1 else "")
    if not budgets.empty:
        points = quality_cost_points(cells, budgets)
        if not points.empty:
            out["quality_cost"] = plots.quality_cost_figure(points, palette, run_dir / FIGURES["quality_cost"],
                                                            families)
        out["subset_value"] = plots.subset_value_figure(budgets, palette, run_dir / FIGURES["subset_value"], families)
    removal = removal_rows(cells)
    if not removal.empty:
        out["removal"] = plots.removal_figure(removal, palette, run_dir / FIGURES["removal"], families)
    if not detection.empty:
        out["detection_curves"] = plots.detection_figure(detection, palette, run_dir / FIGURES["detection_curves"],
                                                         families)
    if ok.mislabel_auc.notna().any():  # columns: the settings with flipped labels (clean ones have nothing to detect)
        noisy = cells[cells.setting.isin(cells.setting[cells.noise_rate.fillna(0) > 0])]
        out["mislabel_auc"] = plots.auc_heatmap(noisy, run_dir / FIGURES["mislabel_auc"])
    if ok.wall_s.notna().any():
        out["cost"] = plots.cost_figure(ok, palette, run_dir / FIGURES["cost"], families)
    sizes = ok.dropna(subset=["n_train", "wall_s"]).groupby("dataset").n_train.nunique()
    swept = list(sizes[sizes > 1].index)
    if swept:
        out["cost_vs_size"] = plots.cost_vs_size_figure(ok[ok.dataset.isin(swept)], palette,
                                                        run_dir / FIGURES["cost_vs_size"], families)
    return out


def render_report(run_dir: str | Path) -> Path:
    """Write ``index.html``, its PNG figures, ``summary.md`` and ``results.csv`` into ``run_dir``; return the HTML path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} does not exist")
    records = load_records(run_dir)
    config_path = run_dir / "config.json"
    config_text = config_path.read_text() if config_path.exists() else None
    config = json.loads(config_text) if config_text else None
    write_summary(run_dir)
    for stale in [*FIGURES.values(), *(p.name for p in run_dir.glob("ranks-*.png"))]:
        (run_dir / stale).unlink(missing_ok=True)  # a rerender must not show figures the data no longer supports

    cells = label_cells(records, config)
    if cells.empty:
        sections = ["<p>No results yet: <code>results.jsonl</code> has no complete record.</p>"]
    else:
        budgets, detection = budget_rows(cells), detection_rows(cells)
        ranks = stats.rank_analyses(budgets) if not budgets.empty else None
        figures = render_figures(cells, budgets, detection, run_dir, ranks)
        sections = _verdict_sections(cells, budgets, ranks, figures) + _sections(cells, budgets, figures)
    sections += _provenance(config_text, cells)

    n_ok = int((cells.status == "ok").sum()) if not cells.empty else 0
    n_failed = len(cells) - n_ok
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>valbench: {html.escape(run_dir.name)}"
            f"</title><style>{CSS}</style></head><body><h1>valbench report: {html.escape(run_dir.resolve().name)}</h1>"
            f"<p>{n_ok} cells ok, {n_failed} failed. Generated {generated}. "
            "Also here: <a href='summary.md'>summary.md</a>, <a href='results.csv'>results.csv</a> "
            "(one row per cell and budget), <a href='results.jsonl'>results.jsonl</a> (raw records).</p>"
            "<p class='note'>Tables: mean ± standard error over seeds. Figures: mean and 95% confidence "
            "interval (Student t) over seeds.</p>"
            + _contents() + "".join(sections) + "</body></html>\n")
    target = run_dir / INDEX
    tmp = run_dir / (INDEX + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


def _contents() -> str:
    items = [("verdict", "Verdict"), ("ranks", "Ranks"), ("quality-cost", "Quality vs cost"), ("value", "Subset value"),
             ("removal", "Point removal"), ("detection", "Mislabel detection"), ("cost", "Cost"),
             ("ranking", "Ranking per metric"), ("failures", "Failed cells"), ("config", "Configuration"),
             ("environment", "Environment")]
    return "<nav><p>" + " · ".join(f"<a href='#{a}'>{t}</a>" for a, t in items) + "</p></nav>"


def _fig(figures: dict[str, Path], key: str, alt: str, caption: str) -> str:
    return _figure_html(figures[key], alt, caption) if key in figures else f"<p class='note'>No data for {alt}.</p>"


def _verdict_sections(cells: pd.DataFrame, budgets: pd.DataFrame, ranks: dict[str, stats.RankAnalysis] | None,
                      figures: dict[str, Path]) -> list[str]:
    """What the page says first: the verdict per regime and dataset, the rank diagrams, quality against cost."""
    out = ["<h2 id='verdict'>Verdict</h2>"]
    if budgets.empty:
        out.append("<p class='note'>No successful cell: nothing to compare.</p>")
    else:
        out += _verdict_html(cells, budgets)
    out.append("<h2 id='ranks'>Ranks across datasets and budgets</h2>")
    several = ranks is not None and len(ranks) > 1
    if several:
        out.append("<p class='note'>Ranked separately per regime (clean labels, each noise rate, each learner): "
                   "a method that wins only by dropping flipped labels shows it here.</p>")
    for regime, analysis in (ranks or {"": None}).items():
        if several:
            out.append(f"<h3>{html.escape(regime)}</h3>")
        if analysis is None or analysis.result is None:
            out.append(f"<p class='note'>No rank test: {html.escape(analysis.reason if analysis else 'no budgets')}.</p>")
            continue
        dropped = (f" Left out because they did not run on every dataset: {html.escape(', '.join(analysis.dropped))}."
                   if analysis.dropped else "") + html.escape(_over_cap_note(cells))
        out.append(_fig(figures, f"ranks:{regime}" if several else "ranks", "critical-difference diagram",
                        "Methods ranked by mean test accuracy over seeds in each (dataset x budget) block, 1 = best; "
                        "Friedman test with the Nemenyi critical difference (autorank; Demšar 2006). Methods joined "
                        "by a bar are not significantly different." + dropped))
    out += ["<h2 id='quality-cost'>Quality vs cost</h2>",
            _fig(figures, "quality_cost", "quality vs cost",
                 "Area under the subset-value curve (mean accuracy over the budgets, 95 % CI over seeds) against "
                 "the median fit seconds, log scale. Dashed, outlined: the Pareto front (no method is both cheaper "
                 "and better).")]
    return out


def _over_cap_note(cells: pd.DataFrame) -> str:
    """Which (method, dataset) pairs ran past the cap of learner fits, so no figure leaves them out silently."""
    over = cells[cells.status == OVER_CAP]
    if over.empty:
        return ""
    pairs = over.groupby(["method", "setting"], sort=False).size()
    listed = "; ".join(f"{m} on {s} ({n} cell{'s' * (n > 1)})" for (m, s), n in pairs.items())
    return f" Over the cap of learner fits per method fit (no result, marked 'over cap' in the tables): {listed}."


def _verdict_html(cells: pd.DataFrame, budgets: pd.DataFrame) -> list[str]:
    """Per regime, per dataset: the best per budget with its ties, the best of each family, then the attribution
    (hostcp-fl vs pipelines, cleaning vs selection) and the mislabel-detection ranking of the regime."""
    result = stats.verdict(budgets, cells)
    families = dict(zip(cells.method, cells.family))
    bests = stats.family_bests(budgets, families)
    identities = Labels(list(cells.record)).identities(list(cells.record))
    attributions = {a.setting: a for a in stats.attribution(budgets, identities)}
    ranking = stats.detection_ranking(cells)
    sentences = stats.near_best_lines(result)
    tables = stats.verdict_tables(result)
    out = ["<p class='note'>Given separately for clean labels, for each noise rate and for each learner. Per "
           "dataset: the method with the highest mean test accuracy at each budget (references such as random "
           "excluded), the methods tied with it (their paired difference to the best over seeds has a 95 % t "
           "interval reaching 0), and the best's gain over random in accuracy points; then the best entry of each "
           "family with its paired difference to the best overall. Area: the mean accuracy over the budget range "
           "(trapezoid); the cheapest method within one point of the best area is the choice when fit time "
           "matters.</p>"]
    regimes = stats.regime_of(cells)
    order = stats.ordered_regimes(regimes[s] for s in tables)
    head = "h4" if len(order) > 1 else "h3"  # several regimes: a heading per regime, the datasets under it
    for regime in order:
        if len(order) > 1:
            out.append(f"<h3>{html.escape(regime.capitalize())}</h3>")
        settings = [s for s in tables if regimes[s] == regime]
        for setting in settings:
            out += [f"<{head}>{html.escape(setting)}</{head}>", f"<p>{html.escape(sentences.get(setting, ''))}</p>",
                    _table_html(tables[setting], "verdict"),
                    _table_html(stats.family_best_table(bests[bests.setting == setting]), "verdict")]
        here = [attributions[s] for s in settings if s in attributions]
        if here:
            out += ["<p class='note'>Where the win comes from (subset-value area, paired over seeds, in points; "
                    "wins/loses: the 95 % interval excludes 0). The best pipeline and its detector are picked on "
                    "this data, which favours them.</p>", _table_html(stats.attribution_table(here))]
        detection = stats.detection_table(ranking[ranking.setting.isin(settings)])
        if not detection.empty:
            out += ["<p class='note'>Mislabel detection: ROC-AUC (suspicion = −value) / 2-means F1 and the rank "
                    "by AUC among every method of the run (pipelines left out: their scores are their "
                    "detector's).</p>", _table_html(detection)]
        elif regime.startswith("clean"):
            out.append("<p class='note'>Clean labels: no flipped label, so no mislabel detection to rank.</p>")
    return out


def _sections(cells: pd.DataFrame, budgets: pd.DataFrame, figures: dict[str, Path]) -> list[str]:
    def fig(key: str, alt: str, caption: str) -> str:
        return _fig(figures, key, alt, caption)

    return [
        "<h2 id='value'>1. Subset value</h2>",
        fig("subset_value", "subset value curves",
            "Test accuracy of the learner retrained on the budget's highest-valued train points (or the method's "
            "own subset). Bold with a 95 % band: each family's best in the panel; faded: the others. Dashed: the "
            "learner trained on all (noisy) train data." + html.escape(_over_cap_note(cells))),
        _table_html(value_table(cells, budgets)),
        "<h2 id='removal'>2. Point removal</h2>",
        fig("removal", "point removal curves",
            "Test accuracy after removing the highest-valued 5 ... 50 % of the train split and retraining "
            "(OpenDataVal's remove-high task, pyDVL's point removal): a steeper drop means the values found the "
            "points that matter. Set selectors are ranked by their scores. Bold: each family's best."),
        "<h2 id='detection'>3. Mislabel detection</h2>",
        fig("detection_curves", "detection curves",
            "Inspecting train points from the lowest value up: the fraction of flipped labels found. Dotted: a "
            "random order; dashed: a perfect detector."),
        fig("mislabel_auc", "mislabel ROC-AUC heat map",
            "ROC-AUC of flipped-label detection with suspicion = −value; 0.5 is chance. failed: no successful "
            "cell; n/a: no flipped labels to detect. The table in section 1 also gives the F1 of OpenDataVal's "
            "2-means split (the lower cluster of values called flipped)."),
        "<h2 id='cost'>4. Cost</h2>",
        fig("cost", "wall-clock time per method and dataset",
            f"Wall-clock seconds of the method's fit, log scale (times below {plots.MIN_SECONDS:g} s are drawn "
            "at that floor)."),
        (fig("cost_vs_size", "time vs train size", "Wall-clock seconds vs train-set size where the run varied it.")
         if "cost_vs_size" in figures else "<p class='note'>The run did not vary any dataset's train size.</p>"),
        _table_html(cost_table(cells)),
        "<h2 id='ranking'>5. Ranking per metric</h2>",
        "<p class='note'>Mean rank across datasets (1 = best; ± standard error over datasets; in brackets the "
        "number of datasets ranked). Subset value: accuracy averaged over budgets; time: lower is better.</p>",
        _table_html(ranking_table(cells, budgets)),
        "<h2 id='failures'>6. Failed cells</h2>",
        _failures_html(failures_table(cells)),
    ]


def _provenance(config_text: str | None, cells: pd.DataFrame) -> list[str]:
    hosts = sorted({str(r.get("host")) for r in cells["record"] if r.get("host")}) if not cells.empty else []
    machine_info = machine()
    if hosts:
        machine_info["hosts that ran cells"] = ", ".join(hosts)
    config_text = config_text if config_text is not None else "(no config.json in the run directory)"
    return [
        "<h2 id='config'>7. Configuration</h2><p class='note'>config.json exactly as the run wrote it.</p>",
        f"<pre>{html.escape(config_text)}</pre>",
        "<h2 id='environment'>8. Environment</h2>",
        "<p class='note'>Package versions and machine where this report was rendered "
        f"(Python at {html.escape(sys.executable)}).</p>",
        "<div style='display:flex; gap:2em; flex-wrap:wrap'>", _dict_table(package_versions()),
        _dict_table(machine_info), "</div>",
    ]
