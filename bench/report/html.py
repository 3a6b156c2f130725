"""The HTML report of a run: ``RUN_DIR/index.html``, rendered from its :class:`valbench.report.build.Report`.

``render_report(run_dir)`` builds the report once (or takes a built one) and writes, beside the records:
``summary.md`` / ``results.csv`` (:mod:`valbench.report.markdown`), the figures as PNG files and
``index.html`` (self-contained: figures embedded as base64 PNG). The page's first line gives the run's status
against its grid ("partial run: ..."), then the one-screen answer (:func:`valbench.report.tables.answer_table`)
with a link per dataset to its details; everything else follows in collapsible sections (``<details>``), with a
navigation bar that stays in view. Nothing here computes a best, a tie or an interval: the verdict did.
"""

from __future__ import annotations

import base64
import html
import math
import platform
import re
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

import valbench.report.plots as plots
import valbench.report.stats as stats
from valbench.report.build import Report, build_report
from valbench.report.frame import OK, OVER_CAP
from valbench.report.markdown import write_summary
from valbench.report.stats import attribution_table, detection_table, family_best_table
from valbench.report.tables import (answer_table, budget_table, entries_table, footnotes, headline, mean_se,
                                    results_table)

INDEX = "index.html"
PACKAGES = ["torch", "numpy", "scipy", "scikit-learn", "pandas", "cvxpy", "cvxpylayers", "diffcp", "clarabel",
            "joblib", "matplotlib", "seaborn", "mlxtend", "mnist1d", "opendataval", "valbench"]


def _seconds(values: pd.Series) -> str:
    values = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if values.empty:
        return "-"
    if len(values) < stats.MIN_SEEDS:
        return f"{values.mean():.3g} (n=1)"
    return f"{values.mean():.3g} ± {values.std(ddof=1) / math.sqrt(len(values)):.2g}"


def cost_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Rows (setting, method): fit seconds, CPU seconds, peak memory and models trained, mean ± SE."""
    ok = cells[cells.status == OK]
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
    "subset_value": ("subset value (judged metric, area over budgets)", True),
    "mislabel_auc": ("mislabel AUC", True),
    "wall_s": ("fit time", False),
}


def ranking_table(cells: pd.DataFrame, budgets: pd.DataFrame) -> pd.DataFrame:
    """Mean rank of each method across settings per metric (1 = best), ± SE over settings, with the count.

    Within a setting a method's metric is its mean over seeds; methods without a value there (failed, or
    no flipped labels) are not ranked in that setting.
    """
    ok = cells[cells.status == OK]
    per_cell = ok[["setting", "method", "seed", "mislabel_auc", "wall_s"]].copy()
    if not budgets.empty:
        value = stats.subset_value_area(budgets).rename(columns={"area": "subset_value"})
        per_cell = per_cell.merge(value, on=["setting", "method", "seed"], how="left")
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
    failed = cells[cells.status != OK]
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


# ---------------------------------------------------------------------------------------------------- HTML

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1em auto; max-width: 1500px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: .2em; } p.status { margin-top: 0; font-weight: 600; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: .8em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .85em; }
.note { color: #555; font-size: .9em; } .failed td { background: #fff4f4 !important; }
details summary { cursor: pointer; color: #555; }
details > summary > h2, details > summary > h4 { display: inline; }
details > summary > h2 { font-size: 1.3em; } details { margin: .6em 0; }
nav { position: sticky; top: 0; z-index: 10; background: #fff; border-bottom: 1px solid #ddd; padding: .4em 0;
      font-size: .85em; }
[id] { scroll-margin-top: 5em; }
table.answer { font-size: .78em; } table.answer td { padding: .2em .5em; } table.answer td:nth-child(3) { font-weight: 600; }
table.answer tr.regime th { background: #e8eef6; text-align: left; }
tr.flagged td:last-child { background: #fff8e1 !important; }
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
    return (f"<figure><a href='{path.name}'><img src='data:image/png;base64,{data}' alt='{html.escape(alt)}'></a>"
            f"<figcaption class='note'>{caption} (<a href='{path.name}'>{path.name}</a>)</figcaption></figure>")


def _dict_table(values: dict[str, str]) -> str:
    return _table_html(pd.DataFrame({"name": list(values), "value": list(values.values())}))


# ---------------------------------------------------------------------------------------------------- entry point

FIGURES = {
    "ranks": "ranks.png",
    "quality_cost": "quality_vs_cost.png",
    "subset_value": "subset_value.png",
    "subset_value_all": "subset_value_all.png",
    "removal": "removal_curves.png",
    "removal_all": "removal_curves_all.png",
    "detection_curves": "detection_curves.png",
    "detection_curves_all": "detection_curves_all.png",
    "mislabel_auc": "mislabel_auc.png",
    "cost": "cost.png",
    "cost_vs_size": "cost_vs_train_size.png",
}


def quality_cost_points(cells: pd.DataFrame, budgets: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, method): the subset-value area (mean, 95 % CI), the median fit CPU seconds and, where the run
    timed one, the median CPU seconds of one learner fit on the setting's train split (``fit_s``)."""
    ok = cells[cells.status == "ok"]
    seconds = ok.groupby(["setting", "method"], sort=False).cpu_s.median().rename("seconds")
    one_fit = ok.assign(fit_s=ok.record.map(lambda r: r.get("learner_fit_cpu_s")).astype(float))
    points = stats.area_summary(budgets).join(seconds, on=["setting", "method"])
    points = points.join(one_fit.groupby("setting", sort=False).fit_s.median(), on="setting")
    return points.dropna(subset=["area", "seconds"])


def rank_figure_name(regime: str, several: bool) -> str:
    """``ranks.png`` for a run with one regime, ``ranks-<regime>.png`` (e.g. ``ranks-noise-0.1.png``) for each of several."""
    if not several:
        return FIGURES["ranks"]
    slug = "".join(c if c.isalnum() or c == "." else "-" for c in regime.lower()).strip("-")
    return f"ranks-{'-'.join(filter(None, slug.split('-')))}.png"


def render_figures(cells: pd.DataFrame, budgets: pd.DataFrame, detection: pd.DataFrame, removal: pd.DataFrame,
                   run_dir: Path, ranks: dict[str, stats.RankAnalysis] | None = None) -> dict[str, Path]:
    """Write every figure the data supports; return {figure id: PNG path} (rank figures: ``ranks:<regime>``)."""
    families = dict(zip(cells.method, cells.family))
    palette = plots.method_palette(list(cells.method), families)
    ok = cells[cells.status == OK]
    out: dict[str, Path] = {}
    for regime, analysis in (ranks or {}).items():
        if analysis.result is not None:
            name = rank_figure_name(regime, len(ranks) > 1)
            key = f"ranks:{regime}" if len(ranks) > 1 else "ranks"
            out[key] = plots.rank_figure(analysis, run_dir / name, regime if len(ranks) > 1 else "", families)
    if not budgets.empty:
        points = quality_cost_points(cells, budgets)
        if not points.empty:
            out["quality_cost"] = plots.quality_cost_figure(points, palette, run_dir / FIGURES["quality_cost"],
                                                            families)
    curves = [("subset_value", plots.subset_value_figure, budgets), ("removal", plots.removal_figure, removal),
              ("detection_curves", plots.detection_figure, detection)]
    for key, draw, frame in curves:  # the default panels, and every method in a figure of its own
        if not frame.empty:
            out[key] = draw(frame, palette, run_dir / FIGURES[key], families)
            out[f"{key}_all"] = draw(frame, palette, run_dir / FIGURES[f"{key}_all"], families, all_methods=True)
    if ok.mislabel_auc.notna().any():  # columns: the settings with flipped labels (clean ones have nothing to detect)
        noisy = cells[cells.setting.isin(cells.setting[cells.noise_rate.fillna(0) > 0])]
        out["mislabel_auc"] = plots.auc_heatmap(noisy, run_dir / FIGURES["mislabel_auc"])
    if ok.cpu_s.notna().any():
        out["cost"] = plots.cost_figure(cells, palette, run_dir / FIGURES["cost"], families)
    sizes = ok.dropna(subset=["n_train", "cpu_s"]).groupby("dataset").n_train.nunique()
    swept = list(sizes[sizes > 1].index)
    if swept:
        out["cost_vs_size"] = plots.cost_vs_size_figure(ok[ok.dataset.isin(swept)], palette,
                                                        run_dir / FIGURES["cost_vs_size"], families)
    return out


def render_report(run_dir: str | Path, report: Report | None = None) -> Path:
    """Write ``summary.md``, ``results.csv``, the PNG figures and ``index.html`` into ``run_dir`` from ``report``
    (built from ``run_dir`` when not given); return the HTML path."""
    report = report or build_report(run_dir)
    run_dir = report.frames.run_dir
    write_summary(report)
    for stale in [*FIGURES.values(), *(p.name for p in run_dir.glob("ranks-*.png"))]:
        (run_dir / stale).unlink(missing_ok=True)  # a rerender must not show figures the data no longer supports
    frames = report.frames
    cells = frames.cells
    if cells.empty or frames.budgets.empty:
        why = ("<code>results.jsonl</code> has no complete record" if cells.empty
               else "no cell succeeded, so there is nothing to compare")
        body = [f"<p>No results yet: {why}.</p>", _details("failures", "Cells that did not succeed",
                                                          _failures_html(failures_table(cells)) if len(cells) else "")]
    else:
        figures = render_figures(cells, frames.budgets, frames.detection, frames.removal, run_dir,
                                 report.verdict.ranks)
        body = [_answer_html(report)] + _verdict_html(report) + _figure_sections(report, figures) + [
            _details("results", "All results", "<p class='note'>Test accuracy of the learner retrained on the "
                     "top-k subset, mean ± standard error over seeds ((n=1): one seed, no error); area: the "
                     "judged metric's, with its 95 % interval; seeds: ok cells of the seeds the grid asks for.</p>"
                     + _table_html(results_table(frames))),
            _details("failures", "Cells that did not succeed", _failures_html(failures_table(cells)))]
    body += _provenance(report)
    kind = frames.grid.kind
    title = html.escape(f"valbench report: {report.name}" + (f" ({kind})" if kind else ""))
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(report.name)}</title>"
            f"<style>{CSS}</style></head><body><h1>{title}</h1>"
            f"<p class='status'>{html.escape(frames.grid.line())}</p>{_nav()}" + "".join(body)
            + (f"<p class='note'>Run note: {html.escape(frames.grid.note)}</p>" if frames.grid.note else "")
            + "<p class='note'>Also here: <a href='summary.md'>summary.md</a>, <a href='results.csv'>results.csv</a> "
            "(one row per cell and budget), <a href='results.jsonl'>results.jsonl</a> (raw records).</p>"
            f"<script>{OPEN_TARGET}</script></body></html>\n")
    target = run_dir / INDEX
    tmp = run_dir / (INDEX + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


# a link to a section inside a closed <details> opens it (and its parents), so the navigation always lands
OPEN_TARGET = ("function openTarget(){var t=document.getElementById(decodeURIComponent(location.hash.slice(1)));"
               "for(;t;t=t.parentElement){if(t.tagName==='DETAILS'){t.open=true;}}}"
               "window.addEventListener('hashchange',openTarget);openTarget();")


def _slug(text: str) -> str:
    """An anchor from a label: ``caravan, noise 0.2`` -> ``caravan-noise-0.2``."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def _details(anchor: str, title: str, body: str, level: int = 2, open_: bool = False) -> str:
    """A collapsible section whose heading is its summary, reachable by ``#anchor``."""
    return (f"<details id='{anchor}'{' open' if open_ else ''}><summary><h{level}>{html.escape(title)}</h{level}>"
            f"</summary>{body}</details>")


SECTIONS = [("answer", "Answer"), ("verdict", "Per dataset"), ("ranks", "Ranks"), ("quality-cost", "Quality vs cost"),
            ("value", "Subset value"), ("removal", "Point removal"), ("detection", "Mislabel detection"),
            ("cost", "Cost"), ("ranking", "Ranking per metric"), ("results", "All results"),
            ("failures", "Failed cells"), ("config", "Configuration"), ("environment", "Environment")]


def _nav() -> str:
    """The navigation bar of the sections; it stays at the top of the window (the answer table links each
    regime x dataset to its details)."""
    return "<nav>" + " · ".join(f"<a href='#{a}'>{t}</a>" for a, t in SECTIONS) + "</nav>"


def _answer_html(report: Report) -> str:
    """The one-screen answer: a heading row per regime, a row per dataset linking to its details."""
    table = answer_table(report.verdict)
    columns = [c for c in table.columns if c != "regime"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows, regime = [], None
    for setting, row in table.iterrows():
        if row["regime"] != regime:
            regime = row["regime"]
            rows.append(f"<tr class='regime'><th colspan='{len(columns)}'>{html.escape(regime.capitalize())}</th></tr>")
        cells = [f"<td><a href='#d-{_slug(setting)}'>{html.escape(row[c])}</a></td>" if c == "dataset"
                 else f"<td>{html.escape(str(row[c]))}</td>" for c in columns]
        rows.append(f"<tr{' class=flagged' if row['flags'] != '-' else ''}>" + "".join(cells) + "</tr>")
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>"
                    for n in footnotes(report.verdict, report.frames.derived))
    return (f"<section id='answer'><table class='answer'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>" + notes + "<p class='note'>Per regime and dataset: the entry with the highest area "
            "under the subset-value curve of the judged metric (exact ties: the cheaper in learner fits, then the "
            "name), its gain over random paired over seeds (no interval below two seeds), its cost in learner fits "
            "on the full train split, and the cheapest entry within one point of it, random included.</p></section>")


def _all_link(figures: dict[str, Path], key: str) -> str:
    return f"<a href='{figures[key].name}'>{figures[key].name}</a>" if key in figures else "not drawn"


def _fig(figures: dict[str, Path], key: str, alt: str, caption: str) -> str:
    return _figure_html(figures[key], alt, caption) if key in figures else f"<p class='note'>No data for {alt}.</p>"


def _over_cap_note(cells: pd.DataFrame) -> str:
    """Which (method, dataset) pairs ran past the cap of learner fits, so no figure leaves them out silently."""
    over = cells[cells.status == OVER_CAP]
    if over.empty:
        return ""
    pairs = over.groupby(["method", "setting"], sort=False).size()
    listed = "; ".join(f"{m} on {s} ({n} cell{'s' * (n > 1)})" for (m, s), n in pairs.items())
    return f" Over the cap of learner fits per method fit (no result, marked 'over cap' in the tables): {listed}."


def _verdict_html(report: Report) -> list[str]:
    """Per regime and dataset, each in its own collapsible section: the verdict sentence, every entry with its
    seeds and cost, the best per budget, the best of each family; per regime the attribution and detection."""
    verdict = report.verdict
    regimes = verdict.regimes()
    parts = []
    for regime in regimes:
        settings = verdict.in_regime(regime)
        if len(regimes) > 1:
            parts.append(f"<h3>{html.escape(regime.capitalize())}</h3>")
        for s in settings:
            body = [f"<p>{html.escape(headline(s))}</p>"]
            if s.metric_note:
                body.append(f"<p class='note'>Judged on accuracy: {html.escape(s.metric_note)}.</p>")
            body += [_table_html(entries_table(s)), _table_html(budget_table(s))]
            rows = report.family_bests
            if not rows.empty:
                body.append(_table_html(family_best_table(rows[rows.setting == s.setting])))
            parts.append(_details(f"d-{_slug(s.setting)}", s.setting, "".join(body), level=4))
        here = [report.attributions[s.setting] for s in settings if s.setting in report.attributions]
        if here:
            parts += ["<p class='note'>Where the win comes from (subset-value area, paired over seeds, in points; "
                      "wins/loses: the 95 % interval excludes 0; not tested below two paired seeds). The best "
                      "pipeline and its detector are picked on this data, which favours them.</p>",
                      _table_html(attribution_table(here))]
        detection = detection_table(report.detection[report.detection.setting.isin([s.setting for s in settings])])
        if not detection.empty:
            parts += ["<p class='note'>Mislabel detection: ROC-AUC (suspicion = −value) / 2-means F1 and the rank "
                      "by AUC among every method of the run (pipelines left out: their scores are their "
                      "detector's).</p>", _table_html(detection)]
    intro = ("<p class='note'>Open a dataset for its details: every entry with the seeds it rests on (flagged where "
             "fewer than the grid asks for) and its cost; per budget the best by the same rule, its exact ties, the "
             "entries the data cannot separate from it (paired 95 % interval of the difference reaching 0) and its "
             "difference to random; the best of each family with its paired difference to the best.</p>")
    return [_details("verdict", "Per dataset", intro + "".join(parts), open_=True)]


def _figure_sections(report: Report, figures: dict[str, Path]) -> list[str]:
    """The rank test, quality against cost and the detailed figures and tables, each collapsible."""
    cells, budgets = report.frames.cells, report.frames.budgets
    ranks = report.verdict.ranks
    several = len(ranks) > 1
    rank_parts = ["<p class='note'>Friedman test with the Nemenyi critical difference (autorank; Demšar 2006), "
                  f"within each regime. Blocks: one per {stats.BLOCKS} of the regime, scored by the area under the "
                  "subset-value curve of the judged metric; budgets of one dataset and seed are the same subsets "
                  "growing, so they are one block. Methods joined by a bar are not significantly different.</p>"]
    for regime, analysis in ranks.items():
        if several:
            rank_parts.append(f"<h3>{html.escape(regime)}</h3>")
        if analysis.result is None:
            rank_parts.append(f"<p class='note'>No rank test: {html.escape(analysis.reason)}.</p>")
            continue
        dropped = (f" Left out because they miss blocks the others have: {', '.join(analysis.dropped)}."
                   if analysis.dropped else "")
        rank_parts.append(_fig(figures, f"ranks:{regime}" if several else "ranks", "critical-difference diagram",
                               html.escape(f"{analysis.blocks}; Friedman p = {analysis.result.pvalue:.2g}.{dropped}"
                                           + _over_cap_note(cells))))

    def fig(key: str, alt: str, caption: str) -> str:
        return _fig(figures, key, alt, caption)

    return [
        _details("ranks", "Ranks across datasets and seeds", "".join(rank_parts)),
        _details("quality-cost", "Quality vs cost", fig(
            "quality_cost", "quality vs cost", "Area under the subset-value curve of the judged metric (95 % CI "
            "over seeds) against the median fit CPU seconds, log scale (top axis: learner fits, where the run timed "
            "one). Dashed, outlined: the Pareto front (no method is both cheaper and better; references excluded). "
            "Dotted: random, which fits nothing. Hollow: references (oracle-greedy reads the validation labels)."
            + html.escape(_over_cap_note(cells)))),
        _details("value", "Subset value", fig(
            "subset_value", "subset value curves",
            "Test accuracy of the learner retrained on the budget's highest-valued train points (or the method's "
            f"own subset), mean with a 95 % band: random, each family's best and the top {plots.TOP_METHODS} in the "
            "panel, labelled on their lines. Dashed: the learner trained on all (noisy) train data. Every method: "
            f"{_all_link(figures, 'subset_value_all')}." + html.escape(_over_cap_note(cells)))),
        _details("removal", "Point removal", fig(
            "removal", "point removal curves",
            "Test accuracy after removing the highest-valued 5 ... 50 % of the train split and retraining "
            "(OpenDataVal's remove-high task, pyDVL's point removal): a steeper drop means the values found the "
            "points that matter. Set selectors are ranked by their scores. Random, each family's best and the top "
            f"{plots.TOP_METHODS}; every method: {_all_link(figures, 'removal_all')}.")),
        _details("detection", "Mislabel detection", fig(
            "detection_curves", "detection curves",
            "Inspecting train points from the lowest value up: the fraction of flipped labels found. Dotted: a "
            f"random order; dashed: a perfect detector. Every method: {_all_link(figures, 'detection_curves_all')}.")
            + fig("mislabel_auc", "mislabel ROC-AUC heat map",
                  "ROC-AUC of flipped-label detection with suspicion = −value; 0.5 is chance. failed: no successful "
                  "cell; n/a: no flipped labels to detect. The results table also gives the F1 of OpenDataVal's "
                  "2-means split (the lower cluster of values called flipped).")),
        _details("cost", "Cost", fig(
            "cost", "fit CPU seconds and learner fits per method and dataset",
            "CPU seconds of the method's fit (median over seeds) and, where the run timed one learner fit, the same "
            "in learner fits: the cap's unit. Over-cap methods are hatched at the cap they passed.")
            + (fig("cost_vs_size", "time vs train size", "Fit CPU seconds vs train-set size where the run varied it.")
               if "cost_vs_size" in figures
               else "<p class='note'>The run did not vary any dataset's train size.</p>")
            + _table_html(cost_table(cells))),
        _details("ranking", "Ranking per metric",
                 "<p class='note'>Mean rank across datasets (1 = best; ± standard error over datasets; in brackets "
                 "the number of datasets ranked). Subset value: the judged metric's area over the budgets; time: "
                 "lower is better.</p>" + _table_html(ranking_table(cells, budgets))),
    ]


def _provenance(report: Report) -> list[str]:
    """The config as the run wrote it, and the code behind the cells: commits (dirty or not) and hosts."""
    frames = report.frames
    cells = frames.cells
    config_text = frames.config_text if frames.config_text is not None else "(no config.json in the run directory)"
    if len(cells):
        commits = cells.assign(commit=cells.commit.fillna("not recorded"),
                               dirty=cells.dirty.map({True: "yes", False: "no"}).fillna("not recorded"))
        commit_table = commits.groupby(["commit", "dirty"], sort=False).size().rename("cells").reset_index()
        hosts = ", ".join(sorted({str(h) for h in (r.get("host") for r in cells.record) if h})) or "not recorded"
    else:
        commit_table, hosts = pd.DataFrame(), "-"
    return [
        _details("config", "Configuration", "<p class='note'>config.json exactly as the run wrote it.</p>"
                 f"<pre>{html.escape(config_text)}</pre>"),
        _details("environment", "Environment",
                 "<p class='note'>The code behind the cells: the git commit each cell recorded (dirty: uncommitted "
                 "changes in tracked files; cells of older runs did not record one) and the hosts that ran them.</p>"
                 + _table_html(commit_table) + f"<p>Hosts: {html.escape(hosts)}</p>"
                 "<p class='note'>Package versions where this report was rendered (cells do not record theirs).</p>"
                 + _dict_table(package_versions())),
    ]
