"""The benchmark grid: a configuration (CLI flags or a TOML file) expanded into independent cells.

A cell is one (dataset, dataset params, method, method params, seed, noise rate) with the budgets and the
learner it is measured with. Every parameter given as a list expands the grid (benchopt-style), and each
cell carries a hash of its full configuration: the results store skips a cell whose hash it already has,
so a rerun recomputes only what is new or changed.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import sys
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from valbench.learners import IMAGE_LEARNERS, LEARNERS, learner_for
from valbench.metrics import DEFAULT_BUDGETS, budget_sizes, check_budget_fractions
from valbench.params import check_values, method_rules, signature_rules
from valbench.protocol import DataError
from valbench.registry import check_learner_support, get_dataset, get_method, image_datasets


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
    cap_fits: float | None = None  # a method's fit may take this many learner fits on the full train split
    memory_limit: float | None = None  # MB of resident memory a cell's process may use (None: no limit)
    exclude: list[dict[str, str]] = field(default_factory=list)  # e.g. {method = "loo", dataset = "mnist"}

    @classmethod
    def from_toml(cls, path: str | Path) -> "GridConfig":
        path = Path(path)
        if not path.exists():
            raise DataError(f"config file {path} not found")
        if path.is_dir():
            raise DataError(f"config {path} is a directory; give a TOML file (e.g. configs/quick.toml)")
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise DataError(f"config {path} is not valid TOML: {err}") from err
        except UnicodeDecodeError as err:
            raise DataError(f"config {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from err
        except OSError as err:
            raise DataError(f"config {path} cannot be read ({err.strerror or err})") from err
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise DataError(f"config {path}: unknown key(s) {unknown}; valid: {sorted(cls.__dataclass_fields__)}")
        if isinstance(raw.get("learner"), str):
            raw["learner"] = {"name": raw["learner"]}
        return cls(**{"methods": [], "datasets": [], **raw})  # flags may give what the file does not

    @classmethod
    def from_record(cls, config: dict[str, Any]) -> "GridConfig":
        """The grid a run's ``config.json`` records (its other keys, such as ``plugins`` and ``grids``, left out)."""
        return cls(**{k: v for k, v in config.items() if k in cls.__dataclass_fields__})

    def validate(self) -> None:
        """Fail fast, before any cell runs, on anything a cell would refuse: names, seeds, noise rates,
        budgets, the time limit, the learner, method parameters (each method's own :meth:`check` on every
        combination) and dataset parameters (the loader's signature, then each distinct dataset loaded once,
        which also checks files, sizes and budgets in points)."""
        number = (int, float)
        for name, kind, what in (("methods", str, "method names"), ("datasets", str, "dataset names"),
                                 ("seeds", int, "whole numbers"), ("noise", number, "numbers"),
                                 ("budgets", number, "numbers")):
            values = getattr(self, name)
            if not isinstance(values, list) or not all(isinstance(v, kind) and not isinstance(v, bool)
                                                       for v in values):
                raise DataError(f"`{name}` must be a list of {what}, got {values!r}")
        if not self.methods or not self.datasets:
            raise DataError("the grid needs at least one method and one dataset: give `methods = [...]` and "
                            "`datasets = [...]` in the config, or --methods and --datasets")
        for name, kind in (("learner", "a table such as {name = \"mlp\"}"),
                           ("method_params", "a table of tables, [method_params.NAME]"),
                           ("dataset_params", "a table of tables, [dataset_params.NAME]")):
            value = getattr(self, name)
            if not isinstance(value, dict) or (name != "learner" and not all(isinstance(v, dict)
                                                                             for v in value.values())):
                raise DataError(f"`{name}` must be {kind}, got {value!r}")
        if not isinstance(self.exclude, list) or not all(isinstance(r, dict) for r in self.exclude):
            raise DataError(f"`exclude` must be a list of tables such as {{method = \"loo\", dataset = \"mnist\"}}, "
                            f"got {self.exclude!r}")
        for name in ("methods", "datasets", "seeds", "noise", "budgets"):
            setattr(self, name, drop_duplicates(name, getattr(self, name)))
        for name in self.datasets:
            get_dataset(name)
        for name in self.methods:
            get_method(name)
        check_seeds(self.seeds)
        if not self.noise:
            raise DataError("the grid needs at least one noise rate (e.g. --noise 0.1)")
        for rate in self.noise:
            if not 0 <= rate < 1:
                raise DataError(f"noise rate {rate} is outside [0, 1)")
        check_budget_fractions(self.budgets)
        if not self.budgets:
            raise DataError("the grid needs at least one budget (e.g. --budgets 0.1,0.5)")
        if isinstance(self.time_limit, bool) or not isinstance(self.time_limit, (int, float)) \
                or not 0 < self.time_limit < float("inf"):
            raise DataError(f"time limit {self.time_limit!r} is invalid: give seconds per cell, a number > 0")
        if self.cap_fits is not None and (isinstance(self.cap_fits, bool) or not isinstance(self.cap_fits, (int, float))
                                          or not 0 < self.cap_fits < float("inf")):
            raise DataError(f"cap_fits {self.cap_fits!r} is invalid: give the learner fits a method's fit may take, "
                            "a number > 0 (e.g. 60)")
        if self.memory_limit is not None and (isinstance(self.memory_limit, bool)
                                              or not isinstance(self.memory_limit, (int, float))
                                              or not 0 < self.memory_limit < float("inf")):
            raise DataError(f"memory limit {self.memory_limit!r} is invalid: give megabytes per cell, a number > 0")
        check_learner(self.learner)
        for rule in self.exclude:
            if not rule or set(rule) - {"method", "dataset"}:
                raise DataError(f"exclude rule {rule} must name a method and/or a dataset, nothing else")
            if "method" in rule:
                get_method(rule["method"])
            if "dataset" in rule:
                get_dataset(rule["dataset"])
        for name in sorted({*self.methods, *self.method_params}):
            cls = get_method(name)
            given = self.method_params.get(name, {})
            if given:  # values as the rules read them ("no" -> False), so each cell records what ran
                self.method_params[name] = check_values(f"method {name!r}", given, method_rules(cls), cls.params)
            for combo in _expand(self.method_params.get(name, {})):
                cls(**combo).check()  # unknown parameters, wrong types, values the method refuses
        for name in self.methods:
            check_learner_support(name, self.learner.get("name", "logreg"))
        for name, params in self.dataset_params.items():
            self.dataset_params[name] = check_dataset_params(name, params)
        self.check_data()

    def check_data(self) -> None:
        """Load each distinct (dataset, parameters) of the grid once, for its first seed, and size the budgets.

        Loading is what checks a file, its columns and the requested split sizes, and the learner is built
        for the data's shape (its parameter values); the built-in sets load in milliseconds (mnist, the
        slowest, in about 1.5 s), so the whole grid's data is checked before the first cell starts.
        """
        for name in self.datasets:
            if all(self.excluded(name, method) for method in self.methods):
                continue
            for params in _expand(self.dataset_params.get(name, {})):
                try:
                    data = get_dataset(name)(seed=int(self.seeds[0]), **params)
                except DataError:
                    raise
                except Exception as err:  # noqa: BLE001 - a loader's own failure, said in one line
                    first_line = (str(err).splitlines() or [""])[0]
                    raise DataError(f"dataset {name!r} with {params} cannot be loaded: "
                                    f"{type(err).__name__}: {first_line}") from err
                budget_sizes(self.budgets, data.n_train, name)
                learner = {k: v for k, v in self.learner.items() if k != "name"}
                learner_name = self.learner.get("name", "logreg")
                if learner_name in IMAGE_LEARNERS and data.meta.get("image_shape") is None:
                    raise DataError(f"learner {learner_name!r} needs images, but dataset {name!r} carries no image "
                                    f"shape; datasets with one: {', '.join(image_datasets()) or 'none registered'}")
                try:
                    learner_for(learner_name, data, **learner)
                except (TypeError, ValueError) as err:
                    raise DataError(f"learner {self.learner}: {err}") from err

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


SEED_MAX = 2**32 - 2  # numpy and scikit-learn seeds are 32-bit; the splits use seed + 1


def drop_duplicates(name: str, values: list[Any]) -> list[Any]:
    """``values`` with repeats removed (first occurrence kept), and a one-line warning naming them: a repeated
    seed or method would run the same cells twice and count them twice in every statistic."""
    unique = list(dict.fromkeys(values))
    if len(unique) < len(values):
        repeated = sorted({v for v in values if values.count(v) > 1}, key=values.index)
        print(f"warning: {name} {', '.join(map(str, repeated))} given more than once; each runs once",
              file=sys.stderr)
    return unique


def check_seeds(seeds: list[Any]) -> None:
    """Seeds are whole numbers in [0, 2**32 - 2], at least one."""
    if not seeds:
        raise DataError("the grid needs at least one seed (e.g. --seeds 0,1,2)")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
            raise DataError(f"seed {seed!r} is invalid: seeds are whole numbers in [0, {SEED_MAX}]")


def check_learner(learner: dict[str, Any]) -> None:
    """The learner's name is registered and its parameters are ones its constructor takes, of the types and
    in the ranges its rules give (:mod:`valbench.params`); values are converted in place."""
    name = learner.get("name", "logreg")
    if not isinstance(name, str) or name not in LEARNERS:
        raise DataError(f"unknown learner {name!r}; valid: {sorted(LEARNERS)}")
    rules = signature_rules(LEARNERS[name].__init__, exclude={"n_features", "n_classes", "seed", "image_shape"})
    if rules is not None:
        learner.update(check_values(f"learner {name!r}", {k: v for k, v in learner.items() if k != "name"}, rules,
                                    _defaults(LEARNERS[name].__init__)))


def check_dataset_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Every parameter is one the dataset's loader takes (its signature) with a value its rule accepts, and
    the seed is not one of them; returns the values converted."""
    if "seed" in params:
        raise DataError(f"dataset {name!r}: the seed is set with --seeds (or `seeds` in the config), "
                        "not as a dataset parameter")
    loader = get_dataset(name)
    rules = signature_rules(loader, exclude={"seed"})
    return params if rules is None else check_values(f"dataset {name!r}", params, rules, _defaults(loader))


def _defaults(function: Any) -> dict[str, Any]:
    return {n: p.default for n, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


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
    """A number where the text is one, else the text: the parameter's rule reads it (``"no"`` for a boolean,
    :mod:`valbench.params`)."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)
