"""How every output names a cell's method and setting: the one labelling scheme of the suite.

A *method* is a method name with its parameters, a *setting* is a dataset with its parameters at one noise
rate. A parameter appears in a label only when the run varied it for that name, so a plain run reads
"loo" and "wine", a parameter grid reads "loo (utility=accuracy)" and "loo (utility=neg_loss)", and a size
sweep reads "synthetic (n_train=200)". Several noise rates add ", noise 0.1" to the setting. The terminal
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
        return label

    @staticmethod
    def family(record: dict) -> str:
        """The method's family (:data:`bench.protocol.FAMILIES`): as recorded, else from the registry, else guessed."""
        return method_family(record["method"], record.get("family"))


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
