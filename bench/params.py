"""Strict parameter values: one declarative rule set for every method's, learner's and dataset's parameters.

A parameter's :class:`Rule` says its type, its range and its choices; the error message prints it. Rules are
inferred wherever possible, so a new method, learner or dataset usually declares nothing:

* a **method**'s rules come from its ``params`` defaults (``{"k": 10}``: an int; ``{"keep": "hard"}``: a
  string; ``{"weighted": False}``: a boolean; a ``None`` or structured default: any value), widened by
  ``param_kinds`` (``{"damping": (str, int, float)}``) and overridden by a class attribute ``param_rules``
  where inference is not enough, e.g.::

      from valbench.params import Rule

      class MyMethod(ValuationMethod):
          params = {"k": 10, "mode": "fast", "tolerance": 0.01}
          param_rules = {"k": Rule(int, low=1), "mode": Rule(str, choices=("fast", "exact")),
                         "tolerance": Rule(float, low=0, low_open=True)}

  (a method's own ``check()`` still adds rules that tie parameters together);
* a **learner**'s and a **dataset** loader's rules come from their signature: the type hint
  (``drop_nonfinite: bool = False``, ``n_train: int | float | None = None``; an ``int | None`` hint with a
  ``None`` default takes any number, since sizes are counts or fractions), else the default; a
  ``param_rules`` attribute on the loader function (or learner ``__init__``) overrides them.

The values themselves: a boolean takes true/false/yes/no/1/0 (any case, from the command line or a TOML file)
and nothing else; an int takes whole numbers only (2.5 is refused, never truncated); a float takes any
finite number; a parameter nothing declares is refused. The grid checks every value of every cell with
these rules before the first cell runs (:meth:`valbench.grid.GridConfig.validate`).
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from valbench.errors import DataError

BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_KIND_NAMES = {bool: "a boolean (true/false/yes/no/1/0)", int: "a whole number (int)", float: "a number",
               str: "a string"}


@dataclass(frozen=True)
class Rule:
    """The values a parameter accepts: ``kind`` (a type or a tuple of types; ``object`` for any), an optional
    range ``low``/``high`` (inclusive unless ``low_open``/``high_open``), optional ``choices`` and whether
    ``None`` is allowed (``nullable``)."""

    kind: type | tuple[type, ...] = object
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    nullable: bool = False

    @property
    def kinds(self) -> tuple[type, ...]:
        return self.kind if isinstance(self.kind, tuple) else (self.kind,)

    def describe(self) -> str:
        """What the rule accepts, in words (printed by every refusal)."""
        if self.choices is not None:
            text = f"one of {list(self.choices)}"
        elif object in self.kinds:
            text = "any value"
        else:
            kinds = [k for k in self.kinds if not (k is int and float in self.kinds)]  # a float takes ints too
            text = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        if bounds:
            text += " " + " and ".join(bounds)
        return text + (" (or none)" if self.nullable else "")

    def convert(self, value: Any) -> Any:
        """``value`` as the parameter takes it, or raise ``ValueError`` (the caller names the parameter)."""
        if value is None:
            if self.nullable or object in self.kinds:
                return None
            raise ValueError
        if object not in self.kinds:
            value = _convert_kind(value, self.kinds)
        if self.choices is not None and value not in self.choices:
            raise ValueError
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
                raise ValueError
            if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
                raise ValueError
        return value


def _convert_kind(value: Any, kinds: tuple[type, ...]) -> Any:
    if bool in kinds:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
            return BOOL_WORDS[value.strip().lower()]
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    if isinstance(value, bool):
        raise ValueError  # True is not the number 1 here
    if int in kinds and isinstance(value, int):
        return value
    if float in kinds and isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError
        return value
    if int in kinds and isinstance(value, float) and value.is_integer() and float not in kinds:
        return int(value)  # 3.0 from a TOML file is the whole number 3
    if str in kinds and isinstance(value, str):
        return value
    for kind in kinds:
        if kind not in (bool, int, float, str) and isinstance(value, kind):
            return value
    raise ValueError


def rule_from_default(default: Any) -> Rule:
    """The rule a default implies: its type (ints take ints, floats any number), or any value for None."""
    if isinstance(default, bool):
        return Rule(bool)
    if isinstance(default, int):
        return Rule(int)
    if isinstance(default, float):
        return Rule(float)
    if isinstance(default, str):
        return Rule(str)
    return Rule(object)  # None or a structured default: the owner's own check decides


def rule_from_hint(hint: Any, default: Any) -> Rule:
    """The rule a type hint implies (``int | float | None``), else the default's (:func:`rule_from_default`)."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    kinds = tuple(a for a in args if a in (bool, int, float, str))
    nullable = type(None) in args
    if kinds and len(kinds) == len([a for a in args if a is not type(None)]):
        if default is None and int in kinds and float not in kinds:
            kinds += (float,)  # an optional size (n_train: int | None) is a count or a fraction: its owner checks
        return Rule(kinds if len(kinds) > 1 else kinds[0], nullable=nullable)
    return rule_from_default(default) if default is not inspect.Parameter.empty else Rule(object)


def method_rules(cls: Any) -> dict[str, Rule]:
    """A method class's rules: inferred from ``params``, widened by ``param_kinds``, set by ``param_rules``."""
    rules = {name: rule_from_default(default) for name, default in cls.params.items()}
    for name, kinds in getattr(cls, "param_kinds", {}).items():
        rules[name] = Rule(tuple(kinds))
    rules.update(getattr(cls, "param_rules", {}))
    return rules


def signature_rules(function: Callable[..., Any], exclude: set[str]) -> dict[str, Rule] | None:
    """A callable's rules from its keyword parameters (type hints, else defaults); None when it takes
    ``**kwargs`` (anything goes: its own code checks)."""
    signature = inspect.signature(function)
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - an unresolvable hint: fall back to the defaults
        hints = {}
    declared = getattr(function, "param_rules", {})
    return {name: declared.get(name) or rule_from_hint(hints.get(name), p.default)
            for name, p in signature.parameters.items() if name not in exclude and name != "self"}


def check_values(owner: str, given: Mapping[str, Any], rules: Mapping[str, Rule],
                 defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``given`` with every value converted by its rule; raise :class:`DataError` in one line naming the
    parameter, the value and what is valid, for a parameter no rule declares or a value its rule refuses.
    A list value (a grid axis) is checked element by element."""
    unknown = sorted(set(given) - set(rules))
    if unknown:
        raise DataError(f"{owner}: unknown parameter(s) {unknown}; valid: {sorted(rules)}")
    out = {}
    for name, value in given.items():
        rule = rules[name]
        values = value if isinstance(value, list) else [value]
        converted = []
        for v in values:
            try:
                converted.append(rule.convert(v))
            except (ValueError, TypeError):
                default = f" (default {defaults[name]!r})" if defaults and name in defaults else ""
                raise DataError(f"{owner}: {name}={v!r} is invalid; {name} takes {rule.describe()}{default}") from None
        out[name] = converted if isinstance(value, list) else converted[0]
    return out
