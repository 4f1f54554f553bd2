"""Weight solvers for blending: pure numpy/scipy, on stacked member predictions.

Every solver takes ``P``, the members' predictions stacked along the first
axis, and returns one non-negative weight per member, summing to 1:

- classification: ``P`` of shape ``(m, n, k)`` holds probabilities and ``y``
  holds class indices ``0 .. k - 1`` (columns of ``P``);
- regression: ``P`` of shape ``(m, n)`` holds predictions and ``y`` targets.

Every solver takes ``sample_weight`` (shape ``(n,)``, non-negative): the
weighted log loss, squared error or score is then optimised.
"""

import numpy as np
from scipy.optimize import minimize, nnls
from sklearn.utils import check_random_state

__all__ = ["caruana_weights", "nnls_weights", "slsqp_weights"]


def _is_classification(P):
    if P.ndim not in (2, 3):
        raise ValueError(f"P must have shape (m, n, k) or (m, n); got {P.shape}")
    return P.ndim == 3


def _true_class_proba(P, y):
    """``Q[i, j] = P[i, j, y[j]]``: each member's probability of the true class."""
    return P[:, np.arange(P.shape[1]), y]


def _eps(P):
    return np.finfo(P.dtype).eps  # as sklearn.metrics.log_loss clips


def _sample_weight(sample_weight, n):
    """``sample_weight`` normalised to sum to 1, or None."""
    if sample_weight is None:
        return None
    s = np.asarray(sample_weight, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},); got {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s < 0) or s.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative and not all zero")
    return s / s.sum()


def slsqp_weights(P, y, *, sample_weight=None, tol=1e-10, max_iter=200):
    """Weights minimising log loss (classification) or squared error (regression).

    Solved with SLSQP on the probability simplex with analytic gradients. Only
    each member's probability of the true class enters the log loss, so one
    iteration costs ``O(m n)``.

    Parameters
    ----------
    P : ndarray of shape (m, n, k) or (m, n)
        Member probabilities or predictions.
    y : ndarray of shape (n,)
        Class indices or regression targets.
    sample_weight : ndarray of shape (n,), default=None
        Weights of the samples in the loss.
    tol, max_iter : float, int
        SLSQP tolerance and iteration limit.

    Returns
    -------
    weights : ndarray of shape (m,)
    """
    P = np.asarray(P, dtype=np.float64)
    classification = _is_classification(P)
    m, n = P.shape[:2]
    s = _sample_weight(sample_weight, n)
    if classification:
        Q = _true_class_proba(P, y)
        eps = _eps(Q)

        def fun(w):
            p = np.maximum(w @ Q, eps)
            if s is None:
                return -np.log(p).mean(), -(Q @ (1.0 / p)) / n
            return -(s @ np.log(p)), -(Q @ (s / p))

    else:
        y = np.asarray(y, dtype=np.float64)
        if s is None:
            scale = n * (np.var(y) or 1.0)  # unit-free objective, so ``tol`` means the same for any target
            s = np.full(n, 1.0)
        else:
            scale = s @ (y - s @ y) ** 2 or 1.0

        def fun(w):
            r = w @ P - y
            sr = s * r
            return sr @ r / scale, 2.0 * (P @ sr) / scale

    result = minimize(
        fun,
        np.full(m, 1.0 / m),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
        options={"ftol": tol, "maxiter": max_iter},
    )
    return _normalise(result.x)


def nnls_weights(P, Y, *, sample_weight=None):
    """Non-negative (weighted) least squares of the targets on the members, normalised to sum to 1.

    Parameters
    ----------
    P : ndarray of shape (m, n, k) or (m, n)
        Member probabilities or predictions.
    Y : ndarray of shape (n, k) or (n,)
        One-hot targets (classification) or targets (regression). For
        classification, class indices of shape ``(n,)`` are one-hot encoded.
    sample_weight : ndarray of shape (n,), default=None
        Weights of the samples' squared errors.

    Returns
    -------
    weights : ndarray of shape (m,)
    """
    P = np.asarray(P, dtype=np.float64)
    Y = np.asarray(Y)
    if _is_classification(P) and Y.ndim == 1:
        Y = np.eye(P.shape[2])[Y]
    Y = Y.astype(np.float64)
    s = _sample_weight(sample_weight, P.shape[1])
    if s is not None:  # weighted least squares: scale each sample's rows by sqrt(weight)
        root = np.sqrt(s * P.shape[1]).reshape((1, -1) + (1,) * (P.ndim - 2))
        P, Y = P * root, Y * root[0]
    A = P.reshape(P.shape[0], -1)  # (m, n * k)
    b = Y.reshape(-1)
    # Solve on the m x m normal equations: ||Aw - b||^2 = ||L'w - L^-1 A b||^2 + const.
    try:
        L = np.linalg.cholesky(A @ A.T)
        w, _ = nnls(L.T, np.linalg.solve(L, A @ b))
    except np.linalg.LinAlgError:  # collinear members
        w, _ = nnls(A.T, b)
    return _normalise(w)


def caruana_weights(
    P,
    y,
    *,
    score=None,
    sample_weight=None,
    ensemble_size=25,
    n_init=1,
    n_bags=1,
    bag_fraction=0.5,
    n_best=None,
    random_state=None,
):
    """Greedy forward selection with replacement (Caruana et al., 2004 and 2006).

    Starts from the ``n_init`` best members (sorted initialisation), then
    repeatedly adds the member, possibly again, whose addition scores best,
    up to ``ensemble_size`` selections; the best ensemble along the way is
    kept. Weights are selection counts divided by their sum. With
    ``n_bags > 1`` each bag selects from a random ``bag_fraction`` of the
    members and the bags' weights are averaged. With ``n_best``, only the
    ``n_best`` members that score best alone are candidates (library
    pruning), before any bagging.

    Parameters
    ----------
    P : ndarray of shape (m, n, k) or (m, n)
        Member probabilities or predictions.
    y : ndarray of shape (n,)
        Class indices or regression targets.
    score : callable, default=None
        ``score(y, pred) -> float``, higher is better, where ``pred`` is the
        averaged ``(n, k)`` probabilities or ``(n,)`` predictions. None uses
        negative log loss (classification) or negative mean squared error
        (regression), computed incrementally.
    ensemble_size : int, default=25
        Number of selections, initial ones included.
    n_init : int, default=1
        Size of the sorted initialisation.
    n_bags : int, default=1
        Number of bags.
    bag_fraction : float, default=0.5
        Fraction of the members drawn (without replacement) for each bag;
        used when ``n_bags > 1``.
    n_best : int, default=None
        Keep only this many members, the best alone, as candidates; None
        keeps all.
    random_state : int, RandomState instance or None, default=None
        Draws the bags.

    Returns
    -------
    weights : ndarray of shape (m,)
    """
    P = np.asarray(P, dtype=np.float64)
    m = P.shape[0]
    classification = _is_classification(P)
    sw = _sample_weight(sample_weight, P.shape[1])
    if score is None:
        # The default losses only need each member's true-class probability / residual.
        X = _true_class_proba(P, y) if classification else P - np.asarray(y, dtype=np.float64)
        average = (lambda L: L.mean(axis=-1)) if sw is None else (lambda L: L @ sw)
        if classification:
            eps = _eps(X)

            def batch_score(S):
                return average(np.log(np.maximum(S, eps)))

        else:

            def batch_score(S):
                return -average(S * S)

    else:
        X = P
        kwargs = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight, dtype=np.float64)}

        def batch_score(S):
            return np.array([score(y, s, **kwargs) for s in S])

    library = np.arange(m)
    if n_best is not None and n_best < m:
        library = np.sort(np.argsort(-batch_score(X), kind="stable")[:n_best])
    if n_bags == 1:
        return _select(X, library, batch_score, ensemble_size, n_init)
    rng = check_random_state(random_state)
    size = max(1, round(bag_fraction * len(library)))
    weights = np.zeros(m)
    for _ in range(n_bags):
        bag = np.sort(rng.choice(library, size=size, replace=False))
        weights += _select(X, bag, batch_score, ensemble_size, n_init)
    return weights / n_bags


def _select(X, candidates, batch_score, ensemble_size, n_init):
    """Forward selection among ``X[candidates]``; returns weights over all members."""
    Xc = X[candidates]
    individual = batch_score(Xc)
    order = np.argsort(-individual, kind="stable")
    counts = np.zeros(len(candidates))
    n_init = min(n_init, len(candidates), ensemble_size)
    counts[order[:n_init]] = 1
    total = Xc[order[:n_init]].sum(axis=0)  # running sum of the selected predictions
    best_score = batch_score(total[np.newaxis] / n_init)[0]
    best_counts = counts.copy()
    for t in range(n_init, ensemble_size):
        scores = batch_score((total + Xc) / (t + 1))
        i = int(np.argmax(scores))
        counts[i] += 1
        total += Xc[i]
        if scores[i] > best_score:
            best_score, best_counts = scores[i], counts.copy()
    weights = np.zeros(X.shape[0])
    weights[candidates] = best_counts / best_counts.sum()
    return weights


def _normalise(w):
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return np.full(len(w), 1.0 / len(w))
    return w / total
