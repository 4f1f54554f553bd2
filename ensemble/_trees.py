"""Checking the node arrays of loaded scikit-learn decision trees before any prediction.

scikit-learn's Cython tree code follows ``children_left``/``children_right``
and reads ``X[i, feature]`` without bounds checks, so a saved tree whose node
arrays were edited can crash the process (segmentation fault) or silently
read memory past a row. skops therefore refuses ``sklearn.tree._tree.Tree``
by default. :func:`check_trees` is what lets ``ensemble.load`` accept it
anyway: after a skops file is loaded and before anything predicts, every
``Tree`` reachable from the loaded object is checked:

* ``node_count`` ≥ 1 and the node array holds exactly that many nodes;
* a node is a leaf when both children are ``-1``, otherwise both children lie
  in ``(node, node_count)`` — children always come after their parent, as
  scikit-learn's builders number them, so every walk ends at a leaf;
* split features lie in ``[0, n_features)`` and ``n_features`` equals the
  owning estimator's ``n_features_in_`` (the width its predict checks); the
  trees of a forest or a gradient-boosting model have its width (they are
  walked with the rows the ensemble checked, not with their own checks);
* split thresholds and leaf values are finite; ``n_outputs`` and ``n_classes``
  agree with the value array.

Other memory-unsafe structures (``TreePredictor`` of histogram gradient
boosting, ``KDTree``, ``BallTree``) are not checked and stay off the
allow-list: loading them needs an explicit ``trusted=[...]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TREE_TYPE", "TreeCheckError", "check_trees"]

TREE_TYPE = "sklearn.tree._tree.Tree"
_MAX_DEPTH = 64  # nesting of estimators inside estimators that the walk follows


class TreeCheckError(ValueError):
    """A loaded decision tree's node arrays are inconsistent (edited or corrupt)."""


def check_trees(obj, where: str = "model") -> int:
    """Check every scikit-learn ``Tree`` reachable from ``obj``; return how many were checked.

    Parameters
    ----------
    obj : object
        A freshly loaded estimator (or any container of estimators).
    where : str
        Name used in error messages (a file name).

    Raises
    ------
    TreeCheckError
        A tree's node arrays would make prediction read out of bounds or loop.
    """
    from sklearn.tree._tree import Tree

    from sklearn.ensemble._forest import BaseForest
    from sklearn.ensemble._gb import BaseGradientBoosting

    seen: set[int] = set()
    count = 0
    stack = [(obj, None, None, 0)]  # (object, width of its owner, width its tree-ensemble owner checks, depth)
    while stack:
        item, owner_width, required, depth = stack.pop()
        if id(item) in seen or item is None or isinstance(item, (str, bytes, int, float, bool)):
            continue
        seen.add(id(item))
        if depth > _MAX_DEPTH:
            raise TreeCheckError(f"{where}: estimators nested more than {_MAX_DEPTH} deep")
        if isinstance(item, Tree):
            _check_tree(item, owner_width, where)
            count += 1
            continue
        if isinstance(item, np.ndarray):
            if item.dtype == object:
                stack.extend((v, owner_width, required, depth + 1) for v in item.ravel())
            continue
        if isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((v, owner_width, required, depth + 1) for v in item)
            continue
        if isinstance(item, dict):
            stack.extend((v, owner_width, required, depth + 1) for v in item.values())
            continue
        attrs = getattr(item, "__dict__", None) if hasattr(item, "get_params") else None  # estimators hold trees
        if isinstance(attrs, dict):
            width = attrs.get("n_features_in_", owner_width)
            if required is not None and "tree_" in attrs and width != required:
                raise TreeCheckError(f"{where}: a tree of an ensemble takes {width!r} features, the ensemble {required!r}")
            inner = width if isinstance(item, (BaseForest, BaseGradientBoosting)) else None
            stack.extend((v, width, inner if key == "estimators_" else None, depth + 1) for key, v in attrs.items())
    return count


def _check_tree(tree, width, where: str) -> None:
    def fail(problem):
        raise TreeCheckError(f"{where}: a decision tree {problem}; the file was edited or is corrupt, refusing it")

    state = tree.__getstate__()
    nodes, values, n = state["nodes"], state["values"], state["node_count"]
    if not isinstance(n, (int, np.integer)) or n < 1 or nodes.shape != (n,):
        fail(f"declares {n!r} nodes but holds {nodes.shape}")
    n_features = int(tree.n_features)
    if width is not None and (not isinstance(width, (int, np.integer)) or int(width) != n_features):
        fail(f"splits on {n_features} features but its estimator takes {width!r}")
    left = nodes["left_child"].astype(np.int64)
    right = nodes["right_child"].astype(np.int64)
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        fail("has a node with one child")
    index = np.arange(n)
    inner = ~leaf
    for side, child in (("left", left), ("right", right)):
        bad = inner & ((child <= index) | (child >= n))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            fail(f"node {i} has {side} child {int(child[i])} (expected {i} < child < {n})")
    feature = nodes["feature"].astype(np.int64)
    bad = inner & ((feature < 0) | (feature >= n_features))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        fail(f"node {i} splits on feature {int(feature[i])} of {n_features}")
    if not np.isfinite(nodes["threshold"][inner]).all():
        fail("has a non-finite split threshold")
    if "missing_go_to_left" in nodes.dtype.names and not np.isin(nodes["missing_go_to_left"], (0, 1)).all():
        fail("has a missing-value direction other than 0 or 1")
    n_classes = np.asarray(tree.n_classes)
    if values.ndim != 3 or values.shape[0] != n or values.shape[1] != tree.n_outputs or n_classes.shape != (tree.n_outputs,):
        fail(f"has values of shape {values.shape} for {n} nodes and {tree.n_outputs} outputs")
    if (n_classes < 1).any() or (n_classes > values.shape[2]).any():
        fail(f"declares {n_classes.tolist()} classes for values of width {values.shape[2]}")
    if not np.isfinite(values).all():
        fail("has non-finite leaf values")
