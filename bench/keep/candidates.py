"""Which methods to measure on the user's data: the real grid's scalable entries whose cost fits its size.

Costs are in learner fits (the method's fit CPU seconds over one logistic-regression fit on the same rows), as
measured on Fashion-MNIST at 2,500-20,000 train points (``benchmarks/results/scaling_fashion_mnist/``, one
thread): the fits at 20,000 points and the log-log slope of fits against N. A candidate whose predicted cost
at the user's train size exceeds ``max_fits`` is left out, with its prediction stated; ``random`` is always in.
The prediction is a guide, not a promise (the features differ): the measurement also runs under the real
grid's cap (:data:`CAP_FITS`), so a candidate that runs past it is recorded "over cap", never waited for.
gradmatch and glister pass the cap at 20,000 points already and are not in the default pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from valbench.protocol import DataError
from valbench.registry import METHODS, get_method

CAP_FITS = 60.0  # the real grid's cap (configs/real.toml): a fit may take 60 learner fits on its train split
MAX_FITS = 10.0  # default: leave out candidates predicted to cost more learner fits than this
MEMORY_LIMIT_MB = 3000.0  # a measured cell's worker past this is killed: select stays under 4 GB at --jobs 1
RANDOM = "random"

# method: (learner fits at 20,000 points, slope of fits against N), benchmarks/results/scaling_fashion_mnist
MEASURED_FITS = {"random": (0.0, 0.0), "knn-shapley": (0.30, 0.16), "herding": (0.34, 0.62),
                 "facility-location": (0.91, 0.51), "el2n": (1.13, 0.0), "aum": (1.53, 0.0), "hostcp": (2.69, 0.06),
                 "cleanlab": (4.00, 0.01), "enn": (5.37, 0.86), "hostcp-fl": (7.39, 0.37), "influence": (8.27, 0.02),
                 "craig": (8.45, 0.47), "kcenter": (12.37, 1.48),
                 "data-oob": (8.95, -0.16)}  # benchmarks/results/data_oob_speed.md: 100 models over odv's per-model CPU s
MEASURED_AT = 20_000

# the methods that value against the validation split (configs/real.toml): the final refit carves one out for them
USES_VALIDATION = {"knn-shapley", "influence", "glister", "hostcp", "hostcp-lp", "hostcp-paper", "hostcp-fl"}
DETECTORS = ("cleanlab", "enn", "aum")  # label-error detectors (low score = suspect), ranked by --check-detection


@dataclass(frozen=True)
class Candidate:
    """One entry to measure: a method with its parameters, and the label every output names it by."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.method == "pipeline":
            return f"pipeline ({self.params['detector']}, {self.params['selector']})"
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.method} ({shown})" if shown else self.method

    @property
    def uses_validation(self) -> bool:
        """Whether the method reads the validation split (unknown methods: assume so)."""
        if self.method == "pipeline":
            return any(Candidate(self.params[p]).uses_validation for p in ("detector", "selector"))
        return self.method in USES_VALIDATION or self.method not in MEASURED_FITS

    def params_key(self) -> str:
        return json.dumps(self.params, sort_keys=True, default=str)

    def predicted_fits(self, n_train: int) -> float | None:
        """Predicted cost in learner fits at ``n_train`` points; None when never measured."""
        if self.method == "pipeline":  # the detector on every row, then the selector on the rows it keeps
            parts = [Candidate(self.params[p]).predicted_fits(n_train) for p in ("detector", "selector")]
            return None if None in parts else sum(parts)  # type: ignore[arg-type]
        if self.method not in MEASURED_FITS:
            return None
        fits, slope = MEASURED_FITS[self.method]
        return fits * (n_train / MEASURED_AT) ** slope


DEFAULT_POOL = (
    Candidate("random"), Candidate("knn-shapley"), Candidate("herding"), Candidate("facility-location"),
    Candidate("el2n", {"keep": "easy"}), Candidate("aum", {"keep": "easy"}), Candidate("cleanlab"), Candidate("enn"),
    Candidate("hostcp"), Candidate("influence"), Candidate("hostcp-fl"), Candidate("craig"), Candidate("kcenter"),
    Candidate("pipeline", {"detector": "cleanlab", "selector": "facility-location"}),
    Candidate("pipeline", {"detector": "enn", "selector": "facility-location"}),
    Candidate("pipeline", {"detector": "cleanlab", "selector": "random"}),
    Candidate("pipeline", {"detector": "enn", "selector": "random"}),
)


def parse_methods(names: list[str]) -> list[Candidate]:
    """Candidates named on the command line (``--methods random,herding,...``) at their default parameters;
    each name checked against the registry up front. ``random`` is added when missing."""
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        raise DataError(f"--methods: unknown method(s) {unknown}; valid: {sorted(METHODS)}")
    chosen = [Candidate(name) for name in dict.fromkeys(names)]
    return chosen if any(c.method == RANDOM for c in chosen) else [Candidate(RANDOM), *chosen]


def choose_candidates(n_train: int, methods: list[str] | None = None,
                      max_fits: float = MAX_FITS) -> tuple[list[Candidate], dict[str, str]]:
    """The candidates to measure at ``n_train`` train points, and why each left-out one is out.

    ``methods`` (named by the user) are all measured, whatever their predicted cost; else the default pool
    filtered by cost. Every candidate's parameters are checked by its method before any work starts.
    """
    if methods:
        chosen, left_out = parse_methods(methods), {}
    else:
        chosen, left_out = [], {}
        for candidate in DEFAULT_POOL:
            if candidate.method not in METHODS:
                left_out[candidate.label] = "not installed"
                continue
            fits = candidate.predicted_fits(n_train)
            if candidate.method == RANDOM or (fits is not None and fits <= max_fits):
                chosen.append(candidate)
            else:
                left_out[candidate.label] = f"predicted {fits:.1f} learner fits at {n_train:,} points > {max_fits:g}"
    for candidate in chosen:
        get_method(candidate.method)(**candidate.params).check()
    return chosen, left_out
