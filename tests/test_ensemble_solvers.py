"""Weight solvers on stacked member predictions."""

import time

import numpy as np
import pytest
from scipy.optimize import nnls
from sklearn.metrics import accuracy_score, log_loss, mean_squared_error

from ensemble import solvers


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _members(n=2000, k=10, m=4, seed=0):
    """Noisy softmax outputs around real labels; member 0 is good, the last one is noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    signal = np.linspace(3.0, 0.0, m)
    logits = rng.normal(size=(m, n, k))
    logits[:, np.arange(n), y] += signal[:, None]
    return _softmax(logits), y


SOLVERS = {
    "slsqp": lambda P, y: solvers.slsqp_weights(P, y),
    "nnls": lambda P, y: solvers.nnls_weights(P, y),
    "caruana": lambda P, y: solvers.caruana_weights(P, y),
}


@pytest.mark.parametrize("name", SOLVERS)
def test_weights_on_simplex_favour_the_good_member(name):
    P, y = _members()
    w = SOLVERS[name](P, y)
    assert w.shape == (4,) and np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    assert w[0] == w.max() and w[-1] < 0.05
    assert log_loss(y, np.tensordot(w, P, axes=1)) <= log_loss(y, P.mean(axis=0))


@pytest.mark.parametrize("name", SOLVERS)
def test_regression_weights(name):
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    P = np.stack([y + rng.normal(scale=s, size=500) for s in (0.1, 0.5, 3.0)])
    w = SOLVERS[name](P, y)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0) and w[0] > 0.5 and w[2] < 0.05
    assert mean_squared_error(y, w @ P) < mean_squared_error(y, P.mean(axis=0))


def test_slsqp_matches_a_grid_search_on_two_members():
    P, y = _members(m=2)
    w = solvers.slsqp_weights(P, y)
    grid = np.linspace(0, 1, 201)
    losses = [log_loss(y, a * P[0] + (1 - a) * P[1]) for a in grid]
    assert w[0] == pytest.approx(grid[int(np.argmin(losses))], abs=5e-3)


def test_nnls_matches_scipy_on_the_full_problem():
    P, y = _members(m=5)
    w = solvers.nnls_weights(P, y)
    ref, _ = nnls(P.reshape(5, -1).T, np.eye(10)[y].ravel())
    np.testing.assert_allclose(w, ref / ref.sum(), atol=1e-8)


def test_caruana_counts_and_sorted_initialisation():
    P, y = _members(m=4)
    w = solvers.caruana_weights(P, y, ensemble_size=10)
    assert any(np.allclose(w * t, np.round(w * t)) for t in range(1, 11))  # selection counts / size
    # one selection only: the best single member
    np.testing.assert_array_equal(solvers.caruana_weights(P, y, ensemble_size=1), [1, 0, 0, 0])
    # sorted initialisation with all members and no further selection: the mean
    np.testing.assert_allclose(solvers.caruana_weights(P, y, ensemble_size=4, n_init=4), [0.25] * 4)


def test_caruana_any_scorer_and_bagging_reproducible():
    P, y = _members(m=5)
    score = lambda y_true, proba: accuracy_score(y_true, proba.argmax(axis=1))
    w = solvers.caruana_weights(P, y, score=score)
    assert w[0] == w.max()
    a = solvers.caruana_weights(P, y, n_bags=8, bag_fraction=0.6, random_state=3)
    b = solvers.caruana_weights(P, y, n_bags=8, bag_fraction=0.6, random_state=3)
    np.testing.assert_array_equal(a, b)
    assert a.sum() == pytest.approx(1.0) and np.count_nonzero(a) >= 2


def test_solvers_are_fast():
    P, y = _members(n=10_000, k=10, m=8)
    for name, solve in SOLVERS.items():
        start = time.perf_counter()
        solve(P, y)
        assert time.perf_counter() - start < 2.0, name  # target 0.5 s; slack for busy CI machines


def test_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        solvers.slsqp_weights(np.zeros(3), np.zeros(3, dtype=int))
