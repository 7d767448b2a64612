"""serving.forest: every model XGBoost writes passes; every corrupt index is refused with its place.

Each corruption is made on a real model's parsed document (:data:`tests.unit.model_files.MODELS`)
and checked in both file formats: written back as JSON text and as the UBJSON XGBoost writes,
then parsed again (``json.loads`` / :func:`serving.ubjson.decode`), as the loader does. None of
these documents is ever handed to XGBoost here: several of them kill the process (see
``tests/integration/test_serving_corrupt_trees.py``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from serving.forest import CorruptModel, check_model
from serving.ubjson import decode
from serving.wellformed import MalformedModel
from tests.unit.model_files import CORRUPTIONS, MODELS, Doc, Mutation, gbtree, nth_tree, parsed, to_bytes

FORMATS = ("json", "ubj")


def _reparsed(doc: Doc, fmt: str) -> Any:
    """``doc`` through the file format: what the loader parses from a file holding it."""
    raw = to_bytes(doc, fmt)
    return json.loads(raw) if fmt == "json" else decode(raw)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_xgboost_writes_passes(name: str, fmt: str) -> None:
    check_model(parsed(name, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_model_as_older_xgboost_wrote_it_passes(fmt: str) -> None:
    """XGBoost 1.x files: no iteration_indptr, no categorical arrays, size_leaf_vector 0."""
    doc = parsed("softprob", fmt)
    model = gbtree(doc)
    del model["iteration_indptr"], model["cats"]
    for tree in model["trees"]:
        for key in (
            "split_type",
            "categories",
            "categories_nodes",
            "categories_segments",
            "categories_sizes",
        ):
            del tree[key]
        tree["tree_param"]["size_leaf_vector"] = "0"
    del doc["learner"]["learner_model_param"]["num_target"]
    check_model(_reparsed(doc, fmt))


def test_the_corrupted_tree_is_the_expected_shape() -> None:
    tree = nth_tree(parsed("softprob", "json"), 4)
    assert tree["left_children"] == [1, 3, 5, -1, -1, -1, -1]
    assert tree["right_children"] == [2, 4, 6, -1, -1, -1, -1]
    assert tree["parents"] == [2**31 - 1, 0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("case", "name", "mutate", "reason"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_each_corrupt_index_is_refused_with_its_place(
    case: str, name: str, mutate: Mutation, reason: str, fmt: str
) -> None:
    doc = parsed(name, fmt)
    check_model(copy.deepcopy(doc))  # the model itself passes: the corruption is what is refused
    mutate(doc)
    with pytest.raises(CorruptModel) as err:
        check_model(_reparsed(doc, fmt))
    assert reason in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({}, "the document: 'learner' is missing or not the object XGBoost writes"),
        (
            {"learner": {"learner_model_param": {}, "gradient_booster": {"name": "gbtree", "model": []}}},
            "gradient_booster: 'model' is missing or not the object",
        ),
        (
            {
                "learner": {
                    "learner_model_param": {"num_feature": "4"},
                    "gradient_booster": {
                        "name": "gbtree",
                        "model": {"gbtree_model_param": {"num_trees": "1"}, "trees": [[]], "tree_info": [0]},
                    },
                }
            },
            "tree 0 is not an object",
        ),
    ],
)
def test_missing_structure_is_refused_not_a_python_error(doc: Any, reason: str) -> None:
    with pytest.raises(CorruptModel, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_model(doc)


def test_index_arrays_must_hold_integers() -> None:
    doc = parsed("softprob", "json")
    nth_tree(doc, 4)["left_children"] = [1.5, 3, 5, -1, -1, -1, -1]
    with pytest.raises(CorruptModel, match="left_children holds values that are not integers"):
        check_model(doc)


def test_a_corrupt_model_is_a_malformed_model() -> None:
    """The loader reports both the same way: an ordinary load failure with the reason."""
    assert issubclass(CorruptModel, MalformedModel)
