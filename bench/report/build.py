"""The report of a run, built once: the frames, the verdict and the detail statistics every output renders.

:func:`build_report` reads the run directory once (:func:`valbench.report.frame.load_run`), applies the choice
rule once (:func:`valbench.report.verdict.build_verdict`) and computes the detail statistics (family bests,
where a pipeline's win comes from, the mislabel-detection ranking) once; :mod:`~valbench.report.html`,
:mod:`~valbench.report.markdown`, :mod:`~valbench.report.terminal` and :mod:`~valbench.report.readme` only
format this :class:`Report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from valbench.report.frame import RunFrames, load_run
from valbench.report.labels import Labels
from valbench.report.stats import Attribution, attribution, detection_ranking, family_bests
from valbench.report.verdict import Verdict, build_verdict


@dataclass(frozen=True)
class Report:
    """What every output of a run is a rendering of."""

    frames: RunFrames
    verdict: Verdict
    family_bests: pd.DataFrame  # valbench.report.stats.family_bests against the verdict's best per budget
    attributions: dict[str, Attribution]  # setting -> where the win comes from
    detection: pd.DataFrame  # valbench.report.stats.detection_ranking

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
    return Report(frames=frames, verdict=verdict,
                  family_bests=family_bests(budgets, families, bests) if not budgets.empty else pd.DataFrame(),
                  attributions={a.setting: a for a in attribution(budgets, Labels(records).identities(records))}
                  if not budgets.empty else {},
                  detection=detection_ranking(cells))
