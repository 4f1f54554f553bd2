"""Temperature scaling: one scalar per member that makes its probabilities honest.

A member's probabilities ``p`` become ``softmax(log(p) / T)``: ``T > 1``
softens an over-confident member, ``T < 1`` sharpens an under-confident one
(e.g. trained with label smoothing), ``T = 1`` leaves it unchanged. For a
sigmoid member, whose probabilities are ``[1 - p, p]``, this is
``sigmoid(logit(p) / T)``. The predicted class never changes. Guo et al.
(2017), "On calibration of modern neural networks".

``T`` is fitted by minimising the log loss. In ``beta = 1 / T`` the log loss
is that of a one-parameter softmax model, hence convex, so the bounded
one-dimensional search (``scipy.optimize.minimize_scalar``) finds its
minimum. Probabilities below the machine epsilon count as the epsilon (as
``sklearn.metrics.log_loss`` clips them), so zeros stay finite.
"""

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["PROBABILITY_FLOOR", "TEMPERATURE_BOUNDS", "apply_temperature", "calibrating", "fit_temperature"]

TEMPERATURE_BOUNDS = (0.01, 100.0)
PROBABILITY_FLOOR = np.finfo(np.float64).eps  # probabilities are clipped to it before the log (as log_loss does)


def calibrating(calibrate):
    """Whether an ensemble's ``calibrate`` parameter asks for temperature scaling.

    ``False``: no; ``True`` or ``"temperature"``: yes; anything else is refused.
    """
    if isinstance(calibrate, (bool, np.bool_)):
        return bool(calibrate)
    if isinstance(calibrate, str) and calibrate == "temperature":
        return True
    raise ValueError(f"calibrate must be False, True or 'temperature'; got {calibrate!r}")


def _log_proba(proba):
    return np.log(np.maximum(np.asarray(proba, dtype=np.float64), PROBABILITY_FLOOR))


def _log_softmax(Z):
    top = Z.max(axis=1, keepdims=True)
    return Z - top - np.log(np.exp(Z - top).sum(axis=1, keepdims=True))


def apply_temperature(proba, temperature):
    """``softmax(log(proba) / temperature)`` row by row; ``proba`` itself when ``temperature == 1``.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        Probabilities, rows summing to 1.
    temperature : float
        Positive temperature.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
    """
    if temperature == 1.0:
        return proba
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be positive and finite; got {temperature!r}")
    return np.exp(_log_softmax(_log_proba(proba) / temperature))


def fit_temperature(proba, y, *, sample_weight=None, bounds=TEMPERATURE_BOUNDS, xtol=1e-7):
    """The temperature in ``bounds`` minimising the (weighted) log loss of :func:`apply_temperature`.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        A member's probabilities.
    y : ndarray of shape (n_samples,)
        True classes as column indices ``0 .. n_classes - 1``.
    sample_weight : ndarray of shape (n_samples,), default=None
        Weights of the samples in the log loss.
    bounds : (float, float), default=(0.01, 100.0)
        Smallest and largest temperature allowed.
    xtol : float, default=1e-7
        Tolerance on ``1 / T``.

    Returns
    -------
    temperature : float
        1.0 with fewer than two columns, no samples or no sample weight.
    """
    L = _log_proba(proba)
    if L.ndim != 2:
        raise ValueError(f"proba must have shape (n_samples, n_classes); got {L.shape}")
    y = np.asarray(y, dtype=np.intp)
    if y.shape != (L.shape[0],):
        raise ValueError(f"y must have shape ({L.shape[0]},); got {y.shape}")
    low, high = bounds
    if not 0 < low <= 1 <= high < np.inf:
        raise ValueError(f"bounds must satisfy 0 < low <= 1 <= high < inf; got {bounds!r}")
    if sample_weight is None:
        s = np.full(len(y), 1.0 / max(len(y), 1))
    else:
        s = np.asarray(sample_weight, dtype=np.float64)
        if s.shape != y.shape or not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError("sample_weight must be finite, non-negative and have one entry per sample")
        s = s / s.sum() if s.sum() > 0 else s
    if L.shape[1] < 2 or len(y) == 0 or not s.any():
        return 1.0
    true = L[np.arange(len(y)), y]

    def loss(beta):
        Z = beta * L
        top = Z.max(axis=1)
        lse = top + np.log(np.exp(Z - top[:, None]).sum(axis=1))
        return s @ (lse - beta * true)

    result = minimize_scalar(loss, bounds=(1.0 / high, 1.0 / low), method="bounded", options={"xatol": xtol})
    beta = float(result.x)
    if loss(1.0) <= loss(beta):  # never worse than the member as it is
        return 1.0
    return 1.0 / beta
