"""Keras models as ensemble members: the built-in Keras member kind, its adapter, fusion.

:data:`KERAS` (a :class:`~ensemble.kinds.MemberKind`, registered when this
module is imported) recognises ``keras.Model`` instances by their classes'
names and modules, and wraps them in :class:`KerasMember`. Nothing here imports keras at module level; it is imported only when a Keras
member is actually saved, restored or fused.

Fusion (``to_keras()`` of blends and logistic stacks) builds one functional
model from built-in layers and ``keras.ops`` only: frozen ``Dense`` layers for
the mixing, the sigmoid-to-two-columns step and the logistic meta-learner,
and, for a temperature ``T``, a small named block computing
``softmax(log(max(p, eps)) / T)`` exactly as :mod:`ensemble.calibration` does
(the same epsilon, float32 instead of float64). Keras serialises ``keras.ops``
calls of a functional model as built-in operations, so a fused model saved as
``.keras`` loads with ``safe_mode=True`` in a process that never imports this
package; no ``Lambda`` layer and no custom layer class are involved.
"""

import hashlib
import json
import os
import tempfile
import threading

import numpy as np
from sklearn.exceptions import NotFittedError

from ensemble.kinds import Member, MemberKind, check_keras_input, keras_weights_digest, register_member_kind

_KERAS_MODULES = ("keras", "tf_keras")
_restore_lock = threading.Lock()


def is_keras_model(obj):
    """Whether ``obj`` is a ``keras.Model`` instance, without importing keras."""
    if isinstance(obj, type):
        return False
    return any(
        cls.__name__ == "Model" and cls.__module__.split(".")[0] in _KERAS_MODULES
        for cls in type(obj).__mro__
    )


class KerasKind(MemberKind):
    """The built-in member kind of ``keras.Model`` instances; its adapter is :class:`KerasMember`."""

    name = "keras"
    fuses_to_keras = True

    def matches(self, obj):
        return is_keras_model(obj)

    def wrap(self, obj, *, task="classification"):
        return KerasMember(obj, task=task)

    def default_name(self, obj):
        return getattr(obj, "name", "kerasmember").lower()


KERAS = register_member_kind(KerasKind())


class KerasMember(Member):
    """Predict-only adapter that makes a trained ``keras.Model`` an ensemble member.

    The model is used as-is: the adapter is fitted from construction,
    :meth:`fit` is a no-op and :func:`sklearn.base.clone` returns the adapter
    itself, so ensembles never retrain or copy the model.

    Parameters
    ----------
    model : keras.Model
        A trained model with one input. Classifiers end in a softmax
        (``(n, k)`` output) or a single sigmoid unit (``(n, 1)``, read as the
        probability of the second of two classes).
    classes : array-like, default=None
        Class label of each output column, in column order (e.g.
        ``["neg", "pos"]``). Defaults to ``0, ..., k - 1``. ``classes_`` is
        sorted, as in scikit-learn, and the columns of :meth:`predict_proba`
        follow it.
    batch_size : int, default=256
        Batch size passed to ``model.predict``.
    task : {"classification", "regression"}, default="classification"
        Regression members return the model output from :meth:`predict`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted class labels (classification only).
    """

    def __init__(self, model, *, classes=None, batch_size=256, task="classification"):
        self.model = model
        self.classes = classes
        self.batch_size = batch_size
        self.task = task

    # --- model storage: pickled as the bytes of a .keras file, restored lazily ---
    @property
    def model(self):
        """The wrapped ``keras.Model``; after unpickling, restored on first use."""
        if self._model is None:
            with _restore_lock:
                if self._model is None:
                    self._model = _model_from_bytes(self._model_bytes)
                    self._model_bytes = None
        return self._model

    @model.setter
    def model(self, model):
        self._model = model
        self._model_bytes = None

    def __getstate__(self):
        state = super().__getstate__().copy()
        if state["_model"] is not None:
            state["_model_bytes"] = _model_to_bytes(state["_model"])
            state["_model"] = None
        return state

    @property
    def member_kind(self):
        return KERAS

    def check(self, name, task):
        """Raise if this is not a built ``keras.Model`` for ``task`` (as member ``name``)."""
        if not is_keras_model(self.model):
            raise TypeError(f"Member {name!r} is a KerasMember around {type(self.model).__name__}, not a keras.Model")
        if self.task != task:
            raise ValueError(f"Member {name!r} is a KerasMember with task={self.task!r}; this ensemble needs {task!r}")
        if not self.model.built:
            raise NotFittedError(f"Member {name!r}: the Keras model {self.model.name!r} is not built; train it first")

    @property
    def classes_(self):
        if self.task == "regression":
            raise AttributeError("a regression KerasMember has no classes_")
        return np.sort(self._column_labels())

    def _column_labels(self):
        if self.classes is not None:
            return np.asarray(self.classes)
        n_out = self.model.output_shape[-1]
        return np.arange(2 if n_out == 1 else n_out)

    def fingerprint(self):
        """sha256 over the architecture, the weights and the output mapping.

        Keys cached predictions: two adapters with equal fingerprints predict
        the same.
        """
        model = self.model
        h = hashlib.sha256()
        try:
            config = json.loads(model.to_json())
            config.pop("compile_config", None)  # training settings do not change predictions
            h.update(json.dumps(config, sort_keys=True).encode())
        except Exception:  # subclassed models without a config
            lines = []
            model.summary(print_fn=lambda line, *a, **k: lines.append(line))
            h.update("\n".join(lines).encode())
        h.update(keras_weights_digest(model).encode())
        h.update(repr((self.task, None if self.classes is None else list(self.classes))).encode())
        return h.hexdigest()

    def check_input(self, X):
        """Return ``X`` as an array, or raise ``ValueError`` if the model cannot take it.

        Checks the shape, the dtype and the value range against the model's
        input: a ``uint8`` input (the zoo's image models) takes integers 0-255
        and refuses floats (e.g. images scaled to [0, 1]), booleans and values
        out of range; a float input refuses NaN and infinity; a string input
        takes raw text. Empty and 0-d arrays are refused. ``X`` may lack the
        model's trailing axis of size one, e.g. raw strings of shape ``(n,)``
        for a text model with input ``(None, 1)``.
        """
        return check_keras_input(self.model, X)

    def _raw_output(self, X):
        X = self.check_input(X)
        out = self.model.predict(X, batch_size=self.batch_size, verbose=0)
        return np.asarray(out, dtype=np.float64)

    def predict_proba(self, X):
        """Class probabilities, one column per entry of ``classes_``.

        A sigmoid output ``p`` becomes ``[1 - p, p]``; softmax rows are
        renormalised in float64 (float32 rows sum to 1 only within ~1e-7).
        """
        p = self._raw_output(X)
        if p.ndim != 2:
            raise ValueError(f"expected a 2-D output, got shape {p.shape}")
        if p.shape[1] == 1:
            if np.any(p < 0) or np.any(p > 1):
                raise ValueError("the single output unit is not a probability; end the model in a sigmoid")
            p = np.hstack([1.0 - p, p])
        else:
            sums = p.sum(axis=1, keepdims=True)
            if np.any(p < 0) or np.any(np.abs(sums - 1) > 1e-3):
                raise ValueError("output rows are not probabilities; end the model in a softmax")
            p = p / sums
        labels = self._column_labels()
        if len(labels) != p.shape[1]:
            raise ValueError(f"{len(labels)} classes were given for {p.shape[1]} output columns")
        return p[:, np.argsort(labels, kind="stable")]

    def predict(self, X):
        """Class labels (classification) or the model output (regression)."""
        if self.task == "regression":
            out = self._raw_output(X)
            return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _model_to_bytes(model):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def _model_from_bytes(data):
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as f:
            f.write(data)
        return keras.saving.load_model(path, compile=False)


def _fused_input(members, names):
    """The ``keras.Input`` of a fused model: the members' common raw input (uint8 images, strings)."""
    import keras

    shapes = {tuple(m.model.input_shape[1:]) for m in members}
    dtypes = {m.model.inputs[0].dtype for m in members}
    if len(shapes) > 1 or len(dtypes) > 1:
        detail = ", ".join(f"{n}: {m.model.input_shape} {m.model.inputs[0].dtype}" for m, n in zip(members, names))
        raise ValueError(f"to_keras() needs members with the same input; got {detail}")
    first = members[0].model
    return keras.Input(shape=first.input_shape[1:], dtype=first.inputs[0].dtype, name="input")


def _member_models(members, names):
    """Each member's ``keras.Model``, wrapped under a unique name where two share one (layer names must be unique)."""
    import keras

    counts = {}
    for m in members:
        counts[m.model.name] = counts.get(m.model.name, 0) + 1
    models = []
    for member, name in zip(members, names):
        model = member.model
        if counts[model.name] > 1:
            model = keras.Model(model.inputs[0], model.outputs[0], name=f"{name}_model")
        models.append(model)
    return models


def _frozen_dense(x, kernel, bias, name):
    """``x @ kernel + bias`` as a frozen ``Dense`` layer."""
    import keras

    layer = keras.layers.Dense(kernel.shape[1], trainable=False, name=name)
    y = layer(x)
    layer.set_weights([np.asarray(kernel, dtype="float32"), np.asarray(bias, dtype="float32")])
    return y


def _two_columns(x, name):
    """A sigmoid output ``p`` as ``[1 - p, p]`` (see :meth:`KerasMember.predict_proba`)."""
    return _frozen_dense(x, np.array([[-1.0, 1.0]]), np.array([1.0, 0.0]), name)


def _temperature(x, temperature, name):
    """``softmax(log(max(p, eps)) / temperature)`` as a small functional block (see :mod:`ensemble.calibration`).

    Built from ``keras.ops`` (``maximum``, ``log``, ``divide``) and a
    ``Softmax`` layer: a Keras functional model serialises these as built-in
    operations, so the fused model loads with ``safe_mode=True`` without a
    ``Lambda`` layer or any custom class. The temperature and the clipping
    epsilon are constants of the saved config.
    """
    import keras

    from ensemble.calibration import PROBABILITY_FLOOR

    inputs = keras.Input(shape=tuple(x.shape[1:]), dtype=x.dtype)
    z = keras.ops.divide(keras.ops.log(keras.ops.maximum(inputs, float(PROBABILITY_FLOOR))), float(temperature))
    block = keras.Model(inputs, keras.layers.Softmax(axis=-1)(z), name=name)
    return block(x)


def _member_probabilities(model, member, x, temperature, name, *, two_columns):
    """Member output (raw column order) on ``x``; sigmoid outputs as two columns when asked or calibrated."""
    out = model(x)
    if out.shape[-1] == 1 and (two_columns or temperature != 1):
        out = _two_columns(out, f"{name}_two_columns")
    if temperature != 1:
        out = _temperature(out, temperature, f"{name}_temperature")
    return out


def fuse(members, weights, names, temperatures=None, blend_temperature=1.0):
    """One functional ``keras.Model`` computing ``sum_i weights[i] * output_i``.

    ``members`` are :class:`KerasMember` adapters; the output columns follow
    each member's sorted ``classes_`` (classification) and sigmoid outputs
    become two columns. Members with zero weight are left out. The mixing is a
    single frozen ``Dense`` layer over the concatenated member outputs.
    ``temperatures`` (one per member) and ``blend_temperature`` add
    temperature-scaling blocks (see :func:`_temperature`) after a member and
    after the mixing, where they differ from 1.
    """
    import keras

    if temperatures is None:
        temperatures = np.ones(len(members))
    used = [(m, w, n, t) for m, w, n, t in zip(members, weights, names, temperatures) if w > 0]
    inputs = _fused_input([m for m, _, _, _ in used], [n for _, _, n, _ in used])
    models = _member_models([m for m, _, _, _ in used], [n for _, _, n, _ in used])
    regression = used[0][0].task == "regression"
    n_out = 1 if regression else len(used[0][0].classes_)
    outputs, blocks, bias = [], [], np.zeros(n_out)
    for model, (member, w, name, t) in zip(models, used):
        out = _member_probabilities(model, member, inputs, t, name, two_columns=False)
        width = out.shape[-1]
        block = np.zeros((width, n_out))
        if regression:
            block[:, 0] = w
        else:
            # sorted position of each raw output column (see KerasMember.predict_proba)
            position = np.argsort(np.argsort(member._column_labels(), kind="stable"))
            if width == 1:  # sigmoid p -> [1 - p, p]
                block[0, position[1]] += w
                block[0, position[0]] -= w
                bias[position[0]] += w
            else:
                block[np.arange(width), position] = w
        outputs.append(out)
        blocks.append(block)
    x = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(name="member_outputs")(outputs)
    y = _frozen_dense(x, np.vstack(blocks), bias, "weighted_sum")
    if blend_temperature != 1:
        y = _temperature(y, blend_temperature, "blend_temperature")
    return keras.Model(inputs, y, name="blend")


def fuse_stack(members, names, temperatures, coef, intercept, meta_columns, n_classes, *, binary_features):
    """One functional ``keras.Model`` computing a logistic-regression stack's ``predict_proba``.

    Each member's (temperature-scaled) probabilities, in sorted class order,
    are the meta-features, the first column dropped when ``binary_features``
    (scikit-learn's scheme for two classes). The logistic regression is a
    frozen ``Dense`` layer and a ``Softmax``; a binary one (``coef`` of one
    row, ``p = sigmoid(d)``) becomes two logits ``-d/2, d/2``, whose softmax
    is ``[1 - p, p]``. ``meta_columns`` places the regression's classes among
    the ``n_classes`` output columns (0 for the others).
    """
    import keras

    inputs = _fused_input(members, names)
    models = _member_models(members, names)
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    if coef.shape[0] == 1:
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    outputs, blocks, offset = [], [], 0
    for model, member, name, t in zip(models, members, names, temperatures):
        out = _member_probabilities(model, member, inputs, t, name, two_columns=True)
        position = np.argsort(np.argsort(member._column_labels(), kind="stable"))
        n_features = len(position) - 1 if binary_features else len(position)
        block = np.zeros((out.shape[-1], coef.shape[0]))
        for raw, sorted_position in enumerate(position):
            feature = sorted_position - 1 if binary_features else sorted_position
            if feature >= 0:
                block[raw] = coef[:, offset + feature]
        offset += n_features
        outputs.append(out)
        blocks.append(block)
    if offset != coef.shape[1]:
        raise ValueError(f"to_keras(): the meta-learner takes {coef.shape[1]} features, the members give {offset}")
    x = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(name="member_outputs")(outputs)
    logits = _frozen_dense(x, np.vstack(blocks), intercept, "meta_learner")
    y = keras.layers.Softmax(axis=-1, name="meta_probabilities")(logits)
    meta_columns = np.asarray(meta_columns)
    if len(meta_columns) != n_classes or np.any(meta_columns != np.arange(n_classes)):
        place = np.zeros((len(meta_columns), n_classes))
        place[np.arange(len(meta_columns)), meta_columns] = 1.0
        y = _frozen_dense(y, place, np.zeros(n_classes), "classes")
    return keras.Model(inputs, y, name="stack")
