"""ensemble.refit and ``ensemble refit``: members refit on train + validation, the blend's weights kept (scikit-learn's digits)."""

import json

import numpy as np
import pytest
from clirun import run_command
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.dummy import DummyClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

import ensemble
from ensemble import BlendClassifier, BlendRegressor, KerasMember, StackClassifier
from kze.data import data_hash_pair

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

N_TRAIN, N_VALID = 600, 400
NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """One BLAS thread: on a small, busy machine, multithreaded BLAS made each logistic regression fit 100x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def data():
    """Digits, shuffled: train (members' own fit), validation (the blend's fit), train + validation, test.

    Labels are names ("zero" ...), so that labels and their codes differ: prefit members learned the
    names, members the ensemble fits learned codes. ``values`` holds the digits as numbers.
    """
    X, digits = load_digits(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(digits))
    X, digits = X[order], digits[order]
    y = NAMES[digits]
    train, valid, everything = slice(0, N_TRAIN), slice(N_TRAIN, N_TRAIN + N_VALID), slice(0, N_TRAIN + N_VALID)
    test = slice(N_TRAIN + N_VALID, N_TRAIN + N_VALID + 300)
    return {"train": (X[train], y[train]), "valid": (X[valid], y[valid]), "test": (X[test], y[test]), "all": (X[everything], y[everything]),
            "values": {"train": digits[train].astype(float), "valid": digits[valid].astype(float), "all": digits[everything].astype(float)}}


def _tiny_keras(X, y):
    y = np.array([list(NAMES).index(label) for label in y])  # output column i is NAMES[i]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Rescaling(1 / 16)(inputs))
    model = keras.Model(inputs, outputs, name="tiny")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=2, batch_size=64, verbose=0)
    return model


def _logreg():
    return make_pipeline(MaxAbsScaler(), LogisticRegression(C=1.0, max_iter=300))


@pytest.fixture(scope="module")
def blend(data):
    """A calibrated Caruana blend fitted on validation: prefit k-NN, a logistic regression it fits, a useless
    prefit dummy (weight 0) and a prefit Keras model."""
    X, y = data["train"]
    members = [
        ("knn", FrozenEstimator(KNeighborsClassifier(25, algorithm="brute").fit(X, y))),
        ("logreg", _logreg()),
        ("dummy", FrozenEstimator(DummyClassifier(strategy="most_frequent").fit(X, y))),
        ("tiny", KerasMember(_tiny_keras(X, y), classes=NAMES)),
    ]
    model = BlendClassifier(members, method="caruana", calibrate=True, cv=3, random_state=0).fit(*data["valid"])
    weights = dict(zip(model.named_estimators_, model.weights_))
    assert weights["knn"] > 0 and weights["logreg"] > 0 and weights["dummy"] == 0  # what the tests below rely on
    return model


def _state(model):
    return {"weights": model.weights_.copy(), "temperatures": model.temperatures_.copy(), "t": model.blend_temperature_,
            "classes": model.classes_.copy(), "ids": [id(e) for e in model.estimators_], "params": list(model.estimators),
            "columns": [c.copy() for c in model._columns]}


def test_refit_members_on_all_data_keeping_the_blend(data, blend):
    X_all, y_all = data["all"]
    X_test, _ = data["test"]
    before, proba_before = _state(blend), blend.predict_proba(X_test)

    new = ensemble.refit(blend, X_all, y_all)

    assert type(new) is BlendClassifier and new is not blend
    assert list(new.named_estimators_) == ["knn", "logreg", "dummy", "tiny"]
    np.testing.assert_array_equal(new.weights_, blend.weights_)
    np.testing.assert_array_equal(new.temperatures_, blend.temperatures_)
    assert new.blend_temperature_ == blend.blend_temperature_
    np.testing.assert_array_equal(new.classes_, blend.classes_)
    assert new.get_params(deep=False).keys() == blend.get_params(deep=False).keys()
    # the prefit k-NN: refit inside its FrozenEstimator on every row; the logistic regression the blend fitted: too
    knn = new.named_estimators_["knn"]
    assert isinstance(knn, FrozenEstimator) and knn.estimator.n_samples_fit_ == N_TRAIN + N_VALID
    np.testing.assert_array_equal(knn.estimator.classes_, blend.classes_)  # the labels, as it was given
    assert dict(new.estimators)["knn"] is knn  # the estimators parameter names what the ensemble uses
    logreg = new.named_estimators_["logreg"]
    assert logreg[0].n_samples_seen_ == N_TRAIN + N_VALID
    np.testing.assert_array_equal(logreg.classes_, np.arange(10))  # the codes of classes_, as the blend fitted it
    given = dict(new.estimators)["logreg"]  # still the unfitted estimator, a copy of the original's
    assert given is not logreg and not hasattr(given[-1], "coef_") and given is not dict(blend.estimators)["logreg"]
    # weight 0 and Keras: the very same members
    for name in ("dummy", "tiny"):
        assert new.named_estimators_[name] is blend.named_estimators_[name]
    assert new.refit_ == {
        "members": ["knn", "logreg"],
        "kept": {"dummy": "weight 0", "tiny": "a prefit keras member, without a scikit-learn fit"},
        "n_examples": N_TRAIN + N_VALID,
        "data_sha256": data_hash_pair(X_all, y_all),
        "sample_weight": False,
    }
    # the original is untouched: same members (still fitted on train only), same learned arrays, same predictions
    after = _state(blend)
    for key in before:
        np.testing.assert_equal(after[key], before[key])
    assert blend.named_estimators_["knn"].estimator.n_samples_fit_ == N_TRAIN
    assert blend.named_estimators_["logreg"][0].n_samples_seen_ == N_VALID
    assert not hasattr(blend, "refit_")
    np.testing.assert_array_equal(blend.predict_proba(X_test), proba_before)
    # the refit blend predicts with the refit members: what each one predicts, weighted as before
    proba = new.predict_proba(X_test)
    assert not np.allclose(proba, proba_before)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_refit_refuses_labels_that_are_not_the_classes(data, blend):
    X_all, y_all = data["all"]
    keep = y_all != "nine"
    with pytest.raises(ValueError, match=r"lacks the classes \['nine'\]"):
        ensemble.refit(blend, X_all[keep], y_all[keep])
    with pytest.raises(ValueError, match=r"has labels \['ten'\]"):
        ensemble.refit(blend, X_all, np.where(y_all == "nine", "ten", y_all))
    with pytest.raises(ValueError, match="'tiny' cannot be refit: a prefit keras member"):
        ensemble.refit(blend, X_all, y_all, members=["knn", "tiny"])
    with pytest.raises(ValueError, match="not members"):
        ensemble.refit(blend, X_all, y_all, members=["forest"])
    with pytest.raises(TypeError, match="refit takes a fitted"):
        ensemble.refit(blend.named_estimators_["knn"], X_all, y_all)


def test_members_by_name_and_sample_weight(data, blend):
    X_all, y_all = data["all"]
    only = ensemble.refit(blend, X_all, y_all, members=["logreg", "dummy"])  # by name: weight 0 too
    assert only.refit_["members"] == ["logreg", "dummy"] and only.refit_["kept"]["knn"] == "not in members"
    assert only.named_estimators_["knn"] is blend.named_estimators_["knn"]
    assert only.named_estimators_["dummy"] is not blend.named_estimators_["dummy"]
    weights = np.where(y_all == "three", 100.0, 1.0)  # the most frequent class, by weight: three
    weighted = ensemble.refit(blend, X_all, y_all, members=["dummy"], sample_weight=weights)
    assert weighted.refit_["sample_weight"] is True
    assert weighted.named_estimators_["dummy"].predict(X_all[:1]) == ["three"]
    with pytest.raises(TypeError, match="does not support sample weights"):  # k-NN's fit takes none
        ensemble.refit(blend, X_all, y_all, sample_weight=np.ones(len(y_all)))


def test_save_and_load_keep_the_refit_and_its_predictions(tmp_path, data, blend):
    new = ensemble.refit(blend, *data["all"])
    ensemble.save(new, tmp_path / "refit")
    loaded = ensemble.load(tmp_path / "refit")
    assert loaded.refit_ == new.refit_
    assert loaded.named_estimators_["knn"].estimator.n_samples_fit_ == N_TRAIN + N_VALID
    X_test, _ = data["test"]
    np.testing.assert_array_equal(loaded.predict_proba(X_test), new.predict_proba(X_test))


def test_stack_members_refit_meta_learner_kept_and_regressor(data):
    X, y = data["train"]
    stack = StackClassifier([("knn", FrozenEstimator(KNeighborsClassifier(10, algorithm="brute").fit(X, y))), ("logreg", _logreg())],
                            cv=3).fit(*data["valid"])
    new = ensemble.refit(stack, *data["all"])
    assert new.refit_["members"] == ["knn", "logreg"] and new.refit_["kept"] == {}
    assert new.named_estimators_["knn"].estimator.n_samples_fit_ == N_TRAIN + N_VALID
    np.testing.assert_array_equal(new.final_estimator_.coef_, stack.final_estimator_.coef_)
    assert new.stack_method_ == stack.stack_method_
    assert (new.predict(data["test"][0]) == data["test"][1]).mean() > 0.9

    values = data["values"]
    blend = BlendRegressor([("knn", FrozenEstimator(KNeighborsRegressor(5).fit(X, values["train"]))),
                            ("knn20", clone(KNeighborsRegressor(20)))], method="nnls", cv=3).fit(data["valid"][0], values["valid"])
    new = ensemble.refit(blend, data["all"][0], values["all"])
    assert [e.n_samples_fit_ for e in (new.estimators_[0].estimator, new.estimators_[1])] == [N_TRAIN + N_VALID] * 2
    np.testing.assert_array_equal(new.weights_, blend.weights_)


def test_command_refits_a_saved_blend(tmp_path, data, blend):
    saved, out = tmp_path / "blend", tmp_path / "refit"
    ensemble.save(blend, saved, metadata={"label": "caruana blend", "members": [{"name": "knn"}, {"name": "tiny"}]})
    np.savez(tmp_path / "all.npz", X=data["all"][0], y=data["all"][1])

    proc = run_command("ensemble", "refit", saved, "--data", tmp_path / "all.npz", "--out", out, "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["refit"]["members"] == ["knn", "logreg"] and set(result["refit"]["kept"]) == {"dummy", "tiny"}
    assert result["refit"]["on"]["n"] == N_TRAIN + N_VALID
    loaded = ensemble.load(out)
    assert loaded.refit_["data_sha256"] == result["refit"]["on"]["sha256"]  # one digest of the data, both places
    assert loaded.named_estimators_["knn"].estimator.n_samples_fit_ == N_TRAIN + N_VALID
    np.testing.assert_array_equal(loaded.weights_, blend.weights_)
    doc = ensemble.persistence.read_manifest(out)[0]["metadata"]
    assert doc["command"] == "ensemble refit" and doc["label"] == "caruana blend, refit"
    assert doc["members"] == [{"name": "knn", "refit": True}, {"name": "tiny"}]

    text = run_command("ensemble", "refit", saved, "--data", tmp_path / "all.npz", "--out", out, "--quiet")
    assert text.returncode == 0, text.stderr
    assert "refit on 1000 examples: knn, logreg" in text.stdout and "kept tiny: a prefit keras member" in text.stdout

    X, y = data["all"]
    np.savez(tmp_path / "no-nine.npz", X=X[y != "nine"], y=y[y != "nine"])
    for args, message in (((saved, "--data", tmp_path / "no-nine.npz", "--out", tmp_path / "o"), "lacks the classes ['nine']"),
                          ((saved, "--data", tmp_path / "all.npz", "--out", saved), "is the ensemble being refit")):
        proc = run_command("ensemble", "refit", *args)
        assert proc.returncode == 2 and message in proc.stderr.strip().splitlines()[-1], proc.stderr
