"""Keras models as ensemble members: detection, the predict-only adapter, fusion.

Nothing here imports keras at module level; it is imported only when a Keras
member is actually saved, restored or fused.
"""

import hashlib
import json
import os
import tempfile
import threading

import numpy as np
from sklearn.base import BaseEstimator

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


class KerasMember(BaseEstimator):
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
        from zoo.models import weights_digest

        h.update(weights_digest(model).encode())
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
        from zoo._inputs import check_input

        return check_input(self.model, X)

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


def fuse(members, weights, names):
    """One functional ``keras.Model`` computing ``sum_i weights[i] * output_i``.

    ``members`` are :class:`KerasMember` adapters; the output columns follow
    each member's sorted ``classes_`` (classification) and sigmoid outputs
    become two columns. Members with zero weight are left out. The mixing is a
    single frozen ``Dense`` layer over the concatenated member outputs.
    """
    import keras

    used = [(m, w, n) for m, w, n in zip(members, weights, names) if w > 0]
    shapes = {tuple(m.model.input_shape[1:]) for m, _, _ in used}
    dtypes = {m.model.inputs[0].dtype for m, _, _ in used}
    if len(shapes) > 1 or len(dtypes) > 1:
        detail = ", ".join(f"{n}: {m.model.input_shape} {m.model.inputs[0].dtype}" for m, _, n in used)
        raise ValueError(f"to_keras() needs members with the same input; got {detail}")
    first = used[0][0].model
    inputs = keras.Input(shape=first.input_shape[1:], dtype=first.inputs[0].dtype, name="input")

    counts = {}
    for m, _, _ in used:
        counts[m.model.name] = counts.get(m.model.name, 0) + 1
    regression = used[0][0].task == "regression"
    n_out = 1 if regression else len(used[0][0].classes_)
    outputs, blocks, bias = [], [], np.zeros(n_out)
    for member, w, name in used:
        model = member.model
        if counts[model.name] > 1:  # layer names must be unique: rename via a graph wrapper
            model = keras.Model(model.inputs[0], model.outputs[0], name=f"{name}_model")
        out = model(inputs)
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
    mix = keras.layers.Dense(n_out, trainable=False, name="weighted_sum")
    y = mix(x)
    mix.set_weights([np.vstack(blocks).astype("float32"), bias.astype("float32")])
    return keras.Model(inputs, y, name="blend")
