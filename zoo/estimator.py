"""``ZooClassifier``: the zoo's architectures as a scikit-learn classifier, on any data.

The estimator's parameters are the builder's hyperparameters (``builder__*``)
and a recipe's training settings. ``fit`` builds the architecture for the data
it is given (uint8 images of any size, raw strings for the text builders,
float feature vectors for ``mlp``; any number of classes, any sortable labels),
carves a seeded, stratified early-stopping slice out of it and trains with the
recipes' Keras callbacks. ``zoo train NAME`` trains through this class too.

Soft targets: ``fit(X, P)`` with ``P`` a 2-D array of class probabilities
(classes ``0 .. k - 1``, rows summing to 1) trains on their cross-entropy,
which is how ``ensemble.distill`` teaches a student its teacher's
probabilities; the class says so with ``accepts_soft_targets = True``, the
duck-typed mark ``ensemble.distill`` looks for (``ensemble`` never imports
``zoo``). ``label_smoothing`` still applies (mixing the targets with the
uniform distribution is as well defined for probabilities as for labels, and
a setting the user chose is not silently dropped). The slice is stratified on
each row's most probable class, its ``val_loss`` is the soft cross-entropy,
its accuracy the agreement with each row's argmax, and
``early_stopping_scores_["log_loss"]`` the unsmoothed cross-entropy on the
slice's soft targets. Afterwards ``model_`` is recompiled to take integer
labels, as after label smoothing. A 2-D ``y`` of one column stays labels.

Training length from the data (``batch_size="auto"``, ``epochs="auto"``, the
defaults), with ``n`` the examples trained on (the early-stopping slice left
out): the batch size is the power of two nearest ``n / 100``, clipped to
[16, 128]; the epochs are enough for about 2,000 optimisation steps,
``ceil(2000 / steps_per_epoch)``, clipped to [20, 200]. 300 examples
(270 trained on): batches of 16, 17 steps per epoch, 118 epochs; 50,000
(45,000): batches of 128 and 20 epochs. Early stopping ends a long fit
sooner. The rule is :func:`resolve_auto`; the values used are ``batch_size_``
and ``epochs_`` and go into ``spec_["recipe"]``. Explicit values (a recipe,
a registry entry, ``from_zoo``, ``from_spec``, a search space) are kept.

Warnings (:class:`TrainingWarning`, after a fit): the best epoch on the
early-stopping slice is the last of several (the model was probably still
improving: more epochs); or the fit made fewer than 500 optimisation steps
(``FEW_STEPS``: batches of 128 on a few thousand examples for 20 epochs, a
network that has barely moved from its initialisation; a smaller batch size
or more epochs).

Snapshot ensembles (``snapshots=M > 1``; ``zoo.snapshots`` holds the
decisions): one training with a cyclic cosine learning rate (``M`` cycles
over the epochs, counted in steps) keeps the weights at the end of each cycle
(``snapshot_weights_``); ``snapshot_estimators()`` gives them as ``M`` fitted
single-model estimators to ensemble. ``model_`` (and so ``predict_proba``) is
the last snapshot, alone. There is no early stopping then: the slice scores
each snapshot (``snapshot_scores_``). An explicit ``epochs`` must divide into
``M`` cycles (else a ``ValueError``); ``"auto"`` is rounded up to a multiple
of ``M``. With ``backup_dir`` the snapshots taken so far are kept in the
backup folder and survive a resume.

Weight averaging (``ema=m``, e.g. 0.99): Keras' own exponential moving
average of the trainable weights (``use_ema=True, ema_momentum=m`` on the
optimizer; each step ``average = m * average + (1 - m) * weights``, the
first step copies). Left alone, Keras 3.15 scores the slice every epoch with
the raw weights, swaps the average in only at the very end of ``fit``
(``finalize_variable_values``), and then ``EarlyStopping``'s
``restore_best_weights`` puts back the raw weights of the best epoch: the
average is thrown away (checked: the weights after such a fit equal the
non-averaged best epoch's). So the estimator scores the average instead: at
the end of every epoch a callback (first in the list) swaps the averaged
weights in, scores the slice with them (``val_loss``, ``val_accuracy``, in
place of Keras' scoring of the raw weights, which is then not run);
``EarlyStopping`` and ``ModelCheckpoint`` see and keep the averaged weights;
a second callback puts the raw weights back before ``ReduceLROnPlateau``,
the backup and the user's callbacks, so training goes on from them and
``backup_dir`` saves them, the averages being optimizer variables that
``BackupAndRestore`` saves and restores with the rest of the optimizer
(a resumed fit goes on averaging). ``model_`` holds the averaged weights of
the best epoch (the last without a slice), and the slice scores are theirs.
BatchNormalization's moving statistics are not averaged (they are not
trainable; they already average the recent batches). ``ema`` is recorded as
``spec_["recipe"]["ema"]``. Not with ``snapshots > 1`` (refused: each
snapshot is the end of its own cycle, an average would reach across the
restarts), nor through ``optimizer_options`` (refused, use ``ema``). An
average whose horizon is long for the fit (more than 5 % of it still on the
initial weights, ``ema ** steps > 0.05``) gives a ``TrainingWarning``.

TensorFlow is imported when a model is fitted or restored, not before.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from zoo.registry import BUILDER_KINDS, Registry

__all__ = ["FEW_STEPS", "TrainingWarning", "ZooClassifier", "resolve_auto"]

AUTO = "auto"
FEW_STEPS = 500  # fewer optimisation steps than this in a fit: a TrainingWarning
_AUTO_STEPS = 2000  # optimisation steps epochs="auto" aims at
_AUTO_EPOCHS = (20, 200)
_AUTO_BATCH = (16, 128)


class TrainingWarning(UserWarning):
    """A fit that probably did not train as long as it should have (see the module docstring)."""


def resolve_auto(n_examples: int, batch_size="auto", epochs="auto") -> tuple[int, int]:
    """``(batch_size, epochs)`` for ``n_examples`` trained on, ``"auto"`` values resolved (see the module docstring).

    Parameters
    ----------
    n_examples : int
        Examples trained on (the early-stopping slice left out).
    batch_size, epochs : int or "auto"
        An int is kept.

    Returns
    -------
    tuple of int
    """
    if batch_size == AUTO:
        power = 2 ** round(math.log2(max(n_examples / 100, 1)))
        batch_size = int(min(max(power, _AUTO_BATCH[0]), _AUTO_BATCH[1]))
    if epochs == AUTO:
        steps = math.ceil(n_examples / batch_size)
        epochs = int(min(max(math.ceil(_AUTO_STEPS / steps), _AUTO_EPOCHS[0]), _AUTO_EPOCHS[1]))
    return int(batch_size), int(epochs)

_PREFIX = "builder__"
_FROM_DATA = ("input_shape", "num_classes", "vocabulary")  # builder arguments set by fit, never by the user
_VECTORIZER_PARAMS = ("max_tokens", "sequence_length", "ngrams")
_MONITORS = ("val_loss", "val_accuracy")
_SCHEDULES = ("plateau", "cosine")
_PREDICT_BATCH = 256


class ZooClassifier(ClassifierMixin, BaseEstimator):
    """A zoo architecture trained on your data, as a scikit-learn classifier.

    Parameters
    ----------
    builder : str, default="mlp"
        Architecture: a name in ``zoo.architectures.BUILDERS`` (``"mlp"``,
        ``"bn_cnn"``, ``"sepconv"``, ``"residual"``, ``"inception"``,
        ``"text_conv1d"``, ``"text_rnn"``, ``"text_bow"``, ``"text_nb"``).
    epochs : int or "auto", default="auto"
        Maximum number of epochs; ``"auto"``: enough for about 2,000
        optimisation steps, 20 to 200 (see the module docstring).
    batch_size : int or "auto", default="auto"
        ``"auto"``: the power of two nearest a hundredth of the examples
        trained on, 16 to 128.
    optimizer : str, default="adam"
        A Keras optimizer name (``"adam"``, ``"adamw"``, ``"sgd"``...).
    learning_rate : float, default=1e-3
    optimizer_options : dict, default=None
        Further optimizer arguments, e.g. ``{"weight_decay": 1e-4}``.
    lr_schedule : {"plateau", "cosine"}, default="plateau"
        ``"plateau"``: ``ReduceLROnPlateau`` (``lr_factor``, ``lr_patience``,
        ``min_lr``) on the slice's loss. ``"cosine"``: a linear warmup from 0
        over the first epoch (at most a tenth of the steps), then
        ``CosineDecay`` from ``learning_rate`` to 0 at the last step of
        ``epochs``; no ``ReduceLROnPlateau`` (it cannot change a scheduled
        rate), early stopping unchanged. With ``snapshots > 1`` the rate
        follows the cyclic schedule instead, and this only decides the first
        cycle's warm-up (``"cosine"``: the same warm-up, over at most a tenth
        of the cycle; ``"plateau"``: none, and no ``ReduceLROnPlateau``).
    snapshots : int, default=1
        ``M > 1``: a snapshot ensemble (Huang et al. 2017). The epochs are
        split into ``M`` cycles of cosine annealing from ``learning_rate`` to
        about 0, restarted at ``learning_rate``; the weights at the end of
        each cycle are kept (``snapshot_weights_``, ``snapshot_estimators()``)
        and ``model_`` is the last. No early stopping (the slice scores each
        snapshot); ``epochs`` must be a multiple of ``M`` (``"auto"`` is
        rounded up to one).
    ema : float in (0, 1) or None, default=None
        Momentum of an exponential moving average of the weights (e.g.
        ``0.99``: an average over about the last 100 steps); ``model_`` then
        holds the averaged weights, and the slice (early stopping, the
        learning-rate plateau, ``early_stopping_scores_``) scores them
        (see the module docstring). Not with ``snapshots > 1``.
    early_stopping_size : int, float or None, default=0.1
        Size of the early-stopping slice carved out of the fit data: a count,
        or a fraction of the examples. It is stratified when every class has
        at least two examples (and the slice and the rest can each hold one
        per class), a plain seeded shuffle split otherwise. ``None``: no
        slice and no early stopping; the learning-rate schedule follows the
        training loss.
    monitor : {"val_loss", "val_accuracy"}, default="val_loss"
        What early stopping (and the best-epoch checkpoint) watches on the slice.
    patience : int, default=4
        Early-stopping patience, in epochs.
    lr_factor, lr_patience, min_lr : float, int, float, default=0.5, 2, 1e-5
        ``ReduceLROnPlateau`` on the slice's loss (``lr_schedule="plateau"``).
    label_smoothing : float in [0, 1), default=0.0
        Train on a label-smoothed cross-entropy (targets ``1 - s + s / k``
        and ``s / k`` for ``k`` classes; ``k = 2`` for sigmoid text models).
        The slice's ``val_loss`` is smoothed too; ``early_stopping_scores_``
        and ``score`` use the true labels. Smoothed models are
        under-confident: calibrate them before blending on log loss.
    precision : str, default="float32"
        Keras dtype policy while training (e.g. ``"mixed_bfloat16"``);
        ``model_`` always computes in float32.
    random_state : int, RandomState or None, default=0
        Seeds Keras (``keras.utils.set_random_seed``, which also seeds
        Python's and NumPy's global generators) and the slice. The same seed
        gives the same model.
    log_dir : path, default=None
        When given, training writes ``training.csv`` (CSVLogger),
        ``tensorboard/`` (TensorBoard, histograms every epoch) and
        ``best.weights.h5`` (ModelCheckpoint of the monitored best) there;
        a later fit overwrites them.
    verbose : int or "auto", default=0
        Keras progress output.
    **builder_params
        The builder's hyperparameters, prefixed ``builder__``, e.g.
        ``builder__filters=(32, 64)``, ``builder__dropout=0.2``. Unset ones
        keep the builder's defaults. They are ordinary parameters:
        ``get_params``, ``set_params(builder__dropout=0.4)``, ``clone`` and
        ``GridSearchCV(..., {"builder__dropout": [0.2, 0.4]})`` see them.
        ``input_shape``, ``num_classes`` and ``vocabulary`` come from the data.

    Attributes
    ----------
    classes_ : ndarray
        Sorted class labels; ``predict_proba``'s columns follow them.
    model_ : keras.Model
        The trained model: raw inputs in, class probabilities out (a single
        sigmoid unit for two-class text models). Its loss takes integer
        labels, also after training with ``label_smoothing`` (then it is
        recompiled, without the optimizer's state).
    batch_size_, epochs_ : int
        The batch size and maximum number of epochs used (``"auto"`` resolved).
    history_ : dict of lists
        Per-epoch training and slice metrics (``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy``, ``learning_rate``).
    resumed_seconds_ : float
        Training time of the epochs that an interrupted fit had backed up in
        ``backup_dir`` and this fit resumed from (0.0 for a fit that did not
        resume); the fit's own wall time plus this is the training's whole time.
    best_epoch_ : int
        1-based epoch whose weights ``model_`` holds (the monitored best on
        the slice; the last epoch without a slice).
    early_stopping_scores_ : dict or None
        ``{"accuracy", "log_loss"}`` of ``model_`` on the early-stopping
        slice (None without a slice): the score to select hyperparameters on.
    spec_ : dict
        ``{"builder", "params", "recipe"}`` in the registry's format: what
        was built (with ``input_shape`` and ``num_classes``) and how it was
        trained (with the seed used and the slice's size).
    vocabulary_ : list of str or None
        The vocabulary adapted on the fit data (text builders).
    snapshot_weights_ : list of list of ndarray
        With ``snapshots > 1``: the weights at the end of each cycle, first
        cycle first (float32 arrays, in ``model_.get_weights()`` order); the
        last are ``model_``'s.
    snapshot_epochs_ : list of int
        With ``snapshots > 1``: the 1-based epoch each snapshot was taken at.
    snapshot_scores_ : list of dict or None
        With ``snapshots > 1``: ``{"accuracy", "log_loss"}`` of each snapshot
        on the early-stopping slice (None without a slice).
    n_features_in_ : int
        Number of features, when fitted on 2-D feature arrays.

    Examples
    --------
    >>> clf = ZooClassifier("bn_cnn", builder__filters=(16, 32), epochs=5)   # doctest: +SKIP
    >>> clf.fit(images_uint8, labels).predict(images_uint8[:3])             # doctest: +SKIP
    >>> ZooClassifier.from_zoo("fashion_mnist_bn_cnn", epochs=3)            # doctest: +SKIP
    """

    accepts_soft_targets = True  # fit(X, P) takes class probabilities (ensemble.distill checks for this mark)

    def __init__(
        self,
        builder="mlp",
        *,
        epochs="auto",
        batch_size="auto",
        optimizer="adam",
        learning_rate=1e-3,
        optimizer_options=None,
        lr_schedule="plateau",
        snapshots=1,
        ema=None,
        early_stopping_size=0.1,
        monitor="val_loss",
        patience=4,
        lr_factor=0.5,
        lr_patience=2,
        min_lr=1e-5,
        label_smoothing=0.0,
        precision="float32",
        random_state=0,
        log_dir=None,
        verbose=0,
        **builder_params,
    ):
        self.builder = builder
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.optimizer_options = optimizer_options
        self.lr_schedule = lr_schedule
        self.snapshots = snapshots
        self.ema = ema
        self.early_stopping_size = early_stopping_size
        self.monitor = monitor
        self.patience = patience
        self.lr_factor = lr_factor
        self.lr_patience = lr_patience
        self.min_lr = min_lr
        self.label_smoothing = label_smoothing
        self.precision = precision
        self.random_state = random_state
        self.log_dir = log_dir
        self.verbose = verbose
        for key in builder_params:
            if not key.startswith(_PREFIX):
                raise TypeError(f"ZooClassifier got an unexpected keyword argument {key!r} (builder hyperparameters are prefixed {_PREFIX!r})")
        self._builder_params = builder_params  # reported by get_params like the named parameters

    # ------------------------------------------------------------------ parameters

    def get_params(self, deep=True):
        """Parameters of the estimator, the ``builder__*`` hyperparameters included."""
        params = super().get_params(deep=deep)
        params.update(self._builder_params)
        return params

    def set_params(self, **params):
        """Set parameters; any ``builder__<name>`` sets a builder hyperparameter."""
        for key in [k for k in params if k.startswith(_PREFIX)]:
            self._builder_params = {**self._builder_params, key: params.pop(key)}
        return super().set_params(**params)

    def _hyperparameters(self) -> dict:
        return {k[len(_PREFIX) :]: v for k, v in self.get_params(deep=False).items() if k.startswith(_PREFIX)}

    @classmethod
    def from_spec(cls, spec: dict, **params) -> ZooClassifier:
        """An estimator from ``{"builder", "params", "recipe"}`` (a registry entry or a recipe).

        ``params`` override what the spec gives, e.g. ``epochs=1``.
        """
        kwargs = {"builder": spec["builder"]}
        kwargs.update({_PREFIX + k: v for k, v in spec["params"].items() if k not in _FROM_DATA})
        kwargs.update(_params_from_recipe(spec["recipe"]))
        kwargs.update(params)
        return cls(**kwargs)

    @classmethod
    def from_zoo(cls, name: str, *, registry: Registry | str | os.PathLike | None = None, **params) -> ZooClassifier:
        """An unfitted estimator with a zoo entry's builder, hyperparameters and recipe.

        Reads the entry from the registry (the shipped one by default), or
        the recipe in ``zoo.recipes`` for a name that has no entry yet.
        ``params`` override the entry's, e.g. ``epochs=1``.
        """
        from zoo.recipes import RECIPES, recipe

        reg = registry if isinstance(registry, Registry) else Registry(registry)
        if name not in reg and registry is None and name in RECIPES:
            return cls.from_spec(recipe(name), **params)
        return cls.from_spec(reg.entry(name), **params)

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y, *, callbacks=None, backup_dir=None):
        """Build the architecture for ``X`` and train it.

        Parameters
        ----------
        X : array-like
            uint8 images ``(n, H, W)`` or ``(n, H, W, C)``; raw strings
            ``(n,)`` for the text builders; float features ``(n, d)`` for ``mlp``.
        y : array-like of shape (n,) or (n, n_classes)
            Class labels of any sortable type; or soft targets: class
            probabilities, one row per example summing to 1, for classes
            ``0 .. n_classes - 1`` (e.g. a teacher's ``predict_proba``, see
            ``ensemble.distill``). Soft targets train on their cross-entropy
            (label-smoothed when ``label_smoothing`` is set), the slice's
            ``val_loss`` too; accuracy counts agreement with each row's argmax.
        callbacks : list of keras.callbacks.Callback, optional
            Run after the built-in ones, every epoch (e.g. an Optuna pruning
            callback reading ``val_loss`` or ``val_accuracy``, the slice's metrics).
        backup_dir : path, optional
            Make the fit resumable (see ``zoo.resume``): after every epoch the
            training state (weights, optimizer, epoch, history, early stopping
            and learning-rate schedule state) is backed up there. A fit killed
            mid-way, even by SIGKILL, and started again with the same
            parameters and data goes on from its last completed epoch and
            ends as an uninterrupted one would (same number of epochs, whole
            ``history_``), though not bit-identical (batch order after the
            restart). The folder must be new, empty or this fit's backup:
            another training's backup (other parameters or data) raises a
            ``ValueError``. It is deleted when the fit succeeds. With
            ``snapshots > 1`` it also keeps the snapshots taken so far.

        Returns
        -------
        self

        Warns
        -----
        TrainingWarning
            When the best epoch on the slice is the last one, or the fit
            made fewer than ``FEW_STEPS`` optimisation steps.
        """
        import keras

        from zoo.models import build_model, compile_model, predict_proba, scores

        self._check_params()
        self._check_hyperparameters()
        soft = _soft_targets(y)  # (n, k) class probabilities, or None for labels
        X, y, kind = self.check_fit_data(X, y if soft is None else soft.argmax(axis=1))
        if soft is None:
            classes, y = np.unique(y, return_inverse=True)
        else:  # y: each row's most probable class, to stratify the slice and count accuracy
            classes = np.arange(soft.shape[1])
        if len(classes) < 2:
            raise ValueError(f"ZooClassifier needs samples of at least 2 classes; got 1 class ({classes[0]!r})")
        seed = _seed(self.random_state)
        backup = None
        if backup_dir is not None:
            from zoo.resume import TrainingBackup

            backup = TrainingBackup(backup_dir, self._fingerprint(X, y if soft is None else soft, classes))
            backup.open(seed)
            seed = backup.state["seed"]  # the interrupted fit's (a random_state that is not an int draws a new one)
        keras.utils.set_random_seed(seed)
        fit_idx, es_idx = _carve(y, self.early_stopping_size, seed)
        X_fit, y_fit = X[fit_idx], y[fit_idx]
        batch_size, epochs = resolve_auto(len(fit_idx), self.batch_size, self.epochs)
        if self.snapshots > 1:  # whole cycles ("auto" rounded up; an explicit value was checked)
            from zoo.snapshots import cycle_epochs

            epochs = cycle_epochs(epochs, self.snapshots, auto=True)
        steps_per_epoch = math.ceil(len(fit_idx) / batch_size)
        validation = (X[es_idx], y[es_idx]) if es_idx is not None else None

        hyper = plain_value(self._hyperparameters())
        params = {"num_classes": len(classes), **hyper}  # what the builder gets, recorded in spec_
        if kind != "text":
            params = {"input_shape": list(X.shape[1:]), **params}
        vocabulary = _adapt_vocabulary(self.builder, hyper, X_fit) if kind == "text" else None
        optimizer = {"name": self.optimizer, "learning_rate": self.learning_rate, **(self.optimizer_options or {})}
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.precision)
        try:
            model = build_model(self.builder, params, vocabulary=vocabulary)
            for layer in model.layers:
                if isinstance(layer, keras.layers.Normalization):
                    layer.adapt(X_fit)
            if self.builder == "text_nb":  # naive-Bayes ratios from the texts trained on and their (soft) targets
                from zoo.naive_bayes import fit_ratios

                fit_ratios(model, X_fit, soft[fit_idx] if soft is not None else y_fit)
            text = model.output_shape[-1] == 1
            snapshot = None
            if self.snapshots > 1:
                from zoo.snapshots import (
                    cyclic_schedule,
                    snapshot_callback,
                    warmup_steps,
                )

                cycle_steps = steps_per_epoch * epochs // self.snapshots
                warmup = warmup_steps(steps_per_epoch, cycle_steps) if self.lr_schedule == "cosine" else 0
                schedule = {"name": "cyclic_cosine", "cycles": self.snapshots, "cycle_steps": cycle_steps, "warmup_steps": warmup}
                rate = {"learning_rate": cyclic_schedule(self.learning_rate, cycle_steps, warmup)}
                snapshot = snapshot_callback(rate["learning_rate"], epochs, self.snapshots, folder=None if backup is None else backup.folder,
                                             fingerprint=None if backup is None else backup.fingerprint,
                                             epochs_before=0 if backup is None else backup.epochs_before())
            else:
                schedule = _cosine(self.learning_rate, steps_per_epoch, epochs) if self.lr_schedule == "cosine" else None
                rate = {"learning_rate": keras.optimizers.schedules.CosineDecay(**schedule)} if schedule else {}
            averaging = {"use_ema": True, "ema_momentum": float(self.ema)} if self.ema is not None else {}
            compile_model(model, {"optimizer": {**optimizer, **rate, **averaging}}, text=text, label_smoothing=self.label_smoothing)
            builtin = self._callbacks(validation is not None, resumed=0 if backup is None else backup.epochs_before(), snapshot=snapshot)
            if backup is not None:
                tracked = [c for c in builtin if isinstance(c, (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau, keras.callbacks.ModelCheckpoint))]
                builtin += backup.callbacks(tracked)
            one_hot = self.label_smoothing and not text  # CategoricalCrossentropy smooths one-hot targets only
            if soft is not None:
                _compile_for_soft_targets(model, text, self.label_smoothing)
                fit_targets = _soft_column(soft[fit_idx], text)
                validation_data = (validation[0], _soft_column(soft[es_idx], text)) if validation else None
            else:
                fit_targets = _one_hot(y_fit, len(classes)) if one_hot else y_fit
                validation_data = (validation[0], _one_hot(validation[1], len(classes))) if one_hot and validation else validation
            if self.ema is not None:  # the averaged weights are scored on the slice, by the callbacks, not Keras' raw ones
                builtin = _with_averaged_weights(builtin, validation_data, batch_size)
                validation_data = None
            history = model.fit(
                X_fit,
                fit_targets,
                validation_data=validation_data,
                epochs=epochs,
                batch_size=batch_size,
                callbacks=builtin + list(callbacks or []),
                verbose=self.verbose,
            )
        finally:
            keras.config.set_dtype_policy(previous_policy)
        if model.compute_dtype != "float32":  # evaluate, save and predict in float32
            trained, model = model, build_model(self.builder, params, vocabulary=vocabulary)
            set_model_weights(model, trained.get_weights())
            compile_model(model, {"optimizer": optimizer}, text=text)
        elif self.label_smoothing or soft is not None:  # model_ takes integer labels, as unpickled and zoo.load-ed models do
            compile_model(model, {"optimizer": optimizer}, text=text)

        early_stopping = next((c for c in builtin if isinstance(c, keras.callbacks.EarlyStopping)), None)
        self.classes_ = classes
        self.model_ = model
        if backup is None:
            self.history_ = {k: [float(v) for v in values] for k, values in history.history.items()}
        else:  # the epochs of the interrupted fit, then this one's
            self.history_ = backup.history(history.history)
        epochs_run = len(history.epoch) + (0 if backup is None else backup.epochs_before())
        self.resumed_seconds_ = 0.0 if backup is None else backup.seconds_before()
        self.best_epoch_ = early_stopping.best_epoch + 1 if early_stopping is not None else epochs_run
        self.early_stopping_scores_ = None

        def slice_scores():
            slice_proba = predict_proba(model, validation[0], batch_size=_PREDICT_BATCH)
            return scores(validation[1], slice_proba) if soft is None else _soft_scores(soft[es_idx], slice_proba)

        for attr in ("snapshot_weights_", "snapshot_epochs_", "snapshot_scores_"):  # of an earlier fit
            self.__dict__.pop(attr, None)
        if snapshot is not None:
            self.snapshot_epochs_ = [e for e, _ in snapshot.weights]
            self.snapshot_weights_ = [w for _, w in snapshot.weights]
            self.snapshot_scores_ = None
            if validation is not None:
                final = model.get_weights()
                self.snapshot_scores_ = []
                for weights in self.snapshot_weights_:
                    set_model_weights(model, weights)
                    self.snapshot_scores_.append(slice_scores())
                set_model_weights(model, final)
        if validation is not None:
            self.early_stopping_scores_ = slice_scores()
        self.vocabulary_ = vocabulary
        self.batch_size_, self.epochs_ = batch_size, epochs
        self.spec_ = {"builder": self.builder, "params": params, "recipe": self._recipe(seed, 0 if es_idx is None else len(es_idx), optimizer, schedule)}
        if backup is not None:
            backup.remove()
        self._warn_short_training(validation is not None and self.snapshots == 1, steps_per_epoch * epochs_run)
        return self

    def snapshot_estimators(self) -> list:
        """The snapshots as fitted single-model estimators, first cycle first (``snapshots > 1``).

        Each is a clone of this estimator (same parameters) sharing its
        ``classes_``, ``spec_`` and vocabulary, with its own ``model_`` (the
        snapshot's weights), ``history_`` up to its epoch, ``best_epoch_``
        (that epoch), ``early_stopping_scores_`` (its slice scores) and
        ``snapshot_ = {"index", "of", "epoch"}`` (1-based index). Each
        predicts, pickles and saves (``ensemble.save``,
        ``zoo.library.write_model``) like any fitted ``ZooClassifier``: the
        members of a snapshot ensemble.

        Returns
        -------
        list of ZooClassifier
            One per snapshot; a fit with ``snapshots=1`` gives one, a copy of itself.
        """
        from sklearn.base import clone

        from zoo.models import build_model, compile_model

        check_is_fitted(self)
        if "snapshot_weights_" in self.__dict__:
            weights, epochs, scores = self.snapshot_weights_, self.snapshot_epochs_, self.snapshot_scores_
        else:
            weights, epochs, scores = [self.model_.get_weights()], [self.best_epoch_], [self.early_stopping_scores_]
        shared = ("classes_", "spec_", "vocabulary_", "batch_size_", "epochs_", "n_features_in_", "feature_names_in_")
        members = []
        for index, (w, epoch) in enumerate(zip(weights, epochs), start=1):
            member = clone(self)
            for attr in shared:
                if attr in self.__dict__:
                    setattr(member, attr, self.__dict__[attr])
            member.history_ = {k: list(v[:epoch]) for k, v in self.history_.items()}
            member.best_epoch_ = int(epoch)
            member.early_stopping_scores_ = None if scores is None or scores[index - 1] is None else dict(scores[index - 1])
            member.snapshot_ = {"index": index, "of": len(weights), "epoch": int(epoch)}
            model = build_model(self.spec_["builder"], self.spec_["params"], vocabulary=self.vocabulary_)
            set_model_weights(model, w)
            compile_model(model, self.spec_["recipe"], text=model.output_shape[-1] == 1)
            member.model_ = model
            members.append(member)
        return members

    def _warn_short_training(self, has_slice: bool, steps: int) -> None:
        """``TrainingWarning``s of a fit cut short (see the module docstring)."""
        import warnings

        epochs_run = len(self.history_.get("loss", []))
        if has_slice and self.epochs_ > 1 and self.best_epoch_ == epochs_run == self.epochs_:
            warnings.warn(f"the best epoch on the early-stopping slice is the last one ({self.epochs_}): the model was probably still "
                          f"improving when training stopped; try more epochs (e.g. epochs={2 * self.epochs_})", TrainingWarning, stacklevel=3)
        if self.ema is not None and self.ema ** steps > 0.05:
            warnings.warn(f"ema={self.ema}: after {steps} optimisation steps {self.ema ** steps:.0%} of the weight average still sits on the "
                          f"initial weights; use a smaller momentum (e.g. {_ema_for(steps)}) or more epochs", TrainingWarning, stacklevel=3)
        if steps < FEW_STEPS:
            warnings.warn(f"training made only {steps} optimisation steps ({epochs_run} epochs of batches of {self.batch_size_}), fewer than "
                          f"{FEW_STEPS}: the model has barely trained; use a smaller batch_size or more epochs", TrainingWarning, stacklevel=3)

    def _fingerprint(self, X, y, classes) -> str:
        """What identifies this fit for ``zoo.resume``: the parameters (not ``verbose``, ``log_dir``) and the checked data."""
        from kze.data import data_hash_pair
        from zoo.resume import fingerprint

        params = {k: v for k, v in self.get_params(deep=False).items() if k not in ("verbose", "log_dir")}
        if params.get("snapshots") == 1:  # as before the parameter existed: those backups keep resuming
            del params["snapshots"]
        if params.get("ema") is None:
            del params["ema"]
        if not isinstance(params["random_state"], numbers.Integral):
            params["random_state"] = type(params["random_state"]).__name__  # a drawn seed: the backup records it
        params["classes"] = [str(c) for c in classes]
        return fingerprint(plain_value(params), data_hash_pair(X, y))

    def _check_params(self) -> None:
        if self.builder not in BUILDER_KINDS:
            raise ValueError(f"unknown builder {self.builder!r}; expected one of {', '.join(BUILDER_KINDS)}")
        for name in ("epochs", "batch_size", "patience", "lr_patience"):
            value = getattr(self, name)
            if name in ("epochs", "batch_size") and isinstance(value, str) and value == AUTO:
                continue
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < (0 if "patience" in name else 1):
                auto = "" if "patience" in name else ' or "auto"'
                raise ValueError(f"{name} must be a {'non-negative' if 'patience' in name else 'positive'} integer{auto}, got {value!r}")
        snapshots = self.snapshots
        if not isinstance(snapshots, numbers.Integral) or isinstance(snapshots, bool) or snapshots < 1:
            raise ValueError(f"snapshots must be a positive integer, got {snapshots!r}")
        if snapshots > 1 and self.epochs != AUTO:
            from zoo.snapshots import cycle_epochs

            cycle_epochs(self.epochs, snapshots, auto=False)  # refuses epochs that do not divide into whole cycles
        ema = self.ema
        if ema is not None:
            if not (isinstance(ema, numbers.Real) and not isinstance(ema, bool) and 0 < ema < 1):
                raise ValueError(f"ema must be None or a momentum in (0, 1) such as 0.99, got {ema!r}")
            if snapshots > 1:
                raise ValueError(f"ema={ema!r} cannot be combined with snapshots={snapshots}: each snapshot is the end of its own cycle, "
                                 "an average of the weights would reach across the restarts")
        options = sorted(set(self.optimizer_options or {}) & {"use_ema", "ema_momentum", "ema_overwrite_frequency"})
        if options:
            raise ValueError(f"optimizer_options {', '.join(options)}: set the weight average with ZooClassifier(ema=MOMENTUM), which also "
                             "scores the averaged weights on the early-stopping slice")
        if self.monitor not in _MONITORS:
            raise ValueError(f"monitor must be one of {_MONITORS}, got {self.monitor!r}")
        if not (isinstance(self.learning_rate, numbers.Real) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.lr_schedule not in _SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {_SCHEDULES}, got {self.lr_schedule!r}")
        smoothing = self.label_smoothing
        if not (isinstance(smoothing, numbers.Real) and not isinstance(smoothing, bool) and 0 <= smoothing < 1):
            raise ValueError(f"label_smoothing must be a number in [0, 1), got {smoothing!r}")
        size = self.early_stopping_size
        valid = size is None or (isinstance(size, numbers.Integral) and not isinstance(size, bool) and size >= 1) or (isinstance(size, numbers.Real) and 0 < size < 1)
        if not valid:
            raise ValueError(f"early_stopping_size must be None, a count >= 1 or a fraction in (0, 1), got {size!r}")
        misplaced = sorted(set(self._hyperparameters()) & set(_FROM_DATA))
        if misplaced:
            raise ValueError(f"{', '.join(_PREFIX + m for m in misplaced)}: set by fit from the data, not a hyperparameter")

    def _check_hyperparameters(self) -> None:
        import inspect

        from zoo.architectures import BUILDERS

        valid = [p for p in inspect.signature(BUILDERS[self.builder]).parameters if p not in _FROM_DATA]
        unknown = sorted(set(self._hyperparameters()) - set(valid))
        if unknown:
            raise ValueError(
                f"builder {self.builder!r} has no hyperparameter {', '.join(unknown)}; "
                f"it takes {', '.join(_PREFIX + p for p in valid)}"
            )

    def check_fit_data(self, X, y):
        """``(X, y, kind)`` with kind in {"images", "features", "text"}, checked for the builder (what ``fit`` accepts)."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        kind = self._input_kind(X)
        if kind == "features":
            X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
            X = X.astype(np.float32)
        else:
            for attr in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(attr, None)
            X = self._check_images(X) if kind == "images" else _check_texts(X)
            y = column_or_1d(y, warn=True)
            check_consistent_length(X, y)
            if y.dtype.kind == "f" and not np.isfinite(y).all():
                raise ValueError("Input y contains NaN or infinity.")
        check_classification_targets(y)
        return X, y, kind

    def _input_kind(self, X) -> str:
        if BUILDER_KINDS[self.builder] == "text":
            return "text"
        ndim = len(X.shape) if hasattr(X, "shape") else np.asarray(X, dtype=object).ndim
        if ndim >= 3:
            return "images"
        if self.builder != "mlp":
            raise ValueError(f"builder {self.builder!r} takes uint8 images of shape (n, H, W) or (n, H, W, C), got {ndim}-D X; use builder='mlp' for feature vectors")
        return "features"

    def _check_images(self, X, expected=None) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim not in (3, 4):
            raise ValueError(f"expected images of shape (n, H, W) or (n, H, W, C), got X of shape {X.shape}")
        if X.dtype != np.uint8:
            raise ValueError(f"{self.builder} takes uint8 images (0-255), got dtype {X.dtype}; e.g. (X * 255).round().astype(np.uint8) for images in [0, 1]")
        if X.ndim == 3:
            X = X[..., np.newaxis]
        if len(X) == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        if expected is not None and X.shape[1:] != tuple(expected):
            raise ValueError(f"X has images of shape {X.shape[1:]}, but {type(self).__name__} was fitted on images of shape {tuple(expected)}")
        return X

    def _callbacks(self, has_slice: bool, resumed: int = 0, snapshot=None) -> list:
        """The built-in callbacks; ``resumed``: epochs done before a restart (the CSV log is appended to, after them).

        ``snapshot``: the snapshot callback of ``snapshots > 1`` (no early stopping, no ``ReduceLROnPlateau``; it logs the rate).
        """
        import keras

        from zoo.resume import trim_csv

        cb = keras.callbacks
        monitor = self.monitor if has_slice else self.monitor.removeprefix("val_")
        mode = "max" if monitor.endswith("accuracy") else "min"  # Keras cannot tell for the soft-target agreement metric
        callbacks = [cb.EarlyStopping(monitor=monitor, mode=mode, patience=self.patience, restore_best_weights=True)] if has_slice and snapshot is None else []
        log_dir = Path(self.log_dir) if self.log_dir is not None else None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            callbacks.append(cb.ModelCheckpoint(str(log_dir / "best.weights.h5"), monitor=monitor, mode=mode, save_best_only=True,
                                                save_weights_only=True))
        if snapshot is not None:
            callbacks.append(snapshot)
        elif self.lr_schedule == "plateau":
            loss = "val_loss" if has_slice else "loss"
            callbacks.append(cb.ReduceLROnPlateau(monitor=loss, factor=self.lr_factor, patience=self.lr_patience, min_lr=self.min_lr))
        else:
            callbacks.append(_learning_rate_logger())
        if log_dir is not None:
            if resumed:
                trim_csv(log_dir / "training.csv", resumed)
            callbacks.append(cb.CSVLogger(str(log_dir / "training.csv"), append=bool(resumed)))
            callbacks.append(cb.TensorBoard(str(log_dir / "tensorboard"), histogram_freq=1))
        return callbacks

    def _recipe(self, seed: int, es_size: int, optimizer: dict, schedule: dict | None) -> dict:  # after batch_size_ and epochs_ are set
        """The settings of this fit in the registry's recipe format (defaults of the newer settings left out)."""
        monitor = self.monitor if es_size else self.monitor.removeprefix("val_")
        callbacks = {}
        if es_size and self.snapshots == 1:
            callbacks["early_stopping"] = {"monitor": monitor, "patience": self.patience, "restore_best_weights": True}
        callbacks["model_checkpoint"] = {"monitor": monitor, "save_best_only": True, "save_weights_only": True}
        if schedule is None:
            callbacks["reduce_lr_on_plateau"] = {"monitor": "val_loss" if es_size else "loss", "factor": self.lr_factor, "patience": self.lr_patience, "min_lr": self.min_lr}
        callbacks["csv_logger"] = {"filename": "training.csv"}
        callbacks["tensorboard"] = {"histogram_freq": 1}
        recipe = {
            "precision": self.precision,
            "epochs": self.epochs_,
            "batch_size": self.batch_size_,
            "optimizer": optimizer,
            "early_stopping_size": es_size,
            "callbacks": callbacks,
            "seed": seed,
        }
        if schedule is not None and self.snapshots > 1:
            recipe["snapshots"] = self.snapshots
            recipe["lr_schedule"] = dict(schedule)
        elif schedule is not None:
            recipe["lr_schedule"] = {"name": "cosine", **{k: v for k, v in schedule.items() if k.endswith("_steps")}}
        if self.label_smoothing:
            recipe["label_smoothing"] = self.label_smoothing
        if self.ema is not None:
            recipe["ema"] = float(self.ema)
        return plain_value(recipe)

    # ------------------------------------------------------------------ predicting

    def _check_X(self, X):
        check_is_fitted(self)
        params = self.spec_["params"]
        if BUILDER_KINDS[self.spec_["builder"]] == "text":
            return _check_texts(X)
        if len(params["input_shape"]) == 1:
            return validate_data(self, X, dtype=(np.float64, np.float32), reset=False).astype(np.float32)
        return self._check_images(X, expected=params["input_shape"])

    def predict_proba(self, X):
        """Class probabilities, shape ``(n, n_classes)``, columns in ``classes_`` order."""
        from zoo.models import predict_proba

        X = self._check_X(X)
        return predict_proba(self.model_, X, batch_size=_PREDICT_BATCH)

    def predict(self, X):
        """Predicted class labels (from ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    # ------------------------------------------------------------------ pickling and tags

    def __getstate__(self):
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:  # rebuilt from code and weights on unpickling: no Keras config is deserialized
            state["_model_weights"] = [np.asarray(w) for w in model.get_weights()]
        return state

    def __setstate__(self, state):
        state = dict(state)
        weights = state.pop("_model_weights", None)
        state.setdefault("snapshots", 1)  # pickled or saved before the parameter existed
        state.setdefault("ema", None)
        super().__setstate__(state)
        if weights is not None:
            from zoo.models import build_model, compile_model

            sizes = [np.asarray(w).size for w in weights] if isinstance(weights, (list, tuple)) else None
            if sizes is None:
                raise ValueError(f"a ZooClassifier's saved weights are a {type(weights).__name__}, not a list of arrays")
            model = build_model(self.spec_["builder"], self.spec_["params"], vocabulary=self.vocabulary_, parameters=sum(sizes))
            set_model_weights(model, weights)
            compile_model(model, self.spec_["recipe"], text=model.output_shape[-1] == 1)
            self.model_ = model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        kind = BUILDER_KINDS.get(self.builder)
        tags.input_tags.two_d_array = self.builder == "mlp"
        tags.input_tags.three_d_array = kind == "image"
        tags.input_tags.string = kind == "text"
        tags.non_deterministic = self.random_state is None
        return tags


# --------------------------------------------------------------------------- helpers


def _seed(random_state) -> int:
    """An int seed: ``random_state`` itself, or drawn from it (None: fresh entropy)."""
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))


def _carve(y: np.ndarray, size, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Seeded split of encoded labels ``y`` into sorted (fit, early-stopping) indices."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    if size is None:
        return np.arange(n), None
    count = int(size) if isinstance(size, numbers.Integral) else math.ceil(size * n)
    if not 1 <= count < n:
        raise ValueError(f"early_stopping_size={size!r} leaves no examples to fit or to early-stop on with n_samples={n}")
    k = int(y.max()) + 1
    stratify = y if np.bincount(y).min() >= 2 and min(count, n - count) >= k else None
    fit_idx, es_idx = train_test_split(np.arange(n), test_size=count, stratify=stratify, random_state=seed)
    return np.sort(fit_idx), np.sort(es_idx)


def _check_texts(X) -> np.ndarray:
    X = np.asarray(X, dtype=object)
    if X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 1 or len(X) == 0 or not all(isinstance(t, (str, bytes)) for t in X):
        raise ValueError(f"text builders take a non-empty 1-D sequence of raw strings, got an array of shape {X.shape}")
    return X


def _adapt_vocabulary(builder: str, params: dict, texts: np.ndarray) -> list[str]:
    """The builder's ``TextVectorization`` vocabulary, adapted on ``texts`` (``text_nb``: the n-grams in the most texts)."""
    from zoo.architectures import text_vectorizer

    if builder == "text_nb":
        from zoo.naive_bayes import document_frequency_vocabulary

        return document_frequency_vocabulary(texts, params.get("max_tokens", 200000), params.get("ngrams", 3))

    layer = text_vectorizer(builder, **{k: v for k, v in params.items() if k in _VECTORIZER_PARAMS})
    layer.adapt(texts, batch_size=1024)
    return [str(t) for t in layer.get_vocabulary(include_special_tokens=False)]


def _cosine(learning_rate: float, steps_per_epoch: int, epochs: int) -> dict:
    """``CosineDecay`` arguments: a linear warmup from 0 over the first epoch (at most a tenth of
    the steps), then a cosine decay from ``learning_rate`` to 0 at the last step."""
    steps = steps_per_epoch * epochs
    warmup = min(steps_per_epoch, steps // 10)
    return {"initial_learning_rate": 0.0, "decay_steps": max(steps - warmup, 1), "alpha": 0.0,
            "warmup_target": float(learning_rate), "warmup_steps": warmup}


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[y]


def _soft_targets(y) -> np.ndarray | None:
    """``y`` as float32 class probabilities ``(n, k)``, renormalised; None for labels (1-D, or one column)."""
    if getattr(y, "ndim", None) is None and not isinstance(y, (list, tuple)):
        return None
    try:
        P = np.asarray(y)
    except ValueError:  # ragged rows: not a table of probabilities, left to the label checks
        return None
    if P.ndim != 2 or P.shape[1] < 2:
        return None
    if P.dtype.kind not in "iuf":
        raise ValueError(f"2-D y is taken as soft targets (class probabilities), which must be numbers; got dtype {P.dtype}")
    P = P.astype(np.float64)
    if not np.isfinite(P).all() or (P < 0).any():
        raise ValueError("soft targets (2-D y) must be finite, non-negative class probabilities")
    sums = P.sum(axis=1)
    if len(P) and np.abs(sums - 1).max() > 1e-3:
        row = int(np.abs(sums - 1).argmax())
        raise ValueError(f"soft targets (2-D y) must be class probabilities whose rows sum to 1; row {row} sums to {sums[row]:.6g}")
    return (P / sums[:, np.newaxis]).astype(np.float32)


def _soft_column(P: np.ndarray, text: bool) -> np.ndarray:
    """What the model trains on: the probabilities, or those of class 1 for a single sigmoid unit."""
    return P[:, 1] if text else P


def _compile_for_soft_targets(model, text: bool, label_smoothing: float) -> None:
    """Recompile ``model`` (its optimizer kept) with a cross-entropy on soft targets and argmax accuracy."""
    import keras

    if text:
        def agreement(y_true, y_pred):
            y_true, y_pred = keras.ops.reshape(y_true, (-1,)), keras.ops.reshape(y_pred, (-1,))
            return keras.ops.cast(keras.ops.equal(y_true > 0.5, y_pred > 0.5), "float32")

        loss, accuracy = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing), keras.metrics.MeanMetricWrapper(agreement, name="accuracy")
    else:
        loss, accuracy = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing), keras.metrics.CategoricalAccuracy(name="accuracy")
    model.compile(optimizer=model.optimizer, loss=loss, metrics=[accuracy])


def _soft_scores(P: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy against each row's argmax and the cross-entropy of ``proba`` on the soft targets ``P``."""
    eps = np.finfo(np.float64).eps
    cross_entropy = -np.sum(P * np.log(np.clip(proba, eps, 1.0)), axis=1).mean()
    return {"accuracy": float(np.mean(proba.argmax(axis=1) == P.argmax(axis=1))), "log_loss": float(cross_entropy)}


def _learning_rate_logger():
    """A callback writing the optimizer's current rate into the epoch's logs (``history_["learning_rate"]``)."""
    import keras

    class LearningRateLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    return LearningRateLogger()


def _with_averaged_weights(callbacks: list, validation, batch_size: int) -> list:
    """``callbacks`` with the averaged weights swapped in for the slice, ``EarlyStopping`` and ``ModelCheckpoint`` (``ema``).

    At each epoch's end the first callback saves the raw weights, swaps the
    optimizer's averages in (``finalize_variable_values``, what Keras does at
    the end of ``fit``) and writes the slice's ``val_*`` scores of the
    averaged weights into the epoch's logs; the second, after the
    checkpointing callbacks, puts the raw weights back.
    """
    import keras

    raw = []

    class AveragedWeightsIn(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            variables = self.model.trainable_weights
            raw[:] = [keras.ops.convert_to_numpy(v) for v in variables]
            self.model.optimizer.finalize_variable_values(variables)
            if validation is not None and logs is not None:
                scores = self.model.evaluate(*validation, batch_size=batch_size, verbose=0, return_dict=True)
                logs.update({f"val_{k}": float(v) for k, v in scores.items()})

    class RawWeightsBack(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for variable, value in zip(self.model.trainable_weights, raw, strict=True):
                variable.assign(value)
            raw.clear()

    kept = (keras.callbacks.EarlyStopping, keras.callbacks.ModelCheckpoint)
    split = max((i + 1 for i, c in enumerate(callbacks) if isinstance(c, kept)), default=0)
    return [AveragedWeightsIn(), *callbacks[:split], RawWeightsBack(), *callbacks[split:]]


def _ema_for(steps: int) -> float:
    """A momentum whose average keeps about 5 % on the initial weights after ``steps`` steps (``1 - 3 / steps``, rounded down)."""
    return max(math.floor((1 - 3 / max(steps, 1)) * 1000) / 1000, 0.5)


def set_model_weights(model, weights) -> None:
    """``model.set_weights`` plus what ``load_weights`` also does: refresh adapted Normalization layers."""
    model.set_weights(weights)
    for layer in model.layers:
        if hasattr(layer, "finalize_state") and layer.__class__.__name__ == "Normalization":
            layer.finalize_state()


def _params_from_recipe(recipe: dict) -> dict:
    """Estimator parameters from a recipe in the registry's format."""
    optimizer = dict(recipe["optimizer"])
    callbacks = recipe.get("callbacks", {})
    early = callbacks.get("early_stopping")
    plateau = callbacks.get("reduce_lr_on_plateau", {})
    params = {
        "epochs": recipe["epochs"],
        "batch_size": recipe["batch_size"],
        "optimizer": optimizer.pop("name"),
        "learning_rate": optimizer.pop("learning_rate", 1e-3),
        "optimizer_options": optimizer or None,
        "early_stopping_size": (recipe.get("early_stopping_size") or None) if early is not None else None,
        "precision": recipe.get("precision", "float32"),
        "random_state": recipe["seed"],
    }
    if early is not None:
        params.update(monitor=early.get("monitor", "val_loss"), patience=early.get("patience", 4))
    params.update(lr_factor=plateau.get("factor", 0.5), lr_patience=plateau.get("patience", 2), min_lr=plateau.get("min_lr", 1e-5))
    params.update(lr_schedule=recipe.get("lr_schedule", {}).get("name", "plateau"), label_smoothing=recipe.get("label_smoothing", 0.0))
    if recipe.get("ema") is not None:
        params["ema"] = recipe["ema"]
    snapshots = recipe.get("snapshots", 1)
    if snapshots > 1:  # a snapshot ensemble: no early stopping, but a slice; the warm-up says which lr_schedule
        params.update(snapshots=snapshots, early_stopping_size=recipe.get("early_stopping_size") or None,
                      lr_schedule="cosine" if recipe.get("lr_schedule", {}).get("warmup_steps") else "plateau")
    return params


def plain_value(value):
    """``value`` with tuples as lists and NumPy scalars as Python ones (YAML- and JSON-safe)."""
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
