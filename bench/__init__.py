"""valbench: a benchmark suite for training-data valuation and high-value subset selection."""

from valbench.learners import FittedModel, Learner, make_learner
from valbench.protocol import DataError, Dataset, MethodError, Valuation, ValuationMethod
from valbench.registry import register_dataset, register_method

__all__ = ["DataError", "Dataset", "FittedModel", "Learner", "MethodError", "Valuation", "ValuationMethod",
           "make_learner", "register_dataset", "register_method"]
