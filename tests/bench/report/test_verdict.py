"""The one choice rule (valbench.report.verdict.choose): exact ties, the cost tie-break, random within one point."""

import math

import pandas as pd
import pytest

from valbench.report.verdict import Choice, choose


def frame(rows):
    return pd.DataFrame(rows, columns=["label", "value", "cost_fits", "n_seeds"])


def test_highest_value_wins_and_is_alone_when_nothing_ties():
    choice = choose(frame([("random", 0.80, 0.0, 3), ("a", 0.90, 5.0, 3), ("b", 0.85, 1.0, 3)]))
    assert choice == Choice(best="a", ties=("a",), cheapest_within="a", random_within=False)


def test_exact_tie_goes_to_the_cheaper_then_the_name_and_lists_every_tied_entry():
    rows = [("zeta", 0.940428, 2.0, 3), ("cleanlab", 0.940428, 9.0, 3), ("enn", 0.940428, 2.0, 3),
            ("knn-shapley", 0.940428 - 1e-13, 2.0, 3), ("loo", 0.90, 0.5, 3)]
    choice = choose(frame(rows))
    assert choice.best == "enn"  # cost 2.0 ties with zeta and knn-shapley; the name decides
    assert choice.ties == ("enn", "knn-shapley", "zeta", "cleanlab")
    # the order of the rows never changes the outcome
    assert choose(frame(rows[::-1])) == choice


def test_a_difference_above_the_tolerance_is_not_a_tie():
    choice = choose(frame([("a", 0.5 + 1e-9, 9.0, 2), ("b", 0.5, 0.0, 2)]))
    assert (choice.best, choice.ties) == ("a", ("a",))


def test_random_competes_for_cheapest_within_one_point():
    choice = choose(frame([("random", 0.810, 0.0, 3), ("hostcp", 0.819, 40.0, 3), ("kcenter", 0.815, 3.0, 3)]))
    assert choice.best == "hostcp" and choice.cheapest_within == "random" and choice.random_within
    far = choose(frame([("random", 0.70, 0.0, 3), ("hostcp", 0.819, 40.0, 3), ("kcenter", 0.812, 3.0, 3)]))
    assert far.cheapest_within == "kcenter" and not far.random_within


def test_random_wins_a_cost_tie_for_cheapest_within():
    # herding's CPU time rounded to 0: it ties random's 0 and would win on its name
    choice = choose(frame([("random", 0.80, 0.0, 3), ("herding", 0.805, 0.0, 3), ("hostcp", 0.81, 9.0, 3)]))
    assert choice.cheapest_within == "random" and choice.random_within


def test_within_one_point_includes_its_boundary_and_the_argument_sets_it():
    rows = frame([("random", 0.94, 0.0, 2), ("a", 0.95, 1.0, 2)])
    assert choose(rows).random_within  # exactly one point below (0.95 - 0.01 in floating point)
    assert not choose(rows, within=0.005).random_within


def test_random_can_be_the_best_and_a_missing_value_is_no_candidate():
    choice = choose(frame([("random", 0.9, 0.0, 1), ("a", 0.9, 3.0, 1), ("b", math.nan, 0.1, 0)]))
    assert choice == Choice(best="random", ties=("random", "a"), cheapest_within="random", random_within=True)


def test_an_unmeasured_cost_never_makes_an_entry_the_cheap_one():
    choice = choose(frame([("a", 0.9, math.nan, 1), ("b", 0.9, 7.0, 1)]))
    assert choice.best == "b" and choice.cheapest_within == "b"


def test_without_random_random_is_never_within():
    assert not choose(frame([("a", 0.9, 1.0, 1)])).random_within


def test_no_candidate_or_a_missing_column_is_a_clear_error():
    with pytest.raises(ValueError, match="no candidate has a value"):
        choose(frame([("a", math.nan, 1.0, 1)]))
    with pytest.raises(ValueError, match="cost_fits"):
        choose(pd.DataFrame({"label": ["a"], "value": [1.0]}))
