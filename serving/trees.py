"""A numpy walker for XGBoost tree ensembles that reproduces XGBoost's outputs bit for bit.

Why: one ``Booster.inplace_predict`` call costs ~100-250 µs whatever the batch (thread pool,
proxy DMatrix, C-API round trips), which caps a one-model-call-per-request server near
4,000 req/s. The iris model is 300 depth-3 trees over 4 features; walking them with a handful
of vectorised ``take`` calls costs ~25 µs for one row.

Identical, not "close": the server must never answer differently from XGBoost, so this module
copies XGBoost's arithmetic exactly, and :func:`serving.predictor` only uses it after a
self-check against the real booster on the loaded model (see ``verify``):

* inputs are cast to float32 and compared with ``value < split_condition`` (XGBoost's rule);
* leaf values are accumulated in float32, tree by tree in model order, starting from the
  base margin — ``np.add.accumulate`` is sequential (``np.sum`` is pairwise and would differ);
* ``multi:softprob`` probabilities follow ``common::Softmax``: ``expf(m - max)`` in float32,
  the sum in double, one float32 division. ``expf`` is glibc's, which is not always what
  ``float32(exp(double))`` gives (measured: ~0.1 % of values differ by one ulp). We compute
  ``exp`` in double, and only for values whose double result lies within 1/100 ulp of a
  float32 rounding midpoint (where the two can disagree: glibc's error before rounding is
  ~0.002 ulp) we call libm's own ``expf`` through ctypes.

Supported: ``gbtree`` boosters with numerical splits, one output per tree, objective
``multi:softprob``. Anything else returns ``None`` from :meth:`CompiledTrees.from_booster`
and the server uses XGBoost itself.

Missing values are not modelled (``default_left`` is ignored): the HTTP layer rejects NaN and
infinities before a row reaches a model.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
IntP = npt.NDArray[np.intp]

# Width of the "unsafe" band around a float32 rounding midpoint, in float32 ulps.
_MIDPOINT_BAND = 0.01


def _libm_expf() -> Any | None:
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).expf
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


_EXPF = _libm_expf()


def expf(d: F32) -> F32:
    """Element-wise float32 ``expf`` exactly as libm computes it (see module docstring)."""
    y = np.exp(d.astype(np.float64))
    e = y.astype(np.float32)
    if _EXPF is None:
        return e
    # Position of the double result relative to the float32 it rounded to, in ulps of e.
    ulp = np.spacing(e).astype(np.float64)
    frac = np.abs(y - e.astype(np.float64)) / ulp
    # Near a midpoint (frac ~ 0.5), or at a power of two where the ulp below is half the ulp
    # above (then the measure above is not symmetric): let libm decide.
    _, mant = np.frexp(e)
    risky = (np.abs(frac - 0.5) < _MIDPOINT_BAND) | (mant == 0.5)
    if risky.any():
        flat_d = d.reshape(-1)
        flat_e = e.reshape(-1)
        for i in np.flatnonzero(risky.reshape(-1)):
            flat_e[i] = _EXPF(float(flat_d[i]))
    return e


def softmax(margins: F32) -> F32:
    """XGBoost's ``common::Softmax`` over the last axis, bit for bit."""
    wmax = margins.max(axis=1, keepdims=True)
    e = expf((margins - wmax).astype(np.float32))
    wsum = np.zeros(margins.shape[0], dtype=np.float64)
    for k in range(margins.shape[1]):  # sequential double sum, as the C++ loop does
        wsum = wsum + e[:, k].astype(np.float64)
    return (e / wsum.astype(np.float32)[:, None]).astype(np.float32)


def _depth(left: list[int], right: list[int], node: int = 0) -> int:
    if left[node] == -1:
        return 0
    return 1 + max(_depth(left, right, left[node]), _depth(left, right, right[node]))


@dataclass(frozen=True)
class CompiledTrees:
    """All trees flattened into arrays; ``children[2*i]`` / ``children[2*i+1]`` are node i's
    left / right child (a leaf points to itself, so walking past its depth is harmless)."""

    n_features: int
    n_groups: int
    depth: int
    roots: IntP
    feature: IntP
    threshold: F32
    children: IntP
    leaf_value: F32
    base_margin: F32
    group_trees: tuple[IntP, ...]

    @classmethod
    def from_booster_json(cls, doc: dict[str, Any]) -> CompiledTrees | None:
        """Compile a model from ``Booster.save_raw("json")`` parsed; ``None`` if unsupported."""
        learner = doc.get("learner", {})
        if learner.get("objective", {}).get("name") != "multi:softprob":
            return None
        gb = learner.get("gradient_booster", {})
        if gb.get("name") != "gbtree":
            return None
        params = learner.get("learner_model_param", {})
        n_groups = int(params.get("num_class", "0"))
        n_features = int(params.get("num_feature", "0"))
        if n_groups < 2 or n_features < 1 or int(params.get("num_target", "1")) != 1:
            return None
        base = json.loads(params.get("base_score", "0"))
        base_margin = np.asarray(base if isinstance(base, list) else [base] * n_groups, dtype=np.float32)
        if base_margin.shape != (n_groups,):
            return None
        model = gb["model"]
        trees: list[dict[str, Any]] = model["trees"]
        tree_info: list[int] = model["tree_info"]
        if not trees or len(tree_info) != len(trees):
            return None

        roots: list[int] = []
        feature: list[int] = []
        threshold: list[float] = []
        children: list[int] = []
        leaf_value: list[float] = []
        depth = 0
        for tree in trees:
            if any(tree.get("split_type", [])) or int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
                return None  # categorical splits or vector leaves
            left: list[int] = tree["left_children"]
            right: list[int] = tree["right_children"]
            cond: list[float] = tree["split_conditions"]
            idx: list[int] = tree["split_indices"]
            off = len(feature)
            roots.append(off)
            depth = max(depth, _depth(left, right))
            for i in range(len(left)):
                if left[i] == -1:
                    feature.append(0)
                    threshold.append(0.0)
                    children += [off + i, off + i]
                else:
                    if not 0 <= idx[i] < n_features:
                        return None
                    feature.append(idx[i])
                    threshold.append(cond[i])
                    children += [off + left[i], off + right[i]]
                leaf_value.append(cond[i])  # a leaf's value is stored in split_conditions
        info = np.asarray(tree_info, dtype=np.intp)
        return cls(
            n_features=n_features,
            n_groups=n_groups,
            depth=depth,
            roots=np.asarray(roots, dtype=np.intp),
            feature=np.asarray(feature, dtype=np.intp),
            threshold=np.asarray(threshold, dtype=np.float32),
            children=np.asarray(children, dtype=np.intp),
            leaf_value=np.asarray(leaf_value, dtype=np.float32),
            base_margin=base_margin,
            group_trees=tuple(np.flatnonzero(info == g) for g in range(n_groups)),
        )

    def leaves(self, x: F32) -> IntP:
        """Index of the leaf each row reaches in each tree: shape (rows, trees)."""
        n = x.shape[0]
        flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        row_base = (np.arange(n, dtype=np.intp) * self.n_features)[:, None]
        node = np.broadcast_to(self.roots, (n, self.roots.shape[0]))
        for _ in range(self.depth):
            value = flat.take(row_base + self.feature.take(node))
            # value >= threshold goes right (XGBoost: `value < cond` goes left); finite inputs only.
            node = self.children.take(node * 2 + (value >= self.threshold.take(node)))
        return node

    def margins(self, x: F32) -> F32:
        """Raw scores, shape (rows, groups), identical to ``predict_type="margin"``."""
        values = self.leaf_value.take(self.leaves(x))
        n = x.shape[0]
        out = np.empty((n, self.n_groups), dtype=np.float32)
        for g, idx in enumerate(self.group_trees):
            seq = np.empty((n, idx.shape[0] + 1), dtype=np.float32)
            seq[:, 0] = self.base_margin[g]
            seq[:, 1:] = values[:, idx]
            out[:, g] = np.add.accumulate(seq, axis=1, dtype=np.float32)[:, -1]
        return out

    def predict_proba(self, x: F32) -> F32:
        return softmax(self.margins(x))


def probe_rows(trees: CompiledTrees, *, n: int, seed: int = 0) -> F32:
    """Inputs that exercise every split edge: thresholds themselves, their float32 neighbours,
    and uniform values around the thresholds' range, per feature."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, trees.n_features), dtype=np.float32)
    internal = trees.children[0::2] != np.arange(trees.feature.shape[0])
    for f in range(trees.n_features):
        thr = trees.threshold[internal & (trees.feature == f)]
        if thr.size == 0:
            out[:, f] = rng.uniform(-1, 1, n).astype(np.float32)
            continue
        edges = np.concatenate([thr, np.nextafter(thr, np.float32(np.inf)), np.nextafter(thr, np.float32(-np.inf))])
        lo, hi = float(thr.min()), float(thr.max())
        span = max(hi - lo, 1.0)
        uniform = rng.uniform(lo - span / 4, hi + span / 4, n).astype(np.float32)
        pick = rng.choice(edges, n)
        out[:, f] = np.where(rng.random(n) < 0.5, pick, uniform)
    return out
