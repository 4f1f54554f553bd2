"""Loading, listing and evaluating zoo models.

A model is rebuilt in code from its registry entry (builder + hyperparameters)
and its weights are read from a ``.weights.h5`` file whose sha256 is checked on
every load; no model config or code is deserialized.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np

from zoo._files import ChecksumError, verify
from zoo.registry import Registry

__all__ = ["build_model", "build_with_weights", "evaluate", "info", "list_models", "load", "predict_proba", "provenance", "scores"]

_PROVENANCE = weakref.WeakKeyDictionary()  # model -> where zoo.load found it (see provenance())


def _registry(registry: Registry | str | os.PathLike | None) -> Registry:
    return registry if isinstance(registry, Registry) else Registry(registry)


def list_models(pattern: str = "*", dataset: str | None = None, registry: Registry | None = None) -> list[str]:
    """Names of the registry's models that match a shell-style ``pattern`` (and ``dataset``)."""
    return _registry(registry).names(pattern, dataset)


def info(name: str, registry: Registry | None = None) -> dict:
    """The registry entry of ``name``, as a dict (a copy)."""
    return _registry(registry).entry(name)


def read_vocabulary(path: str | os.PathLike) -> list[str]:
    """Read a vocabulary file: one token per line, UTF-8."""
    return Path(path).read_text(encoding="utf-8").split("\n")[:-1]


def build_model(builder: str, params: dict, recipe: dict | None = None, vocabulary: list[str] | None = None,
                parameters: int | None = None):
    """Build an architecture (untrained) from its builder name and hyperparameters.

    With a ``recipe`` the model is compiled with the recipe's optimizer, the
    task's loss and an accuracy metric; without one it is left uncompiled.
    With ``parameters`` (the number of values its weights hold, for
    hyperparameters read from a file) the hyperparameters are counted first
    and refused with :class:`zoo.parameter_count.HyperparameterError` unless
    they make exactly that many weights: nothing is allocated for them.
    """
    if parameters is not None:
        from zoo.parameter_count import check_hyperparameters

        check_hyperparameters(builder, params, parameters, None if vocabulary is None else len(vocabulary))

    from zoo.architectures import TEXT_BUILDERS, build

    text = builder in TEXT_BUILDERS
    kwargs = dict(params)
    if text:
        kwargs["vocabulary"] = vocabulary
    model = build(builder, **kwargs)
    if recipe is not None:
        compile_model(model, recipe, text)
    return model


def build_with_weights(builder: str, params: dict, weights_path: str | os.PathLike, vocabulary: list[str] | None = None):
    """Build an architecture and load a ``.weights.h5`` file already checked against its sha256.

    The hyperparameters are counted against the weights the file holds
    before anything is built (see :func:`build_model`'s ``parameters``), so
    hyperparameters read from a file cannot make the build allocate more
    than the file itself holds.
    """
    from zoo.parameter_count import stored_parameters

    model = build_model(builder, params, vocabulary=vocabulary, parameters=stored_parameters(weights_path))
    model.load_weights(weights_path)
    return model


def compile_model(model, recipe: dict, text: bool, *, label_smoothing: float = 0.0) -> None:
    """Compile with the recipe's optimizer, the task's loss and accuracy.

    The loss takes integer labels (0/1 for a sigmoid ``text`` model). With
    ``label_smoothing`` > 0 it is label-smoothed: a multi-class model then
    takes one-hot targets (``CategoricalCrossentropy``), a sigmoid one 0/1.
    """
    import keras

    opt = dict(recipe["optimizer"])  # {"name": ..., then keyword arguments such as learning_rate, clipnorm}
    loss = "binary_crossentropy" if text else "sparse_categorical_crossentropy"
    if label_smoothing:
        losses = keras.losses
        loss = (losses.BinaryCrossentropy if text else losses.CategoricalCrossentropy)(label_smoothing=label_smoothing)
    model.compile(
        optimizer=keras.optimizers.get({"class_name": opt.pop("name"), "config": opt}),
        loss=loss,
        metrics=["accuracy"],
    )


def load(name: str, weights: str | None = "pretrained", registry: Registry | str | None = None):
    """Return a compiled ``keras.Model`` for a zoo entry.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"fashion_mnist_bn_cnn"``.
    weights : {"pretrained", None}
        ``"pretrained"`` loads the shipped weights (sha256-checked);
        ``None`` gives the untrained architecture.
    registry : Registry or path, optional
        Registry to read; defaults to the shipped one.

    Raises
    ------
    zoo.ChecksumError
        A weight or vocabulary file does not match its recorded sha256.
    FileNotFoundError
        A weight or vocabulary file is missing.
    """
    if weights not in ("pretrained", None):
        raise ValueError(f"weights must be 'pretrained' or None, got {weights!r}")
    reg = _registry(registry)
    entry = reg.entry(name)
    vocabulary = None
    vocab_path = reg.vocabulary_path(name)
    if vocab_path is not None:
        _check_file(vocab_path, entry["vocabulary"]["sha256"], name, "vocabulary")
        vocabulary = read_vocabulary(vocab_path)
    if weights == "pretrained":
        weights_path = reg.weights_path(name)
        _check_file(weights_path, entry["weights"]["sha256"], name, "weights")
        model = build_with_weights(entry["builder"], entry["params"], weights_path, vocabulary=vocabulary)
    else:
        model = build_model(entry["builder"], entry["params"], vocabulary=vocabulary, parameters=entry["parameters"])
    compile_model(model, entry["recipe"], text=vocabulary is not None)
    _PROVENANCE[model] = {"name": name, "registry": reg, "entry": entry, "vocabulary": vocabulary,
                          "pretrained": weights == "pretrained", "digest": weights_digest(model)}
    return model


def weights_digest(model) -> str:
    """sha256 over a model's weight values (names, shapes, dtypes and bytes), in order (``ensemble.kinds.keras_weights_digest``)."""
    from ensemble.kinds import keras_weights_digest

    return keras_weights_digest(model)


def provenance(model) -> dict | None:
    """Where :func:`load` found ``model``, or None for models it did not return.

    Returns a dict with the entry ``name``, its ``registry``, the registry
    ``entry``, the ``vocabulary`` (text models), whether the weights were the
    ``pretrained`` ones and whether they are ``unchanged`` since (not trained further).
    """
    record = _PROVENANCE.get(model)
    if record is None:
        return None
    return {**record, "unchanged": weights_digest(model) == record["digest"]}


def _check_file(path: Path, sha256: str, name: str, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{name}: {what} file {path} is missing (reinstall the package or run `zoo train {name} --into-package`)")
    try:
        verify(path, sha256, what=f"{name} {what} file")
    except ChecksumError as exc:
        raise ChecksumError(f"{exc}; not loading {name}") from None


def predict_proba(model, X, batch_size: int = 512, verbose: int = 0) -> np.ndarray:
    """Class probabilities of shape ``(n, n_classes)``; a single sigmoid unit gives two columns.

    ``X`` is checked first: a ``ValueError`` says what the model takes when
    its shape, dtype or values do not fit (e.g. floats in [0, 1] for a model
    that takes uint8 pixels), or when it is empty.
    """
    from zoo._inputs import check_input

    X = check_input(model, X)
    p = np.asarray(model.predict(X, batch_size=batch_size, verbose=verbose), dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        return np.hstack([1.0 - p, p])
    return p / p.sum(axis=1, keepdims=True)  # float32 softmax sums to 1 only within ~1e-7


def scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy and log loss of predicted probabilities.

    ``y_true`` of shape ``(n, 1)`` is raveled with a ``DataConversionWarning``.
    """
    from sklearn.metrics import log_loss
    from sklearn.utils.validation import column_or_1d

    y_true = column_or_1d(y_true, warn=True)
    if len(y_true) != len(proba):
        raise ValueError(f"y has {len(y_true)} labels for {len(proba)} predictions")
    return {
        "accuracy": float(np.mean(proba.argmax(axis=1) == y_true)),
        "log_loss": float(log_loss(y_true, proba, labels=np.arange(proba.shape[1]))),
    }


def evaluate(name: str, split: str = "test", limit: int | None = None, data_dir=None, registry: Registry | None = None) -> dict[str, float]:
    """Measure a zoo model's accuracy and log loss on a dataset split (first ``limit`` examples)."""
    from zoo import datasets

    entry = info(name, registry)
    X, y = datasets.load(entry["dataset"], split, data_dir)
    if limit is not None:
        X, y = X[:limit], y[:limit]
    return scores(y, predict_proba(load(name, registry=registry), X))
