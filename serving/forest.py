"""Every index an XGBoost model file holds, checked before XGBoost (or our walker) follows one.

XGBoost's loader (``RegTree::LoadModel``, ``GBTreeModel::LoadModel`` in xgboost 3.2) checks the
*lengths* of a tree's arrays but not the *values* of the indices in them, and its predictor
follows them with no bounds check. Measured with xgboost-cpu 3.2.0 on the iris model that
``python -m serving.train`` writes, each corrupt file loaded and predicted in a child process:
a left or right child out of range, a negative child other than the ``-1`` leaf marker, a child
pointing back at its own node and a duplicate tree ``id`` load and then die with SIGSEGV on the
first prediction; a negative parent dies inside ``load_model`` (SIGSEGV); a ``tree_info`` group
out of range (SIGSEGV; inside the server's load, as issue 23 saw it) or negative (glibc's "double
free or corruption" abort) corrupt the heap. Other out-of-range values (a parent or a split
feature far past the end) happened to survive those runs: reads of whatever memory lies there.

So :func:`check_model` runs on the parsed document (``json.loads``, or :mod:`serving.ubjson` for
UBJSON) before XGBoost or :mod:`serving.trees` see it, and refuses, as an ordinary load error
naming the tree, the array and the index:

* learner: ``num_feature``, ``num_class``, ``num_target`` non-negative integers; the output
  groups are ``max(num_class, num_target, 1)``, as XGBoost's ``OutputLength``;
* gbtree (and dart's inner gbtree): ``num_trees`` equal to the number of trees and of
  ``tree_info`` entries, each ``tree_info`` a group in range, the tree ``id`` values exactly
  ``0..num_trees-1`` (XGBoost places tree ``id`` at that slot: a duplicate leaves a slot
  empty), ``num_parallel_tree`` >= 1, and ``iteration_indptr`` (when present) starting at 0,
  never decreasing, ending at ``num_trees``; dart's ``weight_drop`` one weight per tree;
* gblinear: ``weights`` holding ``(num_feature + 1) * groups`` values (the predictor indexes
  it so);
* every tree: ``num_nodes`` >= 1; ``left_children``, ``right_children``, ``parents``,
  ``split_indices``, ``split_conditions``, ``default_left``, ``loss_changes``,
  ``sum_hessian`` of ``num_nodes`` entries and ``base_weights`` too (a multiple of it, at
  most ``size_leaf_vector`` per node, for a multi-target tree); the tree a tree: from the root,
  every child in range and no node reached twice (which rules out cycles, self and back
  references and shared children), every node reached except exactly ``num_deleted`` deleted
  leaves (what XGBoost's pruner leaves behind), each reached node's ``parents`` entry naming
  the node it hangs from (every parent in range, since XGBoost's loader dereferences all of
  them); each reached split's feature below ``num_feature``;
* multi-target trees (``size_leaf_vector`` > 1, equal to ``num_target``): a leaf's right child
  is its slot in ``leaf_weights`` (XGBoost 3.2's layout), each slot used once, and
  ``leaf_weights`` holds ``size_leaf_vector`` values per leaf;
* categorical splits (when ``split_type`` is present): ``split_type`` 0 or 1 per node,
  ``categories_nodes`` strictly increasing and exactly the nodes whose ``split_type`` is 1,
  ``categories_segments`` / ``categories_sizes`` one each per such node, each segment
  non-empty and inside ``categories``, and each category in ``[0, 2**24)`` (XGBoost's own
  range for a category, ``InvalidCat``: a negative one sets a bit before its bitset).

Neither looser nor stricter than what XGBoost writes: every model kind of
``tests/unit/model_files.py`` (binary, softprob, regression, random forest, lossguide, dart,
gblinear, quantile, multi-output, categorical, pruned with deleted nodes; and a file as
XGBoost 1.x wrote it) passes in both formats, and the rules above are its refused cases
(``CORRUPTIONS``), each in both formats. Fields XGBoost reads but never follows as an index
(split conditions, gains, the category encoder ``cats``) are left to XGBoost.

Cost, paid once per load, never per request. Measured with ``bench/serving/forest_check.py``
on a 1,000-tree model (depth 3; 0.78 MB as JSON, 0.94 MB as UBJSON), xgboost 3.2, on the shared
2-core machine (load average 7-11, so medians of 15 varied between runs): ``check_model``
6-15 ms in either format, all trees' arrays end to end in one set of numpy operations (it was
120 ms tree by tree); parsing adds 12-25 ms (``json.loads``) or 44-138 ms
(:func:`serving.ubjson.decode`), against 7-40 ms for XGBoost's own ``load_model``.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from serving.wellformed import MalformedModel

Ints = npt.NDArray[np.int64]

# XGBoost's InvalidCat: a category is an integer that a float32 holds exactly.
MAX_CATEGORY = 1 << 24
# The root's parent as XGBoost writes it: kInvalidNodeId masked to 31 bits (scalar trees), or
# -1 (multi-target trees).
_ROOT_PARENTS = (-1, (1 << 31) - 1)
_CATEGORY_ARRAYS = ("categories", "categories_nodes", "categories_segments", "categories_sizes")
_NODE_ARRAYS = ("left_children", "right_children", "parents", "split_indices", "split_conditions",
                "default_left", "loss_changes", "sum_hessian")
_ARRAY = (list, np.ndarray)  # JSON lists; UBJSON typed arrays


class CorruptModel(MalformedModel):
    """A complete document whose indices would send XGBoost outside its arrays."""


def check_model(doc: Any) -> None:
    """Raise :class:`CorruptModel` unless every index in the parsed model ``doc`` is in range."""
    learner = _field(doc, "learner", dict, "the document")
    params = _field(learner, "learner_model_param", dict, "learner")
    num_feature = _param(params, "num_feature", "0", "learner_model_param")
    num_class = _param(params, "num_class", "0", "learner_model_param")
    num_target = _param(params, "num_target", "1", "learner_model_param")
    groups = max(num_class, num_target, 1)
    gb = _field(learner, "gradient_booster", dict, "learner")
    name = gb.get("name")
    if name == "gbtree":
        _check_gbtree(_field(gb, "model", dict, "gradient_booster"), num_feature=num_feature,
                      groups=groups, num_target=num_target)
    elif name == "dart":
        dart = _field(gb, "gbtree", dict, "gradient_booster")
        inner = _field(dart, "model", dict, "gradient_booster.gbtree")
        n = _check_gbtree(inner, num_feature=num_feature, groups=groups, num_target=num_target)
        drops = _field(gb, "weight_drop", _ARRAY, "gradient_booster")
        if len(drops) != n:
            raise CorruptModel(f"dart weight_drop holds {len(drops)} weights for {n} trees")
    elif name == "gblinear":
        weights = _field(_field(gb, "model", dict, "gradient_booster"), "weights", _ARRAY,
                         "gradient_booster.model")
        need = (num_feature + 1) * groups
        if len(weights) != need:
            raise CorruptModel(f"gblinear weights holds {len(weights)} values; {num_feature} features "
                               f"and {groups} output group(s) need (num_feature + 1) * groups = {need}")
    # Any other booster name: XGBoost refuses it with its own (ordinary) error.


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        what = "object" if kind is dict else "array"
        raise CorruptModel(f"{where}: {key!r} is missing or not the {what} XGBoost writes")
    return value


def _param(params: dict[str, Any], key: str, default: str, where: str) -> int:
    """A count stored as a decimal string (XGBoost's parameters are strings)."""
    text = params.get(key, default)
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise CorruptModel(f"{where}.{key} is {text!r}, not an integer") from None
    if value < 0:
        raise CorruptModel(f"{where}.{key} is {value}, a negative count")
    return value


def _ints(obj: dict[str, Any], key: str, where: str) -> Ints:
    """An index array as int64, whether JSON gave a list or UBJSON a typed array."""
    raw = obj.get(key)
    if not isinstance(raw, _ARRAY):
        raise CorruptModel(f"{where}: {key!r} is missing or not an array")
    try:
        arr = np.asarray(raw) if isinstance(raw, np.ndarray) else np.array(raw)
    except (ValueError, OverflowError):
        arr = np.asarray([], dtype=object)
    if arr.size == 0:
        return np.zeros(len(raw), dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or (arr.dtype.kind == "u" and arr.dtype.itemsize == 8
                                                        and int(arr.max()) > np.iinfo(np.int64).max):
        raise CorruptModel(f"{where}: {key} holds values that are not integers XGBoost can index with")
    return arr.astype(np.int64, copy=False)


def _check_gbtree(model: dict[str, Any], *, num_feature: int, groups: int, num_target: int) -> int:
    """The forest's own arrays, then every tree's nodes at once; returns the number of trees."""
    param = _field(model, "gbtree_model_param", dict, "gbtree model")
    num_trees = _param(param, "num_trees", "0", "gbtree_model_param")
    if _param(param, "num_parallel_tree", "1", "gbtree_model_param") < 1:
        raise CorruptModel("gbtree_model_param.num_parallel_tree is 0; at least 1 tree per round")
    trees = _field(model, "trees", list, "gbtree model")
    if len(trees) != num_trees:
        raise CorruptModel(f"gbtree_model_param.num_trees is {num_trees} "
                           f"but the model holds {len(trees)} trees")
    info = _ints(model, "tree_info", "gbtree model")
    if info.shape[0] != num_trees:
        raise CorruptModel(f"tree_info holds {info.shape[0]} entries for {num_trees} trees")
    bad = np.flatnonzero((info < 0) | (info >= groups))
    if bad.size:
        i = int(bad[0])
        raise CorruptModel(f"tree_info[{i}] = {int(info[i])} is not an output group (the model has {groups})")
    if "iteration_indptr" in model:
        indptr = _ints(model, "iteration_indptr", "gbtree model")
        if indptr.shape[0] == 0 or indptr[0] != 0 or indptr[-1] != num_trees:
            raise CorruptModel(f"iteration_indptr must start at 0 and end at num_trees ({num_trees}), "
                               f"got {indptr[:1].tolist()}..{indptr[-1:].tolist()}")
        down = np.flatnonzero(np.diff(indptr) < 0)
        if down.size:
            i = int(down[0]) + 1
            raise CorruptModel(f"iteration_indptr[{i}] = {int(indptr[i])} is below the entry before it")
    sizes = np.empty(num_trees, dtype=np.int64)
    deleted = np.empty(num_trees, dtype=np.int64)
    multi = np.zeros(num_trees, dtype=np.bool_)
    ids = np.empty(num_trees, dtype=np.int64)
    for t, tree in enumerate(trees):
        sizes[t], deleted[t], multi[t], ids[t] = _tree_header(tree, t, num_target=num_target)
    _check_ids(ids)
    if num_trees:
        _check_nodes(trees, sizes=sizes, deleted=deleted, multi=multi, num_feature=num_feature)
    for t in np.flatnonzero(multi).tolist():
        right = _ints(trees[t], "right_children", f"tree {t}")
        leaf = _ints(trees[t], "left_children", f"tree {t}") == -1
        _check_leaf_slots(f"tree {t}", trees[t], right, leaf, num_target)
    for t in _categorical_trees(trees, sizes):
        _check_categories(f"tree {t}", trees[t], int(sizes[t]))
    return num_trees


def _categorical_trees(trees: list[dict[str, Any]], sizes: Ints) -> list[int]:
    """The trees with a categorical split or category data, for :func:`_check_categories`.

    XGBoost 2+ writes ``split_type`` and the (usually empty) category arrays in every tree;
    checking those per tree was most of the check's cost, so the common case (no category
    anywhere) is one pass over the whole forest."""
    typed = [t for t, tree in enumerate(trees) if "split_type" in tree]
    if not typed:
        return []
    for t in typed:
        value = trees[t]["split_type"]
        if not isinstance(value, _ARRAY) or len(value) != sizes[t]:
            got = f"{len(value)} entries" if isinstance(value, _ARRAY) else "nothing"
            raise CorruptModel(f"tree {t}: split_type holds {got}; num_nodes is {int(sizes[t])}")
    types = _gather([trees[t] for t in typed], "split_type")
    owner = np.repeat(np.asarray(typed), sizes[typed])
    split = set(owner[types != 0].tolist())  # categorical (1) and invalid values: both checked per tree
    return [t for t in typed if t in split or any(_holds(trees[t], key) for key in _CATEGORY_ARRAYS)]


def _holds(tree: dict[str, Any], key: str) -> bool:
    """Whether ``tree`` has something other than an empty array (or nothing) at ``key``."""
    value = tree.get(key)
    return value is not None and not (isinstance(value, _ARRAY) and len(value) == 0)


def _tree_header(tree: Any, t: int, *, num_target: int) -> tuple[int, int, bool, int]:
    """One tree's counts and array lengths: (num_nodes, num_deleted, multi-target, id)."""
    where = f"tree {t}"
    if not isinstance(tree, dict):
        raise CorruptModel(f"{where} is not an object")
    tid = tree.get("id")
    if type(tid) is not int and not isinstance(tid, np.integer):
        raise CorruptModel(f"{where}: 'id' is missing or not an integer")
    tp = _field(tree, "tree_param", dict, where)
    n = _param(tp, "num_nodes", "0", f"{where}: tree_param")
    if n < 1:
        raise CorruptModel(f"{where}: tree_param.num_nodes is 0")
    num_deleted = _param(tp, "num_deleted", "0", f"{where}: tree_param")
    leaf_vector = _param(tp, "size_leaf_vector", "1", f"{where}: tree_param")
    multi = leaf_vector > 1
    if multi and leaf_vector != num_target:
        raise CorruptModel(f"{where}: size_leaf_vector is {leaf_vector} "
                           f"but the model has {num_target} targets")
    for key in _NODE_ARRAYS:
        value = tree.get(key)
        if not isinstance(value, _ARRAY) or len(value) != n:
            got = f"{len(value)} entries" if isinstance(value, _ARRAY) else "nothing"
            raise CorruptModel(f"{where}: {key} holds {got}; num_nodes is {n}")
    weights = tree.get("base_weights")
    count = len(weights) if isinstance(weights, _ARRAY) else -1
    if count < 0 or count % n or count // n not in (range(1, leaf_vector + 1) if multi else (1,)):
        raise CorruptModel(f"{where}: base_weights holds {max(count, 0)} values for {n} nodes"
                           + (f" of up to {leaf_vector} targets" if multi else ""))
    return n, num_deleted, multi, int(tid)


def _check_ids(ids: Ints) -> None:
    """XGBoost stores tree ``id`` at slot ``id``: the ids must be 0..num_trees-1, each once."""
    n = ids.shape[0]
    inside = (ids >= 0) & (ids < n)
    placed = np.bincount(ids[inside], minlength=n)
    wrong = np.flatnonzero(~inside | (placed[np.where(inside, ids, 0)] != 1))
    if wrong.size:
        t = int(wrong[0])
        raise CorruptModel(f"tree {t}: id {int(ids[t])} is out of range or shared with another tree "
                           f"(ids must be 0..{n - 1}, each once)")


def _gather(trees: list[dict[str, Any]], key: str) -> Ints:
    """``key``'s arrays of every tree, end to end, as int64 (one conversion, not one per tree)."""
    parts = [tree[key] for tree in trees]
    if all(type(p) is list for p in parts):
        flat: Any = list(chain.from_iterable(parts))
    else:
        flat = np.concatenate([np.asarray(p) for p in parts])
    return _ints({key: flat}, key, "the trees")


class _Where:
    """Global node numbers (trees end to end) back to "tree t" and the node's index in it."""

    def __init__(self, sizes: Ints) -> None:
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def __call__(self, node: int) -> tuple[str, int]:
        t = int(np.searchsorted(self.starts, node, side="right")) - 1
        return f"tree {t}", node - int(self.starts[t])


def _check_nodes(trees: list[dict[str, Any]], *, sizes: Ints, deleted: Ints, multi: npt.NDArray[np.bool_],
                 num_feature: int) -> None:
    """Children, reachability, parents and split features of every node of every tree.

    All trees end to end in one set of arrays, so each rule is a handful of numpy operations
    for the whole forest, not per tree."""
    where = _Where(sizes)
    tree_of = np.repeat(np.arange(sizes.shape[0]), sizes)
    start = where.starts[tree_of]  # per node: its tree's first global node number
    size = sizes[tree_of]
    left, right, parents = (_gather(trees, k) for k in ("left_children", "right_children", "parents"))
    local = np.arange(left.shape[0]) - start
    leaf = left == -1
    node_multi = multi[tree_of]

    def refuse(i: int, why: str) -> CorruptModel:
        tree, node = where(i)
        return CorruptModel(f"{tree}: {why.format(node=node)}")

    out = np.flatnonzero((left < -1) | (left >= size))  # -1 marks a leaf; anything else is a node
    if out.size:
        i = int(out[0])
        raise refuse(i, f"left_children[{{node}}] = {int(left[i])} is not a node of the tree "
                        f"({int(size[i])} nodes; -1 marks a leaf)")
    out = np.flatnonzero(~leaf & ((right < 0) | (right >= size)))
    if out.size:
        i = int(out[0])
        raise refuse(i, f"right_children[{{node}}] = {int(right[i])} is not a node of the tree "
                        f"({int(size[i])} nodes)")
    for key, child in (("left_children", left), ("right_children", right)):
        own = np.flatnonzero(~leaf & (child == local))
        if own.size:
            raise refuse(int(own[0]), f"{key}[{{node}}] = {{node}} points back at its own node")
    # A multi-target leaf's right child numbers its leaf_weights (_check_leaf_slots).
    odd = np.flatnonzero(leaf & ~node_multi & (right != -1))
    if odd.size:
        i = int(odd[0])
        raise refuse(i, f"right_children[{{node}}] = {int(right[i])} but node {{node}} is a leaf "
                        "(left child -1), whose right child is -1")
    reached, parent_of = _walk(left + start, right + start, leaf, start, refuse)
    unreached = ~reached
    stray = np.flatnonzero(unreached & ~leaf)
    if stray.size:
        raise refuse(int(stray[0]), "node {node} is not reachable from the root "
                                    "(and not a deleted leaf: those have no children)")
    counts = np.bincount(tree_of[unreached], minlength=sizes.shape[0])
    wrong = np.flatnonzero(counts != deleted)
    if wrong.size:
        t = int(wrong[0])
        raise CorruptModel(f"tree {t}: {int(counts[t])} node(s) are not reachable from the root but "
                           f"tree_param.num_deleted is {int(deleted[t])}")
    roots = where.starts
    bad_root = np.flatnonzero(~np.isin(parents[roots], _ROOT_PARENTS))
    if bad_root.size:
        i = int(roots[bad_root[0]])
        raise refuse(i, f"parents[0] = {int(parents[i])}; the root has no parent "
                        f"({' or '.join(map(str, _ROOT_PARENTS))})")
    rest = local > 0
    out = np.flatnonzero(rest & ((parents < 0) | (parents >= size)))
    if out.size:
        i = int(out[0])
        raise refuse(i, f"parents[{{node}}] = {int(parents[i])} is not a node of the tree "
                        f"({int(size[i])} nodes)")
    wrong = np.flatnonzero(rest & reached & (parents + start != parent_of))
    if wrong.size:
        i = int(wrong[0])
        raise refuse(i, f"parents[{{node}}] = {int(parents[i])} but node {{node}} is a child of "
                        f"node {int(parent_of[i] - start[i])}")
    splits = _gather(trees, "split_indices")
    bad = np.flatnonzero(reached & ~leaf & ((splits < 0) | (splits >= num_feature)))
    if bad.size:
        i = int(bad[0])
        raise refuse(i, f"split_indices[{{node}}] = {int(splits[i])} is not a feature index "
                        f"(the model has {num_feature} features)")


class _Refuse(Protocol):
    def __call__(self, i: int, why: str) -> CorruptModel: ...


def _walk(left: Ints, right: Ints, leaf: npt.NDArray[np.bool_], start: Ints,
          refuse: _Refuse) -> tuple[npt.NDArray[np.bool_], Ints]:
    """Level by level from every root at once (no recursion: lossguide trees can be thousands deep).

    Children are global node numbers, already checked to lie in their own tree (``start``: per
    node, its tree's first global number, which is the root). Each level's children must be
    fresh nodes, else the tree is not a tree: a node reached a second time means a cycle, a
    back reference or a shared child, so the walk ends after at most ``num_nodes`` levels.
    Returns which nodes were reached and each one's parent."""
    n = left.shape[0]
    reached = np.zeros(n, dtype=np.bool_)
    parent_of = np.full(n, -1, dtype=np.int64)
    level = np.unique(start)
    reached[level] = True
    while level.size:
        split = level[~leaf[level]]
        below = np.concatenate([left[split], right[split]])
        came_from = np.concatenate([split, split])
        again = reached[below] | _repeats(below)
        if again.any():
            k = int(np.flatnonzero(again)[0])
            key = "left_children" if k < split.size else "right_children"
            node = int(came_from[k])
            child = int(below[k] - start[node])
            what = "the root" if child == 0 else f"node {child}, which is already reached from the root"
            raise refuse(node, f"{key}[{{node}}] = {child} points back at {what} "
                               "(a cycle, or a node with two parents)")
        reached[below] = True
        parent_of[below] = came_from
        level = below
    return reached, parent_of


def _repeats(a: Ints) -> npt.NDArray[np.bool_]:
    """True at every entry equal to an earlier one."""
    if a.size < 2:
        return np.zeros(a.size, dtype=np.bool_)
    order = np.argsort(a, kind="stable")
    dup = np.zeros(a.size, dtype=np.bool_)
    dup[order[1:]] = a[order[1:]] == a[order[:-1]]
    return dup


def _check_leaf_slots(where: str, tree: dict[str, Any], right: Ints, leaf: npt.NDArray[np.bool_],
                      leaf_vector: int) -> None:
    slots = right[leaf]
    n_leaves = slots.shape[0]
    bad = np.flatnonzero((slots < 0) | (slots >= n_leaves) | _repeats(slots))
    if bad.size:
        i = int(np.flatnonzero(leaf)[bad[0]])
        raise CorruptModel(f"{where}: right_children[{i}] = {int(right[i])} is not a free leaf_weights slot "
                           f"(a leaf's right child numbers its weights: 0..{n_leaves - 1}, each once)")
    weights = tree.get("leaf_weights")
    if not isinstance(weights, _ARRAY) or len(weights) != n_leaves * leaf_vector:
        got = len(weights) if isinstance(weights, _ARRAY) else "no"
        raise CorruptModel(f"{where}: leaf_weights holds {got} values; {n_leaves} leaves of "
                           f"{leaf_vector} targets need {n_leaves * leaf_vector}")


def _check_categories(where: str, tree: dict[str, Any], n: int) -> None:
    types = _ints(tree, "split_type", where)
    if types.shape[0] != n:
        raise CorruptModel(f"{where}: split_type holds {types.shape[0]} entries; num_nodes is {n}")
    bad = np.flatnonzero((types != 0) & (types != 1))
    if bad.size:
        i = int(bad[0])
        raise CorruptModel(f"{where}: split_type[{i}] = {int(types[i])}; 0 (numerical) or 1 (categorical)")
    nodes = _ints(tree, "categories_nodes", where)
    categorical = np.flatnonzero(types == 1)
    if not np.array_equal(nodes, categorical):
        raise CorruptModel(f"{where}: categories_nodes {nodes[:8].tolist()} must list, in increasing order, "
                           f"exactly the nodes whose split_type is 1 {categorical[:8].tolist()}")
    segments = _ints(tree, "categories_segments", where)
    sizes = _ints(tree, "categories_sizes", where)
    cats = _ints(tree, "categories", where)
    for key, arr in (("categories_segments", segments), ("categories_sizes", sizes)):
        if arr.shape[0] != nodes.shape[0]:
            raise CorruptModel(f"{where}: {key} holds {arr.shape[0]} entries for "
                               f"{nodes.shape[0]} categorical node(s)")
    bad = np.flatnonzero((segments < 0) | (sizes < 1) | (segments + sizes > cats.shape[0]))
    if bad.size:
        k = int(bad[0])
        raise CorruptModel(f"{where}: categories_segments[{k}] = {int(segments[k])} with "
                           f"categories_sizes[{k}] = {int(sizes[k])} is not a non-empty range "
                           f"of the {cats.shape[0]} categories")
    bad = np.flatnonzero((cats < 0) | (cats >= MAX_CATEGORY))
    if bad.size:
        k = int(bad[0])
        raise CorruptModel(f"{where}: categories[{k}] = {int(cats[k])} is not a category "
                           f"(0..{MAX_CATEGORY - 1})")
