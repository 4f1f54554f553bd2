"""Parity with scikit-learn's VotingClassifier/VotingRegressor/StackingClassifier/StackingRegressor.

Each feature is compared with scikit-learn's own estimator on its small datasets
(iris, diabetes, digits): same predictions, same transform output, same
feature names (prefixed with our class names, as scikit-learn prefixes with its own).
"""

import re
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.ensemble import (
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.exceptions import (
    DataConversionWarning,
    NotFittedError,
    UnsetMetadataPassedError,
)
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import (
    BayesianRidge,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
)
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from xgboost import XGBClassifier

from ensemble import _members

from ensemble import (
    BlendClassifier,
    BlendRegressor,
    StackClassifier,
    StackRegressor,
    solvers,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


def classifiers():
    return [("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)), ("nb", GaussianNB())]


def regressors():
    return [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=3, random_state=0)), ("knn", KNeighborsRegressor(10))]


def no_proba():
    """Classifiers without predict_proba: scikit-learn's stack_method='auto' picks decision_function or predict."""
    return [("svc", LinearSVC()), ("ridge", RidgeClassifier()), ("rbf", SVC()), ("knn", KNeighborsClassifier(5))]


def renamed(names, ours, theirs):
    return [name.replace(theirs, ours, 1) for name in names]


def frozen(members, X, y):
    return [(name, FrozenEstimator(clone(est).fit(X, y))) for name, est in members]


def same_fit(ours, theirs, X, y, **fit):
    return ours.fit(X, y, **fit), theirs.fit(X, y, **fit)


# --- blends vs voting ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefit", [False, True])
def test_mean_blend_is_bit_for_bit_soft_voting(digits, prefit):
    X, y = digits
    members = frozen(classifiers(), X[:900], y[:900]) if prefit else classifiers()
    ours, theirs = same_fit(BlendClassifier(members), VotingClassifier(members, voting="soft"), X[900:], y[900:])
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    assert list(ours.get_feature_names_out()) == renamed(theirs.get_feature_names_out(), "blendclassifier", "votingclassifier")
    assert ours.get_feature_names_out()[:2].tolist() == ["blendclassifier_lr0", "blendclassifier_lr1"]


def test_fixed_weights_flatten_transform_and_hard_voting_as_voting_classifier(iris):
    X, y = iris
    members = classifiers()
    kwargs = {"weights": [3, 1, 2]}
    ours, theirs = same_fit(BlendClassifier(members, **kwargs), VotingClassifier(members, voting="soft", **kwargs), X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=1e-15)  # normalised weights: 1 ulp
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))

    flat = {"flatten_transform": False}
    ours, theirs = same_fit(BlendClassifier(members, **flat), VotingClassifier(members, voting="soft", **flat), X, y)
    assert ours.transform(X).shape == (3, 150, 3)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    with pytest.raises(ValueError, match="not supported when `voting='soft'` and `flatten_transform=False`"):
        ours.get_feature_names_out()

    hard = {"voting": "hard", "weights": [1, 2, 1]}
    ours, theirs = same_fit(BlendClassifier(members, **hard), VotingClassifier(members, **hard), X, y)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    assert list(ours.get_feature_names_out()) == ["blendclassifier_lr", "blendclassifier_tree", "blendclassifier_nb"]
    assert not hasattr(ours, "predict_proba")


def test_hard_voting_with_members_without_probabilities(iris):
    X, y = iris
    members = no_proba()
    ours, theirs = same_fit(BlendClassifier(members, voting="hard"), VotingClassifier(members, voting="hard"), X, y)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    with pytest.raises(ValueError, match=r"'svc' \(LinearSVC\) has no predict_proba\(\)"):
        BlendClassifier(members).fit(X, y)  # soft voting needs probabilities
    for method in ("slsqp", "nnls", "caruana"):
        with pytest.raises(ValueError, match=f"has no predict_proba\\(\\), but method='{method}' learns the weights"):
            BlendClassifier(members, voting="hard", method=method).fit(X, y)


@pytest.mark.parametrize("weights", [None, [1, 2, 3]])
def test_mean_blend_regressor_as_voting_regressor(diabetes, weights):
    X, y = diabetes
    ours, theirs = same_fit(BlendRegressor(regressors(), weights=weights), VotingRegressor(regressors(), weights=weights), X, y)
    if weights is None:
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-15)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    assert list(ours.get_feature_names_out()) == ["blendregressor_ridge", "blendregressor_tree", "blendregressor_knn"]
    assert list(theirs.get_feature_names_out()) == ["votingregressor_ridge", "votingregressor_tree", "votingregressor_knn"]


# --- stacks vs stacking -------------------------------------------------------------------------


def test_predict_proba_stack_of_frozen_members_as_stacking_classifier(digits):
    X, y = digits
    members = frozen(classifiers(), X[:900], y[:900])
    final = LogisticRegression(C=0.5)
    kwargs = {"final_estimator": final, "stack_method": "predict_proba"}
    ours, theirs = same_fit(StackClassifier(members, **kwargs), StackingClassifier(members, **kwargs), X[900:], y[900:])
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    # scikit-learn predicts the frozen members fold by fold: same values up to BLAS rounding
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), rtol=0, atol=1e-12)
    assert list(ours.get_feature_names_out()) == renamed(theirs.get_feature_names_out(), "stackclassifier", "stackingclassifier")
    # with cv="prefit" scikit-learn also predicts on all the data: bit for bit
    prefit = StackingClassifier(members, cv="prefit", **kwargs).fit(X[900:], y[900:])
    np.testing.assert_array_equal(ours.predict_proba(X), prefit.predict_proba(X))
    np.testing.assert_array_equal(ours.decision_function(X), prefit.decision_function(X))


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("stack_method", ["auto", "decision_function", "predict"])
def test_stack_method_as_stacking_classifier(iris, binary, stack_method):
    X, y = iris
    if binary:
        y = (y == 1).astype(int)
    members = no_proba() if stack_method != "auto" else no_proba() + [("nb", GaussianNB())]
    if stack_method == "decision_function":
        members = [m for m in members if hasattr(m[1], "decision_function")]
    kwargs = {"stack_method": stack_method, "cv": StratifiedKFold(3)}
    ours, theirs = same_fit(StackClassifier(members, **kwargs), StackingClassifier(members, **kwargs), X, y)
    assert ours.stack_method_ == theirs.stack_method_
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.decision_function(X), theirs.decision_function(X), rtol=0, atol=1e-10)
    assert list(ours.get_feature_names_out()) == renamed(theirs.get_feature_names_out(), "stackclassifier", "stackingclassifier")
    if stack_method == "auto":
        assert ours.stack_method_ == ["decision_function", "decision_function", "decision_function", "predict_proba", "predict_proba"]


def test_passthrough_and_string_labels_as_stacking_classifier(iris):
    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    kwargs = {"passthrough": True, "cv": StratifiedKFold(3)}
    ours, theirs = same_fit(StackClassifier(no_proba(), **kwargs), StackingClassifier(no_proba(), **kwargs), X, labels)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    names = ours.get_feature_names_out()
    assert list(names) == renamed(theirs.get_feature_names_out(), "stackclassifier", "stackingclassifier")
    assert list(names[-4:]) == ["x0", "x1", "x2", "x3"] and names[0] == "stackclassifier_svc0"
    assert ours.transform(X).shape == (150, len(names))
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert list(ours.get_feature_names_out(columns)[-4:]) == columns


def test_stack_regressor_as_stacking_regressor_with_predict_params(diabetes):
    X, y = diabetes
    kwargs = {"final_estimator": BayesianRidge(), "cv": KFold(4), "passthrough": True}
    ours, theirs = same_fit(StackRegressor(regressors(), **kwargs), StackingRegressor(regressors(), **kwargs), X, y)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-12)
    mean, std = ours.predict(X, return_std=True)
    their_mean, their_std = theirs.predict(X, return_std=True)
    np.testing.assert_allclose(std, their_std, rtol=1e-12)
    np.testing.assert_allclose(mean, their_mean, rtol=1e-12)
    assert list(ours.get_feature_names_out()) == renamed(theirs.get_feature_names_out(), "stackregressor", "stackingregressor")
    assert ours.get_feature_names_out()[:3].tolist() == ["stackregressor_ridge", "stackregressor_tree", "stackregressor_knn"]
    assert ours.stack_method_ == ["predict"] * 3


def test_cv_prefit_as_stacking_classifier(iris):
    X, y = iris
    fitted = [(name, clone(est).fit(X[::2], y[::2])) for name, est in no_proba()]
    ours, theirs = same_fit(StackClassifier(fitted, cv="prefit"), StackingClassifier(fitted, cv="prefit"), X[1::2], y[1::2])
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    assert all(a is b for a, b in zip(ours.estimators_, theirs.estimators_))  # used as they are
    with pytest.raises(NotFittedError, match="'svc' is an unfitted LinearSVC"):
        StackClassifier(no_proba(), cv="prefit").fit(X, y)


# --- "drop" -------------------------------------------------------------------------------------


def test_drop_members_as_scikit_learn(iris, diabetes):
    X, y = iris
    members = classifiers()
    ours = BlendClassifier(members, weights=[5, 1, 2]).set_params(lr="drop").fit(X, y)
    theirs = VotingClassifier(members, voting="soft", weights=[5, 1, 2]).set_params(lr="drop").fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    assert list(ours.get_feature_names_out()) == renamed(theirs.get_feature_names_out(), "blendclassifier", "votingclassifier")
    np.testing.assert_allclose(ours.weights_, [0, 1 / 3, 2 / 3])  # one per member, 0 for the dropped one
    assert len(ours.estimators_) == len(theirs.estimators_) == 2
    assert ours.named_estimators_["lr"] == theirs.named_estimators_["lr"] == "drop"
    assert list(ours.named_estimators_) == list(theirs.named_estimators_) == ["lr", "tree", "nb"]

    stack_members = [("lr", "drop"), *no_proba()]
    kwargs = {"cv": StratifiedKFold(3)}
    ours, theirs = same_fit(StackClassifier(stack_members, **kwargs), StackingClassifier(stack_members, **kwargs), X, y)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    assert list(ours.get_feature_names_out()) == renamed(theirs.get_feature_names_out(), "stackclassifier", "stackingclassifier")
    assert ours.stack_method_ == theirs.stack_method_ and len(ours.estimators_) == 4

    Xd, yd = diabetes
    reg = BlendRegressor(regressors(), method="slsqp", cv=3).set_params(knn="drop").fit(Xd, yd)
    assert reg.weights_.shape == (3,) and reg.weights_[2] == 0 and reg.weights_.sum() == pytest.approx(1)
    reg = StackRegressor(regressors(), cv=3).set_params(tree="drop").fit(Xd, yd)
    assert list(reg.get_feature_names_out()) == ["stackregressor_ridge", "stackregressor_knn"]

    for est in (BlendClassifier([("a", "drop"), ("b", "drop")]), StackClassifier([("a", "drop")])):
        with pytest.raises(ValueError, match="^All estimators are dropped. At least one is required to be an estimator.$"):
            est.fit(X, y)


def test_grid_search_over_dropped_members(iris):
    X, y = iris
    blend = BlendClassifier(classifiers())
    search = GridSearchCV(blend, {"lr": ["drop", LogisticRegression()], "nb": ["drop", GaussianNB()]}, cv=3).fit(X, y)
    assert len(search.cv_results_["params"]) == 4  # including one with lr and nb dropped
    best = search.best_estimator_
    assert sum(est == "drop" for est in best.named_estimators_.values()) == sum(
        v == "drop" for v in (search.best_params_["lr"], search.best_params_["nb"])
    )


# --- sample weights and metadata routing --------------------------------------------------------


@pytest.fixture(scope="module")
def weights():
    return np.random.default_rng(0).uniform(0.2, 3.0, 442)


def test_sample_weight_reaches_members_and_meta_learner_as_scikit_learn(iris, diabetes, weights):
    X, y = iris
    sw = weights[:150]
    ours, theirs = same_fit(BlendClassifier(classifiers()), VotingClassifier(classifiers(), voting="soft"), X, y, sample_weight=sw)
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    unweighted = BlendClassifier(classifiers()).fit(X, y)
    assert not np.allclose(unweighted.predict_proba(X), ours.predict_proba(X))

    kwargs = {"cv": StratifiedKFold(3)}
    ours, theirs = same_fit(StackClassifier(classifiers(), **kwargs), StackingClassifier(classifiers(), **kwargs), X, y, sample_weight=sw)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=1e-12)

    Xd, yd = diabetes
    kwargs = {"cv": KFold(3)}
    ours, theirs = same_fit(StackRegressor(regressors()[:2], **kwargs), StackingRegressor(regressors()[:2], **kwargs), Xd, yd, sample_weight=weights)
    np.testing.assert_allclose(ours.predict(Xd), theirs.predict(Xd), rtol=1e-12)


def test_sample_weight_unsupported_member_fails_before_fitting(iris):
    X, y = iris
    for ensemble in (BlendClassifier(classifiers() + [("knn", KNeighborsClassifier())]),
                     StackClassifier(classifiers(), final_estimator=KNeighborsClassifier())):
        with pytest.raises(TypeError, match=r"'(knn|final_estimator)' \(KNeighborsClassifier\) does not support sample weights"):
            ensemble.fit(X, y, sample_weight=np.ones(150))
        assert not hasattr(ensemble, "estimators_")
    with pytest.raises(TypeError, match="for a Pipeline, enable metadata routing"):
        BlendClassifier([make_pipeline(StandardScaler(), LogisticRegression())]).fit(X, y, sample_weight=np.ones(150))
    with pytest.raises(ValueError, match="only supported if enable_metadata_routing=True"):
        BlendClassifier(classifiers()).fit(X, y, groups=np.ones(150))


class NoWeightNoPredict(LogisticRegression):
    """scikit-learn's NoWeightClassifier: fit without sample_weight, and no predict methods."""

    def fit(self, X, y):
        return super().fit(X, y)

    def __getattribute__(self, name):
        if name in ("predict_proba", "decision_function", "predict"):
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_member_errors_have_scikit_learn_types_and_words(iris):
    X, y = iris
    # a member without the method the stack needs: ValueError, scikit-learn's words (and the member's name)
    for cls in (StackingClassifier, StackClassifier):
        with pytest.raises(ValueError, match=r"does not implement the method predict_proba") as exc:
            cls([("svc", LinearSVC())], stack_method="predict_proba").fit(X, y)
    assert "'svc' (LinearSVC)" in str(exc.value)
    # a member that takes no sample weights is reported before its missing methods, as scikit-learn (which fits first)
    for cls in (StackingClassifier, StackClassifier):
        with pytest.raises(TypeError, match="does not support sample weight"):
            cls([("lr", LogisticRegression()), ("cor", NoWeightNoPredict())]).fit(X, y, sample_weight=np.ones(150))
    # metadata without routing: scikit-learn's ValueError, before the members are even looked at
    for ours, theirs in ((BlendClassifier, VotingClassifier), (StackClassifier, StackingClassifier),
                         (BlendRegressor, VotingRegressor), (StackRegressor, StackingRegressor)):
        with pytest.raises(ValueError, match="is only supported if enable_metadata_routing=True"):
            theirs(["clf", LogisticRegression()]).fit(X[:3], [1, 2, 3], sample_weight=[1, 1, 1], metadata="a")
        with pytest.raises(ValueError, match="is only supported if enable_metadata_routing=True"):
            ours(["clf", LogisticRegression()]).fit(X[:3], [1, 2, 3], sample_weight=[1, 1, 1], metadata="a")


class NoFeatureCount(LogisticRegression):
    """A member without n_features_in_ (scikit-learn's #17353)."""

    def fit(self, X, y):
        super().fit(X, y)
        del self.n_features_in_
        return self


@pytest.mark.parametrize("cls", [StackClassifier, BlendClassifier])
def test_n_features_in_of_stacks_as_scikit_learn(iris, cls):
    X, y = iris
    stack = cls([("lr", NoFeatureCount())], cv=3)
    with pytest.raises(AttributeError, match=f"^{cls.__name__} object has no attribute n_features_in_"):
        stack.n_features_in_
    assert not hasattr(stack, "n_features_in_")
    stack.fit(X, y)
    assert stack.n_features_in_ == 4  # recorded from X (README: Differences from scikit-learn)
    with pytest.raises(AttributeError, match="'NoFeatureCount' object has no attribute 'n_features_in_'"):
        StackingClassifier([("lr", NoFeatureCount())], cv=3).fit(X, y).n_features_in_  # taken from the members
    with pytest.raises(AttributeError, match=f"^'{cls.__name__}' object has no attribute 'nothing'$"):
        stack.nothing


@pytest.mark.parametrize("method", ["slsqp", "nnls", "caruana"])
def test_learned_weights_with_integer_sample_weights_equal_repeated_samples(digits, method):
    X, y = digits
    members = frozen([("lr", LogisticRegression(C=0.01)), ("nb", GaussianNB()), ("tree", DecisionTreeClassifier(max_depth=4, random_state=0))], X[:800], y[:800])
    Xv, yv = X[800:1200], y[800:1200]
    counts = np.random.default_rng(1).integers(0, 4, len(yv))
    counts[:10] = 1  # every class stays present
    weighted = BlendClassifier(members, method=method).fit(Xv, yv, sample_weight=counts)
    repeated = BlendClassifier(members, method=method).fit(np.repeat(Xv, counts, axis=0), np.repeat(yv, counts))
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, atol=1e-6)
    plain = BlendClassifier(members, method=method).fit(Xv, yv)
    assert not np.allclose(plain.weights_, weighted.weights_, atol=1e-6)


def test_caruana_any_scoring_uses_sample_weight(digits):
    X, y = digits
    members = frozen(classifiers(), X[:800], y[:800])
    counts = np.random.default_rng(0).integers(0, 3, 400)
    counts[:10] = 1
    kwargs = {"method": "caruana", "scoring": "accuracy", "ensemble_size": 8}
    Xv, yv = X[800:1200], y[800:1200]
    weighted = BlendClassifier(members, **kwargs).fit(Xv, yv, sample_weight=counts)
    repeated = BlendClassifier(members, **kwargs).fit(np.repeat(Xv, counts, axis=0), np.repeat(yv, counts))
    np.testing.assert_allclose(weighted.weights_, repeated.weights_)
    assert not np.allclose(BlendClassifier(members, **kwargs).fit(Xv, yv).weights_, weighted.weights_)


def test_metadata_routing(iris, weights):
    X, y = iris
    sw = weights[:150]
    with sklearn.config_context(enable_metadata_routing=True):
        # a member requesting sample_weight under an alias gets the weights; one not requesting them does not
        routed = BlendClassifier([
            ("lr", LogisticRegression().set_fit_request(sample_weight="lr_weight")),
            ("nb", GaussianNB().set_fit_request(sample_weight=False)),
        ]).fit(X, y, lr_weight=sw)
        np.testing.assert_array_equal(routed.named_estimators_["lr"].coef_, LogisticRegression().fit(X, y, sample_weight=sw).coef_)
        np.testing.assert_array_equal(routed.named_estimators_["nb"].theta_, GaussianNB().fit(X, y).theta_)

        # a pipeline member and the meta-learner, through a Pipeline around the stack
        stack = StackClassifier(
            [("pipe", make_pipeline(StandardScaler().set_fit_request(sample_weight=False),
                                    LogisticRegression().set_fit_request(sample_weight=True)))],
            final_estimator=LogisticRegression().set_fit_request(sample_weight=True), cv=StratifiedKFold(3),
        ).set_fit_request(sample_weight=True)
        outer = Pipeline([("stack", stack)]).fit(X, y, sample_weight=sw)
        reference = StackClassifier(
            [("pipe", make_pipeline(StandardScaler(), LogisticRegression()))], cv=StratifiedKFold(3),
        )
    with sklearn.config_context(enable_metadata_routing=False):
        pipe_sw = {"logisticregression__sample_weight": sw}
        expected = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y, **pipe_sw)
        np.testing.assert_array_equal(outer[-1].named_estimators_["pipe"][-1].coef_, expected[-1].coef_)
        reference.fit(X, y)
    assert not np.allclose(outer[-1].final_estimator_.coef_, reference.final_estimator_.coef_)
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(UnsetMetadataPassedError, match=r"sample_weight.*LogisticRegression.fit"):
            StackClassifier(classifiers()[:1]).fit(X, y, sample_weight=sw)  # the member did not say
        with pytest.raises(TypeError, match="got unexpected argument.*not routed to any object"):
            BlendClassifier(classifiers()).fit(X, y, groups=np.ones(150))
        # the default meta-learner requests sample_weight: only the member has to say
        stack = StackClassifier([("lr", LogisticRegression().set_fit_request(sample_weight=False))], cv=3).fit(X, y, sample_weight=sw)
        assert stack.final_estimator_.get_metadata_routing().fit.requests["sample_weight"] is True


# --- decision_function, verbose, fit returning None -----------------------------------------------


def test_decision_function_follows_the_final_estimator(iris):
    X, y = iris
    stack = StackClassifier(classifiers(), cv=3).fit(X, y)
    np.testing.assert_array_equal(stack.decision_function(X), stack.final_estimator_.decision_function(stack.transform(X)))
    assert not hasattr(StackClassifier(classifiers(), final_estimator=GaussianNB()), "decision_function")
    assert hasattr(StackClassifier(classifiers()), "decision_function")


def test_verbose_prints_member_fits_as_scikit_learn_and_shows_progress_bars(iris, capsys, monkeypatch):
    X, y = iris
    # scikit-learn's own test_voting_verbose pattern, stdout exactly two lines
    pattern = r"\[Voting\].*\(1 of 2\) Processing lr, total=.*\n\[Voting\].*\(2 of 2\) Processing tree, total=.*\n$"
    VotingClassifier(classifiers()[:2], verbose=True).fit(X, y)
    assert re.match(pattern, capsys.readouterr().out)
    BlendClassifier(classifiers()[:2], verbose=1).fit(X, y)
    captured = capsys.readouterr()
    assert re.match(pattern, captured.out)
    assert captured.err == ""  # bars show only for steps longer than PROGRESS_DELAY seconds
    StackRegressor(regressors()[:1], cv=3, verbose=1).fit(X, y)
    assert re.match(r"\[Stacking\].*\(1 of 1\) Processing ridge, total=", capsys.readouterr().out)

    monkeypatch.setattr(_members, "PROGRESS_DELAY", 0)
    blend = BlendClassifier(classifiers()[:2], method="slsqp", cv=3, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "fitting members, out-of-fold predictions:" in err and "0/4 [" in err  # two fits, two cross_val_predict
    blend.predict_proba(X)
    assert "members' predict_proba" in capsys.readouterr().err
    for quiet in (BlendClassifier(classifiers()[:2], method="slsqp", cv=3), StackClassifier(classifiers()[:2], cv=3)):
        quiet.fit(X, y).predict_proba(X)
        assert capsys.readouterr() == ("", "")


class ReturnsNothing(LogisticRegression):
    """A hand-written classifier whose fit returns None (scikit-learn tolerates it)."""

    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)


def test_fit_returning_none_keeps_the_fitted_object(iris):
    X, y = iris
    for ensemble in (
        StackClassifier([("lr", ReturnsNothing())], final_estimator=ReturnsNothing(), cv=3),
        BlendClassifier([("lr", ReturnsNothing()), ("nb", GaussianNB())], method="slsqp", cv=3),
    ):
        ensemble.fit(X, y)
        assert isinstance(ensemble.estimators_[0], ReturnsNothing)
        assert ensemble.score(X, y) > 0.9
    assert isinstance(ensemble.named_estimators_["lr"], ReturnsNothing)


# --- malformed estimators, targets and inputs ---------------------------------------------------


@pytest.mark.parametrize(
    "estimators",
    [
        [(213, LogisticRegression())],
        [("lr", LogisticRegression()), ("lr", GaussianNB())],
        [("a__b", LogisticRegression())],
        [("a", "drop"), ("b", "drop")],
        [("n_jobs", LogisticRegression())],
        [],
    ],
)
def test_malformed_estimators_raise_scikit_learn_errors(iris, estimators):
    X, y = iris
    with pytest.raises(ValueError) as theirs:
        VotingClassifier(estimators).fit(X, y)
    for cls in (BlendClassifier, StackClassifier):
        with pytest.raises(ValueError) as ours:
            cls(estimators).fit(X, y)
        assert str(ours.value).startswith(str(theirs.value).rstrip("."))


def test_other_member_errors(iris):
    X, y = iris
    with pytest.raises(TypeError, match=r"expected an estimator instance \(LogisticRegression\(\)\)"):
        BlendClassifier([("lr", LogisticRegression)]).fit(X, y)
    with pytest.raises(ValueError, match="item 0 is the string 'drop': name it"):
        BlendClassifier(["drop", LogisticRegression()]).fit(X, y)
    with pytest.raises(ValueError, match="^The estimator Ridge should be a classifier.$"):
        BlendClassifier([("ridge", Ridge())]).fit(X, y)
    with pytest.raises(ValueError, match="^The estimator LogisticRegression should be a regressor.$"):
        BlendRegressor([("lr", LogisticRegression())]).fit(X, y)
    with pytest.raises(ValueError, match="Number of `estimators` and weights must be equal; got 2 weights, 3 estimators"):
        BlendClassifier(classifiers(), weights=[1, 1]).fit(X, y)
    stack = StackClassifier([("ridge", Ridge()), ("lr", LogisticRegression())], cv=3).fit(X, y)  # regressors as in scikit-learn
    assert stack.stack_method_ == ["predict", "predict_proba"]


@pytest.mark.parametrize("make", [BlendClassifier, StackClassifier, BlendRegressor, StackRegressor])
def test_targets_and_inputs_users_get_wrong(iris, make):
    X, y = iris
    members = classifiers() if make in (BlendClassifier, StackClassifier) else regressors()
    est = make(members, cv=3)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        est.fit(X, y[:, None])
    expected = clone(est).fit(X, y).predict(X)
    np.testing.assert_array_equal(est.predict(X), expected)
    with pytest.raises(ValueError, match=r"(multilabel|multi-output) y are not supported \(got y of shape \(150, 2\)\)"):
        clone(est).fit(X, np.c_[y, y])
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) \(shape=\(0, 4\)\) while a minimum of 1 is required"):
        clone(est).fit(X[:0], y[:0])
    with pytest.raises(ValueError, match=r"0-d \(scalar\) X"):
        clone(est).fit(np.float64(1.0), y[:1])
    for bad in (X[:0], np.float64(1.0)):
        with pytest.raises(ValueError, match=r"0 sample\(s\)|0-d \(scalar\) X"):
            est.predict(bad)
    with pytest.raises(ValueError, match="0 sample"):
        est.transform(X[:0])


def test_stack_keeps_the_prefit_classes_and_refuses_one_class(iris):
    X, y = iris
    members = frozen(classifiers(), X[::2], y[::2])
    rest = y[1::2] < 2  # data without class 2
    for final in (LogisticRegression(), XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1)):
        stack = StackClassifier(members, final_estimator=final).fit(X[1::2][rest], y[1::2][rest])
        np.testing.assert_array_equal(stack.classes_, [0, 1, 2])
        proba = stack.predict_proba(X)
        assert proba.shape == (150, 3) and np.all(proba[:, 2] == 0)
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
        assert set(stack.predict(X)) <= {0, 1}
    stack = StackClassifier(members).fit(X[1::2][rest], y[1::2][rest])
    with pytest.raises(ValueError, match="the final estimator saw 2 of the 3 classes and gives one score"):
        stack.decision_function(X)
    with pytest.raises(ValueError, match=r"y has one class only \(0\); StackClassifier needs at least two"):
        StackClassifier(members).fit(X[y == 0], y[y == 0])
    blend = BlendClassifier(members).fit(X[1::2][rest], y[1::2][rest])  # as BlendClassifier does
    np.testing.assert_array_equal(blend.classes_, [0, 1, 2])


def test_decision_function_of_a_stack_missing_classes(digits):
    X, y = digits
    members = frozen(classifiers(), X[:600], y[:600])
    rest = y[600:1200] != 9
    stack = StackClassifier(members).fit(X[600:1200][rest], y[600:1200][rest])
    decision = stack.decision_function(X[1200:])
    assert decision.shape == (597, 10) and np.all(np.isneginf(decision[:, 9])) and np.isfinite(decision[:, :9]).all()
    np.testing.assert_array_equal(stack.classes_[decision.argmax(axis=1)], stack.predict(X[1200:]))
    assert stack.score(X[1200:], y[1200:]) > 0.8


# --- scikit-learn tooling: Pipeline, FeatureUnion, cache -------------------------------------------


def test_ensembles_as_transformers_in_pipelines(iris):
    X, y = iris
    union = FeatureUnion([
        ("blend", BlendClassifier(classifiers())),
        ("stack", StackClassifier(no_proba(), cv=3)),
    ])
    pipe = make_pipeline(union, LogisticRegression()).fit(X, y)
    names = pipe[0].get_feature_names_out()
    assert names[0] == "blend__blendclassifier_lr0" and names[-1] == "stack__stackclassifier_knn2"
    assert pipe[0].transform(X).shape == (150, len(names)) and pipe.score(X, y) > 0.9
    fitted = union.fit(X, y)
    np.testing.assert_array_equal(fitted.transform(X)[:, :9], BlendClassifier(classifiers()).fit(X, y).transform(X))


def test_prefit_members_with_several_methods_and_the_cache(tmp_path, iris):
    X, y = iris
    members = frozen(no_proba(), X[::2], y[::2])
    plain = StackClassifier(members).fit(X, y)
    cached = StackClassifier(members, memory=tmp_path).fit(X, y)
    assert cached.stack_method_ == ["decision_function", "decision_function", "decision_function", "predict_proba"]
    np.testing.assert_array_equal(cached.transform(X), plain.transform(X))
    np.testing.assert_array_equal(cached.transform(X), cached.transform(X))  # served from the cache
    labels = StackClassifier(members, stack_method="predict").fit(X, y).transform(X)
    np.testing.assert_array_equal(labels, np.column_stack([m.predict(X) for _, m in members]))


def test_solvers_weighted_variants_equal_repeated_samples():
    rng = np.random.default_rng(3)
    n, k = 300, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(3, n, k))
    logits[0, np.arange(n), y] += 2.0
    P = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    counts = rng.integers(0, 4, n)
    Pr, yr = np.repeat(P, counts, axis=1), np.repeat(y, counts)
    np.testing.assert_allclose(solvers.slsqp_weights(P, y, sample_weight=counts), solvers.slsqp_weights(Pr, yr), atol=1e-6)
    np.testing.assert_allclose(solvers.nnls_weights(P, y, sample_weight=counts), solvers.nnls_weights(Pr, yr), atol=1e-8)
    np.testing.assert_allclose(solvers.caruana_weights(P, y, sample_weight=counts), solvers.caruana_weights(Pr, yr))
    target = rng.normal(size=n)
    R = np.stack([target + rng.normal(scale=s, size=n) for s in (0.2, 1.0)])
    np.testing.assert_allclose(
        solvers.slsqp_weights(R, target, sample_weight=counts), solvers.slsqp_weights(np.repeat(R, counts, axis=1), np.repeat(target, counts)), atol=1e-6
    )
    with pytest.raises(ValueError, match="not all zero"):
        solvers.slsqp_weights(P, y, sample_weight=np.zeros(n))


def test_fitted_state_is_plain(iris):
    """The fitted attributes a pickle-free save needs: arrays, lists, names and estimators only."""
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blend = BlendClassifier([("lr", "drop"), *classifiers()[1:]], method="slsqp", cv=3).fit(X, y)
        stack = StackClassifier([("svc", LinearSVC()), ("nb", GaussianNB())], cv=3).fit(X, y)
    assert sorted(k for k in vars(blend) if k.endswith("_") or k.startswith("_")) == [
        "_columns", "blend_temperature_", "classes_", "estimators_", "n_features_in_", "named_estimators_",
        "temperatures_", "weights_",
    ]
    assert sorted(k for k in vars(stack) if k.endswith("_") or k.startswith("_")) == [
        "_columns", "_final_columns", "_n_feature_outs", "classes_", "estimators_", "final_estimator_",
        "n_features_in_", "named_estimators_", "stack_method_", "temperatures_",
    ]
    assert all(isinstance(c, np.ndarray) and c.dtype.kind == "i" for c in blend._columns + stack._columns)
    assert stack._n_feature_outs == [3, 3]
