"""The report's figures: tidy frames in, small PNG files out (matplotlib Agg, seaborn styling).

Every figure takes frames whose rows are already labelled by ``setting`` (one panel: a dataset variant and,
where the run had several, a noise rate) and ``method`` (a method, with its parameters where the run varied
them), and a palette from :func:`method_palette` so a method has one colour in every figure.
Uncertainty is over seeds: mean with a Student-t 95 % confidence interval (few seeds make the bootstrap
seaborn uses by default both noisy and too narrow).
"""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import matplotlib

matplotlib.use("Agg")  # the report renders headless, in workers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from valbench.report.stats import mean_ci  # noqa: E402

DPI = 100
PANEL = (3.4, 2.8)  # inches per facet
MAX_COLUMNS = 4
MAX_WIDTH = 14.0  # inches: wider figures shrink to unreadable text in a browser column
MIN_SECONDS = 1e-4  # floor for log-scale times: fits faster than the clock's useful resolution

RC = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8.5,
      "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.dpi": DPI, "savefig.dpi": DPI}


FAMILY_COLOURS = {"valuation": "Blues", "set-selection": "Greens", "reference": "Greys", "peer": "Oranges",
                  "pipeline": "Purples"}
FAMILY_ORDER = list(FAMILY_COLOURS)


def method_palette(methods: list[str], families: dict[str, str] | None = None) -> dict[str, tuple[float, float, float]]:
    """One colour per method: a hue per family (valuation blues, set selection greens, references greys, peers
    oranges, pipelines purples), shades within a family in sorted-name order, so the same run always maps a method to one colour."""
    families = families or {}
    names = sorted(set(methods))
    palette = {}
    for family, cmap in FAMILY_COLOURS.items():
        members = [m for m in names if families.get(m, "valuation") == family]
        shades = np.linspace(0.9, 0.45, len(members)) if len(members) > 1 else [0.7]
        colours = sns.color_palette(cmap, as_cmap=True)
        palette.update({m: tuple(colours(float(s)))[:3] for m, s in zip(members, shades)})
    return palette


@contextmanager
def _style() -> Iterator[None]:
    """Report styling without touching the caller's global matplotlib state."""
    with plt.rc_context(RC), sns.axes_style("whitegrid"):
        yield


def _facets(n: int, panel: tuple[float, float] = PANEL, sharey: bool = False):
    cols = min(n, MAX_COLUMNS)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols + 0.3, panel[1] * rows + 0.9),
                             squeeze=False, sharey=sharey, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _suptitle(fig, text: str) -> None:
    """A figure title wrapped to the figure's width, so a narrow figure never clips it."""
    chars = max(30, int(fig.get_figwidth() * 13))
    fig.suptitle(textwrap.fill(text, chars), fontsize=10)


def _save(fig, path: Path, tight: bool = False) -> Path:
    """Write the PNG; ``tight`` grows the canvas to every label (autorank draws its names outside the axes)."""
    fig.savefig(path, dpi=DPI, facecolor="white", **({"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}))
    plt.close(fig)
    return path


def _curve_summary(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per x: mean and CI over seeds of y."""
    rows = [(xv, *mean_ci(group[y])) for xv, group in frame.groupby(x, sort=True)]
    return pd.DataFrame(rows, columns=[x, "mean", "low", "high"])


def _family_legend(fig, palette: dict, families: dict[str, str], methods: list[str],
                   extra: list[Line2D] = ()) -> None:
    """A legend with one column per family (headed by its name), so a reader finds each family's methods."""
    columns = []
    for family in FAMILY_ORDER:
        members = [m for m in methods if families.get(m, "valuation") == family]
        if members:
            columns.append([Line2D([], [], lw=0, label=f"{family}:")] +
                           [Line2D([], [], color=palette[m], lw=2, marker="o", ms=4, label=m) for m in members])
    if extra:
        columns.append([Line2D([], [], lw=0, label="lines:"), *extra])
    rows = max(len(c) for c in columns)
    longest = max(len(h.get_label()) for c in columns for h in c)
    fig.set_figwidth(max(fig.get_figwidth(), len(columns) * (0.6 + 0.075 * longest) + 0.4))  # never clip the legend
    fig.set_figheight(fig.get_figheight() + 0.17 * rows)  # room below the panels, or the layout squeezes them
    blank = lambda: Line2D([], [], lw=0, label=" ")  # noqa: E731
    handles = [h for c in columns for h in c + [blank() for _ in range(rows - len(c))]]
    legend = fig.legend(handles=handles, loc="outside lower center", ncols=len(columns), frameon=False)
    for text in legend.get_texts():
        if text.get_text().endswith(":"):
            text.set_fontweight("bold")


def family_bests(scores: pd.Series, families: dict[str, str], higher: bool = True) -> set[str]:
    """Per family, the method with the best score (``scores`` indexed by method)."""
    scores = scores.dropna()
    bests = set()
    for family in FAMILY_ORDER:
        members = scores[[families.get(m, "valuation") == family for m in scores.index]]
        if not members.empty:
            bests.add(members.idxmax() if higher else members.idxmin())
    return bests


def _highlighted_curves(ax, here: pd.DataFrame, x: str, y: str, palette: dict, families: dict[str, str],
                        higher: bool) -> None:
    """Each family's best curve (by mean y over x) bold with its 95 % band; the others thin and faded."""
    methods = sorted(here.method.unique())
    bests = family_bests(here.groupby("method")[y].mean(), families, higher)
    for method in sorted(methods, key=lambda m: m in bests):  # highlighted curves on top
        curve = _curve_summary(here[here.method == method], x, y)
        if curve.empty:
            continue
        if method in bests:
            ax.fill_between(curve[x], curve.low.clip(0, 1), curve.high.clip(0, 1), color=palette[method],
                            alpha=0.15, lw=0)
            ax.plot(curve[x], curve["mean"], color=palette[method], marker="o", ms=4, lw=2.4, zorder=4)
        else:
            ax.plot(curve[x], curve["mean"], color=palette[method], lw=1.2, alpha=0.6, ls="-", zorder=3)


def subset_value_figure(budgets: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None) -> Path:
    """Test accuracy vs budget fraction, one panel per setting; full-data accuracy dashed.

    Each family's best method in a panel (highest mean accuracy over the budgets) is drawn bold with its
    95 % band, the rest thin and faded. ``budgets`` columns: setting, method, seed, fraction, accuracy,
    full_accuracy.
    """
    families = families or {}
    settings = list(dict.fromkeys(budgets.setting))
    methods = sorted(budgets.method.unique())
    with _style():
        fig, axes = _facets(len(settings))
        for ax, setting in zip(axes, settings):
            here = budgets[budgets.setting == setting]
            _highlighted_curves(ax, here, "fraction", "accuracy", palette, families, higher=True)
            # full-data accuracy is a property of the dataset and seed, not of the method
            full = here.drop_duplicates("seed").full_accuracy.mean()
            ax.axhline(full, color="0.25", ls="--", lw=1.1)
            # frame the means, not the intervals: with two or three seeds a t interval spans most of [0, 1]
            means = here.groupby(["method", "fraction"]).accuracy.mean()
            ax.set_ylim(max(0.0, min(means.min(), full) - 0.08), min(1.01, max(means.max(), full) + 0.06))
            ax.set_title(setting)
            ax.set_xlabel("budget (fraction of train set)")
            ax.set_ylabel("test accuracy")
            ax.set_xlim(0, min(1.0, budgets.fraction.max() * 1.08))
            ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        full_line = Line2D([], [], color="0.25", ls="--", lw=1.1, label="all train data")
        _family_legend(fig, palette, families, methods, [full_line])
        _suptitle(fig, "Subset value: accuracy retrained on the top-valued subset. Bold: each family's best "
                     "(mean, 95% CI over seeds)")
        return _save(fig, path)


def removal_figure(removal: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None) -> Path:
    """Test accuracy after removing the highest-valued fraction, one panel per setting (lower = better values).

    Each family's best method (lowest mean accuracy over the removed fractions: its top points mattered
    most) is bold with its band. ``removal`` columns: setting, method, seed, removed, accuracy.
    """
    families = families or {}
    settings = list(dict.fromkeys(removal.setting))
    methods = sorted(removal.method.unique())
    with _style():
        fig, axes = _facets(len(settings))
        for ax, setting in zip(axes, settings):
            here = removal[removal.setting == setting]
            _highlighted_curves(ax, here, "removed", "accuracy", palette, families, higher=False)
            ax.set_title(setting)
            ax.set_xlabel("highest-valued points removed")
            ax.set_ylabel("test accuracy")
            ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        _family_legend(fig, palette, families, methods)
        _suptitle(fig, "Point removal: accuracy after removing the top-valued points, lower is better. Bold: "
                     "each family's best (mean, 95% CI over seeds)")
        return _save(fig, path)


def pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both axes (cost lower or equal, quality higher or equal,
    one strictly), sorted by cost."""
    cost, quality = np.asarray(cost, float), np.asarray(quality, float)
    dominated = ((cost[None, :] <= cost[:, None]) & (quality[None, :] >= quality[:, None])
                 & ((cost[None, :] < cost[:, None]) | (quality[None, :] > quality[:, None]))).any(axis=1)
    front = np.flatnonzero(~dominated)
    return front[np.argsort(cost[front], kind="stable")]


def short_label(label: str, width: int = 28) -> str:
    """A long variant label without its parameter names, for annotations inside a panel:
    ``pipeline (detector=enn, selector=random)`` -> ``pipeline (enn, random)``."""
    return re.sub(r"\b\w+=", "", label) if len(label) > width else label


def quality_cost_figure(points: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None) -> Path:
    """Area under the subset-value curve vs median fit seconds (log x), one panel per setting, Pareto front marked.

    ``points`` columns: setting, method, area, low, high (its 95 % CI over seeds), seconds.
    """
    families = families or {}
    settings = list(dict.fromkeys(points.setting))
    methods = sorted(points.method.unique())
    with _style():
        fig, axes = _facets(len(settings), panel=(3.6, 3.0))
        for ax, setting in zip(axes, settings):
            here = points[points.setting == setting].reset_index(drop=True)
            seconds = here.seconds.clip(lower=MIN_SECONDS).to_numpy()
            front = pareto_front(seconds, here.area.to_numpy())
            ax.step(seconds[front], here.area.to_numpy()[front], where="post", color="0.3", lw=1.0, ls="--",
                    zorder=1)
            for i, row in here.iterrows():
                on_front = i in set(front)
                ax.errorbar(seconds[i], row.area, yerr=[[row.area - row.low], [row.high - row.area]], fmt="o",
                            color=palette[row.method], ms=7 if on_front else 5, mec="black" if on_front else "none",
                            mew=1.0, elinewidth=0.8, alpha=1.0 if on_front else 0.6, zorder=3 if on_front else 2)
            for j, i in enumerate(sorted(front, key=lambda i: seconds[i])):  # labels stay out of the layout: one
                last = seconds[i] == seconds[front].max()  # near an edge must not squeeze the panels; the costliest
                ax.annotate(short_label(here.method[i]), (seconds[i], here.area[i]),  # point is labelled to its left
                            xytext=(-4 if last else 4, 4 if j % 2 == 0 else -11),  # neighbours alternate above/below
                            textcoords="offset points", ha="right" if last else "left", fontsize=7,
                            color="0.15").set_in_layout(False)
            ax.set_xscale("log")
            ax.set_title(setting)
            ax.set_xlabel("fit seconds (median over seeds, log)")
            ax.set_ylabel("subset-value area (mean acc.)")
            span = here.area.max() - here.area.min()
            ax.set_ylim(here.area.min() - 0.1 * span - 0.01, here.area.max() + 0.15 * span + 0.01)
        front_line = Line2D([], [], color="0.3", ls="--", lw=1.0, marker="o", mfc="white", mec="black",
                            label="Pareto front")
        _family_legend(fig, palette, families, methods, [front_line])
        _suptitle(fig, "Quality vs cost: area under the subset-value curve (95% CI) against fit time")
        return _save(fig, path)


def rank_figure(analysis, path: Path, regime: str = "") -> Path:
    """The critical-difference diagram of a :class:`valbench.report.stats.RankAnalysis` (autorank's Nemenyi CD plot);
    ``regime`` (e.g. "clean labels") heads the title when a run ranks several regimes separately."""
    from autorank import plot_stats

    result = analysis.result
    with _style(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = len(result.rankdf)
        fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, 8.0 + 0.1 * n), 1.2 + 0.32 * n))
        if result.cd is None:  # two methods: no CD diagram to draw, so their mean ranks as bars
            ranks = result.rankdf["meanrank"]
            ax.barh([str(m) for m in ranks.index], ranks.to_numpy(), color="0.55")
            ax.invert_yaxis()
            ax.set_xlabel("mean rank (1 = best)")
        else:
            plot_stats(result, allow_insignificant=True, ax=ax)
        # autorank runs Friedman + Nemenyi for 3+ methods, a Wilcoxon signed-rank test (no CD) for two
        test = f"{str(result.omnibus).capitalize()} p = {result.pvalue:.2g}"
        bars = "" if result.cd is None else f"; bars join methods within the Nemenyi CD = {result.cd:.2f}"
        head = f"{regime}\nM" if regime else "M"
        ax.set_title(f"{head}ean rank over {result.num_samples} (dataset x budget) blocks, 1 = best; {test}{bars}",
                     fontsize=9, pad=14)
        fig.tight_layout()
        return _save(fig, path, tight=True)


def detection_figure(detection: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None) -> Path:
    """Fraction of flipped labels found vs fraction inspected (lowest value first), per setting.

    ``detection`` columns: setting, method, seed, inspected, found, noisy_fraction.
    """
    settings = list(dict.fromkeys(detection.setting))
    methods = sorted(detection.method.unique())
    with _style():
        fig, axes = _facets(len(settings), panel=(3.3, 3.1))
        for ax, setting in zip(axes, settings):
            here = detection[detection.setting == setting]
            grid = np.linspace(0, 1, 101)
            ax.plot(grid, grid, color="0.45", ls=":", lw=1.1)
            rate = here.noisy_fraction.mean()
            if rate > 0:
                ax.plot(grid, np.minimum(1.0, grid / rate), color="0.25", ls="--", lw=1.0)
            _highlighted_curves(ax, here, "inspected", "found", palette, families or {}, higher=True)
            ax.set(xlim=(0, 1), ylim=(0, 1.02), title=setting)
            ax.set_xlabel("fraction inspected (lowest value first)")
            ax.set_ylabel("flipped labels found (fraction)")
        extra = [Line2D([], [], color="0.45", ls=":", lw=1.1, label="random order"),
                 Line2D([], [], color="0.25", ls="--", lw=1.0, label="perfect detector")]
        _family_legend(fig, palette, families or {}, methods, extra)
        _suptitle(fig, "Mislabel detection curves. Bold: each family's best (mean, 95% CI over seeds)")
        return _save(fig, path)


def auc_heatmap(cells: pd.DataFrame, path: Path) -> Path:
    """Mean mislabel ROC-AUC per method (rows) and setting (columns); 0.5 is chance.

    ``cells`` holds every cell, failed ones too: a (method, setting) with no successful cell reads "failed"
    ("over cap" when every one of its cells ran past the runner's cap of learner fits),
    one whose cells have no AUC (no flipped labels) reads "n/a", a pair the run never had reads "not run".
    """
    ok = cells[cells.status == "ok"]
    table = ok.pivot_table(index="method", columns="setting", values="mislabel_auc", aggfunc="mean", sort=False,
                           dropna=False)
    table = table.reindex(index=sorted(cells.method.unique()), columns=list(dict.fromkeys(cells.setting)))
    succeeded, ran = set(zip(ok.method, ok.setting)), set(zip(cells.method, cells.setting))
    over_cap = {pair for pair, status in cells.groupby(["method", "setting"]).status if (status == "over cap").all()}
    width = 1.2 * table.shape[1] + max(len(m) for m in table.index) * 0.07 + 2.0
    height = 0.42 * table.shape[0] + 1.9
    with _style():
        fig, ax = plt.subplots(figsize=(max(width, 4.5), height), layout="constrained")
        ax.set_facecolor("0.94")  # cells without a value
        with warnings.catch_warnings():  # seaborn 0.13 calls Colormap.set_bad, deprecated in matplotlib 3.11
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(table, ax=ax, vmin=0, vmax=1, center=0.5, cmap="RdBu_r", annot=True, fmt=".2f",
                        linewidths=0.6, linecolor="white", annot_kws={"fontsize": 8.5},
                        cbar_kws={"label": "ROC-AUC (0.5 = chance)", "shrink": 0.85})
        for i, j in zip(*np.where(table.isna().to_numpy())):
            pair = (table.index[i], table.columns[j])
            missing = ("n/a" if pair in succeeded else "over cap" if pair in over_cap else "failed" if pair in ran
                       else "not run")
            ax.text(j + 0.5, i + 0.5, missing, ha="center", va="center", color="0.45", fontsize=8)
        ax.grid(False)
        ax.set_xlabel("dataset")
        ax.set_ylabel("method")
        ax.set_title("Mislabel detection ROC-AUC (mean over seeds)")
        if table.shape[1] > 3:
            plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
        plt.setp(ax.get_yticklabels(), rotation=0)
        return _save(fig, path)


def cost_figure(cells: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None) -> Path:
    """Wall-clock seconds of ``fit`` per setting and method, log scale: seeds as dots, mean as a bar tick."""
    settings = list(dict.fromkeys(cells.setting))
    methods = sorted(cells.method.unique())
    n_m = len(methods)
    step = 0.8 / n_m
    with _style():
        width = min(MAX_WIDTH, max(5.0, 0.45 * n_m * len(settings) + 1.5))
        fig, ax = plt.subplots(figsize=(width, 4.0 + 0.2 * math.ceil(n_m / 5)), layout="constrained")
        for s, setting in enumerate(settings):
            for m, method in enumerate(methods):
                seconds = cells[(cells.setting == setting) & (cells.method == method)].wall_s.dropna()
                if seconds.empty:
                    continue
                seconds = seconds.clip(lower=MIN_SECONDS)
                x = s - 0.4 + step * (m + 0.5)
                ax.scatter(np.full(len(seconds), x), seconds, color=palette[method], s=14, alpha=0.75,
                           edgecolor="none", zorder=3)
                ax.plot([x - step * 0.38, x + step * 0.38], [seconds.mean()] * 2, color=palette[method],
                        lw=2.4, zorder=4)
        ax.set_yscale("log")
        ax.set_xticks(range(len(settings)), settings, rotation=20 if len(settings) > 3 else 0,
                      ha="right" if len(settings) > 3 else "center")
        ax.set_xlim(-0.5, len(settings) - 0.5)
        for s in range(len(settings) - 1):
            ax.axvline(s + 0.5, color="0.85", lw=0.8)
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("dataset")
        ax.set_ylabel("fit wall-clock time (s, log scale)")
        ax.set_title("Cost: seconds per valuation (dots: seeds, bar: mean)")
        _family_legend(fig, palette, families or {}, methods)
        return _save(fig, path)


def cost_vs_size_figure(cells: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None) -> Path:
    """Wall-clock seconds vs train-set size (log-log), one panel per dataset whose size the run varied."""
    datasets = list(dict.fromkeys(cells.dataset))
    methods = sorted(cells.method.unique())
    with _style():
        fig, axes = _facets(len(datasets), panel=(3.4, 2.9))
        for ax, dataset in zip(axes, datasets):
            here = cells[cells.dataset == dataset].assign(wall_s=lambda f: f.wall_s.clip(lower=MIN_SECONDS))
            for method in methods:
                rows = here[here.method == method]
                if rows.empty:
                    continue
                curve = _curve_summary(rows, "n_train", "wall_s")
                ax.scatter(rows.n_train, rows.wall_s, color=palette[method], s=10, alpha=0.5, edgecolor="none")
                ax.plot(curve.n_train, curve["mean"], color=palette[method], marker="o", ms=3.5, lw=1.6)
            ax.set(xscale="log", yscale="log", title=dataset)
            ax.set_xlabel("train points (log scale)")
            ax.set_ylabel("fit wall-clock time (s, log scale)")
            sizes = sorted(here.n_train.unique())
            ax.set_xticks(sizes, [str(int(n)) for n in sizes])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        _family_legend(fig, palette, families or {}, methods)
        _suptitle(fig, "Cost vs train-set size (dots: seeds, line: mean)")
        return _save(fig, path)
