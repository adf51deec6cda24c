"""Search spaces: every domain's values, conditional branches, plist grids, and one clear error per bad space."""

import math
import re

import pytest
from xmanager import xm
from xmanager.xm import search
from xmanager.xm.search import Space, SpaceError


def test_domains_map_the_unit_interval_onto_their_values():
    space = Space({"lr": search.loguniform(1e-4, 1e-1), "x": search.uniform(-1, 1), "n": search.randint(2, 4),
                   "act": search.choice(["relu", "tanh"]), "seed": 7})
    low, high = space.params([0.0] * 4), space.params([0.999999] * 4)
    assert low == {"seed": 7, "lr": pytest.approx(1e-4), "x": -1.0, "n": 2, "act": "relu"}
    assert high["lr"] == pytest.approx(1e-1, rel=1e-4) and high["x"] == pytest.approx(1, abs=1e-5)
    assert (high["n"], high["act"]) == (4, "tanh")
    middle = space.params([0.5] * 4)
    assert middle["lr"] == pytest.approx(math.sqrt(1e-4 * 1e-1)) and middle["n"] == 3


def test_conditional_branches_add_only_the_chosen_parameters():
    space = Space({"model": search.conditional({"svm": {"C": search.loguniform(1e-2, 1e2)},
                                                "knn": {"k": search.randint(1, 9)}})})
    assert [dimension.path for dimension in space.dimensions] == ["model", "model=svm.C", "model=knn.k"]
    assert space.params([0.1, 0.5, 0.9]) == {"model": "svm", "C": pytest.approx(1.0)}
    assert space.params([0.9, 0.5, 0.0]) == {"model": "knn", "k": 1}
    assert space.names() == {"model", "C", "k"}


def test_plists_and_lists_are_choices():
    space = Space({"lr": xm.plist("lr", [0.1, 0.01]), "depth": [2, 4, 8]})
    assert space.params([0.9, 0.4]) == {"lr": 0.01, "depth": 4}


@pytest.mark.parametrize(("space", "message"), [
    ({}, "search space is empty"),
    ([], "search grid is empty"),
    ("lr", "search space must be a dict of parameter name to domain or a grid"),
    ({"lr": search.uniform(1, 0)}, "search space 'lr': uniform(1, 0) needs lo < hi"),
    ({"lr": search.loguniform(0, 1)}, "search space 'lr': loguniform(0, 1) needs lo > 0"),
    ({"lr": search.uniform(0, float("nan"))}, "search space 'lr': uniform's hi must be a finite number"),
    ({"n": search.randint(1.5, 3)}, "search space 'n': randint's lo must be an integer"),
    ({"n": search.randint(3, 1)}, "search space 'n': randint(3, 1) needs lo <= hi"),
    ({"act": search.choice([])}, "search space 'act': choice needs at least one option"),
    ({"act": search.choice("relu")}, "search space 'act': choice takes a list of options"),
    ({"m": search.conditional({"svm": {"C": search.uniform(2, 1)}})}, "search space 'm=svm.C': uniform"),
    ({"m": search.conditional({"svm": {"m": 1}})}, "option 'svm' defines 'm' again"),
    ({"lr": xm.plist("rate", [1, 2])}, "a plist here holds only 'lr'"),
    ({"lr": (0.1, 0.2)}, "search space 'lr': tuple is not a domain"),
    ({1: search.uniform(0, 1)}, "parameter names are non-empty strings"),
])
def test_bad_spaces_name_the_parameter(space, message):
    with pytest.raises(SpaceError, match=re.escape(message)):
        search.Study(space)
