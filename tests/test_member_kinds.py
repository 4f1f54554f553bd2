"""A member kind defined and registered here (not scikit-learn, not Keras) works in every ensemble.

``Centroids`` is a nearest-centroid model with its own method names
(``probabilities``, ``labels``, columns in its own, unsorted, label order);
``CentroidsKind`` teaches the ensembles to use it. Results are checked against
the same computation done by hand on scikit-learn's digits.
"""

import hashlib

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB

from ensemble import (
    BlendClassifier,
    MemberKind,
    StackClassifier,
    diversity,
    kind_of,
    register_member_kind,
    solvers,
)
from ensemble.kinds import KindMember, member_kinds, unregister_member_kind


class Centroids:
    """Softmax over negative squared distances to class centroids; columns follow ``labels``."""

    def __init__(self, X, y, labels, scale):
        self.labels = np.asarray(labels)
        self.centers = None if X is None else np.stack([X[y == c].mean(axis=0) for c in self.labels])
        self.scale = scale

    def probabilities(self, X):
        d = ((X[:, None, :] - self.centers[None]) ** 2).sum(axis=2)
        z = -self.scale * d
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


class CentroidsKind(MemberKind):
    name = "centroids"

    def __init__(self):
        self.predicted = 0  # rows predicted through the kind (the cache test counts them)

    def matches(self, obj):
        return isinstance(obj, Centroids)

    def predict_proba(self, obj, X):
        self.predicted += len(X)
        return obj.probabilities(X)

    def classes(self, obj):
        return obj.labels

    def fingerprint(self, obj):
        return hashlib.sha256(obj.centers.tobytes() + obj.labels.tobytes() + repr(obj.scale).encode()).hexdigest()

    def check_input(self, obj, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != obj.centers.shape[1]:
            raise ValueError(f"centroids take {obj.centers.shape[1]} features; X has shape {X.shape}")
        return X

    def check_ready(self, obj):
        if obj.centers is None:
            raise NotFittedError("these centroids were never computed")


@pytest.fixture
def kind():
    registered = register_member_kind(CentroidsKind())
    yield registered
    unregister_member_kind("centroids")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return (X[:900], y[:900]), (X[900:1400], y[900:1400]), (X[1400:], y[1400:])


def members(train):
    """Two centroid models: different halves of the training data, scales and (unsorted) label orders."""
    X, y = train
    order = np.arange(10)[::-1]  # columns in reverse label order: the adapter must sort them
    return [
        ("near", Centroids(X[::2], y[::2], order, scale=2.0)),
        ("far", Centroids(X[1::2], y[1::2], np.roll(np.arange(10), 3), scale=0.5)),
    ]


def by_hand(model, X):
    """``model``'s probabilities with columns in sorted label order."""
    return model.probabilities(X)[:, np.argsort(model.labels)]


def test_registered_kind_is_found_and_wrapped(kind, digits):
    train, _, _ = digits
    (_, near), _ = members(train)
    assert kind_of(near) is kind and member_kinds()[0] is kind
    assert kind_of(LogisticRegression()) is None and kind_of("drop") is None
    member = kind.wrap(near)
    assert isinstance(member, KindMember) and kind_of(member) is kind
    np.testing.assert_array_equal(member.classes_, np.arange(10))
    assert not hasattr(member, "decision_function")
    assert clone(member) is member
    register_member_kind(CentroidsKind())  # the same name replaces the kind
    assert sum(k.name == "centroids" for k in member_kinds()) == 1
    with pytest.raises(TypeError, match="expected a MemberKind instance"):
        register_member_kind(CentroidsKind)


def test_mean_and_learned_weights_blend_match_a_hand_computation(kind, digits):
    train, valid, test = digits
    named = members(train)
    Xv, yv = valid
    Xt, yt = test

    blend = BlendClassifier(named).fit(Xv, yv)
    expected = (by_hand(named[0][1], Xt) + by_hand(named[1][1], Xt)) / 2
    np.testing.assert_allclose(blend.predict_proba(Xt), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(blend.predict(Xt), expected.argmax(axis=1))
    assert all(isinstance(m, KindMember) and m.model is named[i][1] for i, m in enumerate(blend.estimators_))
    assert blend.score(Xt, yt) > 0.8

    learned = BlendClassifier(named, method="slsqp").fit(Xv, yv)
    P = np.stack([by_hand(model, Xv) for _, model in named])
    weights = solvers.slsqp_weights(P, yv)
    np.testing.assert_allclose(learned.weights_, weights, atol=1e-10)
    assert not np.allclose(learned.weights_, 0.5)  # the sharper model is worth more
    Pt = np.stack([by_hand(model, Xt) for _, model in named])
    np.testing.assert_allclose(learned.predict_proba(Xt), np.tensordot(weights, Pt, axes=1), atol=1e-10)


def test_stack_of_the_kind_and_a_fitted_member_matches_a_hand_computation(kind, digits):
    train, valid, test = digits
    named = members(train)
    Xv, yv = valid
    Xt, _ = test
    stack = StackClassifier(named).fit(Xv, yv)
    assert stack.stack_method_ == ["predict_proba", "predict_proba"]
    meta = LogisticRegression().fit(np.hstack([by_hand(m, Xv) for _, m in named]), yv)
    np.testing.assert_allclose(stack.predict_proba(Xt), meta.predict_proba(np.hstack([by_hand(m, Xt) for _, m in named])),
                               rtol=0, atol=1e-12)

    # next to a scikit-learn member the stack fits itself (out-of-fold probabilities)
    mixed = StackClassifier(named[:1] + [("nb", GaussianNB())], cv=3).fit(Xv, yv)
    assert mixed.named_estimators_["near"].model is named[0][1]
    np.testing.assert_allclose(mixed.transform(Xt)[:, :10], by_hand(named[0][1], Xt), atol=1e-12)
    assert mixed.score(Xt, test[1]) > 0.8


def test_names_clone_cache_input_checks_and_refusals(kind, digits, tmp_path):
    train, valid, test = digits
    (_, near), (_, far) = members(train)
    Xv, yv = valid
    Xt, _ = test

    blend = BlendClassifier([near, far]).fit(Xv, yv)  # bare members are named by the kind
    assert list(blend.named_estimators_) == ["centroids", "centroids-2"]
    copy = clone(blend)
    assert copy.estimators[0] is near  # prefit: shared, never copied

    cached = BlendClassifier([near, far], memory=tmp_path).fit(Xv, yv)
    first = cached.predict_proba(Xt)
    before = kind.predicted
    np.testing.assert_array_equal(cached.predict_proba(Xt), first)
    assert kind.predicted == before  # served from the cache, keyed by the kind's fingerprint
    assert len(list(tmp_path.glob("*.npy"))) == 2
    assert kind.wrap(near).fingerprint() != kind.wrap(far).fingerprint()

    with pytest.raises(ValueError, match="Member 'centroids': centroids take 64 features; X has shape"):
        blend.predict_proba(Xt.reshape(-1, 8, 8))
    unready = Centroids(None, None, np.arange(10), scale=1.0)
    with pytest.raises(NotFittedError, match="never computed"):
        BlendClassifier([("unready", unready)]).fit(Xv, yv)
    with pytest.raises(ValueError, match=r"to_keras\(\) needs Keras members only; not Keras: \['centroids', 'centroids-2'\]"):
        blend.to_keras()

    report = diversity([("near", near), ("far", far)], Xt, test[1])
    accuracy = np.mean(by_hand(near, Xt).argmax(axis=1) == test[1])
    assert report.members[0]["accuracy"] == pytest.approx(accuracy)


def test_unregistered_kind_is_not_a_member(digits):
    train, valid, _ = digits
    (_, near), _ = members(train)
    assert kind_of(near) is None
    with pytest.raises(TypeError, match="is not an estimator instance"):
        BlendClassifier([("near", near)]).fit(*valid)


def _encode_centroids(obj, writer):
    name, path = writer.file("centroids", ".npz")
    np.savez(path, centers=obj.centers, labels=obj.labels, scale=np.float64(obj.scale))
    return {"file": name}


def _decode_centroids(record, reader):
    with np.load(reader.path(record["file"]), allow_pickle=False) as f:  # sha256 checked by the core first
        model = Centroids(None, None, f["labels"], float(f["scale"]))
        model.centers = f["centers"]
    return model


@pytest.fixture
def centroids_part():
    from ensemble.parts import register_part, unregister_part

    register_part("member_kinds_centroids", lambda obj: isinstance(obj, Centroids), _encode_centroids, _decode_centroids)
    yield
    unregister_part("member_kinds_centroids")


def test_toy_kind_round_trips_through_save_and_load(kind, centroids_part, digits, tmp_path):
    """Adding a kind is one MemberKind and one register_part: blends and stacks of it save and load."""
    from ensemble import load, save

    train, valid, test = digits
    (_, near), (_, far) = members(train)
    Xt = test[0]
    for estimator in (BlendClassifier([("near", near), ("far", far)], method="slsqp"),
                      StackClassifier([("near", near), ("gnb", GaussianNB())], cv=3)):
        estimator.fit(*valid)
        save(estimator, tmp_path / type(estimator).__name__)
        loaded = load(tmp_path / type(estimator).__name__)
        np.testing.assert_allclose(loaded.predict_proba(Xt), estimator.predict_proba(Xt), rtol=0, atol=1e-12)
        assert any(isinstance(m, KindMember) and m.member_kind is kind for m in _fitted_members(loaded))

    manifest = next((tmp_path / "BlendClassifier").glob("*/manifest.json")).read_text()
    assert '"member_kinds_centroids"' in manifest and '"kind_member"' in manifest
    unregister_member_kind("centroids")
    with pytest.raises(ValueError, match="member of kind 'centroids', which nobody registered"):
        load(tmp_path / "BlendClassifier")


def _fitted_members(estimator):
    return [m for m in vars(estimator).get("estimators_", []) if m is not None] + [
        m for _, m in getattr(estimator, "named_estimators_", {}).items()]
