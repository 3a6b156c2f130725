"""valbench: a benchmark suite for training-data valuation and high-value subset selection."""

from bench.learners import FittedModel, Learner, make_learner
from bench.protocol import DataError, Dataset, MethodError, Valuation, ValuationMethod
from bench.registry import register_dataset, register_method

__all__ = ["DataError", "Dataset", "FittedModel", "Learner", "MethodError", "Valuation", "ValuationMethod",
           "make_learner", "register_dataset", "register_method"]
