"""Scikit-learn-compatible ensembles of Keras, scikit-learn and XGBoost models.

>>> from ensemble import BlendClassifier
>>> blend = BlendClassifier([cnn, mlp, FrozenEstimator(forest)], method="slsqp")  # doctest: +SKIP
>>> blend.fit(X_valid, y_valid).predict_proba(X_test)                             # doctest: +SKIP
>>> selected = ensemble.select(library_models, X_valid, y_valid)                  # doctest: +SKIP

Members take the same raw inputs and own their preprocessing. Keras is
imported only when a Keras member is saved, restored or fused.
"""

from ensemble import solvers
from ensemble._keras import KerasMember
from ensemble.blend import BlendClassifier, BlendRegressor
from ensemble.chunked import predict_chunked
from ensemble.distillation import distill, distill_into
from ensemble.diversity import Diversity, diversity
from ensemble.kinds import MemberKind, kind_of, register_member_kind
from ensemble.persistence import load, save
from ensemble.refitting import refit
from ensemble.selection import select
from ensemble.serving import export_saved_model
from ensemble.stack import StackClassifier, StackRegressor

__all__ = [
    "BlendClassifier",
    "BlendRegressor",
    "Diversity",
    "KerasMember",
    "MemberKind",
    "StackClassifier",
    "StackRegressor",
    "distill",
    "distill_into",
    "diversity",
    "export_saved_model",
    "kind_of",
    "load",
    "predict_chunked",
    "refit",
    "register_member_kind",
    "save",
    "select",
    "solvers",
]
