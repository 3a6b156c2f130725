"""The suite's valuation methods; importing this package registers every one of them."""

from methods import knn_shapley, loo, random  # noqa: F401  (imported for their registrations)
