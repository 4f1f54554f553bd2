"""Member kinds: models the ensembles use without knowing them by name.

A *member kind* tells the ensembles how to use prefit models of one kind
(Keras models, or a kind a plug-in or a user registers): which objects it
covers (:meth:`MemberKind.matches`), how they predict (``predict_proba``,
``decision_function``, ``predict``), their class labels, a fingerprint that
keys cached predictions, and a check of the inputs made before any member
predicts. The ensembles wrap such an object in a :class:`Member` (a
predict-only scikit-learn estimator, fitted from construction, never cloned
nor refit) and use only that interface: blending, stacking, the prediction
cache and the diversity report name no kind, so a new kind is one class and
one :func:`register_member_kind` call.

Decisions:

- scikit-learn estimators and pipelines, XGBoost models and
  ``FrozenEstimator`` are not kinds: they are the default path (cloned and
  fitted by the ensemble, or used as they are when frozen).
- :func:`kind_of` asks the registered kinds, the latest registered first; a
  :class:`Member` knows its kind. Registering a kind under a name already
  taken replaces that kind.
- A kind either defines the prediction methods it supports and keeps the
  generic adapter (:meth:`MemberKind.wrap` returns a :class:`KindMember`),
  or returns its own :class:`Member` subclass from ``wrap``. Keras, the
  built-in kind (registered by ``ensemble._keras`` when ``ensemble`` is
  imported; keras itself is imported only when a Keras member is saved,
  restored or fused), does the latter: its adapter is
  :class:`~ensemble.KerasMember`.
- Fusion into one Keras model (``to_keras()``) is Keras-specific; a kind
  says whether its members can be fused (``fuses_to_keras``).
- The input check and the weights digest a Keras model needs
  (:func:`check_keras_input`, :func:`keras_weights_digest`) are public here
  so that the zoo uses the same ones; neither imports keras.
"""

from __future__ import annotations

import hashlib
import threading

import joblib
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if

__all__ = [
    "KindMember",
    "Member",
    "MemberKind",
    "check_input_array",
    "check_keras_input",
    "keras_input_spec",
    "keras_weights_digest",
    "kind_of",
    "member_kinds",
    "register_member_kind",
    "unregister_member_kind",
]

_TASKS = ("classification", "regression")
_kinds: list = []  # registered kinds, oldest first
_lock = threading.Lock()


class MemberKind:
    """Interface of a member kind: subclass it, override what applies, register an instance.

    Prediction methods (``predict_proba``, ``decision_function``,
    ``predict``) take ``(obj, X)`` and are None where the kind does not
    support them; a classifier kind needs ``predict_proba`` or ``predict``
    (``predict`` defaults to the most probable class), a regressor kind
    ``predict``.

    Attributes
    ----------
    name : str
        Unique name of the kind (e.g. ``"keras"``).
    fuses_to_keras : bool
        Whether ``to_keras()`` can fuse members of this kind (Keras only).
    """

    name: str | None = None
    fuses_to_keras = False
    predict_proba = None
    decision_function = None
    predict = None

    def matches(self, obj) -> bool:
        """Whether ``obj`` (as passed to an ensemble) is of this kind."""
        raise NotImplementedError

    def wrap(self, obj, *, task="classification"):
        """The :class:`Member` an ensemble uses for ``obj``; by default a :class:`KindMember`."""
        return KindMember(obj, kind=self, task=task)

    def classes(self, obj):
        """Class label of each column of ``predict_proba``, in column order; default ``obj.classes_``."""
        return obj.classes_

    def fingerprint(self, obj) -> str:
        """A digest of what ``obj``'s predictions depend on (keys cached predictions); default ``joblib.hash``."""
        return joblib.hash(obj)

    def check_input(self, obj, X):
        """``X`` as ``obj`` takes it, or a ``ValueError`` saying what it expects; default ``X`` unchanged."""
        return X

    def check_ready(self, obj):
        """Raise ``sklearn.exceptions.NotFittedError`` if ``obj`` cannot predict yet; default nothing."""

    def default_name(self, obj) -> str:
        """Name of a member given without one; default its class name, lowercased."""
        return type(obj).__name__.lower()

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Member(BaseEstimator):
    """Base of the adapters that make a prefit model of some kind an ensemble member.

    A member is fitted from construction: :meth:`fit` is a no-op and
    :func:`sklearn.base.clone` returns the member itself, so ensembles never
    retrain or copy the model it wraps (``model``). Subclasses define
    ``member_kind`` and the prediction methods.
    """

    @property
    def member_kind(self):
        """The :class:`MemberKind` of this member."""
        raise NotImplementedError

    def __sklearn_clone__(self):
        return self

    def __sklearn_is_fitted__(self):
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor" if self.task == "regression" else "classifier"
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        return tags

    def fit(self, X=None, y=None, **fit_params):
        """No-op: the model is already trained. Returns ``self``."""
        return self

    def fingerprint(self) -> str:
        """A digest of what the predictions depend on; equal fingerprints predict the same."""
        raise NotImplementedError

    def check_input(self, X):
        """``X`` as the model takes it, or a ``ValueError`` saying what it expects."""
        return X

    def check(self, name, task):
        """Raise if the member cannot serve as member ``name`` of an ensemble for ``task``."""
        if self.task != task:
            raise ValueError(f"Member {name!r} is a {type(self).__name__} with task={self.task!r}; this ensemble needs {task!r}")

    def default_name(self) -> str:
        """Name of the member when given without one."""
        return self.member_kind.default_name(self.model)


def _kind_has(method):
    def check(self):
        if getattr(self.kind, method, None) is None:
            raise AttributeError(f"members of kind {self.kind.name!r} have no {method}")
        return True

    return check


class KindMember(Member):
    """The generic adapter: a model of a registered kind, predicting through its kind.

    Parameters
    ----------
    model : object
        The prefit model.
    kind : MemberKind
        Its kind.
    task : {"classification", "regression"}, default="classification"

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted class labels (classification); :meth:`predict_proba` columns
        follow them.
    """

    def __init__(self, model, *, kind, task="classification"):
        self.model = model
        self.kind = kind
        self.task = task

    @property
    def member_kind(self):
        return self.kind

    @property
    def classes_(self):
        if self.task == "regression":
            raise AttributeError("a regression member has no classes_")
        return np.sort(self._labels())

    def _labels(self):
        return np.asarray(self.kind.classes(self.model))

    def fingerprint(self):
        h = hashlib.sha256()
        h.update(repr((self.kind.name, self.task)).encode())
        h.update(str(self.kind.fingerprint(self.model)).encode())
        return h.hexdigest()

    def check_input(self, X):
        return self.kind.check_input(self.model, X)

    def check(self, name, task):
        if task not in _TASKS:
            raise ValueError(f"task must be one of {_TASKS}; got {task!r}")
        super().check(name, task)
        self.kind.check_ready(self.model)
        if task == "classification" and self.kind.predict_proba is None and self.kind.predict is None:
            raise TypeError(f"Member {name!r}: members of kind {self.kind.name!r} have neither predict_proba nor predict")

    def _columns(self, out, what):
        """``out`` with its columns in sorted class order."""
        out = np.asarray(out, dtype=np.float64)
        labels = self._labels()
        if out.ndim != 2 or out.shape[1] != len(labels):
            raise ValueError(f"{what} of shape {out.shape} for {len(labels)} classes")
        return out[:, np.argsort(labels, kind="stable")]

    @available_if(_kind_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities, one column per entry of ``classes_``."""
        return self._columns(self.kind.predict_proba(self.model, self.check_input(X)), "probabilities")

    @available_if(_kind_has("decision_function"))
    def decision_function(self, X):
        """Decision scores: one column per entry of ``classes_``, or one score."""
        out = np.asarray(self.kind.decision_function(self.model, self.check_input(X)), dtype=np.float64)
        return out if out.ndim == 1 else self._columns(out, "decision scores")

    def _can_predict(self):
        if self.kind.predict is None and (self.task == "regression" or self.kind.predict_proba is None):
            raise AttributeError(f"members of kind {self.kind.name!r} have no predict")
        return True

    @available_if(_can_predict)
    def predict(self, X):
        """Labels (the most probable class unless the kind predicts them) or values."""
        if self.kind.predict is not None:
            out = np.asarray(self.kind.predict(self.model, self.check_input(X)))
            return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def register_member_kind(kind):
    """Register ``kind``, replacing a kind of the same name; later kinds are asked first.

    Parameters
    ----------
    kind : MemberKind

    Returns
    -------
    kind : MemberKind
    """
    if not isinstance(kind, MemberKind):
        raise TypeError(f"expected a MemberKind instance; got {type(kind).__name__}")
    if not isinstance(kind.name, str) or not kind.name:
        raise ValueError(f"a member kind needs a non-empty name; {type(kind).__name__} has {kind.name!r}")
    with _lock:
        _kinds[:] = [k for k in _kinds if k.name != kind.name] + [kind]
    return kind


def unregister_member_kind(name):
    """Remove the kind named ``name``; returns whether one was registered."""
    with _lock:
        before = len(_kinds)
        _kinds[:] = [k for k in _kinds if k.name != name]
        return len(_kinds) < before


def member_kinds():
    """The registered kinds, the first asked first."""
    with _lock:
        return tuple(reversed(_kinds))


def kind_of(obj):
    """The kind of ``obj`` (a model or a :class:`Member`), or None for scikit-learn-style estimators."""
    if isinstance(obj, Member):
        return obj.member_kind
    if isinstance(obj, (type, str)) or obj is None:
        return None
    for kind in member_kinds():
        if kind.matches(obj):
            return kind
    return None


# --- Keras models: the weights digest and the input check (no keras import) --------------------


def keras_weights_digest(model) -> str:
    """sha256 over a Keras model's weight values (names, shapes, dtypes and bytes), in order."""
    digest = hashlib.sha256()
    for w in model.weights:
        a = np.ascontiguousarray(w.numpy())
        digest.update(f"{w.path}:{a.dtype}:{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def keras_input_spec(model) -> tuple[tuple, str | None]:
    """A Keras model's input shape (batch axis first) and dtype name (None when unknown)."""
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(f"Keras models with {len(shape)} inputs are not supported")
        shape = shape[0]
    inputs = getattr(model, "inputs", None) or [None]
    dtype = getattr(inputs[0], "dtype", None)
    dtype = getattr(dtype, "name", dtype)  # a tf.DType under tf_keras
    return tuple(shape), None if dtype is None else str(dtype)


def check_keras_input(model, X) -> np.ndarray:
    """``X`` as an array the Keras ``model`` can take, or a ``ValueError`` saying what it expects.

    A ``uint8`` input takes integers 0-255 and refuses floats, booleans and
    values out of range (no silent casting); a float input refuses NaN and
    infinity; a string input takes raw text (see :func:`check_input_array`).
    """
    shape, dtype = keras_input_spec(model)
    return check_input_array(X, shape[1:], dtype, f"the Keras model {model.name!r}")


def check_input_array(X, shape, dtype: str | None, what: str) -> np.ndarray:
    """``X`` checked against a sample ``shape`` and input ``dtype``; ``what`` names the model in errors.

    ``X`` may lack a trailing axis of size one (e.g. raw strings of shape
    ``(n,)`` for an input of shape ``(1,)``). Strings are returned as a 1-D
    object array, the form Keras takes text in. Empty and 0-d arrays are
    refused.
    """
    X = np.asarray(X)
    if X.ndim == 0:
        raise ValueError(f"X is a single value (a 0-d array); {what} takes an array of samples")
    if len(X) == 0:
        raise ValueError(f"X has no samples (shape {X.shape}); {what} needs at least one")
    if X.dtype.kind in "US":  # Keras takes strings as an object array
        X = X.astype(object)
    _check_values(X, dtype, what)
    given, expected = X.shape, tuple(shape)
    if X.ndim == len(expected) and expected[-1:] == (1,):
        X = X[..., None]
    if X.ndim != len(expected) + 1 or any(e is not None and e != s for e, s in zip(expected, X.shape[1:])):
        raise ValueError(f"X has shape {given} but {what} expects inputs of shape {(None, *shape)}")
    if X.dtype == object and X.shape[1:] == (1,):  # Keras takes text as a 1-D object array only
        X = X[:, 0]
    return X


def _check_values(X: np.ndarray, dtype: str | None, what: str) -> None:
    if dtype in ("string", "str"):
        if X.dtype != object or not all(isinstance(x, (str, bytes)) for x in X.flat):
            raise ValueError(f"{what} takes raw text (strings); X holds {_describe(X)}")
        return
    try:
        want = np.dtype(dtype)
    except TypeError:
        return  # unknown or absent: the model decides
    if want.kind in "iu":
        info = np.iinfo(want)
        expects = f"{what} takes {want} inputs (integers {info.min} to {info.max}, e.g. raw pixel values)"
        if X.dtype.kind not in "iu":
            hint = "; give the unscaled values, the model rescales them itself" if X.dtype.kind == "f" else ""
            raise ValueError(f"{expects}; X holds {_describe(X)}{hint}")
        if X.min() < info.min or X.max() > info.max:
            raise ValueError(f"{expects}; X holds {_describe(X)}")
    elif want.kind == "f":
        if X.dtype.kind not in "biuf":
            raise ValueError(f"{what} takes numbers ({want}); X holds {_describe(X)}")
        if X.dtype.kind == "f" and not np.isfinite(X).all():
            raise ValueError(f"X holds NaN or infinite values; {what} cannot predict from them")


def _describe(X: np.ndarray) -> str:
    if X.dtype.kind == "b":
        return "booleans"
    if X.dtype.kind in "iuf":
        if X.dtype.kind == "f" and np.isnan(X).any():
            return f"{X.dtype} values including NaN"
        return f"{X.dtype} values from {X.min():g} to {X.max():g}"
    if X.dtype == object:
        kinds = sorted({type(x).__name__ for x in X.flat[:1000]})
        return f"objects of type {', '.join(kinds)}"
    return f"dtype {X.dtype}"
