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
CURVE_PANEL = (3.25, 2.6)  # inches per curve panel (its label gutter beside it)
MAX_COLUMNS = 3
MAX_WIDTH = 11.6  # inches: at DPI 100 a figure fits the report's 1,200 px column at full size, text readable
MIN_SECONDS = 1e-4  # floor for log-scale times: fits faster than the clock's useful resolution
TOP_METHODS = 3  # a default panel draws random, each family's best and this many of the best overall
LABEL_SIZE = 7.5  # points: the direct labels on lines and points
LABEL_GID = "direct-label"  # every direct label carries it, so tests can find them and check they never overlap
LABEL_BOX = {"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.8}  # lines behind stay legible
REFERENCE = "reference"  # the family of random and oracle-greedy: drawn for comparison, never on a Pareto front

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


def default_methods(scores: pd.Series, families: dict[str, str], higher: bool = True,
                    top: int = TOP_METHODS) -> list[str]:
    """The methods a default panel draws, best first: ``random`` (the floor every method must beat), each family's
    best by ``scores`` (indexed by method, e.g. its mean accuracy over the budgets) and the ``top`` best overall.
    Ties go to the name that sorts first, so a panel shows the same methods on every render."""
    scores = scores.dropna().sort_index().sort_values(ascending=not higher, kind="stable")
    chosen = set(scores.index[:top]) | family_bests(scores, families, higher) | ({"random"} & set(scores.index))
    return [m for m in scores.index if m in chosen]


def spread(positions, gap: float, low: float, high: float) -> np.ndarray:
    """``positions`` moved apart as little as needed, keeping their order, so that neighbours are at least ``gap``
    apart and lie in [low, high] where there is room (when there is not, the gap wins over ``high``): a
    deterministic one-dimensional repulsion for labels stacked beside line ends. Returned in the input's order."""
    positions = np.asarray(positions, float)
    order = np.argsort(positions, kind="stable")
    y = positions[order].copy()
    for i in range(1, len(y)):
        y[i] = max(y[i], y[i - 1] + gap)
    if len(y) and y[-1] > high:
        y[-1] = high
        for i in range(len(y) - 2, -1, -1):
            y[i] = min(y[i], y[i + 1] - gap)
    if len(y) and y[0] < low:
        y += low - y[0]
    out = np.empty_like(y)
    out[order] = y
    return out


def _panels(n: int, panel: tuple[float, float], gutter: float = 0.0, top: float = 0.32,
            title: float = 0.5, bottom_extra: float = 0.0):
    """A figure of ``n`` panels with fixed margins (inches) and a label ``gutter`` right of each panel.

    No layout engine: the axes' positions are known before anything is drawn, so direct labels are placed
    once, measured, and never moved afterwards (a layout engine would move the axes under them). As many
    columns as fit :data:`MAX_WIDTH`.
    """
    left, bottom, right = 0.62, 0.55, 0.12
    cell = (left + panel[0] + gutter + right, bottom + panel[1] + top)
    cols = max(1, min(n, MAX_COLUMNS, int(MAX_WIDTH // cell[0])))
    rows = math.ceil(n / cols)
    width, height = cols * cell[0], rows * cell[1] + title + bottom_extra
    fig = plt.figure(figsize=(width, height))
    axes = []
    for i in range(n):
        row, col = divmod(i, cols)
        x0 = col * cell[0] + left
        y0 = height - title - (row + 1) * cell[1] + bottom
        axes.append(fig.add_axes((x0 / width, y0 / height, panel[0] / width, panel[1] / height)))
    return fig, axes


def _darker(colour, by: float = 0.3) -> tuple:
    """A colour mixed with black, so pale family shades stay readable as text."""
    return tuple((1 - by) * c for c in matplotlib.colors.to_rgb(colour))


def _axes_fraction(ax, x: float, y: float) -> tuple[float, float]:
    """A data point in the axes' own fractions (0-1 inside the panel)."""
    return tuple((ax.transData + ax.transAxes.inverted()).transform((x, y)))


def _fit_text(ax, text: str, width_px: float, renderer) -> str:
    """``text`` shortened (parameter names dropped, then cut with an ellipsis) until it is at most ``width_px`` wide."""
    candidate = short_label(text)
    probe = ax.text(0, 0, candidate, fontsize=LABEL_SIZE)
    while len(candidate) > 4 and probe.get_window_extent(renderer).width > width_px:
        candidate = candidate[:-2].rstrip(" ,(") + "…"
        probe.set_text(candidate)
    probe.remove()
    return candidate


def _label_line_ends(ax, ends: list[tuple[str, float, float, tuple]], gutter: float) -> None:
    """Label lines in the gutter right of the panel: each name in its line's colour, at the height of its line at
    the given x, moved apart (:func:`spread`) so no two overlap, with a thin leader to its line. ``ends``:
    (label, x, y, colour) in data coordinates."""
    if not ends:
        return
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    room = (gutter - 0.12) * fig.dpi
    texts = [_fit_text(ax, label, room, renderer) for label, *_ in ends]
    probe = ax.text(0, 0, "", fontsize=LABEL_SIZE)
    tallest = max(probe.set_text(text) or probe.get_window_extent(renderer).height for text in texts)
    probe.remove()
    line = (tallest + 1.5) / box.height  # the least distance between two labels' centres, in axes fractions
    anchors = [_axes_fraction(ax, x, y) for _, x, y, _ in ends]
    heights = spread([a[1] for a in anchors], line, line / 2, 1 - line / 2)
    for text, (_, _, _, colour), (_, ax_y), y in zip(texts, ends, anchors, heights):
        # the leader starts at the right spine, at the line's height where it is labelled: it never crosses the data
        ax.annotate(text, (1.0, ax_y), xycoords="axes fraction",
                    xytext=(1.04, y), textcoords="axes fraction", ha="left", va="center", fontsize=LABEL_SIZE,
                    color=_darker(colour), annotation_clip=False, gid=LABEL_GID,
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.6, "alpha": 0.7,
                                "shrinkA": 0, "shrinkB": 1})


OFFSETS = [(dx * r, dy * r, ha, va) for r in (1, 2.4, 4)  # points from the marker, nearest first; leaders on far ones
           for dx, dy, ha, va in [(5, 3, "left", "bottom"), (-5, 3, "right", "bottom"), (5, -3, "left", "top"),
                                  (-5, -3, "right", "top"), (0, 6, "center", "bottom"), (0, -6, "center", "top"),
                                  (8, 0, "left", "center"), (-8, 0, "right", "center")]]


def place_labels(ax, items: list[tuple[str, float, float]], points: list[tuple[float, float]],
                 taken: list | None = None) -> list:
    """Label points so that no label overlaps another label, a marker or the panel's edge.

    ``items`` (label, x, y) in the order they matter; ``points`` every marker drawn (data coordinates). Each
    label takes the first offset of :data:`OFFSETS` whose box is inside the axes and clear of ``taken`` (boxes
    already used, display coordinates), the labels placed before it and every marker; a label with no free
    offset is left out. Deterministic: the same panel always gets the same labels. Returns the texts placed.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    marker = 4.0 * fig.dpi / 72  # half a marker's width, pixels
    blocked = [matplotlib.transforms.Bbox.from_bounds(px - marker, py - marker, 2 * marker, 2 * marker)
               for px, py in ax.transData.transform(np.asarray(points, float).reshape(-1, 2))]
    blocked += list(taken or [])
    placed = []
    for label, x, y in items:
        for dx, dy, ha, va in OFFSETS:
            far = abs(dx) > 8 or abs(dy) > 8
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                               fontsize=LABEL_SIZE, color="0.1", gid=LABEL_GID, annotation_clip=False,
                               bbox=LABEL_BOX,
                               arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5, "shrinkA": 0,
                                           "shrinkB": 4} if far else None)
            box = text.get_window_extent(renderer)
            fits = (box.x0 >= inside.x0 + 1 and box.x1 <= inside.x1 - 1 and box.y0 >= inside.y0 + 1
                    and box.y1 <= inside.y1 - 1)
            if fits and not any(box.overlaps(other) for other in blocked):
                blocked.append(box.padded(1.5))
                placed.append(text)
                break
            text.remove()
    return placed


def _selected_curves(ax, here: pd.DataFrame, x: str, y: str, palette: dict, families: dict[str, str],
                     higher: bool) -> list[tuple[str, pd.DataFrame, tuple]]:
    """The default panel's curves (:func:`default_methods`): mean with its 95 % band, references dashed.
    Returns (method, curve, colour) for the labels."""
    chosen = default_methods(here.groupby("method")[y].mean(), families, higher)
    drawn = []
    for rank, method in reversed(list(enumerate(chosen))):  # the best drawn last, on top
        curve = _curve_summary(here[here.method == method], x, y)
        if curve.empty:
            continue
        colour = palette[method]
        reference = families.get(method) == REFERENCE
        ax.fill_between(curve[x], curve.low.clip(0, 1), curve.high.clip(0, 1), color=colour, alpha=0.12, lw=0)
        ax.plot(curve[x], curve["mean"], color=colour, marker="o", ms=3.5, lw=1.4 if reference else 2.0,
                ls="--" if reference else "-", zorder=4 + (len(chosen) - rank) / 100)
        drawn.append((method, curve, colour))
    return drawn


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


GUTTER = 1.55  # inches right of a curve panel for its direct labels


def _curves_figure(frame: pd.DataFrame, x: str, y: str, palette: dict, families: dict[str, str], path: Path, *,
                   higher: bool, all_methods: bool, title: str, decorate, label_at=None,
                   extra: list[Line2D] = ()) -> Path:
    """One panel per setting of y against x, mean and 95 % band over seeds.

    Default: :func:`default_methods` only, each labelled at its line (``label_at(here)`` gives the x where the
    labels attach; default the last x), no legend. ``all_methods``: every method, each family's best bold, with
    a legend by family. ``decorate(ax, here)`` draws the panel's reference lines and limits and returns
    (label, y-at-x function, colour) triples for the lines it drew.
    """
    settings = list(dict.fromkeys(frame.setting))
    with _style():
        if all_methods:
            fig, axes = _facets(len(settings))
        else:
            fig, axes = _panels(len(settings), CURVE_PANEL, gutter=GUTTER, title=0.8)
        for ax, setting in zip(axes, settings):
            here = frame[frame.setting == setting]
            if all_methods:
                _highlighted_curves(ax, here, x, y, palette, families, higher)
                decorate(ax, here)
                continue
            drawn = _selected_curves(ax, here, x, y, palette, families, higher)
            references = decorate(ax, here[here.method.isin([m for m, _, _ in drawn])])  # frame what is drawn
            at = label_at(here) if label_at else here[x].max()
            ends = [(m, at, float(np.interp(at, c[x], c["mean"])), colour) for m, c, colour in drawn]
            ends += [(label, at, line(at), colour) for label, line, colour in references]
            _label_line_ends(ax, ends, GUTTER)
        if all_methods:
            _family_legend(fig, palette, families, sorted(frame.method.unique()), list(extra))
        _suptitle(fig, title)
        return _save(fig, path)


def _budget_axes(ax, here: pd.DataFrame) -> list:
    """Subset-value panel: the full-data accuracy dashed, limits framing the means, percent budgets."""
    full = here.drop_duplicates("seed").full_accuracy.mean()  # a property of the dataset and seed
    ax.axhline(full, color="0.25", ls="--", lw=1.1)
    # frame the means, not the intervals: with two or three seeds a t interval spans most of [0, 1]
    means = here.groupby(["method", "fraction"]).accuracy.mean()
    ax.set_ylim(max(0.0, min(means.min(), full) - 0.08), min(1.01, max(means.max(), full) + 0.06))
    ax.set_title(here.setting.iloc[0])
    ax.set_xlabel("budget (fraction of train set)")
    ax.set_ylabel("test accuracy")
    ax.set_xlim(0, min(1.0, here.fraction.max() * 1.04))
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    return [("all train data", lambda _x: full, (0.25, 0.25, 0.25))]


def subset_value_figure(budgets: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None,
                        all_methods: bool = False) -> Path:
    """Test accuracy vs budget fraction, one panel per setting; full-data accuracy dashed.

    Default: random, each family's best and the :data:`TOP_METHODS` best (mean accuracy over the budgets),
    labelled on their lines. ``all_methods``: every method, each family's best bold with its 95 % band, the
    rest faded, a legend by family. ``budgets`` columns: setting, method, seed, fraction, accuracy,
    full_accuracy.
    """
    what = ("every method; bold: each family's best" if all_methods else
            f"random, each family's best and the top {TOP_METHODS}; a → b: clean with a, then select with b")
    return _curves_figure(budgets, "fraction", "accuracy", palette, families or {}, path, higher=True,
                          all_methods=all_methods, decorate=_budget_axes,
                          title=f"Subset value: accuracy retrained on each method's subset ({what}; mean, 95% CI "
                                "over seeds)",
                          extra=[Line2D([], [], color="0.25", ls="--", lw=1.1, label="all train data")])


def _removal_axes(ax, here: pd.DataFrame) -> list:
    ax.set_title(here.setting.iloc[0])
    ax.set_xlabel("highest-valued points removed")
    ax.set_ylabel("test accuracy")
    ax.set_xlim(0, here.removed.max() * 1.04)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    return []


def removal_figure(removal: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None,
                   all_methods: bool = False) -> Path:
    """Test accuracy after removing the highest-valued fraction, one panel per setting (lower = better values).

    Best = the lowest mean accuracy over the removed fractions (its top points mattered most); default and
    ``all_methods`` as in :func:`subset_value_figure`. ``removal`` columns: setting, method, seed, removed,
    accuracy.
    """
    what = "every method; bold: each family's best" if all_methods else \
        f"random, each family's best and the top {TOP_METHODS}"
    return _curves_figure(removal, "removed", "accuracy", palette, families or {}, path, higher=False,
                          all_methods=all_methods, decorate=_removal_axes,
                          title=f"Point removal: accuracy after removing the top-valued points, lower is better "
                                f"({what}; mean, 95% CI over seeds)")


def _detection_axes(ax, here: pd.DataFrame) -> list:
    grid = np.linspace(0, 1, 101)
    ax.plot(grid, grid, color="0.45", ls=":", lw=1.1)
    rate = here.noisy_fraction.mean()
    lines = [("random order", lambda x: x, (0.45, 0.45, 0.45))]
    if rate > 0:
        ax.plot(grid, np.minimum(1.0, grid / rate), color="0.25", ls="--", lw=1.0)
        lines.append(("perfect detector", lambda x: min(1.0, x / rate), (0.25, 0.25, 0.25)))
    ax.set(xlim=(0, 1), ylim=(0, 1.02), title=here.setting.iloc[0])
    ax.set_xlabel("fraction inspected (lowest value first)")
    ax.set_ylabel("flipped labels found (fraction)")
    return lines


def detection_figure(detection: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None,
                     all_methods: bool = False) -> Path:
    """Fraction of flipped labels found vs fraction inspected (lowest value first), per setting.

    Labels are stacked in the order of the curves at twice the flipped share inspected, where they are furthest
    apart (at the end every curve has found everything). ``detection`` columns: setting, method, seed, inspected, found, noisy_fraction.
    """
    what = "every method; bold: each family's best" if all_methods else \
        f"random, each family's best and the top {TOP_METHODS}"
    extra = [Line2D([], [], color="0.45", ls=":", lw=1.1, label="random order"),
             Line2D([], [], color="0.25", ls="--", lw=1.0, label="perfect detector")]
    return _curves_figure(detection, "inspected", "found", palette, families or {}, path, higher=True,
                          all_methods=all_methods, decorate=_detection_axes,
                          label_at=lambda here: min(1.0, 2 * max(here.noisy_fraction.mean(), 0.05)),
                          title=f"Mislabel detection curves ({what}; mean, 95% CI over seeds)"
                                + ("" if all_methods else "; labels in the curves' order at twice the flipped share "
                                   "inspected"), extra=extra)


def pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both axes (cost lower or equal, quality higher or equal,
    one strictly), sorted by cost."""
    cost, quality = np.asarray(cost, float), np.asarray(quality, float)
    dominated = ((cost[None, :] <= cost[:, None]) & (quality[None, :] >= quality[:, None])
                 & ((cost[None, :] < cost[:, None]) | (quality[None, :] > quality[:, None]))).any(axis=1)
    front = np.flatnonzero(~dominated)
    return front[np.argsort(cost[front], kind="stable")]


def short_label(label: str, width: int = 28) -> str:
    """A long variant label without its parameter names, for labels inside a figure:
    ``craig (weighted=True)`` -> ``craig (True)``; a pipeline reads as its two steps,
    ``pipeline (detector=enn, selector=random)`` -> ``enn → random``."""
    pipeline = re.fullmatch(r"pipeline \(detector=([^,]+), selector=([^,)]+)\)", label)
    if pipeline:
        return f"{pipeline.group(1)} → {pipeline.group(2)}"
    return re.sub(r"\b\w+=", "", label) if len(label) > width else label


def quality_cost_figure(points: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None) -> Path:
    """Subset-value area against the fit's CPU seconds (log x), one panel per setting, the Pareto front marked.

    ``random`` costs nothing, so it is no point on a log axis: a dotted line across the panel at its area (a
    method below it is worse than no method). References (``random``, ``oracle-greedy``, which reads the
    validation labels) are drawn for comparison, hollow, and never on the Pareto front (dashed, outlined
    markers: no method is both cheaper and better). Front points and references are labelled where a label
    fits without overlapping (:func:`place_labels`). Where the run timed one learner fit (``fit_s``), the top
    axis gives the cost in learner fits. ``points`` columns: setting, method, area, low, high (its 95 % CI
    over seeds), seconds (median fit CPU s), optionally fit_s.
    """
    families = families or {}
    settings = list(dict.fromkeys(points.setting))
    with _style():
        in_fits = "fit_s" in points and points.fit_s.notna().any()  # a top axis in learner fits
        shown = {families.get(m, "valuation") for m in points.method} - {REFERENCE}
        columns = max(1, min(len(settings), MAX_COLUMNS, int(MAX_WIDTH // 5.24)))  # as _panels lays them out (cell 5.24 in)
        legend_columns = max(1, int(columns * 5.24 // 2.7))
        legend_rows = math.ceil((3 + len(shown)) / legend_columns)
        fig, axes = _panels(len(settings), (4.5, 2.9), top=1.0 if in_fits else 0.4, title=0.6,
                            bottom_extra=0.1 + 0.22 * legend_rows)
        for ax, setting in zip(axes, settings):
            _quality_cost_panel(ax, points[points.setting == setting].reset_index(drop=True), palette, families)
            ax.set_title(setting, pad=30 if in_fits else 6)
        handles = [Line2D([], [], color="0.3", ls="--", lw=1.0, marker="o", mfc="white", mec="black",
                          label="Pareto front (references excluded)"),
                   Line2D([], [], color="0.35", ls=":", lw=1.2, label="random (no fit: costs nothing)"),
                   Line2D([], [], lw=0, marker="o", mfc="none", mec="0.3", label="reference")]
        handles += [Line2D([], [], lw=0, marker="o", color=sns.color_palette(cmap, as_cmap=True)(0.7), label=family)
                    for family, cmap in FAMILY_COLOURS.items() if family != REFERENCE
                    and any(families.get(m, "valuation") == family for m in points.method)]
        fig.legend(handles=handles, loc="lower center", ncols=min(len(handles), legend_columns), frameon=False,
                   fontsize=8)
        _suptitle(fig, "Quality vs cost: area under the subset-value curve (95% CI over seeds) against the fit's "
                       "CPU seconds")
        return _save(fig, path)


def contender_front(here: pd.DataFrame, families: dict[str, str]) -> np.ndarray:
    """Row positions of one panel's Pareto front, cheapest first, over the methods only: references (random,
    which fits nothing, and oracle-greedy, which reads the validation labels) are compared against, never on
    it. ``here`` columns: method, area, seconds (a fit measured at 0 CPU s counts as the panel's cheapest)."""
    contenders = np.flatnonzero(~here.method.map(lambda m: families.get(m) == REFERENCE or m == "random").to_numpy())
    if not contenders.size:
        return contenders
    seconds = here.seconds.to_numpy(float)[contenders]
    positive = seconds[seconds > 0]
    seconds = np.clip(seconds, positive.min() if positive.size else MIN_SECONDS, None)
    return contenders[pareto_front(seconds, here.area.to_numpy(float)[contenders])]


def _quality_cost_panel(ax, here: pd.DataFrame, palette: dict, families: dict[str, str]) -> None:
    reference = here.method.map(lambda m: families.get(m) == REFERENCE).to_numpy()
    free = here.method.eq("random").to_numpy()
    costly = here[~free]
    if costly.empty:
        return
    positive = costly.seconds[costly.seconds > 0]
    floor = positive.min() if not positive.empty else MIN_SECONDS
    seconds = here.seconds.clip(lower=floor).to_numpy()
    area = here.area.to_numpy()
    front = contender_front(here, families)
    for i in np.flatnonzero(~free):
        row = here.iloc[i]
        on_front, is_reference = i in set(front), bool(reference[i])
        ax.errorbar(seconds[i], area[i], yerr=[[area[i] - row.low], [row.high - area[i]]], fmt="o",
                    color=palette[row.method], ms=7 if on_front else 5, mfc="none" if is_reference else None,
                    mec="black" if on_front else palette[row.method] if is_reference else "none", mew=1.0,
                    elinewidth=0.8, alpha=1.0 if on_front or is_reference else 0.55, zorder=3 if on_front else 2)
    if front.size:
        ax.step(seconds[front], area[front], where="post", color="0.3", lw=1.0, ls="--", zorder=1)
    ax.set_xscale("log")
    ax.set_xlim(seconds[~free].min() / 2.5, seconds[~free].max() * 2.5)
    shown = np.r_[area[~free], area[free]]
    span = shown.max() - shown.min()
    ax.set_ylim(shown.min() - 0.12 * span - 0.01, shown.max() + 0.18 * span + 0.01)
    ax.set_xlabel("fit CPU seconds (median over seeds, log)")
    ax.set_ylabel("subset-value area (mean acc.)")
    taken = []
    if free.any():
        level = float(area[free][0])
        ax.axhline(level, color="0.35", ls=":", lw=1.2, zorder=1)
        renderer = ax.figure.canvas.get_renderer()
        text = ax.annotate("random", (0.01, level), xycoords=("axes fraction", "data"), xytext=(1, 2),
                           textcoords="offset points", ha="left", va="bottom", fontsize=LABEL_SIZE, color="0.3",
                           gid=LABEL_GID)
        taken.append(text.get_window_extent(renderer).padded(1.5))
    if "fit_s" in here and here.fit_s.notna().any():
        fit = float(here.fit_s.median())
        top = ax.secondary_xaxis("top", functions=(lambda s: s / fit, lambda f: f * fit))
        top.set_xlabel("learner fits", fontsize=8, labelpad=2)
        top.tick_params(labelsize=7.5)
    order = [*front, *np.flatnonzero(reference & ~free)]
    place_labels(ax, [(short_label(here.method[i]), seconds[i], area[i]) for i in order],
                 list(zip(seconds[~free], area[~free])), taken)


def rank_figure(analysis, path: Path, regime: str = "", families: dict[str, str] | None = None) -> Path:
    """Mean ranks of a :class:`valbench.report.stats.RankAnalysis`, one row per method (best on top), legible at any count.

    Each method's mean rank with a bar of +-CD/2 (the Nemenyi critical difference): two methods whose bars do
    not overlap differ significantly. Shaded: within one CD of the best (not significantly worse than it);
    dotted: random's rank. Names are coloured by family. Two methods (a Wilcoxon test, no CD): their mean
    ranks as bars. ``regime`` (e.g. "clean labels") heads the title when a run ranks several regimes.
    """
    families = families or {}
    result = analysis.result
    ranks = result.rankdf["meanrank"].sort_values(kind="stable")
    names = [str(m) for m in ranks.index]
    n = len(ranks)
    colour = lambda m: sns.color_palette(FAMILY_COLOURS.get(families.get(m, "valuation"), "Greys"),  # noqa: E731
                                         as_cmap=True)(0.8)
    with _style():
        fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, 7.5), 1.5 + 0.21 * n), layout="constrained")
        y = np.arange(n)
        if result.cd is None:  # two methods: no CD diagram to draw, so their mean ranks as bars
            ax.barh(names, ranks.to_numpy(), color="0.55")
        else:
            best = float(ranks.iloc[0])
            ax.axvspan(best, best + result.cd, color="#e3f1dc", zorder=0, lw=0)
            ax.errorbar(ranks.to_numpy(), y, xerr=result.cd / 2, fmt="none", ecolor="0.6", elinewidth=1.2,
                        capsize=2, zorder=2)
            ax.scatter(ranks.to_numpy(), y, c=[colour(m) for m in names], s=26, zorder=3)
            if "random" in names:
                ax.axvline(ranks["random"], color="0.35", ls=":", lw=1.1, zorder=1)
            ax.set_yticks(y, [short_label(m) for m in names])
            for method, label in zip(names, ax.get_yticklabels()):
                label.set_color(colour(method))
                label.set_fontweight("bold" if method == "random" else "normal")
            ax.set_xlim(0.5, max(ranks.max() + result.cd / 2, n) + 0.5)
        ax.invert_yaxis()
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlabel("mean rank (1 = best)")
        ax.grid(axis="y", visible=False)
        # autorank runs Friedman + Nemenyi for 3+ methods, a Wilcoxon signed-rank test (no CD) for two
        test = f"{str(result.omnibus).capitalize()} p = {result.pvalue:.2g}"
        how = ("" if result.cd is None else f"\nbars: ±CD/2 (Nemenyi CD = {result.cd:.2f}): apart = significantly "
               "different; shaded: within one CD of the best; dotted: random's rank; a → b: clean with a, then "
               "select with b")
        head = f"{regime}: m" if regime else "M"
        title = f"{head}ean rank over {result.num_samples} (dataset x budget) blocks, 1 = best; {test}{how}"
        width = int(fig.get_figwidth() * 13)
        fig.suptitle("\n".join(textwrap.fill(part, width) for part in title.split("\n")), fontsize=9)
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
    width = 1.0 * table.shape[1] + max(len(short_label(m)) for m in table.index) * 0.07 + 2.0
    height = 0.42 * table.shape[0] + 1.9
    with _style():
        fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, max(width, 4.5)), height), layout="constrained")
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
        ax.set_yticks(np.arange(len(table.index)) + 0.5, [short_label(m) for m in table.index], rotation=0)
        return _save(fig, path)


def _record_column(cells: pd.DataFrame, column: str) -> pd.Series:
    """A numeric column of ``cells``, or the same field read from each cell's raw ``record`` where the frame lacks it."""
    if column in cells:
        return pd.to_numeric(cells[column], errors="coerce")
    if "record" in cells:
        return pd.to_numeric(cells.record.map(lambda r: r.get(column)), errors="coerce")
    return pd.Series(np.nan, index=cells.index)


def cost_table_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (method, setting): the median fit CPU seconds over the seeds that finished, the same in learner fits
    (the fit's CPU time over one learner fit on the cell's train split, where the run timed one: what
    ``--cap-fits`` counts), how many of its cells ran past the cap and of how many, and the cap (CPU s and
    learner fits, the median over the setting's cells that recorded it)."""
    frame = cells.assign(cpu=_record_column(cells, "cpu_s"), one_fit=_record_column(cells, "learner_fit_cpu_s"),
                         cap_s=_record_column(cells, "cap_cpu_s"))
    frame["fits"] = frame.cpu / frame.one_fit
    ok = frame[frame.status == "ok"]
    keys = ["method", "setting"]
    table = pd.DataFrame({"cells": frame.groupby(keys, sort=False).size(),
                          "over_cap": frame.assign(o=frame.status == "over cap").groupby(keys, sort=False).o.sum()})
    table = table.join(ok.groupby(keys, sort=False)[["cpu", "fits"]].median())
    caps = frame.groupby("setting", sort=False).agg(cap_s=("cap_s", "median"), one_fit=("one_fit", "median"))
    table = table.join(caps, on="setting")
    table["cap_fits"] = table.cap_s / table.one_fit
    return table.reset_index()


def _compact(value: float) -> str:
    """A cost in a few characters: 0.019, 2.4, 53, 1400 (never an exponent inside a heat-map cell)."""
    if value == 0:
        return "0"
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}" if value >= 1e-3 else f"{value:.0e}"


def cost_figure(cells: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None) -> Path:
    """Fit CPU seconds per method (rows) and setting (columns), median over the seeds, as a heat map (log colour).

    Each cell reads its CPU seconds and, where the run timed one learner fit, its cost in learner fits (what the
    cap counts: CPU time, so a loaded machine does not inflate it). A method whose every cell in a setting ran
    past the cap is hatched and reads "over cap" with the cap it passed; one where some seeds did is marked †.
    ``cells``: every cell, whatever its status, with setting, method, status, cpu_s and optionally
    learner_fit_cpu_s and cap_cpu_s (else read from ``record``).
    """
    table = cost_table_frame(cells)
    settings = list(dict.fromkeys(cells.setting))
    methods = sorted(cells.method.unique())
    cpu = table.pivot(index="method", columns="setting", values="cpu").reindex(index=methods, columns=settings)
    positive = cpu.drop(index=[m for m in methods if m == "random"])  # random fits nothing: it sets no scale
    positive = positive[positive > 0].stack()
    low, high = (positive.min(), positive.max()) if not positive.empty else (MIN_SECONDS, 1.0)
    cell_w = min(0.78, max(0.5, (MAX_WIDTH - 3.4) / max(len(settings), 1)))
    with _style():
        fig, ax = plt.subplots(figsize=(max(7.0, 3.4 + cell_w * len(settings)), 2.2 + 0.36 * len(methods)),
                               layout="constrained")
        norm = matplotlib.colors.LogNorm(vmin=low, vmax=max(high, low * 10))
        image = ax.imshow(cpu.clip(lower=low).to_numpy(float), cmap="YlOrRd", norm=norm, aspect="auto")
        fig.colorbar(image, ax=ax, shrink=0.8, label="fit CPU seconds (median over seeds)")
        ax.set_facecolor("0.95")
        index = {(r.method, r.setting): r for r in table.itertuples()}
        for i, method in enumerate(methods):
            for j, setting in enumerate(settings):
                row = index.get((method, setting))
                if row is None:
                    ax.text(j, i, "not run", ha="center", va="center", fontsize=6.5, color="0.5")
                    continue
                if row.over_cap == row.cells:
                    ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.85",
                                                              hatch="////", edgecolor="0.55", lw=0))
                    cap = f"> {row.cap_fits:.0f} fits" if row.cap_fits == row.cap_fits else (
                        f"> {row.cap_s:.3g} s" if row.cap_s == row.cap_s else "")
                    ax.text(j, i, f"over cap\n{cap}".strip(), ha="center", va="center", fontsize=6.5,
                            color="0.1", fontweight="bold")
                    continue
                if row.cpu != row.cpu:
                    ax.text(j, i, "failed", ha="center", va="center", fontsize=6.5, color="0.4")
                    continue
                text = f"{_compact(row.cpu)} s" + (f"\n{_compact(row.fits)} fits" if row.fits == row.fits else "")
                text += " †" * bool(row.over_cap)
                dark = norm(max(row.cpu, low)) > 0.6
                ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="white" if dark else "0.1")
        ax.set_xticks(range(len(settings)), settings, rotation=30, ha="right")
        ax.set_yticks(range(len(methods)), [short_label(m) for m in methods])
        for method, label in zip(methods, ax.get_yticklabels()):
            label.set_color(sns.color_palette(FAMILY_COLOURS.get((families or {}).get(method, "valuation"), "Greys"),
                                              as_cmap=True)(0.85))
        ax.tick_params(axis="both", labelsize=7.5)
        ax.grid(False)
        title = ("Cost of each method's fit: CPU seconds and learner fits (what the cap counts), median over seeds.",
                 "Hatched: every seed over the cap; †: some seeds over it (median of the others); a → b: clean with "
                 "a, then select with b")
        fig.suptitle("\n".join(textwrap.fill(line, int(fig.get_figwidth() * 13)) for line in title), fontsize=9)
        return _save(fig, path)


def cost_vs_size_figure(cells: pd.DataFrame, palette: dict, path: Path, families: dict[str, str] | None = None) -> Path:
    """Fit CPU seconds vs train-set size (log-log), one panel per dataset whose size the run varied."""
    datasets = list(dict.fromkeys(cells.dataset))
    methods = sorted(cells.method.unique())
    with _style():
        fig, axes = _facets(len(datasets), panel=(3.4, 2.9))
        for ax, dataset in zip(axes, datasets):
            here = cells[cells.dataset == dataset].assign(cpu_s=lambda f: f.cpu_s.clip(lower=MIN_SECONDS))
            for method in methods:
                rows = here[here.method == method]
                if rows.empty:
                    continue
                curve = _curve_summary(rows, "n_train", "cpu_s")
                ax.scatter(rows.n_train, rows.cpu_s, color=palette[method], s=10, alpha=0.5, edgecolor="none")
                ax.plot(curve.n_train, curve["mean"], color=palette[method], marker="o", ms=3.5, lw=1.6)
            ax.set(xscale="log", yscale="log", title=dataset)
            ax.set_xlabel("train points (log scale)")
            ax.set_ylabel("fit CPU seconds (log scale)")
            sizes = sorted(here.n_train.unique())
            ax.set_xticks(sizes, [str(int(n)) for n in sizes])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        _family_legend(fig, palette, families or {}, methods)
        _suptitle(fig, "Cost vs train-set size: fit CPU seconds (dots: seeds, line: mean)")
        return _save(fig, path)
