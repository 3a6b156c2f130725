"""The report of a run, built once: the frames, the verdict and the detail statistics every output renders.

:func:`build_report` reads the run directory once (:func:`valbench.report.frame.load_run`), applies the choice
rule once (:func:`valbench.report.verdict.build_verdict`) and computes the detail statistics (family bests,
where a pipeline's win comes from, the mislabel-detection ranking, the stability of the stored values) once; :mod:`~valbench.report.html`,
:mod:`~valbench.report.markdown`, :mod:`~valbench.report.terminal` and :mod:`~valbench.report.readme` only
format this :class:`Report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from valbench.report.frame import RunFrames, load_run
from valbench.report.labels import Labels
from valbench.report.stability import stability_tables
from valbench.report.stats import Attribution, attribution, detection_ranking, family_bests
from valbench.report.verdict import Verdict, build_verdict
from valbench.values import params_text


@dataclass(frozen=True)
class Report:
    """What every output of a run is a rendering of."""

    frames: RunFrames
    verdict: Verdict
    family_bests: pd.DataFrame  # valbench.report.stats.family_bests against the verdict's best per budget
    attributions: dict[str, Attribution]  # setting -> where the win comes from
    detection: pd.DataFrame  # valbench.report.stats.detection_ranking
    stability: dict[str, pd.DataFrame]  # valbench.report.stability.stability_tables (empty without scores files)
    entry_stability: dict[tuple[str, str], str]  # (setting, entry label) -> "stable (0.82)" / "unstable (0.31)"

    @property
    def name(self) -> str:
        """The run directory's name (``real``, ``reference``, ``run-<hash>``)."""
        return self.frames.run_dir.resolve().name

    def title(self, what: str) -> str:
        """The first line of every output: what it is, the run, and its status against the grid ("partial run")."""
        return f"valbench {what}: {self.name}, {self.frames.grid.line()}"


def build_report(run_dir: str | Path) -> Report:
    """Read ``run_dir`` and compute everything its outputs show, once."""
    frames = load_run(run_dir)
    verdict = build_verdict(frames)
    cells, budgets = frames.cells, frames.budgets
    bests = {(s.setting, b.fraction): b.choice.best for s in verdict.settings for b in s.per_budget}
    families = dict(zip(cells.method, cells.family))
    records = list(cells.record)
    stability = stability_tables(run_dir)
    return Report(frames=frames, verdict=verdict,
                  family_bests=family_bests(budgets, families, bests) if not budgets.empty else pd.DataFrame(),
                  attributions={a.setting: a for a in attribution(budgets, Labels(records).identities(records))}
                  if not budgets.empty else {},
                  detection=detection_ranking(cells), stability=stability,
                  entry_stability=entry_stability(cells, stability["column"]))


def entry_stability(cells: pd.DataFrame, column: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Each entry's stability text keyed by (setting, label): the scores files name an entry by its dataset,
    noise rate, method and parameters (:func:`valbench.values.params_text`), the report by its setting and label."""
    if column.empty or cells.empty:
        return {}
    text = {(r.dataset, float(r.noise_rate), r.method, r.params): r.stability for r in column.itertuples()}
    out = {}
    for c in cells.drop_duplicates(["setting", "method"]).itertuples():
        key = (c.dataset, float(c.noise_rate), c.method_name, params_text(c.record.get("method_params")))
        if text.get(key):
            out[(c.setting, c.method)] = text[key]
    return out
