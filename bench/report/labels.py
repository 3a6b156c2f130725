"""How every output names a cell's method and setting: the one labelling scheme of the suite.

A *method* is a method name with its parameters, a *setting* is a dataset with its parameters at one noise
rate (and with one learner), a *regime* the noise rate and learner alone: clean labels and each noise rate,
and each learner where a run had several, are judged separately. A parameter appears in a label only when the run varied it for that name, so a plain run reads
"loo" and "wine", a parameter grid reads "loo (utility=accuracy)" and "loo (utility=neg_loss)", and a size
sweep reads "synthetic (n_train=200)". Several noise rates add ", noise 0.1" to the setting, several
learners ", learner mlp". The terminal
summary, ``summary.md``, ``results.csv``, the statistics, the verdict and ``index.html`` all label with
:class:`Labels`, so two variants of one method are two entries everywhere, never their blend.
"""

from __future__ import annotations

import json
from typing import Any

FAMILY_OF_PREFIX = {"odv-": "peer", "pydvl-": "peer"}
REFERENCE_NAMES = {"random", "oracle-greedy"}


def _format_params(params: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={params.get(k, '-')}" for k in keys)


def varied_keys(param_dicts: list[dict[str, Any]]) -> list[str]:
    """Parameter names whose value differs between the given dicts."""
    keys = sorted({k for d in param_dicts for k in d})
    return [k for k in keys if len({json.dumps(d.get(k), sort_keys=True, default=str) for d in param_dicts}) > 1]


class Labels:
    """Labels for the records of one run: ``method(record)``, ``setting(record)`` and ``family(record)``."""

    def __init__(self, records: list[dict]) -> None:
        self._varied = {field: self._varied_per_name(records, name_field, field)
                        for name_field, field in (("method", "method_params"), ("dataset", "dataset_params"))}
        self._several_noises = len({r.get("noise_rate") for r in records}) > 1
        self._several_learners = len({learner_name(r) for r in records}) > 1

    @staticmethod
    def _varied_per_name(records: list[dict], name_field: str, params_field: str) -> dict[str, list[str]]:
        by_name: dict[str, list[dict]] = {}
        for r in records:
            by_name.setdefault(r[name_field], []).append(r.get(params_field) or {})
        return {name: varied_keys(dicts) for name, dicts in by_name.items()}

    def _label(self, record: dict, name_field: str, params_field: str) -> str:
        name = record[name_field]
        keys = self._varied[params_field].get(name, [])
        return name if not keys else f"{name} ({_format_params(record.get(params_field) or {}, keys)})"

    def method(self, record: dict) -> str:
        """The method's name, plus the parameters the run varied for it: ``loo (utility=accuracy)``."""
        return self._label(record, "method", "method_params")

    def setting(self, record: dict) -> str:
        """The dataset's name, plus its varied parameters, plus the noise rate where the run had several."""
        label = self._label(record, "dataset", "dataset_params")
        if self._several_noises:
            label += f", noise {record.get('noise_rate'):g}"
        if self._several_learners:
            label += f", learner {learner_name(record)}"
        return label

    def regime(self, record: dict) -> str:
        """The noise rate ("clean labels" at 0), plus the learner where the run had several."""
        rate = record.get("noise_rate") or 0.0
        label = "clean labels" if rate == 0 else f"noise {rate:g}"
        return label + (f", learner {learner_name(record)}" if self._several_learners else "")

    def identities(self, records: list[dict]) -> dict[str, tuple[str, dict]]:
        """``{method label: (method name, its parameters)}``, so statistics can find e.g. a pipeline's selector."""
        return {self.method(r): (r["method"], dict(r.get("method_params") or {})) for r in records}

    @staticmethod
    def family(record: dict) -> str:
        """The method's family (:data:`valbench.protocol.FAMILIES`): as recorded, else from the registry, else guessed."""
        return method_family(record["method"], record.get("family"))


def learner_name(record: dict) -> str:
    """The learner's name with its non-default parameters as recorded (``logreg`` when absent)."""
    learner = record.get("learner") or {"name": "logreg"}
    if isinstance(learner, str):
        return learner
    extra = ", ".join(f"{k}={v}" for k, v in sorted(learner.items()) if k != "name")
    return learner.get("name", "logreg") + (f" ({extra})" if extra else "")


def method_family(name: str, recorded: str | None = None) -> str:
    """``recorded`` when the run stored it; else the registered class's ``family``; else from the name.

    Old records carry no family and a report may be rendered where a plugin method is not importable, so
    the name decides last: ``odv-*`` and ``pydvl-*`` are peers, ``random`` and ``oracle-greedy``
    references, anything else a per-point valuation.
    """
    if recorded:
        return recorded
    from valbench.registry import METHODS

    if name in METHODS:
        return METHODS[name].family
    for prefix, family in FAMILY_OF_PREFIX.items():
        if name.startswith(prefix):
            return family
    return "reference" if name in REFERENCE_NAMES else "valuation"
