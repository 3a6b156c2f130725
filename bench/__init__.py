"""valbench: a benchmark suite for training-data valuation and high-value subset selection."""

from valbench.learners import FittedModel, Learner, make_learner
from valbench.protocol import DataError, Dataset, MethodError, Valuation, ValuationMethod
from valbench.registry import register_dataset, register_method


def __getattr__(name: str):
    """``valbench.select``: imported on first use (it pulls in the harness, pandas and matplotlib)."""
    if name == "select":
        from valbench.keep import select

        return select
    raise AttributeError(f"module 'valbench' has no attribute {name!r}")


__all__ = ["DataError", "Dataset", "FittedModel", "Learner", "MethodError", "Valuation", "ValuationMethod",
           "make_learner", "register_dataset", "register_method", "select"]
