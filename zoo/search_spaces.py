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

Defaults fit the data (``resolve(..., dataset=, input_shape=)``):

- Augmentation: a zoo dataset's default ``augment`` choices are ``None`` and
  the policies of ``zoo.augment.POLICIES`` that suit it
  (:data:`AUGMENT_CHOICES`): Fashion-MNIST's clothing survives a horizontal
  flip, so its space offers the ``flip_*`` policies (``shift``,
  ``flip_shift``, ``crop``, ``flip_crop``, ``flip_crop_erase``); MNIST's
  digits do not (a mirrored 2 is no digit), so its space offers ``shift``,
  ``crop``, ``digits`` and ``digits_erase`` and no flip
  (:data:`FLIP_DATASETS` names the datasets that flip). The table is spelled
  out here, not read from ``POLICIES`` (that imports Keras; a space is
  resolved without it); a test keeps the two in step. Other data (a user's
  own images) gets ``None`` and ``"shift"``: whether a mirrored, rotated or
  partly erased image keeps its label is something only the user knows, and
  a search would spend trials finding out. A study drawn from an earlier
  default's choices resumes with them (``zoo.search``).
- Input shape: a space is checked against the input before any study exists.
  Image augmentation on an input that is not an image (feature vectors) is
  refused. ``bn_cnn`` and ``inception`` halve the image with an unpadded
  2x2 max-pool between stages, so an input too small for the number of
  stages would end at zero pixels: the default space's choices that do not
  fit are left out (refused if none fits), and a user's value or choice that
  does not fit is refused, naming it. ``sepconv`` and ``residual`` downsample
  with padding and fit any size.
"""

from __future__ import annotations

import copy
import json
import numbers

__all__ = ["AUGMENT_CHOICES", "FLIP_DATASETS", "SPACES", "TRAINING_PARAMS", "choice_labels", "resolve", "space", "suggest"]

# ZooClassifier settings a space may set; early_stopping_size and random_state are
# left out on purpose: they change the early-stopping slice the trials are compared on.
TRAINING_PARAMS = (
    "epochs", "batch_size", "optimizer", "learning_rate", "optimizer_options", "lr_schedule", "monitor", "patience",
    "lr_factor", "lr_patience", "min_lr", "label_smoothing", "precision", "snapshots",
)

_DROPOUT = {"low": 0.0, "high": 0.5}
_LR = {"low": 3e-4, "high": 3e-3, "log": True}
_AUGMENT = {"choices": [None, "shift"]}  # any other images: see space() and AUGMENT_CHOICES
# per zoo dataset, the default augment choices: None and the zoo.augment.POLICIES that suit it
AUGMENT_CHOICES: dict[str, tuple] = {
    "fashion_mnist": (None, "shift", "flip_shift", "crop", "flip_crop", "flip_crop_erase"),
    "mnist": (None, "shift", "crop", "digits", "digits_erase"),  # digits: never flipped
}
# zoo datasets whose classes survive a horizontal flip (clothing); not digits, nor a user's images
FLIP_DATASETS = frozenset(d for d, choices in AUGMENT_CHOICES.items() if any(str(c).startswith("flip") for c in choices))
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
    "text_nb": {  # two classes only; the NB-MLP is most accurate after 2-3 epochs (zoo.recipes imdb_nb)
        "max_tokens": {"choices": [100000, 200000]},
        "ngrams": {"choices": [2, 3]},
        "units": {"choices": [8, 16, 32]},
        "alpha": {"low": 0.25, "high": 2.0, "log": True},
        "learning_rate": _TEXT_LR,
        "batch_size": {"choices": [64, 128]},
        "epochs": {"choices": [2, 3, 4]},
    },
    "text_region_cnn": {  # each table is max_tokens x maps weights: ~3 min per epoch on IMDB on 2 cores for one table of 30,000 x 1,000
        "maps": {"choices": [500, 1000]},
        "region": {"choices": [2, 3, 4]},
        "pooling": {"choices": ["max", "max_average"]},
        "dropout": {"low": 0.2, "high": 0.6},
        "learning_rate": _TEXT_LR,
        "batch_size": {"choices": [32, 64]},
        "epochs": {"choices": [2, 3, 4]},
    },
}

_FROM_DATA = ("input_shape", "num_classes", "vocabulary")


def space(builder: str, dataset: str | None = None) -> dict:
    """A copy of the default search space of ``builder``.

    Parameters
    ----------
    builder : str
        A builder name (``zoo.architectures.BUILDERS``).
    dataset : str, optional
        The zoo dataset searched; for one of :data:`AUGMENT_CHOICES` the
        ``augment`` choices are that dataset's (flips for Fashion-MNIST only).

    Returns
    -------
    dict
        The space, the caller's to change.
    """
    if builder not in SPACES:
        raise ValueError(f"unknown builder {builder!r}; expected one of {', '.join(SPACES)}")
    result = copy.deepcopy(SPACES[builder])
    if dataset in AUGMENT_CHOICES and "augment" in result:
        result["augment"] = {"choices": list(AUGMENT_CHOICES[dataset])}
    return result


def resolve(builder: str, user: dict | None = None, *, dataset: str | None = None, input_shape=None, fixed: dict | None = None) -> dict:
    """The space a search samples: ``user`` laid over the builder's default, checked.

    Parameters
    ----------
    builder : str
        A builder name.
    user : dict, optional
        The user's space (see the module docstring), laid over the default.
    dataset : str, optional
        The zoo dataset searched (None for a user's data): decides the
        default space's ``augment`` choices (:data:`AUGMENT_CHOICES`).
    input_shape : tuple of int, optional
        The shape of one example (``(28, 28, 1)``, ``(20,)``; None for text):
        the space is then checked against it (see the module docstring).
    fixed : dict, optional
        The starting point's builder hyperparameters (unprefixed), used for
        the names the space does not search when checking the input shape.

    Returns
    -------
    dict
        The resolved space.

    Raises
    ------
    ValueError
        Naming the hyperparameter, for an unknown name, a malformed range
        (``low`` above ``high``, a log scale from 0...), empty choices, a
        setting that would change the early-stopping slice, or a value that
        does not fit the input shape.
    """
    result = space(builder, dataset)
    given = set()
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
                given.add(name)
    if input_shape is not None:
        _check_augment(result, fixed or {}, tuple(input_shape))
    _check_names(builder, [n for n in result if n not in SPACES[builder]])
    for name, spec in result.items():
        _check_spec(name, spec)
    if input_shape is not None:
        _fit_pooling(builder, result, given, fixed or {}, tuple(input_shape))
    return result


def _candidates(spec) -> list | None:
    """The values a spec may take: its choices, its fixed value, the integers of an int range; None for a float range."""
    if not isinstance(spec, dict):
        return [spec]
    if "choices" in spec:
        return list(spec["choices"])
    if all(isinstance(spec[k], numbers.Integral) for k in ("low", "high")) and isinstance(spec.get("step", 1), numbers.Integral):
        return list(range(spec["low"], spec["high"] + 1, spec.get("step", 1)))
    return None


def _check_augment(result: dict, fixed: dict, input_shape: tuple) -> None:
    """Refuse image augmentation when the input is not an image."""
    if len(input_shape) == 3:
        return
    spec = result.get("augment", fixed.get("augment"))
    values = _candidates(spec) if spec is not None else []
    if any(v is not None for v in values or ()):
        raise ValueError(f"search space: augment {spec!r}: image augmentation needs images (height, width, channels), "
                         f"but the input is shaped {input_shape}; drop augment from the space")


def _pooled(size: int, strides: int, pools: int) -> int:
    """Pixels left along one side after a padded stem of ``strides`` and ``pools`` unpadded 2x2 max-pools."""
    size = -(-size // strides)
    for _ in range(pools):
        size //= 2
    return size


def _fit_pooling(builder: str, result: dict, given: set, fixed: dict, input_shape: tuple) -> None:
    """Keep the default choices whose unpadded max-pools fit the image; refuse the user's values that do not."""
    if builder not in ("bn_cnn", "inception") or len(input_shape) != 3:
        return
    import inspect

    from zoo.architectures import BUILDERS  # imports Keras: only for the two builders that pool without padding

    defaults = {k: p.default for k, p in inspect.signature(BUILDERS[builder]).parameters.items()}
    stages = "filters" if builder == "bn_cnn" else "modules"
    side = min(input_shape[:2])

    def values(name):
        if name in result:
            return _candidates(result[name])
        return [fixed.get(name, defaults.get(name, 1))]

    strides = [1] if builder == "bn_cnn" else values("stem_strides")
    if strides is None:  # a float range of strides: not a valid space, refused when a trial builds it
        return

    stage_values = values(stages)
    if stage_values is None:
        return
    bad = [v for v in stage_values if any(_pooled(side, stride, len(v) - 1) < 1 for stride in strides)]
    if not bad:
        return
    if stages in result and stages not in given and isinstance(result[stages], dict) and "choices" in result[stages]:
        kept = [v for v in stage_values if v not in bad]
        if kept:  # a default space: leave out what the image cannot take
            result[stages] = {"choices": kept}
            return
    stem = f" after a stem of stride {max(strides)}" if max(strides) > 1 else ""
    raise ValueError(f"search space: {stages} {bad[0]!r} does not fit images of {input_shape[0]}x{input_shape[1]}: "
                     f"its {len(bad[0]) - 1} unpadded 2x2 max-pools{stem} leave no pixel; use fewer stages or larger images")


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


def choice_labels(choices) -> list:
    """The values Optuna records for a categorical hyperparameter's ``choices`` (lists and mappings as JSON text)."""
    return [_label(c) for c in choices]


def suggest(trial, space: dict) -> dict:
    """The values ``trial`` draws from a resolved ``space``, by hyperparameter name (fixed ones included)."""
    values = {}
    for name, spec in space.items():
        if not isinstance(spec, dict):
            values[name] = copy.deepcopy(spec)
        elif "choices" in spec:
            labels = {json.dumps(_label(c)): c for c in spec["choices"]}
            picked = trial.suggest_categorical(name, choice_labels(spec["choices"]))
            values[name] = copy.deepcopy(labels[json.dumps(picked)])
        elif all(isinstance(spec[k], numbers.Integral) for k in ("low", "high")) and isinstance(spec.get("step", 1), numbers.Integral):
            values[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1), log=spec.get("log", False))
        else:
            values[name] = trial.suggest_float(name, spec["low"], spec["high"], step=spec.get("step"), log=spec.get("log", False))
    return values
