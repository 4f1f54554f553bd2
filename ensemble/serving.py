"""Serving an ensemble as one model: a TensorFlow SavedModel of its fused Keras model.

:func:`export_saved_model` fuses a fitted ensemble with its ``to_keras()``
(see :meth:`ensemble.BlendClassifier.to_keras` and
:meth:`ensemble.StackClassifier.to_keras` for what can be fused) and writes
it with Keras' ``model.export(path, format="tf_saved_model")``. The SavedModel
takes the raw inputs the members take (uint8 images, raw strings: the
preprocessing is inside the members) and returns the ensemble's
probabilities from its ``serve`` endpoint; TensorFlow alone loads it
(``tf.saved_model.load(path).serve(x)``), without Keras or this package.

Decisions:

- The SavedModel is written into a temporary folder beside ``path`` and
  renamed into place, so a failed or killed export leaves no half-written
  model at ``path``. An existing non-empty ``path`` is refused rather than
  replaced: a SavedModel is a folder of several files that serving systems
  may be reading.
- Keras is imported only when an ensemble is exported.
"""

import contextlib
from pathlib import Path

from kze.files import atomic_folder

__all__ = ["export_saved_model"]


def export_saved_model(estimator, path):
    """Write a fitted ensemble as a TensorFlow SavedModel returning its probabilities.

    Parameters
    ----------
    estimator : BlendClassifier, BlendRegressor or StackClassifier
        A fitted ensemble that ``to_keras()`` can fuse.
    path : str or path-like
        Folder to create; an existing empty folder is replaced, a non-empty
        one or a file is refused.

    Returns
    -------
    path : pathlib.Path
        The SavedModel folder.

    Raises
    ------
    FileExistsError
        If ``path`` is a file or a non-empty folder.
    ValueError
        If the ensemble cannot be fused (see its ``to_keras()``).
    """
    path = Path(path)
    _check_target(path)
    model = estimator.to_keras()
    with atomic_folder(path, prefix=".tmp-export-") as tmp:  # replaces an empty folder; fails if one was filled meanwhile
        with contextlib.redirect_stdout(None):  # model.export prints a summary of the endpoint
            model.export(str(tmp), format="tf_saved_model", verbose=False)
        _check_target(path)
    return path


def _check_target(path):
    """Refuse a file or a non-empty folder at ``path``."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise FileExistsError(f"{path} exists and is not a folder; refusing to replace it")
    if path.is_dir() and any(path.iterdir()):
        raise FileExistsError(f"{path} is a non-empty folder; refusing to replace it")
