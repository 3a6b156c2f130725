"""The benchmark grid: a configuration (CLI flags or a TOML file) expanded into independent cells.

A cell is one (dataset, dataset params, method, method params, seed, noise rate) with the budgets and the
learner it is measured with. Every parameter given as a list expands the grid (benchopt-style), and each
cell carries a hash of its full configuration: the results store skips a cell whose hash it already has,
so a rerun recomputes only what is new or changed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.metrics import DEFAULT_BUDGETS, check_budget_fractions
from bench.protocol import DataError
from bench.registry import get_dataset, get_method


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    seed: int
    noise_rate: float
    budgets: tuple[float, ...]
    dataset_params: dict[str, Any] = field(default_factory=dict)
    method_params: dict[str, Any] = field(default_factory=dict)
    learner: dict[str, Any] = field(default_factory=lambda: {"name": "logreg"})

    @property
    def key(self) -> str:
        """A stable hash of everything that determines the cell's result."""
        canonical = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.method} on {self.dataset} (seed {self.seed}, noise {self.noise_rate})"


@dataclass
class GridConfig:
    methods: list[str]
    datasets: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    noise: list[float] = field(default_factory=lambda: [0.1])
    budgets: list[float] = field(default_factory=lambda: list(DEFAULT_BUDGETS))
    learner: dict[str, Any] = field(default_factory=lambda: {"name": "logreg"})
    dataset_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    time_limit: float = 600.0
    exclude: list[dict[str, str]] = field(default_factory=list)  # e.g. {method = "loo", dataset = "mnist"}

    @classmethod
    def from_toml(cls, path: str | Path) -> "GridConfig":
        path = Path(path)
        if not path.exists():
            raise DataError(f"config file {path} not found")
        with open(path, "rb") as f:
            raw = tomllib.load(f)
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise DataError(f"config {path}: unknown key(s) {unknown}; valid: {sorted(cls.__dataclass_fields__)}")
        if isinstance(raw.get("learner"), str):
            raw["learner"] = {"name": raw["learner"]}
        return cls(**raw)

    def validate(self) -> None:
        """Fail fast, before any cell runs, on names, noise rates, budgets and method parameters."""
        if not self.methods or not self.datasets:
            raise DataError("the grid needs at least one method and one dataset")
        for name in self.datasets:
            get_dataset(name)
        for name in self.methods:
            get_method(name)
        for rate in self.noise:
            if not 0 <= rate < 1:
                raise DataError(f"noise rate {rate} is outside [0, 1)")
        check_budget_fractions(self.budgets)
        for rule in self.exclude:
            if not rule or set(rule) - {"method", "dataset"}:
                raise DataError(f"exclude rule {rule} must name a method and/or a dataset, nothing else")
        for name, params in self.method_params.items():
            cls = get_method(name)
            for combo in _expand(params):
                cls(**combo)  # raises on unknown parameters, naming the valid ones

    def excluded(self, dataset: str, method: str) -> bool:
        """Whether an ``exclude`` rule drops this (dataset, method) pair, e.g. a method too slow for a dataset."""
        return any(_matches(rule, dataset, method) for rule in self.exclude)

    def cells(self) -> list[Cell]:
        cells = []
        for dataset, method, seed, rate in itertools.product(self.datasets, self.methods, self.seeds, self.noise):
            if self.excluded(dataset, method):
                continue
            for dparams in _expand(self.dataset_params.get(dataset, {})):
                for mparams in _expand(self.method_params.get(method, {})):
                    cells.append(Cell(dataset=dataset, method=method, seed=int(seed), noise_rate=float(rate),
                                      budgets=tuple(float(b) for b in self.budgets), dataset_params=dparams,
                                      method_params={**get_method(method).params, **mparams},
                                      learner=dict(self.learner)))
        return cells


def _matches(rule: dict[str, str], dataset: str, method: str) -> bool:
    return rule.get("dataset", dataset) == dataset and rule.get("method", method) == method


def _expand(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The cross product of every list-valued parameter (scalars stay fixed)."""
    keys = list(params)
    values = [v if isinstance(v, list) else [v] for v in params.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``owner.param=v1,v2`` -> (owner, param, value or list of values), values parsed as numbers where possible."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise DataError(f"cannot parse {text!r}: expected NAME.PARAM=VALUE[,VALUE...]")
    lhs, rhs = text.split("=", 1)
    owner, param = lhs.rsplit(".", 1)
    values = [_parse_scalar(v) for v in rhs.split(",")]
    return owner, param, values if len(values) > 1 else values[0]


def _parse_scalar(text: str) -> Any:
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)
