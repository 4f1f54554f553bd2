#!/usr/bin/env python
"""Measure members vs blends vs stacks on Fashion-MNIST and IMDB; print and save the table.

For each dataset the members are the zoo's models plus scikit-learn / XGBoost
models trained here on the ``train`` split:

* Fashion-MNIST: the five zoo models and a 200-tree random forest on raw pixels;
* IMDB: the three zoo models, TF-IDF (1-2 grams) + logistic regression, and
  TF-IDF + XGBoost.

Blend weights (mean, SLSQP, NNLS, Caruana) and stacking meta-learners
(logistic regression, random forest, XGBoost) are fitted on the ``validation``
split only; every row is measured on the ``test`` split. Results go to
``scripts/results/ensemble_results.json`` (read by ``scripts/update_readme.py``)
and the fitted scikit-learn members to ``$ZOO_CACHE_DIR/members/`` as joblib
files, usable as ``ensemble`` command-line members.

Usage: ``ZOO_DATA_DIR=../shared/data python scripts/ensemble_results.py [fashion_mnist] [imdb]``
(about 10 minutes on 2 cores, most of it fitting the forest and XGBoost).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "scripts" / "results" / "ensemble_results.json"
SEED = 0


def sklearn_members(dataset: str, X, y) -> dict:
    """scikit-learn / XGBoost members trained on the train split (cached as saved ensembles: no pickle)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from xgboost import XGBClassifier

    import ensemble
    from ensemble.preprocessing import Flatten
    from zoo.datasets import cache_dir

    if dataset == "fashion_mnist":
        specs = {
            "random_forest": lambda: make_pipeline(
                Flatten(),
                RandomForestClassifier(n_estimators=200, n_jobs=-1, random_state=SEED),
            )
        }
    else:
        specs = {
            "tfidf_logreg": lambda: make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=200_000, sublinear_tf=True),
                LogisticRegression(C=4.0, max_iter=1000),
            ),
            "tfidf_xgboost": lambda: make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), min_df=5, max_features=50_000, sublinear_tf=True),
                XGBClassifier(n_estimators=400, learning_rate=0.1, max_depth=6, tree_method="hist", n_jobs=2, random_state=SEED),
            ),
        }
    members = {}
    folder = cache_dir() / "members"
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in specs.items():
        path = folder / f"{dataset}_{name}"
        if path.exists():  # a one-member blend saved by ensemble.save: verified, loaded without pickle
            members[name] = ensemble.load(path).estimators_[0].estimator
            continue
        start = time.perf_counter()
        model = make().fit(X, y)
        print(f"  fitted {name} on {len(y)} training examples in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        ensemble.save(ensemble.BlendClassifier([(name, FrozenEstimator(model))]).fit(X[:50], y[:50]), path)
        members[name] = model
    return members


def run(dataset: str) -> dict:
    import numpy as np
    from sklearn.frozen import FrozenEstimator

    import ensemble
    import zoo
    from ensemble.stack import meta_learner
    from zoo.datasets import cache_dir
    from zoo.models import scores

    print(f"== {dataset}", file=sys.stderr)
    X_train, y_train = zoo.datasets.load(dataset, "train")
    X_val, y_val = zoo.datasets.load(dataset, "validation")
    X_test, y_test = zoo.datasets.load(dataset, "test")
    members = [(name, zoo.load(name)) for name in zoo.list_models(dataset=dataset)]
    members += [(name, FrozenEstimator(model)) for name, model in sklearn_members(dataset, X_train, y_train).items()]
    memory = str(cache_dir() / "predictions")

    rows = []

    def record(name, kind, proba):
        rows.append({"name": name, "kind": kind, **scores(y_test, proba)})
        print(f"  {name:<28} {kind:<7} test acc {rows[-1]['accuracy']:.4f}", file=sys.stderr)

    for name, member in members:
        one = ensemble.BlendClassifier([(name, member)], memory=memory).fit(X_val, y_val)
        record(name, "member", one.predict_proba(X_test))

    for method in ("mean", "slsqp", "nnls", "caruana"):
        blend = ensemble.BlendClassifier(members, method=method, memory=memory, random_state=SEED).fit(X_val, y_val)
        record(f"blend ({method})", "blend", blend.predict_proba(X_test))
        rows[-1]["weights"] = dict(zip([n for n, _ in members], np.round(blend.weights_, 4).tolist()))
    for meta_name in ("logreg", "rf", "xgboost"):  # the meta-learners of `ensemble stack --meta`
        meta = meta_learner(meta_name, SEED)
        stack = ensemble.StackClassifier(members, final_estimator=meta, memory=memory).fit(X_val, y_val)
        record(f"stack ({meta_name})", "stack", stack.predict_proba(X_test))

    best = max(r["accuracy"] for r in rows if r["kind"] == "member")
    for r in rows:
        r["gain_points"] = round(100 * (r["accuracy"] - best), 2)
    return {"dataset": dataset, "best_member_accuracy": best, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="*", help="fashion_mnist and/or imdb (default: both)")
    args = parser.parse_args()
    args.datasets = args.datasets or ["fashion_mnist", "imdb"]
    unknown = set(args.datasets) - {"fashion_mnist", "imdb"}
    if unknown:
        parser.error(f"unknown dataset(s) {sorted(unknown)}; choose from fashion_mnist, imdb")

    import keras
    import sklearn
    import xgboost

    results = {
        "command": "python scripts/ensemble_results.py " + " ".join(args.datasets),
        "date": dt.date.today().isoformat(),
        "versions": f"keras {keras.__version__}, scikit-learn {sklearn.__version__}, xgboost {xgboost.__version__}",
        "datasets": [run(ds) for ds in args.datasets],
    }
    print()
    for ds in results["datasets"]:
        print(f"{ds['dataset']} (test split; best member {ds['best_member_accuracy']:.4f})")
        print(f"  {'model':<28} {'kind':<7} {'accuracy':>8} {'log loss':>8} {'gain (pts)':>10}")
        for r in ds["rows"]:
            print(f"  {r['name']:<28} {r['kind']:<7} {r['accuracy']:>8.4f} {r['log_loss']:>8.4f} {r['gain_points']:>+10.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
