"""One trial: a :class:`zoo.ZooClassifier` fit scored on its early-stopping slice, and one library entry.

Decisions:

- Starting point: a zoo entry (its builder, hyperparameters and recipe, on its
  dataset's ``train`` split; never the validation or test split) or a builder
  name with the user's data. The space (``zoo.search_spaces``) overrides the
  starting point's values for the hyperparameters it searches.
- Objective: the early-stopping slice's ``accuracy`` (maximised; default) or
  ``log_loss`` (minimised), measured after restoring the best epoch. Every
  trial keeps the starting point's seed, so every trial is scored on the
  same slice. The validation split stays untouched for fitting ensembles.
- Pruning: the slice metric is reported after every epoch by a Keras
  callback; the default pruner is ``MedianPruner(n_startup_trials=4,
  n_warmup_steps=2)``: with a handful of trials of many minutes each,
  bracketed pruners (Hyperband, successive halving) rarely get the trials
  they need; the two warm-up epochs spare slow starters.
- The entry: :func:`run_trial` writes the weights and entry with
  ``zoo.library.add_trial`` (through ``prepare_trial``, which a Dask worker
  calls too, its files then written by ``write_trial`` on the coordinator);
  ``prepare_trial`` calls ``zoo.library.write_model``, the function
  ``zoo train`` writes its entries with.
- Logs (``logs=True``): each trial writes the CSV log (``training.csv``) and
  TensorBoard event files (``tensorboard/``, histograms every epoch) that
  every entry's recipe lists, into ``LIB/runs/<entry>/``. They are extra
  callbacks of the fit, not ``ZooClassifier(log_dir=...)``, whose best-epoch
  checkpoint would store every trial's weights twice; they come before the
  pruning callback (a pruned trial's last epoch is logged) and are closed
  when the fit raises. A stale folder of the same entry name is replaced.
- Data read again by another process (a ``.npz`` file) must have the
  study's data digest: a changed file is refused, never trained on.
- Memory: :func:`release_memory` clears the Keras session and collects
  garbage after every trial (the in-process executor's bound; see
  ``zoo.search.executors``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path

import numpy as np

from zoo.search.config import METRICS, REPORTED, RUNS_FOLDER, user_data

__all__ = ["fit_trial", "load_data", "release_memory", "run_trial", "start_tensorflow"]


def release_memory() -> None:
    """Free what a trial's Keras model left behind (the session's graphs and layers)."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def start_tensorflow(workers: int) -> None:
    """Import TensorFlow quietly, sharing the machine's cores among the workers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if workers > 1:  # read by TensorFlow when it starts
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", threads)
    from kze.startup import quiet_tensorflow_start

    quiet_tensorflow_start()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices of one trial after another


def load_data(config, arrays=None) -> tuple[np.ndarray, np.ndarray]:
    """The search's data: the user's arrays or file (checked against the study's sha256), or the zoo dataset's train split; cut to the subset."""
    if arrays is not None:
        X, y = arrays
    elif config.data_path is not None:  # each worker reads the file again: it must hold the data the study records
        (X, y), read = user_data(config.builder, None, None, config.data_path, config.base)
        if read["sha256"] != config.data_info["sha256"]:
            raise ValueError(f"data file {config.data_path} changed since the search started (its data's sha256 is {read['sha256']}, "
                             f"the study's {config.data_info['sha256']}); refusing to train on it")
    else:
        from zoo import datasets

        X, y = datasets.load(config.dataset, "train", config.data_dir)
    if config.subset is not None:
        n = config.subset + config.base["early_stopping_size"]
        X, y = X[:n], y[:n]
    return X, y


def run_trial(trial, config, X, y) -> float:
    """Train the trial's model, write it into the library, return the objective; then free the model's memory."""
    from zoo.library import add_trial, open_library

    try:
        clf, record = fit_trial(trial, config, X, y)
        add_trial(open_library(config.library), clf, **record)
        return record["objective"]["value"]
    finally:
        release_memory()


def fit_trial(trial, config, X, y) -> tuple:
    """Train the trial's model: ``(clf, record)``, ``record`` the keyword arguments of ``zoo.library.prepare_trial``."""
    from zoo.estimator import ZooClassifier
    from zoo.library import entry_name
    from zoo.search_spaces import TRAINING_PARAMS, suggest

    values = suggest(trial, config.space)
    trial.set_user_attr("hyperparameters", values)
    params = {k if k in TRAINING_PARAMS else "builder__" + k: v for k, v in values.items()}
    clf = ZooClassifier(**config.base).set_params(**params)
    logs = _log_callbacks(config, trial.number) if config.logs else []
    started = time.perf_counter()
    try:  # the logs first: a pruned trial's last epoch is logged before the pruning callback raises
        clf.fit(X, y, callbacks=[*logs, _pruning_callback(trial, REPORTED[config.metric])])
    except BaseException:
        for callback in logs:  # close the CSV file and the TensorBoard writers that fit left open
            with contextlib.suppress(Exception):
                callback.on_train_end()
        raise
    seconds = time.perf_counter() - started
    value = round(float(clf.early_stopping_scores_[config.metric]), 6)
    record = {
        "study": config.study,
        "trial": trial.number,
        "objective": {"name": f"early_stopping_{config.metric}", "value": value, "direction": METRICS[config.metric]},
        "hyperparameters": values,
        "seconds": seconds,
        "examples": len(y),
        "dataset": config.dataset,
        "data": config.data_info,
        "subset": config.subset,
        "logs": f"{RUNS_FOLDER}/{entry_name(config.study, trial.number)}" if logs else None,
    }
    return clf, record


def _log_callbacks(config, number: int) -> list:
    """The CSVLogger and TensorBoard callbacks of trial ``number``, writing into ``LIB/runs/<entry>/`` (emptied first)."""
    import shutil

    import keras

    from zoo.library import entry_name

    folder = Path(config.library) / RUNS_FOLDER / entry_name(config.study, number)
    if folder.exists():  # a stale folder: the study was started again after its storage was deleted
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    # the files and settings every entry's recipe lists (csv_logger, tensorboard), as ZooClassifier(log_dir=...) writes them
    return [keras.callbacks.CSVLogger(str(folder / "training.csv")), keras.callbacks.TensorBoard(str(folder / "tensorboard"), histogram_freq=1)]


def _pruning_callback(trial, key: str):
    """A Keras callback reporting the slice metric ``key`` to ``trial`` every epoch, raising ``TrialPruned``."""
    import keras
    import optuna

    class _Pruning(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(key)
            if value is None or not math.isfinite(value):
                return
            trial.report(float(value), step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} ({key} {value:.4f})")

    return _Pruning()

