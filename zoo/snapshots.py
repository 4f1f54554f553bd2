"""Snapshot ensembles (Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free").

``ZooClassifier(snapshots=M)`` with ``M > 1`` trains once with a cyclic
cosine learning rate and keeps the weights at the end of each of the ``M``
cycles; ``snapshot_estimators()`` gives them as ``M`` fitted single-model
estimators, ensemble members for ``ensemble``; a search trial writes each as
a library entry (``zoo.library.add_snapshot_trials``). This module holds the
schedule and the callback that takes the snapshots.

Decisions:

- Cycles are counted in optimisation steps: a cycle is ``epochs / M`` epochs
  of ``steps_per_epoch`` steps. ``epochs`` must divide into ``M`` cycles: an
  explicit ``epochs`` that does not is refused (``ValueError`` naming the
  nearest multiples); ``epochs="auto"`` is rounded up to a multiple of ``M``.
- Rate at step ``t`` (0-based) of a cycle of ``S`` steps: ``lr / 2 * (1 +
  cos(pi * t / S))``, Huang et al.'s formula: ``lr`` on the first step of each
  cycle, about ``lr * pi**2 / (4 S**2)`` on its last. With
  ``lr_schedule="cosine"`` the first cycle starts with the same linear warm-up
  from 0 as the plain cosine schedule (one epoch, at most a tenth of the
  cycle), then anneals over the rest of the cycle; later cycles restart
  without one (the network is no longer at its fragile initialisation).
  With ``lr_schedule="plateau"`` (the default) there is no warm-up and no
  ``ReduceLROnPlateau`` (it cannot change a scheduled rate).
- ``history_["learning_rate"]`` holds the rate of each epoch's last step (not
  the next step's, which at a cycle's end is already the restart).
- No early stopping with ``M > 1``: restoring a best epoch would break the
  cycles, and the snapshots are the point. The early-stopping slice is still
  carved and scores every snapshot (``snapshot_scores_``); the fitted
  ``model_`` is the last snapshot, ``early_stopping_scores_`` its scores.
  (A fit that a callback of the caller stops early keeps the snapshots it
  took; ``model_`` is then its last weights.)
- Resumption (``backup_dir``, ``zoo.resume``): each snapshot is written into
  the backup folder when it is taken (``snapshot-<k>.npz``, NumPy without
  pickle) and recorded with its sha256 and the fit's fingerprint in
  ``snapshots.json`` (``kze.files.atomic_path``), before the epoch's
  ``state.json`` commits it. A resumed fit loads the snapshots of the epochs
  the backup holds, each after its digest matched the record; a snapshot of a
  later epoch (the kill fell between the two writes) is taken again. The
  files go with the folder when the fit succeeds.
- Library entries of a search trial (``zoo.library.add_snapshot_trials``): the
  trial's own entry ``<study>_tNNNN`` is the final model, the last snapshot,
  as every reader of trial entries expects (``find_trial``, ``reap``, the
  search summary's best entry); snapshots ``1 .. M - 1`` are written as
  ``<study>_tNNNN_s1 .. _s<M-1>``. No weights are stored twice; every entry
  records ``snapshot: {index, of, epoch}`` and its own slice metrics, and
  its ``search.objective`` is its own slice score, so ``ensemble select
  --library LIB`` ranks and picks among them. All go through
  ``zoo.library.write_model``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["RECORD_FILE", "cycle_epochs", "cyclic_rate", "cyclic_schedule", "snapshot_callback", "warmup_steps"]

RECORD_FILE = "snapshots.json"  # in the backup folder: the snapshots taken so far, with their sha256
_FORMAT = 1


def cycle_epochs(epochs, snapshots: int, *, auto: bool) -> int:
    """``epochs`` as a multiple of ``snapshots``: rounded up when ``auto``, else refused unless it divides.

    Parameters
    ----------
    epochs : int
        The planned epochs (``"auto"`` already resolved).
    snapshots : int
        The number of cycles ``M``.
    auto : bool
        Whether ``epochs`` came from ``epochs="auto"`` (rounded up).

    Returns
    -------
    int
    """
    if snapshots == 1 or epochs % snapshots == 0:
        return int(epochs)
    if auto:
        return int(math.ceil(epochs / snapshots) * snapshots)
    lower, upper = (epochs // snapshots) * snapshots, (epochs // snapshots + 1) * snapshots
    nearest = f"{lower} or {upper}" if lower else f"{upper}"
    raise ValueError(f"epochs={epochs} does not divide into snapshots={snapshots} cycles of whole epochs; use epochs={nearest} "
                     "(or epochs='auto', rounded up to a multiple of snapshots)")


def warmup_steps(steps_per_epoch: int, cycle_steps: int) -> int:
    """The first cycle's warm-up with ``lr_schedule="cosine"``: one epoch, at most a tenth of the cycle."""
    return min(steps_per_epoch, cycle_steps // 10)


def cyclic_rate(step: int, learning_rate: float, cycle_steps: int, warmup: int = 0) -> float:
    """The learning rate of 0-based optimisation ``step`` (see the module docstring); what the Keras schedule computes."""
    cycle, t = divmod(int(step), int(cycle_steps))
    if cycle == 0 and warmup:
        if t < warmup:
            return learning_rate * t / warmup
        return learning_rate / 2 * (1 + math.cos(math.pi * (t - warmup) / (cycle_steps - warmup)))
    return learning_rate / 2 * (1 + math.cos(math.pi * t / cycle_steps))


def cyclic_schedule(learning_rate: float, cycle_steps: int, warmup: int = 0):
    """A Keras ``LearningRateSchedule`` computing :func:`cyclic_rate` (imports Keras)."""
    import keras

    class CyclicCosine(keras.optimizers.schedules.LearningRateSchedule):
        """Cosine annealing restarted every ``cycle_steps`` steps; a linear warm-up of ``warmup`` steps in the first cycle."""

        def __init__(self, learning_rate, cycle_steps, warmup=0):
            self.learning_rate = float(learning_rate)
            self.cycle_steps = int(cycle_steps)
            self.warmup = int(warmup)

        def __call__(self, step):
            ops = keras.ops
            step = ops.cast(step, "float32")
            size = float(self.cycle_steps)
            cycle = ops.floor(step / size)
            t = step - cycle * size
            restarted = self.learning_rate / 2 * (1 + ops.cos(math.pi * t / size))
            if not self.warmup:
                return restarted
            warm = float(self.warmup)
            ramp = self.learning_rate * t / warm
            first = self.learning_rate / 2 * (1 + ops.cos(math.pi * ops.maximum(t - warm, 0.0) / (size - warm)))
            in_first = ops.where(t < warm, ramp, first)
            return ops.where(cycle < 1, in_first, restarted)

        def get_config(self):
            return {"learning_rate": self.learning_rate, "cycle_steps": self.cycle_steps, "warmup": self.warmup}

    return CyclicCosine(learning_rate, cycle_steps, warmup)


def snapshot_callback(schedule, epochs: int, snapshots: int, *, folder=None, fingerprint: str | None = None, epochs_before: int = 0):
    """The Keras callback that logs the rate and takes a snapshot at the end of each cycle.

    Parameters
    ----------
    schedule : keras.optimizers.schedules.LearningRateSchedule
        The fit's :func:`cyclic_schedule`; ``learning_rate`` is logged as its
        value at the epoch's last step.
    epochs, snapshots : int
        The planned epochs and the number of cycles (``epochs % snapshots == 0``).
    folder : path, optional
        The fit's backup folder (``zoo.resume``): snapshots are written there
        as they are taken, and read back (sha256 checked) when the fit resumes.
    fingerprint : str, optional
        The backup's fingerprint, recorded with the snapshots and checked.
    epochs_before : int
        Epochs the backup holds (a resumed fit): snapshots of later epochs are ignored.

    Returns
    -------
    keras.callbacks.Callback
        With ``weights``: ``[(epoch, list of arrays), ...]``, the snapshots taken (1-based epochs).
    """
    import keras

    period = epochs // snapshots
    folder = None if folder is None else Path(folder)

    class Snapshots(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.weights = []

        def on_train_begin(self, logs=None):
            self.weights = _read_snapshots(folder, fingerprint, epochs_before) if folder is not None and epochs_before else []

        def on_epoch_end(self, epoch, logs=None):
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) - 1
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(schedule(max(step, 0))))
            if (epoch + 1) % period:
                return
            weights = [_float32(w) for w in self.model.get_weights()]
            self.weights = [(e, w) for e, w in self.weights if e < epoch + 1] + [(epoch + 1, weights)]
            if folder is not None:
                _write_snapshot(folder, fingerprint, epoch + 1, weights)

    return Snapshots()


def _float32(weight) -> np.ndarray:
    array = np.asarray(weight)
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def _read_record(folder: Path, fingerprint: str | None) -> dict:
    path = folder / RECORD_FILE
    if not path.is_file():
        return {"format": _FORMAT, "fingerprint": fingerprint, "snapshots": []}
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or record.get("format") != _FORMAT or record.get("fingerprint") != fingerprint:
        from zoo.resume import BackupRefusedError

        raise BackupRefusedError(f"backup_dir {folder}: {RECORD_FILE} belongs to another training; remove the folder to start over")
    return record


def _write_snapshot(folder: Path, fingerprint: str | None, epoch: int, weights: list) -> None:
    """Write the snapshot of ``epoch`` (``snapshot-<epoch>.npz``), then record it with its sha256 in ``snapshots.json``."""
    from kze.files import atomic_path, atomic_write_text, sha256_file

    name = f"snapshot-{epoch:05d}.npz"
    with atomic_path(folder / name, ".npz") as tmp:
        np.savez(tmp, *weights)
    record = _read_record(folder, fingerprint)
    kept = [s for s in record["snapshots"] if s["epoch"] < epoch]
    record["snapshots"] = [*kept, {"epoch": epoch, "file": name, "sha256": sha256_file(folder / name)}]
    atomic_write_text(folder / RECORD_FILE, json.dumps(record))


def _read_snapshots(folder: Path, fingerprint: str | None, epochs_before: int) -> list:
    """The snapshots of the first ``epochs_before`` epochs, each loaded after its sha256 matched the record."""
    from kze.files import sha256_file
    from zoo.resume import BackupRefusedError

    out = []
    for item in _read_record(folder, fingerprint)["snapshots"]:
        if item["epoch"] > epochs_before:  # taken after the last committed epoch: it is taken again
            continue
        name = item["file"]
        path = folder / name
        if not isinstance(name, str) or Path(name).name != name or not path.is_file() or sha256_file(path) != item["sha256"]:
            raise BackupRefusedError(f"backup_dir {folder}: snapshot {name!r} does not match its record; remove the folder to start over")
        with np.load(path, allow_pickle=False) as arrays:
            out.append((int(item["epoch"]), [arrays[f"arr_{i}"] for i in range(len(arrays.files))]))
    return out
