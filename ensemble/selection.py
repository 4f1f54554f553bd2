"""Ensemble selection: Caruana's greedy selection from a library of fitted models, as ``ensemble select`` runs it.

:func:`select` is the Python form of the ``ensemble select`` command: the
same defaults (50 selections with replacement, sorted initialisation from the
best member, one bag, log loss, temperature scaling on) and the same result,
so that a selection made in Python and one made on the command line on the
same members and data have the same weights and predictions.

Design decisions:

* **Two fits, one result.** The selection is a
  ``BlendClassifier(method="caruana")`` fitted over every candidate; most
  candidates end with weight 0. The blend returned is then a second
  ``BlendClassifier`` over the selected members only, with the weights found
  as fixed weights (``method="mean"``), fitted on the same data, which refits
  the temperatures of the selected members (each one's is fitted on its own,
  so they are those of the first fit) and the blend's temperature. This is
  what the command line has always saved: ``ensemble.save`` of the result
  keeps only the selected members, and its ``weights_`` are the selection's
  non-zero weights (they already sum to 1).
* **The candidates stay available.** ``return_candidates=True`` also returns
  the first blend, whose ``weights_`` and ``temperatures_`` cover every
  candidate (0 for those not selected), which the command line reports.
* **Predictions are computed once.** With ``memory=None`` the two fits share a
  temporary prediction cache (removed on return), so prefit members predict
  ``X`` once; with a ``memory`` folder, that folder serves both. The returned
  blends keep the ``memory`` given.
* **Names follow** :class:`~ensemble.BlendClassifier`: ``n_init``, ``n_bags``,
  ``n_best`` and ``random_state`` are the command line's ``--init``,
  ``--bags``, ``--prune`` and ``--seed``.
"""

import tempfile

import numpy as np

from ensemble._members import _is_pair
from ensemble.blend import BlendClassifier

__all__ = ["select"]


def select(
    members,
    X,
    y,
    *,
    ensemble_size=50,
    n_init=1,
    n_bags=1,
    bag_fraction=0.5,
    n_best=None,
    scoring="log_loss",
    calibrate=True,
    sample_weight=None,
    memory=None,
    n_jobs=None,
    random_state=0,
    return_candidates=False,
    verbose=0,
):
    """Caruana's ensemble selection from ``members``; a fitted blend of the selected ones only.

    Parameters
    ----------
    members : list of (str, estimator) or of estimators
        The candidates, as :class:`~ensemble.BlendClassifier` takes them:
        Keras models, :class:`~ensemble.KerasMember`, fitted scikit-learn
        estimators in ``sklearn.frozen.FrozenEstimator`` (used as they are),
        or unfitted estimators (fitted here, out-of-fold for the selection,
        then on all the data, once per fit).
    X : array-like
        The data the weights are fitted on (usually a validation split), raw:
        every member owns its preprocessing.
    y : array-like of shape (n_samples,)
        Its labels.
    ensemble_size : int, default=50
        Selections, with replacement (``--ensemble-size``).
    n_init : int, default=1
        Sorted initialisation: start from the ``n_init`` best members alone
        (``--init``).
    n_bags : int, default=1
        Bagged selection: average ``n_bags`` selections (``--bags``).
    bag_fraction : float, default=0.5
        Fraction of the candidates in each bag (``--bag-fraction``).
    n_best : int or None, default=None
        Library pruning: only the ``n_best`` candidates best alone (``--prune``);
        None: all.
    scoring : str or callable, default="log_loss"
        What the selection optimises (``--scoring``): ``"log_loss"``, or a
        scikit-learn scorer (name or callable) to maximise, e.g.
        ``"accuracy"``.
    calibrate : bool, default=True
        Temperature-scale each candidate before selecting, then the blend
        (``--calibrate``/``--no-calibrate``); see :mod:`ensemble.calibration`.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the examples, for the selection and the temperatures.
    memory : str, joblib.Memory or None, default=None
        Folder caching member predictions (see
        :class:`~ensemble.BlendClassifier`); None: a temporary one for this
        call only.
    n_jobs : int, default=None
        Parallel member fits and predictions.
    random_state : int, RandomState instance or None, default=0
        Draws the bags (``--seed``).
    return_candidates : bool, default=False
        Also return the selection over every candidate.
    verbose : int, default=0
        Progress of member fits and predictions on stderr (see
        :class:`~ensemble.BlendClassifier`); the returned blends keep 0.

    Returns
    -------
    blend : BlendClassifier
        Fitted over the selected members only (``method="mean"`` with the
        selection's weights as ``weights``): ``weights_`` are the selection's
        non-zero weights, ``ensemble.save(blend, ...)`` keeps only these
        members.
    candidates : BlendClassifier
        Only with ``return_candidates=True``: the fitted
        ``method="caruana"`` blend over every candidate; its ``weights_``
        (0 for the candidates not selected) and ``temperatures_`` cover them
        all.

    Examples
    --------
    >>> import ensemble                                              # doctest: +SKIP
    >>> blend = ensemble.select(members, X_valid, y_valid)           # doctest: +SKIP
    >>> list(blend.named_estimators_), blend.weights_                # doctest: +SKIP
    >>> ensemble.save(blend, "my_selection")                         # doctest: +SKIP
    """
    if isinstance(scoring, str) and scoring == "log_loss":
        scoring = None
    with tempfile.TemporaryDirectory(prefix="ensemble-select-") as scratch:
        cache = scratch if memory is None else memory
        candidates = BlendClassifier(
            members, method="caruana", scoring=scoring, ensemble_size=ensemble_size, n_init=n_init, n_bags=n_bags,
            bag_fraction=bag_fraction, n_best=n_best, calibrate=calibrate, memory=cache, n_jobs=n_jobs,
            random_state=random_state, verbose=verbose,
        ).fit(X, y, sample_weight=sample_weight)
        names = list(candidates.named_estimators_)
        originals = [item[1] if _is_pair(item) else item for item in candidates.estimators]
        chosen = np.flatnonzero(candidates.weights_ > 0)
        blend = BlendClassifier(
            [(names[i], originals[i]) for i in chosen], weights=candidates.weights_[chosen], calibrate=calibrate,
            memory=cache, n_jobs=n_jobs, verbose=verbose,
        ).fit(X, y, sample_weight=sample_weight)
    candidates.set_params(memory=memory, verbose=0)
    blend.set_params(memory=memory, verbose=0)
    return (blend, candidates) if return_candidates else blend
