"""The suite's valuation methods; importing this package registers every one of them."""

from methods import hostcp, hostcp_plus, influence, knn_shapley, loo, random, semivalues, tmc_shapley  # noqa: F401  (registrations)
from methods import craig, facility_location, glister, gradmatch, kcenter, oracle_greedy  # noqa: F401  (set selectors)
from methods import opendataval  # noqa: F401  (registers odv-* when OpenDataVal is importable)
from methods import pydvl  # noqa: F401  (registers pydvl-* when pyDVL 0.10 is importable)
