"""Tree ensembles as lookup tables over binned features: one matrix product instead of a walk.

Why: :mod:`serving.trees` walks every tree level by level, a few numpy gathers over
``trees x rows`` indices per level. For 32 rows of the iris model (300 trees, depth 3) that
walk cost more than XGBoost's ``inplace_predict`` overhead saves, which kept batch-32 requests
slow. Histogram-trained models reuse few thresholds (the iris model: 32 distinct splits over 4
features), and that makes a different shape of computation exact and cheap:

* a row's *bin* on feature f is how many of f's distinct thresholds it reaches
  (``x >= t``, XGBoost's rule): every split on f goes right exactly when ``bin > j``, j the
  threshold's rank. So a tree's leaf is a function of the bins of the features it uses;
* at load time each tree is evaluated once per combination of those bins (representative
  inputs: ``-inf`` for bin 0, the j-th threshold itself for bin j+1), giving a table of leaf
  values per tree laid out in mixed radix;
* at prediction time the table index of every (tree, row) is ``sum over splits of
  [x >= t] * weight(tree, split) + offset(tree)`` — one float32 matrix product of a
  precomputed ``(trees, splits + 1)`` weight matrix (offsets in the last column) with the 0/1
  split outcomes ``(splits + 1, rows)`` (a row of ones last) — then one gather. Every term and
  every partial sum is an integer below the table size, at most 2**22, so float32 holds them
  exactly whatever order BLAS adds them in.

Margins are then summed exactly as :mod:`serving.trees` sums them (float32, tree by tree in
model order, from the base margin) and go through the same bit-exact softmax, so the answers
are XGBoost's bit for bit; :class:`serving.predictor.BoosterPredictor` still self-checks the
tables against the booster on the loaded model before using them.

Limits: tables grow with the product of the bin counts of the features a tree uses, so a
model whose tables would exceed ``max_entries`` (default 4 Mi entries, 16 MiB) gets ``None``
and the walker or XGBoost serve it. Only XGBoost's usual group layout (tree i in group
``i % groups``) is handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from serving.trees import F32, CompiledTrees, IntP, sequential_sum, softmax

MAX_ENTRIES = 1 << 22  # float32 counts exactly up to 2**24


@dataclass(frozen=True)
class BinnedTrees:
    n_features: int
    n_groups: int
    split_feature: IntP  # the model's distinct splits, sorted by (feature, threshold)
    split_threshold: F32
    weights: F32  # (trees, splits + 1): each split's table-index weight per tree; last column: offsets
    table: F32  # every tree's leaf values, concatenated
    base_margin: F32

    @classmethod
    def from_compiled(cls, trees: CompiledTrees, *, max_entries: int = MAX_ENTRIES) -> BinnedTrees | None:
        if not trees.regular_groups or max_entries > MAX_ENTRIES:
            return None
        n_trees = trees.roots2.shape[0]
        sf, st = trees.split_feature, trees.split_threshold
        thresholds = [st[sf == f] for f in range(trees.n_features)]  # sorted within each feature
        n_bins = [t.shape[0] + 1 for t in thresholds]
        starts = np.append(trees.roots2, trees.children2.shape[0])
        internal = trees.children2[0::2] != np.arange(0, trees.children2.shape[0], 2)

        used: list[list[int]] = []
        total = 0
        for t in range(n_trees):
            nodes = np.arange(starts[t] // 2, starts[t + 1] // 2)
            feats = sorted({int(f) for f in trees.feature2[2 * nodes[internal[nodes]]]})
            used.append(feats)
            total += prod(n_bins[f] for f in feats)
            if total > max_entries:
                return None

        weights = np.zeros((n_trees, sf.shape[0] + 1), dtype=np.float32)
        table = np.empty(total, dtype=np.float32)
        first_split = np.searchsorted(sf, np.arange(trees.n_features))  # sf is sorted by feature
        offset = 0
        for t, feats in enumerate(used):
            radices = [n_bins[f] for f in feats]
            size = prod(radices)
            # Mixed radix, last feature fastest: stride of feature k = product of the radices after it.
            strides = [prod(radices[k + 1:]) for k in range(len(feats))]
            for f, stride in zip(feats, strides, strict=True):
                # Split j of f (rank j) adds `stride` when x reaches it: bin_f = number reached.
                weights[t, first_split[f]:first_split[f] + thresholds[f].shape[0]] = stride
            weights[t, -1] = offset
            table[offset:offset + size] = _tree_table(trees, t, feats, thresholds, radices)
            offset += size
        return cls(n_features=trees.n_features, n_groups=trees.n_groups, split_feature=sf, split_threshold=st,
                   weights=weights, table=table, base_margin=trees.base_margin)

    def margins(self, x: F32) -> F32:
        """Raw scores, shape (rows, groups), identical to ``predict_type="margin"``."""
        n, g, s = x.shape[0], self.n_groups, self.split_feature.shape[0]
        outcomes = np.empty((s + 1, n), dtype=np.float32)  # [x >= t] per split and row, then ones
        np.greater_equal(np.ascontiguousarray(x, dtype=np.float32).take(self.split_feature, axis=1).T,
                         self.split_threshold[:, None], out=outcomes[:s])
        outcomes[s] = 1.0
        index = self.weights @ outcomes  # (trees, rows), exact integers (see module docstring)
        seq = np.empty((self.weights.shape[0] // g + 1, g, n), dtype=np.float32)
        seq[0] = self.base_margin[:, None]
        self.table.take(index.astype(np.intp), out=seq[1:].reshape(index.shape))
        return np.ascontiguousarray(sequential_sum(seq).T)

    def predict_proba(self, x: F32) -> F32:
        return softmax(self.margins(x))


def _tree_table(trees: CompiledTrees, t: int, feats: list[int], thresholds: list[F32],
                radices: list[int]) -> F32:
    """Tree t's leaf value for every combination of its features' bins (mixed radix order)."""
    size = prod(radices)
    grid = np.zeros((size, trees.n_features), dtype=np.float32)
    if feats:
        bins = np.indices(radices).reshape(len(feats), -1)  # C order: last feature fastest
        for k, f in enumerate(feats):
            reps = np.concatenate([[-np.inf], thresholds[f]]).astype(np.float32)  # a value in each bin
            grid[:, f] = reps[bins[k]]
    d = np.full(size, trees.roots2[t], dtype=np.intp)
    rows = np.arange(size)
    for _ in range(trees.depth):
        right = grid[rows, trees.feature2[d]] >= trees.threshold2[d]
        d = trees.children2[d + right]
    values: F32 = trees.leaf_value2[d]
    return values
