"""scikit-learn's estimator checks, and import hygiene, for the ensemble package."""

import subprocess
import sys

from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from ensemble import BlendClassifier, BlendRegressor, StackClassifier, StackRegressor


def _classifiers():
    return [LogisticRegression(), DecisionTreeClassifier(max_depth=3, random_state=0)]


def _regressors():
    return [Ridge(), DecisionTreeRegressor(max_depth=3, random_state=0)]


ESTIMATORS = [
    BlendClassifier(_classifiers()),
    BlendRegressor(_regressors()),
    StackClassifier(_classifiers(), cv=3),
    StackRegressor(_regressors(), cv=3),
]


def expected_failed_checks(estimator):
    # Every check passes; a failing one must be listed here with its reason.
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_import_does_not_import_keras_or_tensorflow():
    code = (
        "import sys, ensemble\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'tf_keras', 'zoo'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
