"""A numpy walker for XGBoost tree ensembles that reproduces XGBoost's outputs bit for bit.

Why: one ``Booster.inplace_predict`` call costs ~100-250 µs whatever the batch (thread pool,
proxy DMatrix, C-API round trips), which caps a one-model-call-per-request server near
4,000 req/s. The iris model is 300 depth-3 trees over 4 features; walking them with a handful
of vectorised ``take`` calls costs ~19 µs for one row (``bench/serving/walker.py``).

Identical, not "close": the server must never answer differently from XGBoost, so this module
copies XGBoost's arithmetic exactly, and :class:`serving.predictor.BoosterPredictor` only
uses it after a self-check against the real booster on the loaded model (4,096 rows that hit
every split threshold and its float32 neighbours, see :func:`probe_rows`):

* inputs are cast to float32 and compared with ``value < split_condition`` (XGBoost's rule);
* leaf values are summed in float32, tree by tree in model order, starting from the base
  margin — a reduction over the outer axis, which numpy runs sequentially (a sum along the
  contiguous axis would be pairwise and differ, see :func:`sequential_sum`);
* ``multi:softprob`` probabilities follow ``common::Softmax``: ``expf(m - max)`` in float32,
  the sum in double, one float32 division. ``expf`` is glibc's, which is not always what
  ``float32(exp(double))`` gives (measured: ~0.1 % of values differ by one ulp). We compute
  ``exp`` in double, and only for values whose double result lies within 1/100 ulp of a
  float32 rounding boundary (where the two can disagree: glibc's error before rounding is
  ~0.002 ulp) we call libm's own ``expf`` through ctypes (~2 % of values).

Supported: ``gbtree`` boosters with numerical splits, one output per tree, objective
``multi:softprob``. Anything else returns ``None`` from :meth:`CompiledTrees.from_booster_json`
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
IntP = npt.NDArray[np.intp]

# Relative half-width of the interval where libm's expf and float32(exp(double)) may round
# differently: ~1/100 of a float32 ulp (2**-23), far above both libraries' intermediate errors.
_BAND = 2.0**-30


def _libm_expf() -> Any | None:
    # find_library needs ldconfig/gcc, which slim images may lack; glibc's soname is stable.
    fn = None
    for name in (ctypes.util.find_library("m"), "libm.so.6"):
        if name is None:
            continue
        try:
            fn = ctypes.CDLL(name).expf
            break
        except (OSError, AttributeError):
            continue
    if fn is None:
        return None  # then float32(exp(double)); the load-time self-check decides whether it is exact
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


_EXPF = _libm_expf()


# Up to this many values, calling libm's expf for each is cheaper than the vectorised check
# (~0.3 µs a call against ~8 µs of numpy calls): a one-row request has 3.
_DIRECT_EXPF = 16


def expf(d: F32) -> F32:
    """Element-wise float32 ``expf`` exactly as libm computes it (see module docstring)."""
    if _EXPF is not None and d.size <= _DIRECT_EXPF:
        return np.array([_EXPF(v) for v in d.reshape(-1).tolist()], dtype=np.float32).reshape(d.shape)
    y = np.exp(d.astype(np.float64))
    e = y.astype(np.float32)
    if _EXPF is None:
        return e
    # Rounding is monotonic: if both ends of [y(1-band), y(1+band)] round to the same float32,
    # so does libm's own double-precision intermediate, which lies inside that interval.
    risky = (y * (1 + _BAND)).astype(np.float32) != (y * (1 - _BAND)).astype(np.float32)
    if risky.any():
        # .flat indexes in C order whatever the memory layout (reshape(-1) may copy).
        for i in np.flatnonzero(risky):
            e.flat[i] = _EXPF(float(d.flat[i]))
    return e


def softmax(margins: F32) -> F32:
    """XGBoost's ``common::Softmax`` over the last axis, bit for bit."""
    wmax = margins.max(axis=1, keepdims=True)
    e = expf((margins - wmax).astype(np.float32))
    # the sum in double, class by class in order, as the C++ loop does (see sequential_sum)
    wsum = sequential_sum(e.T, dtype=np.float64).astype(np.float32)
    return e / wsum[:, None]


def sequential_sum(seq: npt.NDArray[Any], dtype: type[np.floating[Any]] = np.float32) -> npt.NDArray[Any]:
    """``seq[0] + seq[1] + ...`` in float32, in that order, element by element: XGBoost's order.

    A reduction over the *outer* axis of a C-contiguous array runs as one vectorised add per
    step (numpy sums pairwise only along the contiguous inner axis), so it is both sequential
    and fast: 4.6 µs for (101, 3, 32) where ``np.add.accumulate`` took 61 µs (it runs one
    strided 1-D loop per inner element). tests/unit/test_serving_trees.py holds it to a
    Python loop and to XGBoost.
    """
    out: npt.NDArray[Any] = np.add.reduce(np.ascontiguousarray(seq, dtype=dtype), axis=0, dtype=dtype)
    return out


def _depth(left: list[int], right: list[int]) -> int | None:
    """A tree's depth from XGBoost's child arrays; ``None`` if they do not form a tree.

    Level by level, not recursively: XGBoost grows trees deeper than Python's recursion limit
    (``grow_policy=lossguide`` with ``max_depth=0``), and a model we cannot compile must still
    load and be served by XGBoost itself. Visiting more nodes than exist means a cycle.
    """
    n, seen, depth = len(left), 0, 0
    if len(right) != n:
        return None
    level = [0]
    while True:
        below: list[int] = []
        for node in level:
            seen += 1
            if seen > n or not 0 <= node < n:
                return None
            if left[node] != -1:
                below += (left[node], right[node])
        if not below:
            return depth
        depth += 1
        level = below


@dataclass(frozen=True)
class CompiledTrees:
    """All trees flattened into arrays indexed by *doubled* node ids ``2*i`` and ``2*i+1``.

    Both slots of node i hold its split feature and threshold; ``children2[2*i + b]`` is
    ``2 * (left child if b == 0 else right child)``. One level of the walk is then
    ``d = children2[d + (x[feature2[d]] >= threshold2[d])]`` — two gathers and an add per level
    instead of selecting between two child arrays. A leaf points to itself, so walking past a
    shallow tree's depth is harmless.
    """

    n_features: int
    n_groups: int
    depth: int
    roots2: IntP
    feature2: IntP
    threshold2: F32
    split_feature: IntP  # distinct (feature, threshold) splits of the model...
    split_threshold: F32
    split_of2: IntP  # ...and which of them each doubled node id tests
    children2: IntP
    leaf_value2: F32
    base_margin: F32
    group_trees: tuple[IntP, ...]
    regular_groups: bool  # tree i belongs to group i % n_groups (XGBoost's usual layout)

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
            off = len(feature) // 2
            roots.append(2 * off)
            tree_depth = _depth(left, right)
            if tree_depth is None:
                return None
            depth = max(depth, tree_depth)
            for i in range(len(left)):
                if left[i] == -1:
                    feature += [0, 0]
                    threshold += [0.0, 0.0]
                    children += [2 * (off + i), 2 * (off + i)]
                else:
                    if not 0 <= idx[i] < n_features:
                        return None
                    feature += [idx[i], idx[i]]
                    threshold += [cond[i], cond[i]]
                    children += [2 * (off + left[i]), 2 * (off + right[i])]
                leaf_value += [cond[i], cond[i]]  # a leaf's value is stored in split_conditions
        info = np.asarray(tree_info, dtype=np.intp)
        # Histogram-based training reuses a few hundred thresholds across all trees: compare each
        # row against each distinct split once, then the walk only gathers booleans.
        pairs = np.rec.fromarrays([np.asarray(feature, dtype=np.intp),
                                   np.asarray(threshold, dtype=np.float32)])
        uniq, split_of2 = np.unique(pairs, return_inverse=True)
        return cls(
            n_features=n_features,
            n_groups=n_groups,
            depth=depth,
            roots2=np.asarray(roots, dtype=np.intp),
            feature2=np.asarray(feature, dtype=np.intp),
            threshold2=np.asarray(threshold, dtype=np.float32),
            split_feature=np.ascontiguousarray(uniq["f0"], dtype=np.intp),
            split_threshold=np.ascontiguousarray(uniq["f1"], dtype=np.float32),
            split_of2=np.asarray(split_of2, dtype=np.intp).reshape(-1),
            children2=np.asarray(children, dtype=np.intp),
            leaf_value2=np.asarray(leaf_value, dtype=np.float32),
            base_margin=base_margin,
            group_trees=tuple(np.flatnonzero(info == g) for g in range(n_groups)),
            regular_groups=bool(np.array_equal(info, np.arange(len(trees)) % n_groups)),
        )

    def leaves(self, x: F32) -> IntP:
        """Doubled id of the leaf each row reaches in each tree: shape (trees, rows).

        Trees-major so that the per-group accumulation below runs over contiguous memory.
        """
        n = x.shape[0]
        # Every distinct split's test for every row: (splits, rows). Finite inputs only.
        goes_right = (np.ascontiguousarray(x, dtype=np.float32).take(self.split_feature, axis=1)
                      >= self.split_threshold).T.reshape(-1)
        if n == 1:
            bits = goes_right.take(self.split_of2)  # per doubled node id
            d = self.roots2
            for _ in range(self.depth):
                d = self.children2.take(d + bits.take(d))
            return d[:, None]
        # Per doubled node id and row, trees-major: (nodes2, rows), flattened.
        bits = goes_right.reshape(-1, n).take(self.split_of2, axis=0).reshape(-1)
        rows = np.arange(n, dtype=np.intp)[None, :]
        d = np.broadcast_to(self.roots2[:, None], (self.roots2.shape[0], n))
        for _ in range(self.depth):
            d = self.children2.take(d + bits.take(d * n + rows))
        return d

    def margins(self, x: F32) -> F32:
        """Raw scores, shape (rows, groups), identical to ``predict_type="margin"``."""
        leaves = self.leaves(x)  # (trees, rows)
        n, g = x.shape[0], self.n_groups
        if self.regular_groups:
            # (rounds + 1, groups, rows): the base margin, then each round's leaf values
            # gathered straight into place.
            seq = np.empty((leaves.shape[0] // g + 1, g, n), dtype=np.float32)
            seq[0] = self.base_margin[:, None]
            self.leaf_value2.take(leaves, out=seq[1:].reshape(leaves.shape))
            total = sequential_sum(seq)
            return np.ascontiguousarray(total.T)
        values = self.leaf_value2.take(leaves)
        out = np.empty((n, g), dtype=np.float32)
        for k, idx in enumerate(self.group_trees):
            col = np.empty((idx.shape[0] + 1, n), dtype=np.float32)
            col[0] = self.base_margin[k]
            col[1:] = values[idx]
            out[:, k] = sequential_sum(col)
        return out

    def predict_proba(self, x: F32) -> F32:
        return softmax(self.margins(x))


def probe_rows(trees: CompiledTrees, *, n: int, seed: int = 0) -> F32:
    """Inputs that exercise every split edge: thresholds themselves, their float32 neighbours,
    and uniform values around the thresholds' range, per feature."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, trees.n_features), dtype=np.float32)
    internal = trees.children2[0::2] != np.arange(0, trees.children2.shape[0], 2)
    feature, threshold = trees.feature2[0::2], trees.threshold2[0::2]
    for f in range(trees.n_features):
        thr = threshold[internal & (feature == f)]
        if thr.size == 0:
            out[:, f] = rng.uniform(-1, 1, n).astype(np.float32)
            continue
        up, down = np.nextafter(thr, np.float32(np.inf)), np.nextafter(thr, np.float32(-np.inf))
        edges = np.concatenate([thr, up, down])
        lo, hi = float(thr.min()), float(thr.max())
        span = max(hi - lo, 1.0)
        uniform = rng.uniform(lo - span / 4, hi + span / 4, n).astype(np.float32)
        pick = rng.choice(edges, n)
        out[:, f] = np.where(rng.random(n) < 0.5, pick, uniform)
    return out
