"""The short HTML page of a selection: the noise estimate, the evidence, the recommendation, one figure."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from valbench.keep.selection import Selection

FIGURE = "evidence.png"
PAGE = "index.html"


def draw_evidence(selection: Selection, path: Path) -> Path:
    """Each candidate's value at the budget (mean and t interval over seeds), random's mean as a line; the
    applied entry in orange."""
    rows = selection.evidence.dropna(subset=["value"]).sort_values("value")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.4))
    for position, row in enumerate(rows.itertuples()):
        colour = "tab:orange" if row.label == selection.recommended else "black"
        ax.errorbar(row.value, position, xerr=[[row.value - row.low], [row.high - row.value]], fmt="o",
                    color=colour, ecolor=colour, capsize=3, lw=1.2)
    ax.set_yticks(range(len(rows)), rows.label)
    random = rows[rows.label == "random"]
    if not random.empty:
        ax.axvline(random.value.iloc[0], color="tab:blue", ls="--", lw=1, label="random (mean)")
        ax.legend(loc="best")
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(f"{selection.metric.replace('_', ' ')} of the subset at the budget, held-out rows "
                  f"(mean, 95 % interval over {int(rows.n_seeds.max())} seeds)")
    ax.set_title("Candidates measured on your data")
    fig.tight_layout()
    fig.savefig(path, dpi=110, facecolor="white")
    plt.close(fig)
    return path


def write_page(selection: Selection, out_dir: Path) -> Path:
    """``out_dir/index.html`` with the figure beside it."""
    draw_evidence(selection, out_dir / FIGURE)
    evidence = selection.evidence.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>valbench select</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>",
        "<h1>Which points to keep</h1>",
        f"<p><b>Recommendation:</b> {html.escape(selection.sentence)}</p>",
        f"<p><b>Label noise:</b> {html.escape(selection.noise.sentence())}.</p>",
        f"<p><b>Label issues:</b> {html.escape(selection.detection_rule)}</p>",
        f"<img src='{FIGURE}' alt='candidates measured on your data'>",
        "<h2>Evidence</h2>",
        f"<p>Budget {html.escape(selection.budget_text)}; value = {html.escape(selection.metric.replace('_', ' '))} "
        "of the learner retrained on each candidate's subset, on held-out rows; vs_random = the paired difference to "
        "random over the same seeds' splits; cost_fits = the fit's CPU time in logistic-regression fits.</p>",
        evidence,
    ]
    if selection.left_out:
        parts += ["<h2>Not measured</h2><ul>"] + [f"<li>{html.escape(k)}: {html.escape(v)}</li>"
                                                 for k, v in selection.left_out.items()] + ["</ul>"]
    if selection.detection is not None:
        parts += ["<h2>Detectors on labels flipped at the estimated rate</h2>",
                  selection.detection.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")]
    parts.append(f"<p>Per-row values: <code>{html.escape(selection.paths.get('values', ''))}</code></p></body></html>")
    path = out_dir / PAGE
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
