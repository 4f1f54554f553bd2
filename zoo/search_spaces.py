"""Search spaces: per builder, the hyperparameter ranges and choices ``zoo.search`` samples.

A space maps a hyperparameter to what the search may pick for it. The name is
either one of the builder's hyperparameters (``dropout``, ``filters``,
``augment``, ``ngrams``... see ``zoo.architectures``) or one of
:class:`zoo.ZooClassifier`'s training settings (``learning_rate``,
``batch_size``, ``epochs``, ``optimizer``, ``lr_schedule``,
``label_smoothing``, ``patience``...). The value is

- ``{"low": a, "high": b}``: a number in ``[a, b]``; integers when both are
  integers; ``"log": True`` samples on a log scale, ``"step": s`` on a grid;
- ``{"choices": [...]}``: one of the choices, which may be lists (e.g. the
  filters of each stage, ``[32, 64, 128]``) or ``None``;
- anything else: a fixed value, not searched.

Hyperparameters the space leaves out keep the starting point's value (the zoo
entry's recipe, or the builder's defaults). A user's space is laid over the
builder's default space: each name it gives replaces the default's entry, a
name given as ``None`` is not searched, and ``"replace": True`` starts from an
empty space instead. In YAML (``zoo search --space FILE.yaml``)::

    learning_rate: {low: 0.0005, high: 0.002, log: true}
    dropout: 0.3        # fixed
    augment: null       # not searched: the starting point's value
    lr_schedule: {choices: [plateau, cosine]}
    label_smoothing: {low: 0.0, high: 0.2}

The defaults are sized for the 2-core budget of the zoo's recipes (a trial of
a convnet on Fashion-MNIST takes 10-40 minutes there): widths around the
shipped recipes, at most doubled or halved, and the stems' strides left at the
starting point's (a stride of 1 instead of 2 quadruples a trial's cost). The
random seed and the early-stopping slice are never searched, so every trial
is scored on the same slice. Text builders have no token-mode hyperparameter
(``text_bow`` is multi-hot); their n-gram range is ``ngrams`` (1 to n).
"""

from __future__ import annotations

import copy
import json
import numbers

__all__ = ["SPACES", "TRAINING_PARAMS", "resolve", "space", "suggest"]

# ZooClassifier settings a space may set; early_stopping_size and random_state are
# left out on purpose: they change the early-stopping slice the trials are compared on.
TRAINING_PARAMS = (
    "epochs", "batch_size", "optimizer", "learning_rate", "optimizer_options", "lr_schedule", "monitor", "patience",
    "lr_factor", "lr_patience", "min_lr", "label_smoothing", "precision",
)

_DROPOUT = {"low": 0.0, "high": 0.5}
_LR = {"low": 3e-4, "high": 3e-3, "log": True}
_AUGMENT = {"choices": [None, "shift", "flip_shift"]}  # flips fit clothing, not digits: the search finds out
_CONV_EPOCHS = {"choices": [10, 20, 30]}
_TEXT_LR = {"low": 3e-4, "high": 3e-3, "log": True}

SPACES: dict[str, dict] = {
    "mlp": {
        "units": {"choices": [[256], [512], [256, 128], [512, 256], [1024, 512]]},
        "dropout": _DROPOUT,
        "learning_rate": {"low": 1e-4, "high": 3e-3, "log": True},
        "batch_size": {"choices": [64, 128, 256]},
        "epochs": {"choices": [20, 40]},
    },
    "bn_cnn": {
        "filters": {"choices": [[32, 64], [32, 64, 128], [48, 96, 192], [64, 128, 256]]},
        "dense": {"choices": [64, 128, 256]},
        "dropout": _DROPOUT,
        "augment": _AUGMENT,
        "learning_rate": _LR,
        "batch_size": {"choices": [64, 128, 256]},
        "epochs": _CONV_EPOCHS,
    },
    "sepconv": {
        "stem": {"choices": [16, 32, 48]},
        "filters": {"choices": [[32, 64, 128], [64, 128, 256], [64, 128, 256, 512]]},
        "dropout": _DROPOUT,
        "augment": _AUGMENT,
        "learning_rate": _LR,
        "batch_size": {"choices": [64, 128, 256]},
        "epochs": _CONV_EPOCHS,
    },
    "residual": {
        "stem": {"choices": [16, 32, 64]},
        "filters": {"choices": [[16, 32, 64], [32, 64, 128], [64, 128, 256]]},
        "blocks": {"low": 1, "high": 2},
        "dropout": {"low": 0.0, "high": 0.4},
        "augment": _AUGMENT,
        "learning_rate": _LR,
        "batch_size": {"choices": [64, 128, 256]},
        "epochs": _CONV_EPOCHS,
    },
    "inception": {
        "stem": {"choices": [16, 32, 64]},
        "modules": {
            "choices": [
                [[8, 16, 8, 8], [16, 32, 16, 16], [32, 48, 24, 16]],
                [[16, 32, 16, 16], [32, 64, 32, 32], [64, 96, 48, 32]],
                [[32, 64, 32, 32], [64, 128, 64, 64]],
            ]
        },
        "dropout": _DROPOUT,
        "augment": _AUGMENT,
        "learning_rate": _LR,
        "batch_size": {"choices": [64, 128, 256]},
        "epochs": _CONV_EPOCHS,
    },
    "text_conv1d": {
        "max_tokens": {"choices": [10000, 20000, 30000]},
        "sequence_length": {"choices": [300, 400, 500]},
        "embedding_dim": {"choices": [64, 128]},
        "filters": {"choices": [128, 256]},
        "kernel_size": {"choices": [3, 5, 7]},
        "conv_layers": {"low": 1, "high": 2},
        "spatial_dropout": {"low": 0.0, "high": 0.3},
        "dropout": {"low": 0.2, "high": 0.6},
        "learning_rate": _TEXT_LR,
        "batch_size": {"choices": [32, 64, 128]},
        "epochs": {"choices": [3, 5, 8]},
    },
    "text_rnn": {
        "max_tokens": {"choices": [10000, 20000, 30000]},
        "sequence_length": {"choices": [200, 300, 400]},
        "embedding_dim": {"choices": [64, 128]},
        "units": {"choices": [16, 32, 64]},
        "cell": {"choices": ["gru", "lstm"]},
        "dropout": {"low": 0.2, "high": 0.6},
        "learning_rate": _TEXT_LR,
        "batch_size": {"choices": [32, 64]},
        "epochs": {"choices": [3, 5]},
    },
    "text_bow": {
        "max_tokens": {"choices": [10000, 20000, 50000]},
        "ngrams": {"choices": [1, 2, 3]},  # the n-gram range: 1 to n
        "units": {"choices": [8, 16, 32, 64]},
        "dropout": {"low": 0.2, "high": 0.6},
        "learning_rate": _TEXT_LR,
        "batch_size": {"choices": [32, 64, 128]},
        "epochs": {"choices": [5, 10]},
    },
}

_FROM_DATA = ("input_shape", "num_classes", "vocabulary")


def space(builder: str) -> dict:
    """A copy of the default search space of ``builder``."""
    if builder not in SPACES:
        raise ValueError(f"unknown builder {builder!r}; expected one of {', '.join(SPACES)}")
    return copy.deepcopy(SPACES[builder])


def resolve(builder: str, user: dict | None = None) -> dict:
    """The space a search samples: ``user`` laid over the builder's default, checked.

    Raises ``ValueError`` naming the hyperparameter for an unknown name, a
    malformed range (``low`` above ``high``, a log scale from 0...), empty
    choices, or a setting that would change the early-stopping slice.
    """
    result = space(builder)
    if user is not None:
        if not isinstance(user, dict):
            raise ValueError(f"a search space is a mapping of hyperparameter names, got {type(user).__name__}")
        user = dict(user)
        if user.pop("replace", False) is True:
            result = {}
        for name, spec in user.items():
            if spec is None:
                result.pop(name, None)
            else:
                result[name] = copy.deepcopy(spec)
    _check_names(builder, [n for n in result if n not in SPACES[builder]])
    for name, spec in result.items():
        _check_spec(name, spec)
    return result


def _check_names(builder: str, names: list) -> None:
    """Names beyond the default space must be training settings or the builder's own hyperparameters."""
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"search space: hyperparameter names are strings, got {name!r}")  # noqa: TRY004 (a value read from YAML)
        if name in ("early_stopping_size", "random_state"):
            raise ValueError(f"search space: {name} is not searched (it changes the early-stopping slice every trial is scored on)")
    others = [n for n in names if n not in TRAINING_PARAMS]
    if not others:
        return
    import inspect

    # imports Keras: only for names the default space lacks
    from zoo.architectures import BUILDERS

    valid = [p for p in inspect.signature(BUILDERS[builder]).parameters if p not in _FROM_DATA]
    for name in others:
        if name not in valid:
            raise ValueError(
                f"search space: {builder} has no hyperparameter {name!r}; "
                f"it takes {', '.join(valid)} and the training settings {', '.join(TRAINING_PARAMS)}"
            )


def _check_spec(name: str, spec) -> None:
    if not isinstance(spec, dict):
        return  # a fixed value
    if "choices" in spec:
        if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ValueError(f"search space: {name}: choices must be a non-empty list (and alone), got {spec!r}")
        labels = [_label(c) for c in spec["choices"]]
        if len(set(map(json.dumps, labels))) != len(labels):
            raise ValueError(f"search space: {name}: repeated choices in {spec['choices']!r}")
        return
    if not {"low", "high"} <= set(spec) or not set(spec) <= {"low", "high", "log", "step"}:
        raise ValueError(f"search space: {name}: expected {{low, high[, log][, step]}} or {{choices}}, got {spec!r}")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (low, high)) or not low <= high:
        raise ValueError(f"search space: {name}: need numbers low <= high, got low={low!r}, high={high!r}")
    if not isinstance(log, bool):
        raise ValueError(f"search space: {name}: log must be true or false, got {log!r}")  # noqa: TRY004 (a value read from YAML)
    if log and low <= 0:
        raise ValueError(f"search space: {name}: a log scale needs low > 0, got {low!r}")
    if step is not None and (log or not isinstance(step, numbers.Real) or isinstance(step, bool) or step <= 0):
        raise ValueError(f"search space: {name}: step must be a positive number, without log, got {step!r}")


def _label(choice):
    """What Optuna records for a choice: lists and mappings as JSON text (Optuna takes scalars only)."""
    return json.dumps(choice) if isinstance(choice, (list, tuple, dict)) else choice


def suggest(trial, space: dict) -> dict:
    """The values ``trial`` draws from a resolved ``space``, by hyperparameter name (fixed ones included)."""
    values = {}
    for name, spec in space.items():
        if not isinstance(spec, dict):
            values[name] = copy.deepcopy(spec)
        elif "choices" in spec:
            labels = {json.dumps(_label(c)): c for c in spec["choices"]}
            picked = trial.suggest_categorical(name, [_label(c) for c in spec["choices"]])
            values[name] = copy.deepcopy(labels[json.dumps(picked)])
        elif all(isinstance(spec[k], numbers.Integral) for k in ("low", "high")) and isinstance(spec.get("step", 1), numbers.Integral):
            values[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1), log=spec.get("log", False))
        else:
            values[name] = trial.suggest_float(name, spec["low"], spec["high"], step=spec.get("step"), log=spec.get("log", False))
    return values
