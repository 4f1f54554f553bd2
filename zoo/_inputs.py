"""What a Keras model takes: input shape, dtype and value range, checked before predicting.

A model whose input is ``uint8`` (every zoo image model: ``Rescaling`` is
inside) takes integers 0-255 and refuses floats, booleans and values out of
range, rather than casting them silently; a float-input model takes numbers
and refuses NaN or infinity; a string-input model takes raw text.
"""

from __future__ import annotations

import numpy as np


def input_spec(model) -> tuple[tuple, str | None]:
    """The model's input shape (batch axis first) and dtype name (None when unknown)."""
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(f"Keras models with {len(shape)} inputs are not supported")
        shape = shape[0]
    inputs = getattr(model, "inputs", None) or [None]
    dtype = getattr(inputs[0], "dtype", None)
    dtype = getattr(dtype, "name", dtype)  # a tf.DType under tf_keras
    return tuple(shape), None if dtype is None else str(dtype)


def check_input(model, X) -> np.ndarray:
    """``X`` as an array ``model`` can take, or a ``ValueError`` saying what it expects."""
    shape, dtype = input_spec(model)
    return check_array(X, shape[1:], dtype, f"the Keras model {model.name!r}")


def check_array(X, shape, dtype: str | None, what: str) -> np.ndarray:
    """``X`` checked against a sample ``shape`` and input ``dtype``; ``what`` names the model in errors.

    ``X`` may lack a trailing axis of size one (e.g. raw strings of shape
    ``(n,)`` for an input of shape ``(1,)``). Strings are returned as a 1-D
    object array, the form Keras takes text in.
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
        return  # unknown or absent: Keras decides
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
