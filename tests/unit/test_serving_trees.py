"""The numpy tree walker and the binned lookup tables must give exactly XGBoost's outputs
(not approximately)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import load_iris

from serving.binned import BinnedTrees
from serving.predictor import BINNED_MAX_ROWS, COMPILED_MAX_ROWS, BoosterPredictor
from serving.trees import CompiledTrees, expf, probe_rows, sequential_sum


@pytest.fixture(scope="module")
def booster() -> Any:
    x, y = load_iris(return_X_y=True)
    clf = xgb.XGBClassifier(n_estimators=60, max_depth=4, learning_rate=0.2, objective="multi:softprob",
                            random_state=3, n_jobs=1)
    clf.fit(x, y)
    b = clf.get_booster()
    b.set_param({"nthread": 1})
    return b


@pytest.fixture(scope="module")
def trees(booster: Any) -> CompiledTrees:
    compiled = CompiledTrees.from_booster_json(json.loads(bytes(booster.save_raw("json"))))
    assert compiled is not None
    return compiled


def _inputs(trees: CompiledTrees) -> np.ndarray:
    rng = np.random.default_rng(7)
    iris = load_iris().data.astype(np.float32)
    return np.concatenate([
        iris,
        probe_rows(trees, n=50_000, seed=11),                       # every split edge and its neighbours
        rng.uniform(-2, 10, size=(50_000, 4)).astype(np.float32),   # anywhere, incl. out of range
    ])


def test_margins_identical_to_xgboost(booster: Any, trees: CompiledTrees) -> None:
    x = _inputs(trees)
    ref = booster.inplace_predict(x, predict_type="margin")
    assert np.array_equal(trees.margins(x), ref)


def test_probabilities_and_classes_identical_to_xgboost(booster: Any, trees: CompiledTrees) -> None:
    x = _inputs(trees)
    ref = booster.inplace_predict(x)
    mine = trees.predict_proba(x)
    assert mine.dtype == np.float32
    assert np.array_equal(mine, ref)  # bit for bit, every row
    assert np.array_equal(mine.argmax(axis=1), ref.argmax(axis=1))


def test_binned_tables_identical_to_xgboost(booster: Any, trees: CompiledTrees) -> None:
    binned = BinnedTrees.from_compiled(trees)
    assert binned is not None
    x = _inputs(trees)
    for start in range(0, x.shape[0], 8192):  # the tables' temporaries grow with rows x trees
        chunk = x[start:start + 8192]
        assert np.array_equal(binned.margins(chunk), booster.inplace_predict(chunk, predict_type="margin"))
        assert np.array_equal(binned.predict_proba(chunk), booster.inplace_predict(chunk))


def test_binned_tables_refuse_what_they_cannot_hold(trees: CompiledTrees) -> None:
    assert BinnedTrees.from_compiled(trees, max_entries=100) is None  # tables over the limit
    assert BinnedTrees.from_compiled(dataclasses.replace(trees, regular_groups=False)) is None


def test_sequential_sum_is_a_left_to_right_sum() -> None:
    rng = np.random.default_rng(1)
    for shape in [(300, 3, 1), (101, 3, 32), (7, 1000)]:
        seq = (rng.standard_normal(shape) * rng.uniform(1e-3, 1e3, size=shape)).astype(np.float32)
        ref = seq[0].copy()
        for row in seq[1:]:
            ref = (ref + row).astype(np.float32)
        assert np.array_equal(sequential_sum(seq), ref)


def test_small_batches_through_predictor_identical(booster: Any, trees: CompiledTrees) -> None:
    pred = BoosterPredictor(booster)
    assert pred.compiled is not None, "self-check should accept the walker on this model"
    assert pred.binned is not None and pred.kind == "xgboost+binned-tables"
    x = _inputs(trees)[:5_000]
    for n in (1, 2, COMPILED_MAX_ROWS, COMPILED_MAX_ROWS + 1, 64, BINNED_MAX_ROWS, BINNED_MAX_ROWS + 1):
        for start in range(0, 600, n):
            chunk = x[start:start + n]
            out = pred.run(chunk, want_proba=True)
            ref = booster.inplace_predict(chunk)
            assert np.array_equal(out.predict_proba, ref)
            assert np.array_equal(out.predict, ref.argmax(axis=1))


@pytest.mark.parametrize("values", [
    np.linspace(-20, 0, 20_001, dtype=np.float32),
    np.array([0.0, -1e-8, -0.5, -1.0, -87.0, -88.7, -104.0], dtype=np.float32),
])
def test_expf_matches_libm(values: np.ndarray) -> None:
    import ctypes
    import ctypes.util

    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.expf.restype = ctypes.c_float
    libm.expf.argtypes = [ctypes.c_float]
    ref = np.array([libm.expf(float(v)) for v in values], dtype=np.float32)
    assert np.array_equal(expf(values.copy()), ref)


def test_unsupported_objective_is_not_compiled() -> None:
    x, y = load_iris(return_X_y=True)
    reg = xgb.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1).fit(x, y)
    doc = json.loads(bytes(reg.get_booster().save_raw("json")))
    assert CompiledTrees.from_booster_json(doc) is None
    pred = BoosterPredictor(reg.get_booster())
    assert pred.compiled is None and not pred.has_proba
    out = pred.run(x[:3].astype(np.float32), want_proba=False)
    assert np.array_equal(out.predict, reg.get_booster().inplace_predict(x[:3].astype(np.float32)))


def _chain(tree: dict[str, Any], depth: int, *, cycle: bool = False) -> dict[str, Any]:
    """A tree of ``depth`` splits in a chain (each right child a leaf); optionally looping back."""
    n = 2 * depth + 1
    left = [-1] * n
    right = [-1] * n
    for i in range(depth):
        node = 2 * i
        left[node], right[node] = node + 2, node + 1
    if cycle:
        left[2 * depth] = 0
        right[2 * depth] = 1
    return tree | {"left_children": left, "right_children": right, "split_indices": [0] * n,
                   "split_conditions": [float(i) for i in range(n)], "split_type": [0] * n}


@pytest.mark.parametrize(("depth", "cycle", "compiled_depth"), [
    (6, False, 6),        # the other trees are 4 deep
    (1500, False, 1500),  # deeper than Python's recursion limit: was a RecursionError, no model
    (4, True, None),      # not a tree: refused instead of walking forever
])
def test_tree_depth_is_measured_without_recursion(booster: Any, depth: int, cycle: bool,
                                                  compiled_depth: int | None) -> None:
    doc = json.loads(bytes(booster.save_raw("json")))
    trees = doc["learner"]["gradient_booster"]["model"]["trees"]
    trees[0] = _chain(trees[0], depth, cycle=cycle)
    compiled = CompiledTrees.from_booster_json(doc)
    assert (compiled.depth if compiled is not None else None) == compiled_depth
