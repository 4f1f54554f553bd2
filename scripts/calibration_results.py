#!/usr/bin/env python
"""Does temperature scaling the members before weighting them help? Print the table.

For the zoo's Fashion-MNIST models (five) and IMDB models (three), blend
weights are fitted on the ``validation`` split with SLSQP, NNLS and Caruana's
selection (on log loss, and on accuracy), each

* ``off``: members as they are (``calibrate=False``);
* ``on``: one temperature per member fitted on the whole validation split,
  then the weights on the scaled probabilities (``calibrate=True``);
* ``cross-fitted``: the weights are fitted on out-of-fold scaled
  probabilities (5 folds of the validation split, each scaled with
  temperatures fitted on the other four); the temperatures applied to the
  test split are those fitted on all of it.

With calibration the blend itself also gets a temperature (``blend T``). A
logistic-regression stack is measured with and without calibrated inputs.
A second table repeats everything after making the member that is best on
validation under-confident (its probabilities scaled by temperature 1.6,
about what label smoothing does), the case calibration is for. Every score
is on the ``test`` split except the validation log loss (what the weights
minimise). Member predictions come from the prediction cache
(``$ZOO_CACHE_DIR/predictions``), so a second run takes seconds.

Usage: ``ZOO_DATA_DIR=../shared/data python scripts/calibration_results.py [fashion_mnist] [imdb]``
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEED = 0
SOFTEN = 1.6  # the synthetic check: the best member's probabilities made under-confident by this temperature
METHODS = {"slsqp": {}, "nnls": {}, "caruana": {}, "caruana (accuracy)": {"scoring": "accuracy"}}


def _cached_member(name, memory, temperature=1.0):
    """A zoo model served from the prediction cache, its probabilities scaled by ``temperature``."""
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.frozen import FrozenEstimator

    import zoo
    from ensemble import KerasMember
    from ensemble._cache import cached_output
    from ensemble.calibration import apply_temperature

    member = KerasMember(zoo.load(name))

    class Scaled(ClassifierMixin, BaseEstimator):
        classes_ = member.classes_

        def __sklearn_is_fitted__(self):
            return True

        def fit(self, X, y):
            return self

        def predict_proba(self, X):
            proba = np.asarray(cached_output(memory, member, "predict_proba", X), dtype=np.float64)
            return apply_temperature(proba, temperature)

    return FrozenEstimator(Scaled())


def _cross_fitted(blend, P, y, n_splits=5):
    """Weights of ``blend``'s method fitted on out-of-fold temperature-scaled probabilities ``P`` (m, n, k)."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from ensemble.calibration import apply_temperature, fit_temperature

    scaled = np.empty_like(P)
    for fit, held in StratifiedKFold(n_splits, shuffle=True, random_state=SEED).split(P[0], y):
        for i, p in enumerate(P):
            scaled[i, held] = apply_temperature(p[held], fit_temperature(p[fit], y[fit]))
    return blend._solve(scaled, y, None)


def run(dataset: str, soften: bool = False) -> list[dict]:
    """Rows of the table: members, the mean blend, each method off / on / cross-fitted, the logistic stack."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    import ensemble
    import zoo
    from ensemble.calibration import apply_temperature
    from zoo.datasets import cache_dir
    from zoo.models import scores

    X_val, y_val = zoo.datasets.load(dataset, "validation")
    X_test, y_test = zoo.datasets.load(dataset, "test")
    names = zoo.list_models(dataset=dataset)
    memory = str(cache_dir() / "predictions")
    members = [(name, zoo.load(name)) for name in names]
    raw = ensemble.BlendClassifier(members, flatten_transform=False, memory=memory).fit(X_val, y_val)
    P_val = raw.transform(X_val)  # (m, n, k), through the cache
    if soften:  # the member best on validation made under-confident; served from the cache, uncached here
        best = max(range(len(names)), key=lambda i: scores(y_val, P_val[i])["accuracy"])
        members = [(n, _cached_member(n, memory, SOFTEN if i == best else 1.0)) for i, n in enumerate(names)]
        names[best] += f" (T={SOFTEN})"
        memory = None
        raw = ensemble.BlendClassifier(members, flatten_transform=False).fit(X_val, y_val)
        P_val = raw.transform(X_val)
    P_test = raw.transform(X_test)

    def row(name, calibration, proba_test, proba_val=None, **extra):
        out = {"dataset": dataset, "ensemble": name, "calibration": calibration, **scores(y_test, proba_test), **extra}
        if proba_val is not None:
            out["val_log_loss"] = log_loss(y_val, proba_val, labels=raw.classes_)
        return out

    rows = [row(name, "-", p) for name, p in zip(names, P_test)]
    best_accuracy = max(r["accuracy"] for r in rows)
    rows.append(row("mean", "off", raw.predict_proba(X_test), raw.predict_proba(X_val)))
    for method, extra in METHODS.items():
        kwargs = {"method": method.split()[0], "memory": memory, "random_state": SEED, **extra}
        for calibrate in (False, True):
            blend = ensemble.BlendClassifier(members, calibrate=calibrate, **kwargs).fit(X_val, y_val)
            rows.append(row(method, "on" if calibrate else "off", blend.predict_proba(X_test), blend.predict_proba(X_val),
                            weights=blend.weights_, temperatures=blend.temperatures_, blend_temperature=blend.blend_temperature_))
        w = _cross_fitted(blend, P_val, y_val)
        T, T_blend = blend.temperatures_, blend.blend_temperature_

        def mix(P, w=w, T=T, T_blend=T_blend):
            return apply_temperature(sum(wi * apply_temperature(p, t) for wi, p, t in zip(w, P, T) if wi > 0), T_blend)

        rows.append(row(method, "cross-fitted", mix(P_test), mix(P_val), weights=w, temperatures=T, blend_temperature=T_blend))
    for calibrate in (False, True):
        stack = ensemble.StackClassifier(members, LogisticRegression(max_iter=2000), calibrate=calibrate, memory=memory)
        stack.fit(X_val, y_val)
        rows.append(row("stack (logreg)", "on" if calibrate else "off", stack.predict_proba(X_test), stack.predict_proba(X_val),
                        temperatures=stack.temperatures_))
    for r in rows:
        r["gain"] = 100 * (r["accuracy"] - best_accuracy)
    return rows


def _print(title, rows):
    from zoo._cli import table

    def numbers(values):
        return " ".join(f"{v:.2f}" for v in values)

    body = [
        [r["ensemble"], r["calibration"], f"{100 * r['accuracy']:.2f}", f"{r['gain']:+.2f}", f"{r['log_loss']:.4f}",
         f"{r['val_log_loss']:.4f}" if "val_log_loss" in r else "", numbers(r.get("weights", [])),
         numbers(r.get("temperatures", [])), f"{r['blend_temperature']:.2f}" if "blend_temperature" in r else ""]
        for r in rows
    ]
    headers = ["ensemble", "calibration", "test acc %", "gain", "test log loss", "val log loss", "weights", "member T", "blend T"]
    print(f"\n{title}\n" + table(headers, body))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", help="fashion_mnist and/or imdb (default: both)")
    args = parser.parse_args()
    args.datasets = args.datasets or ["fashion_mnist", "imdb"]
    unknown = set(args.datasets) - {"fashion_mnist", "imdb"}
    if unknown:
        parser.error(f"unknown dataset(s) {sorted(unknown)}; choose from fashion_mnist, imdb")
    for dataset in args.datasets:
        _print(f"{dataset}: the zoo's models; weights fitted on validation, scores on test (gain: accuracy points "
               "over the best member)", run(dataset))
    for dataset in args.datasets:
        _print(f"{dataset}, synthetic check: the member best on validation made under-confident "
               f"(its probabilities scaled by T={SOFTEN})", run(dataset, soften=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
