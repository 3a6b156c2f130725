"""The report's figures are readable: few labelled lines by default, labels that never overlap or leave their
panel, random never on a Pareto front, over-cap methods shown in the cost figure. Drawn from small synthetic
frames, so nothing runs but matplotlib."""

import itertools
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from valbench.report import plots
from valbench.report.plots import (LABEL_GID, TOP_METHODS, contender_front, cost_figure, default_methods, method_palette,
                            quality_cost_figure, spread, subset_value_figure)

FAMILIES = {"random": "reference", "oracle-greedy": "reference", "pipeline (detector=enn, selector=random)": "pipeline",
            "pipeline (detector=cleanlab, selector=facility-location)": "pipeline", "odv-DataOob": "peer",
            **{f"val-{i}": "valuation" for i in range(12)}, **{f"sel-{i}": "set-selection" for i in range(8)}}
SETTINGS = ["synthetic, noise 0", "synthetic, noise 0.1", "digits, noise 0"]


def method_skill(method: str) -> float:
    return {"random": 0.30, "oracle-greedy": 0.42}.get(method, 0.2 + 0.01 * (sum(map(ord, method)) % 17))


@pytest.fixture(scope="module")
def budgets() -> pd.DataFrame:
    """Crowded panels: 25 methods whose curves lie close together, three seeds."""
    rng = np.random.default_rng(0)
    rows = [{"setting": s, "method": m, "seed": seed, "fraction": f, "full_accuracy": 0.95,
             "accuracy": min(1.0, 0.55 + method_skill(m) * f ** 0.3 + rng.normal(0, 0.005))}
            for s in SETTINGS for m in FAMILIES for seed in range(3) for f in (0.05, 0.1, 0.2, 0.3, 0.5)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def points() -> pd.DataFrame:
    """Quality vs cost: random best and free, oracle-greedy best of all, the others bunched."""
    rng = np.random.default_rng(1)
    rows = []
    for setting in SETTINGS:
        for i, method in enumerate(FAMILIES):
            area = {"random": 0.99, "oracle-greedy": 1.0}.get(method, 0.8 + 0.004 * i + rng.normal(0, 0.002))
            seconds = {"random": 0.0, "oracle-greedy": 5.0}.get(method, 0.01 * 1.15 ** i)
            rows.append({"setting": setting, "method": method, "area": area, "low": area - 0.01, "high": area + 0.01,
                         "seconds": seconds, "fit_s": 0.02})
    return pd.DataFrame(rows)


def rendered(draw, *args, **kwargs):
    """Draw a figure but keep it open (``_save`` closes it), to inspect its artists."""
    kept = {}
    original = plots._save

    def keep(fig, path, tight=False):
        fig.savefig(path, dpi=plots.DPI)
        kept["fig"] = fig
        return path

    plots._save = keep
    try:
        draw(*args, **kwargs)
    finally:
        plots._save = original
    return kept["fig"]


def label_boxes(fig):
    """Each direct label's text box (an annotation's own extent would include its leader line)."""
    renderer = fig.canvas.get_renderer()
    return [(text, Text.get_window_extent(text, renderer)) for ax in fig.axes for text in ax.texts
            if text.get_gid() == LABEL_GID]


def assert_no_overlap(boxes):
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"labels {a.get_text()!r} and {b.get_text()!r} overlap"


def test_default_methods_are_random_each_familys_best_and_the_top_few():
    scores = pd.Series({m: method_skill(m) for m in FAMILIES})
    chosen = default_methods(scores, FAMILIES)
    top = scores.sort_index().sort_values(ascending=False, kind="stable").index[:TOP_METHODS]
    assert "random" in chosen and set(top) <= set(chosen)
    for family in set(FAMILIES.values()):
        members = [m for m in FAMILIES if FAMILIES[m] == family]
        assert scores[members].idxmax() in chosen
    assert len(chosen) <= 1 + len(set(FAMILIES.values())) + TOP_METHODS
    assert chosen == sorted(chosen, key=lambda m: -scores[m])  # best first


def test_the_default_panel_draws_few_lines_with_random_and_labels_them(budgets, tmp_path):
    fig = rendered(subset_value_figure, budgets, method_palette(list(FAMILIES), FAMILIES), tmp_path / "sv.png", FAMILIES)
    limit = 1 + len(set(FAMILIES.values())) + TOP_METHODS
    for ax in fig.axes:
        curves = [line for line in ax.get_lines() if line.get_marker() == "o"]
        assert 0 < len(curves) <= limit
        labels = {t.get_text() for t in ax.texts if t.get_gid() == LABEL_GID}
        assert "random" in labels and "all train data" in labels
        assert len(labels) == len(curves) + 1  # every curve labelled on its line, no legend
    assert not fig.legends
    plt.close(fig)


def test_the_all_methods_figure_draws_every_method(budgets, tmp_path):
    fig = rendered(subset_value_figure, budgets, method_palette(list(FAMILIES), FAMILIES), tmp_path / "all.png",
                   FAMILIES, all_methods=True)
    assert all(len(ax.get_lines()) >= len(FAMILIES) for ax in fig.axes)  # a line per method (and the full-data one)
    assert fig.legends  # every method cannot be labelled on its line: a legend by family
    plt.close(fig)


def test_line_labels_never_overlap_nor_enter_another_panel(budgets, tmp_path):
    fig = rendered(subset_value_figure, budgets, method_palette(list(FAMILIES), FAMILIES), tmp_path / "sv.png", FAMILIES)
    boxes = label_boxes(fig)
    assert len(boxes) > 10
    assert_no_overlap(boxes)
    renderer = fig.canvas.get_renderer()
    panels = [ax.get_window_extent(renderer) for ax in fig.axes]
    figure = fig.bbox
    for text, box in boxes:
        assert not any(box.overlaps(panel) for panel in panels), f"{text.get_text()!r} lies on a panel"
        assert figure.x0 <= box.x0 and box.x1 <= figure.x1 and figure.y0 <= box.y0 and box.y1 <= figure.y1
    plt.close(fig)


def test_random_and_references_are_never_on_the_pareto_front(points):
    here = points[points.setting == SETTINGS[0]].reset_index(drop=True)
    front = set(here.method[contender_front(here, FAMILIES)])
    assert front and not front & {"random", "oracle-greedy"}  # both beat every method here, and cost least / most
    cheapest = here[~here.method.isin(["random", "oracle-greedy"])].sort_values("seconds").method.iloc[0]
    assert cheapest in front


def test_random_is_a_line_at_its_true_cost_not_a_point(points, tmp_path):
    fig = rendered(quality_cost_figure, points, method_palette(list(FAMILIES), FAMILIES), tmp_path / "qc.png",
                   FAMILIES)
    for ax in fig.axes:
        random_line = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert len(random_line) == 1 and set(random_line[0].get_ydata()) == {0.99}
        low, _ = ax.get_xlim()
        assert low > 1e-3  # no fake time for random on the log axis: the axis starts near the cheapest method
    plt.close(fig)


def test_point_labels_never_overlap_and_stay_in_their_panel(points, tmp_path):
    fig = rendered(quality_cost_figure, points, method_palette(list(FAMILIES), FAMILIES), tmp_path / "qc.png",
                   FAMILIES)
    boxes = label_boxes(fig)
    assert len(boxes) >= 2 * len(SETTINGS)
    assert_no_overlap(boxes)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        panel = ax.get_window_extent(renderer)
        for text in (t for t in ax.texts if t.get_gid() == LABEL_GID):
            box = Text.get_window_extent(text, renderer)
            assert panel.x0 <= box.x0 and box.x1 <= panel.x1 and panel.y0 <= box.y0 and box.y1 <= panel.y1
    plt.close(fig)


def test_over_cap_methods_appear_in_the_cost_figure(tmp_path):
    rows = []
    for setting in SETTINGS[:2]:
        for method in ("random", "val-0", "sel-0"):
            for seed in range(3):
                over = method == "sel-0" and (setting == SETTINGS[0] or seed == 0)
                rows.append({"setting": setting, "method": method, "seed": seed,
                             "status": "over cap" if over else "ok",
                             "cpu_s": np.nan if over else {"random": 0.0, "val-0": 0.5, "sel-0": 4.0}[method],
                             "learner_fit_cpu_s": np.nan if over else 0.1, "cap_cpu_s": np.nan if over else 10.0})
    cells = pd.DataFrame(rows)
    fig = rendered(cost_figure, cells, method_palette(list(FAMILIES), FAMILIES), tmp_path / "cost.png", FAMILIES)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("over cap\n> 100 fits") == 1  # every seed over the cap: marked at the cap (10 s / 0.1 s)
    assert "4 s\n40 fits †" in texts  # some seeds over the cap: the median of the others, marked
    assert "0.5 s\n5 fits" in texts  # CPU seconds and learner fits
    assert sum(bool(p.get_hatch()) for p in ax.patches) == 1
    plt.close(fig)


def test_spread_keeps_order_and_gaps_within_bounds():
    rng = np.random.default_rng(3)
    for _ in range(50):
        positions = rng.uniform(0.6, 1.0, 8)
        out = spread(positions, 0.05, 0.025, 0.975)
        order = np.argsort(positions, kind="stable")
        assert (np.diff(out[order]) >= 0.05 - 1e-12).all()
        assert out.min() >= 0.025 - 1e-12 and out.max() <= 0.975 + 1e-12


def test_short_labels_name_a_pipeline_by_its_steps():
    assert plots.short_label("pipeline (detector=enn, selector=facility-location)") == "enn → facility-location"
    assert plots.short_label("craig (weighted=True)") == "craig (weighted=True)"
    assert re.fullmatch(r"forgetting \(easy, true\)", plots.short_label("forgetting (keep=easy, per_class=true)"))


def test_every_figure_in_the_page_is_readable_and_links_to_its_file(tmp_path):
    from tests.bench.report.test_html import DATASETS, METHODS, ok_record, write_run
    from valbench.report.html import FIGURES, render_report

    write_run(tmp_path, [ok_record(d, m, s, n) for d, n in DATASETS.items() for m in METHODS for s in (0, 1)])
    page = render_report(tmp_path).read_text()
    linked = re.findall(r"<a href='([^']+\.png)'><img ", page)
    assert linked and len(linked) == page.count("<img ")  # every embedded figure is a link to its PNG
    for name in linked:
        width = plt.imread(tmp_path / name).shape[1]
        assert width <= 1200, f"{name} is {width} px wide: the page would shrink its text"  # the page's column
    for key in ("subset_value_all", "removal_all", "detection_curves_all"):  # every method, a figure of its own
        assert (tmp_path / FIGURES[key]).exists() and f"href='{FIGURES[key]}'" in page
