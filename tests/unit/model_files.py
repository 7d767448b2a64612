"""Real XGBoost models of every kind, and the means to corrupt them in both file formats.

Shared by the model-file tests (``test_serving_wellformed``, ``test_serving_ubjson``,
``test_serving_forest``, and the loader's and CLI's integration tests): :data:`MODELS` holds one
small booster per kind XGBoost trains; :func:`encode_ubjson` writes a parsed document back as the
UBJSON XGBoost itself writes (``test_serving_ubjson`` holds it to byte equality with
``Booster.save_raw("ubj")``), so a corruption made on a parsed document reaches the checks in
either format (:func:`to_bytes`); :data:`CORRUPTIONS` is the table of corrupt indices, one or more
per index array, with the reason each is refused for, and :data:`IRIS_CRASHERS` the four that
killed the server (issue 23).
"""

from __future__ import annotations

import json
import struct
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from serving.forest import MAX_CATEGORY

Doc = dict[str, Any]
Mutation = Callable[[Doc], None]


def _models() -> dict[str, xgb.Booster]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    binary = (x[:, 0] > 0).astype(int)
    three = (np.abs(x[:, 1]) * 2).astype(int) % 3
    shapes: dict[str, tuple[dict[str, object], np.ndarray]] = {
        "binary": ({"objective": "binary:logistic", "max_depth": 2}, binary),
        "softprob": ({"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, three),
        "regression": ({"objective": "reg:squarederror", "max_depth": 2}, x[:, 2]),
        "random-forest": ({"num_parallel_tree": 3, "max_depth": 3, "subsample": 0.8}, x[:, 2]),
        "lossguide": (
            {"grow_policy": "lossguide", "max_depth": 0, "max_leaves": 60, "tree_method": "hist"},
            x[:, 2],
        ),
        "gblinear": ({"booster": "gblinear"}, binary),
        "gblinear-multiclass": (
            {"booster": "gblinear", "objective": "multi:softprob", "num_class": 3},
            three,
        ),
        "dart": ({"booster": "dart", "objective": "binary:logistic", "max_depth": 2}, binary),
    }
    models = {
        name: xgb.train(params, xgb.DMatrix(x, label=label), num_boost_round=2)
        for name, (params, label) in shapes.items()
    }
    models["quantiles"] = xgb.train(
        {"objective": "reg:quantileerror", "quantile_alpha": np.array([0.1, 0.9]), "tree_method": "hist"},
        xgb.DMatrix(x, label=x[:, 2]),
        num_boost_round=2,
    )
    models["multi-output"] = xgb.train(
        {"tree_method": "hist", "multi_strategy": "multi_output_tree"},
        xgb.DMatrix(x, label=np.stack([x[:, 2], -x[:, 2]], axis=1)),
        num_boost_round=2,
    )
    frame = pd.DataFrame({"colour": pd.Categorical(rng.integers(0, 5, 120)), "size": x[:, 1]})
    cats = xgb.DMatrix(frame, label=x[:, 2], enable_categorical=True)
    models["categorical"] = xgb.train(
        {"tree_method": "hist", "max_cat_to_onehot": 1}, cats, num_boost_round=2
    )
    models["categorical-onehot"] = xgb.train({"tree_method": "hist"}, cats, num_boost_round=2)
    # XGBoost's pruner leaves deleted nodes behind: unreachable leaves counted in num_deleted.
    deep = xgb.train(
        {"max_depth": 6, "tree_method": "exact"}, xgb.DMatrix(x, label=x[:, 2]), num_boost_round=2
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "you have manually specified the updater"
        models["pruned"] = xgb.train(
            {"process_type": "update", "updater": "prune", "gamma": 50},
            xgb.DMatrix(x, label=x[:, 2]),
            num_boost_round=2,
            xgb_model=deep,
        )
    # Brackets, quotes and backslashes inside strings are text, not structure.
    names = ['f\u00e9 "q" }{', "b\\ack", "c", "\u4e2d\u6587"]
    models["strings"] = xgb.train(
        {"objective": "binary:logistic"}, xgb.DMatrix(x, label=binary, feature_names=names), num_boost_round=2
    )
    models["strings"].set_attr(note='brackets ]}{[ and "quotes" and \\ backslash \u2603')
    return models


MODELS = _models()

# numpy dtype -> the UBJSON marker XGBoost writes a typed array of it with.
_TYPED = {
    np.dtype(np.int8): b"i",
    np.dtype(np.uint8): b"U",
    np.dtype(np.int16): b"I",
    np.dtype(np.int32): b"l",
    np.dtype(np.int64): b"L",
    np.dtype(np.float32): b"d",
    np.dtype(np.float64): b"D",
}


def _length(n: int) -> bytes:
    return b"L" + struct.pack(">q", n)


def _int(v: int) -> bytes:
    for marker, fmt, lo, hi in (
        (b"i", ">b", -(1 << 7), 1 << 7),
        (b"U", ">B", 0, 1 << 8),
        (b"I", ">h", -(1 << 15), 1 << 15),
        (b"l", ">i", -(1 << 31), 1 << 31),
    ):
        if lo <= v < hi:
            return marker + struct.pack(fmt, v)
    return b"L" + struct.pack(">q", v)


def encode_ubjson(value: Any) -> bytes:
    """``value`` as XGBoost's UBJSON writer lays it out (numpy arrays become typed arrays)."""
    if isinstance(value, dict):
        return (
            b"{"
            + b"".join(_length(len(k.encode())) + k.encode() + encode_ubjson(v) for k, v in value.items())
            + b"}"
        )
    if isinstance(value, np.ndarray):
        dtype = value.dtype.newbyteorder("=")
        payload = value.astype(dtype.newbyteorder(">")).tobytes()
        return b"[$" + _TYPED[dtype] + b"#" + _length(value.size) + payload
    if isinstance(value, list):
        return b"[#" + _length(len(value)) + b"".join(encode_ubjson(v) for v in value)
    if isinstance(value, str):
        return b"S" + _length(len(value.encode())) + value.encode()
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int | np.integer):
        return _int(int(value))
    if isinstance(value, float | np.floating):
        return b"d" + struct.pack(">f", value)
    if value is None:
        return b"Z"
    raise TypeError(f"cannot encode {type(value).__name__}")


def parsed(name: str, fmt: str) -> Doc:
    """:data:`MODELS` ``name`` as XGBoost writes it in ``fmt`` ("json" or "ubj"), parsed."""
    from serving.ubjson import decode

    raw = bytes(MODELS[name].save_raw(fmt))
    doc: Doc = json.loads(raw) if fmt == "json" else decode(raw)
    return doc


def to_bytes(doc: Doc, fmt: str) -> bytes:
    """A (corrupted) document as a model file of ``fmt``."""
    if fmt == "json":
        return json.dumps(doc, default=lambda a: a.tolist()).encode()
    return encode_ubjson(doc)


def gbtree(doc: Doc) -> Doc:
    gb = doc["learner"]["gradient_booster"]
    model: Doc = gb["gbtree"]["model"] if gb["name"] == "dart" else gb["model"]
    return model


def nth_tree(doc: Doc, t: int) -> Doc:
    tree: Doc = gbtree(doc)["trees"][t]
    return tree


def set_item(obj: Doc, key: str, index: int, value: Any) -> None:
    """``obj[key][index] = value`` on a JSON list or a (read-only) UBJSON typed array alike."""
    arr = obj[key]
    arr = np.array(arr) if isinstance(arr, np.ndarray) else list(arr)
    arr[index] = value
    obj[key] = arr


def drop_last(obj: Doc, key: str) -> None:
    obj[key] = obj[key][:-1]


def node(key: str, index: int, value: int, t: int = 4) -> Mutation:
    return lambda doc: set_item(nth_tree(doc, t), key, index, value)


def short(key: str, t: int = 4) -> Mutation:
    return lambda doc: drop_last(nth_tree(doc, t), key)


def tree_param(key: str, value: str, t: int = 4) -> Mutation:
    return lambda doc: nth_tree(doc, t)["tree_param"].__setitem__(key, value)


def forest(key: str, index: int, value: int) -> Mutation:
    return lambda doc: set_item(gbtree(doc), key, index, value)


def forest_param(key: str, value: str) -> Mutation:
    return lambda doc: gbtree(doc)["gbtree_model_param"].__setitem__(key, value)


def tree_id(t: int, value: int) -> Mutation:
    return lambda doc: nth_tree(doc, t).__setitem__("id", value)


def both(first: Mutation, second: Mutation) -> Mutation:
    def mutate(doc: Doc) -> None:
        first(doc)
        second(doc)

    return mutate


def learner_param(key: str, value: str) -> Mutation:
    return lambda doc: doc["learner"]["learner_model_param"].__setitem__(key, value)


def booster_field(path: tuple[str, ...], key: str) -> Mutation:
    def mutate(doc: Doc) -> None:
        obj = doc["learner"]["gradient_booster"]
        for p in path:
            obj = obj[p]
        drop_last(obj, key)

    return mutate


# Tree 4 of the softprob model is full and depth 2: node 0 splits into 1 and 2, node 1 into
# leaves 3 and 4, node 2 into leaves 5 and 6 (test_the_corrupted_tree_is_the_expected_shape).
CORRUPTIONS: list[tuple[str, str, Mutation, str]] = [
    # the four crashers (a left child out of range, negative, at its own node; tree_info)
    (
        "left-out-of-range",
        "softprob",
        node("left_children", 0, 1000),
        "tree 4: left_children[0] = 1000 is not a node of the tree (7 nodes; -1 marks a leaf)",
    ),
    (
        "left-negative",
        "softprob",
        node("left_children", 0, -5),
        "tree 4: left_children[0] = -5 is not a node",
    ),
    (
        "left-own-node",
        "softprob",
        node("left_children", 1, 1),
        "tree 4: left_children[1] = 1 points back at its own node",
    ),
    (
        "tree-info-out-of-range",
        "softprob",
        forest("tree_info", 0, 1000),
        "tree_info[0] = 1000 is not an output group (the model has 3)",
    ),
    (
        "tree-info-negative",
        "softprob",
        forest("tree_info", 0, -1),
        "tree_info[0] = -1 is not an output group",
    ),
    (
        "right-out-of-range",
        "softprob",
        node("right_children", 0, 1000),
        "tree 4: right_children[0] = 1000 is not a node",
    ),
    (
        "right-leaf-marker-on-a-split",
        "softprob",
        node("right_children", 0, -1),
        "tree 4: right_children[0] = -1 is not a node",
    ),
    (
        "right-own-node",
        "softprob",
        node("right_children", 2, 2),
        "tree 4: right_children[2] = 2 points back at its own node",
    ),
    (
        "child-back-at-root",
        "softprob",
        node("left_children", 1, 0),
        "tree 4: left_children[1] = 0 points back at the root",
    ),
    (
        "child-back-at-sibling",
        "softprob",
        node("left_children", 1, 2),
        "tree 4: left_children[1] = 2 points back at node 2, which is already reached",
    ),
    (
        "two-parents",
        "softprob",
        node("left_children", 2, 3),
        "tree 4: left_children[2] = 3 points back at node 3",
    ),
    (
        "leaf-with-right-child",
        "softprob",
        node("right_children", 3, 4),
        "tree 4: right_children[3] = 4 but node 3 is a leaf",
    ),
    (
        "parent-out-of-range",
        "softprob",
        node("parents", 2, 1000),
        "tree 4: parents[2] = 1000 is not a node of the tree",
    ),
    (
        "parent-negative",
        "softprob",
        node("parents", 2, -7),
        "tree 4: parents[2] = -7 is not a node of the tree",
    ),
    (
        "parent-wrong",
        "softprob",
        node("parents", 3, 2),
        "tree 4: parents[3] = 2 but node 3 is a child of node 1",
    ),
    ("root-with-parent", "softprob", node("parents", 0, 0), "tree 4: parents[0] = 0; the root has no parent"),
    (
        "split-feature-out-of-range",
        "softprob",
        node("split_indices", 0, 4),
        "tree 4: split_indices[0] = 4 is not a feature index (the model has 4 features)",
    ),
    (
        "split-feature-negative",
        "softprob",
        node("split_indices", 2, -1),
        "tree 4: split_indices[2] = -1 is not a feature",
    ),
    *[
        (f"{key}-short", "softprob", short(key), f"tree 4: {key} holds 6 entries; num_nodes is 7")
        for key in (
            "left_children",
            "right_children",
            "parents",
            "split_indices",
            "split_conditions",
            "default_left",
            "loss_changes",
            "sum_hessian",
        )
    ],
    (
        "base_weights-short",
        "softprob",
        short("base_weights"),
        "tree 4: base_weights holds 6 values for 7 nodes",
    ),
    (
        "num-nodes-over",
        "softprob",
        tree_param("num_nodes", "8"),
        "tree 4: left_children holds 7 entries; num_nodes is 8",
    ),
    ("num-nodes-zero", "softprob", tree_param("num_nodes", "0"), "tree 4: tree_param.num_nodes is 0"),
    (
        "num-deleted-wrong",
        "softprob",
        tree_param("num_deleted", "1"),
        "tree 4: 0 node(s) are not reachable from the root but tree_param.num_deleted is 1",
    ),
    (
        "num-deleted-not-a-number",
        "softprob",
        tree_param("num_deleted", "x"),
        "tree 4: tree_param.num_deleted is 'x'",
    ),
    (
        "tree-info-short",
        "softprob",
        lambda doc: drop_last(gbtree(doc), "tree_info"),
        "tree_info holds 5 entries for 6 trees",
    ),
    (
        "num-trees-under",
        "softprob",
        forest_param("num_trees", "5"),
        "gbtree_model_param.num_trees is 5 but the model holds 6 trees",
    ),
    ("num-parallel-tree-zero", "softprob", forest_param("num_parallel_tree", "0"), "num_parallel_tree is 0"),
    ("tree-id-shared", "softprob", tree_id(1, 0), "tree 0: id 0 is out of range or shared with another tree"),
    ("tree-id-out-of-range", "softprob", tree_id(5, 1000), "tree 5: id 1000 is out of range"),
    (
        "iteration-indptr-decreasing",
        "softprob",
        forest("iteration_indptr", 1, 7),
        "iteration_indptr[2] = 6 is below the entry before it",
    ),
    (
        "iteration-indptr-end",
        "softprob",
        forest("iteration_indptr", 2, 5),
        "iteration_indptr must start at 0 and end at num_trees (6)",
    ),
    (
        "num-feature-negative",
        "softprob",
        learner_param("num_feature", "-1"),
        "num_feature is -1, a negative count",
    ),
    (
        "num-class-under",
        "softprob",
        learner_param("num_class", "2"),
        "tree_info[2] = 2 is not an output group",
    ),
    (
        "dart-weight-drop-short",
        "dart",
        booster_field((), "weight_drop"),
        "dart weight_drop holds 1 weights for 2 trees",
    ),
    (
        "gblinear-weights-short",
        "gblinear",
        booster_field(("model",), "weights"),
        "gblinear weights holds 4 values; 4 features and 1 output group(s) need (num_feature + 1) * groups",
    ),
    (
        "gblinear-multiclass-weights",
        "gblinear-multiclass",
        learner_param("num_feature", "5"),
        "gblinear weights holds 15 values; 5 features and 3 output group(s) need",
    ),
    # categorical splits (tree 0: nodes 0, 12, 27, 28 split on categories 0..11)
    (
        "categories-nodes-not-categorical",
        "categorical",
        node("categories_nodes", 1, 13, t=0),
        "tree 0: categories_nodes [0, 13, 27, 28] must list, in increasing order, exactly the nodes",
    ),
    (
        "categories-nodes-out-of-range",
        "categorical",
        node("categories_nodes", 3, 1000, t=0),
        "tree 0: categories_nodes [0, 12, 27, 1000] must list",
    ),
    (
        "split-type-unknown",
        "categorical",
        node("split_type", 1, 2, t=0),
        "tree 0: split_type[1] = 2; 0 (numerical)",
    ),
    (
        "split-type-short",
        "categorical",
        short("split_type", t=0),
        "tree 0: split_type holds 66 entries; num_nodes is 67",
    ),
    (
        "categories-segment-past-end",
        "categorical",
        node("categories_segments", 1, 1000, t=0),
        "tree 0: categories_segments[1] = 1000 with categories_sizes[1] = 4 is not a non-empty range",
    ),
    (
        "categories-segment-negative",
        "categorical",
        node("categories_segments", 0, -3, t=0),
        "tree 0: categories_segments[0] = -3",
    ),
    (
        "categories-size-zero",
        "categorical",
        node("categories_sizes", 0, 0, t=0),
        "tree 0: categories_segments[0] = 0 with categories_sizes[0] = 0 is not a non-empty range",
    ),
    (
        "categories-sizes-short",
        "categorical",
        short("categories_sizes", t=0),
        "tree 0: categories_sizes holds 3 entries for 4 categorical node(s)",
    ),
    (
        "category-negative",
        "categorical",
        node("categories", 2, -1, t=0),
        "tree 0: categories[2] = -1 is not a category",
    ),
    (
        "category-too-large",
        "categorical",
        node("categories", 2, MAX_CATEGORY, t=0),
        f"tree 0: categories[2] = {MAX_CATEGORY} is not a category",
    ),
    # multi-target trees: a leaf's right child numbers its slot in leaf_weights
    (
        "leaf-slot-shared",
        "multi-output",
        node("right_children", 7, 0, t=0),
        "tree 0: right_children[7] = 0 is not a free leaf_weights slot",
    ),
    (
        "leaf-slot-out-of-range",
        "multi-output",
        node("right_children", 3, 12, t=0),
        "tree 0: right_children[3] = 12 is not a free leaf_weights slot",
    ),
    (
        "leaf-weights-short",
        "multi-output",
        short("leaf_weights", t=0),
        "tree 0: leaf_weights holds 23 values; 12 leaves of 2 targets need 24",
    ),
    (
        "multi-left-out-of-range",
        "multi-output",
        node("left_children", 1, 23, t=0),
        "tree 0: left_children[1] = 23 is not a node of the tree (23 nodes",
    ),
    (
        "multi-base-weights",
        "multi-output",
        short("base_weights", t=0),
        "tree 0: base_weights holds 45 values for 23 nodes",
    ),
    (
        "size-leaf-vector-over-targets",
        "multi-output",
        tree_param("size_leaf_vector", "3", t=0),
        "tree 0: size_leaf_vector is 3 but the model has 2 targets",
    ),
    # a pruned tree's deleted nodes (3..22 of tree 0) are leaves; one with children is a stray subtree
    (
        "deleted-node-with-children",
        "pruned",
        both(node("left_children", 5, 7, t=0), node("right_children", 5, 8, t=0)),
        "tree 0: node 5 is not reachable from the root (and not a deleted leaf",
    ),
]


# Issue 23's four crashers (SIGSEGV in xgboost 3.2), made from the iris model that
# `python -m serving.train` writes (its tree 0 is a stump: node 0 splits into leaves 1 and 2).
IRIS_CRASHERS: list[tuple[str, Mutation, str]] = [
    ("left-child-out-of-range", node("left_children", 0, 1000, t=0),
     "tree 0: left_children[0] = 1000 is not a node of the tree (3 nodes; -1 marks a leaf)"),
    ("left-child-negative", node("left_children", 0, -5, t=0),
     "tree 0: left_children[0] = -5 is not a node of the tree"),
    ("child-at-its-own-node", node("left_children", 0, 0, t=0),
     "tree 0: left_children[0] = 0 points back at its own node"),
    ("tree-info-out-of-range", forest("tree_info", 0, 1000),
     "tree_info[0] = 1000 is not an output group (the model has 3)"),
]
