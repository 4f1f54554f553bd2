"""Re-run a zoo recipe: seeded training with the classic Keras callbacks.

A recipe becomes a :class:`zoo.ZooClassifier` (``ZooClassifier.from_spec``)
fitted on the dataset's ``train`` split; it carves the early-stopping slice
itself, so the zoo has a single training path. Each run writes into its run
directory a CSV log (``training.csv``), TensorBoard event files
(``tensorboard/``, histograms every epoch), the best checkpoint
(``best.weights.h5``) and ``metrics.json``; then the weights (and
vocabulary, for text models) are written atomically into the registry's
weights folder and the registry entry is updated with the new sha256,
parameter count, metrics and versions.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from pathlib import Path

import numpy as np

from zoo import datasets
from zoo._files import atomic_path, atomic_write_text, sha256_file
from zoo.models import build_model, predict_proba, scores
from zoo.recipes import recipe as _recipe
from zoo.registry import Registry

__all__ = ["train"]


def train(
    name: str,
    *,
    epochs: int | None = None,
    run_dir: str | os.PathLike | None = None,
    registry: Registry | str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    subset: int | None = None,
    verbose: int | str = "auto",
) -> dict:
    """Train a zoo entry from its recipe and record the result in the registry.

    Parameters
    ----------
    name : str
        Recipe / registry name (see ``zoo.recipes.RECIPES``).
    epochs : int, optional
        Override the recipe's maximum number of epochs (recorded in the entry).
    run_dir : path, optional
        Where logs and checkpoints go; defaults to ``runs/<name>-<timestamp>``.
    registry : Registry or path, optional
        Registry to update; defaults to the shipped one.
    data_dir : path, optional
        Data directory (see ``zoo.datasets``).
    subset : int, optional
        Train on the first ``subset`` examples (plus an early-stopping slice
        of ``max(subset // 4, 32)`` more) and measure on the first ``subset``
        of each split: a smoke test, recorded as such in the entry.
    verbose : int or "auto"
        Keras progress output.

    Returns
    -------
    dict
        The new registry entry.
    """
    import keras
    import tensorflow as tf

    from zoo.estimator import ZooClassifier

    spec = _recipe(name)
    cfg = spec["recipe"]
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        cfg["epochs"] = int(epochs)
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / f"{name}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)

    clf = ZooClassifier.from_spec(spec, log_dir=run_dir, verbose=verbose)
    X, y = datasets.load(spec["dataset"], "train", data_dir)
    if subset is not None:  # the first examples, with a slice of a quarter of their number carved from them
        es_size = max(subset // 4, 32)
        X, y = X[: subset + es_size], y[: subset + es_size]
        clf.set_params(early_stopping_size=es_size)
    start = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - start
    model, vocabulary = clf.model_, clf.vocabulary_
    es_examples = clf.spec_["recipe"]["early_stopping_size"]
    # Measure, save and ship the float32 model that zoo.load rebuilds, so the metrics are re-checkable.
    bare = build_model(spec["builder"], spec["params"], vocabulary=vocabulary)  # no optimizer state in the file
    bare.set_weights(model.get_weights())

    metrics = {}
    for split in ("validation", "test"):
        Xs, ys = datasets.load(spec["dataset"], split, data_dir)
        if subset is not None:
            Xs, ys = Xs[:subset], ys[:subset]
        metrics[split] = {k: round(v, 6) for k, v in scores(ys, predict_proba(bare, Xs)).items()}

    reg.weights_dir.mkdir(parents=True, exist_ok=True)
    weights_file = f"{name}.weights.h5"
    with atomic_path(reg.weights_dir / weights_file, suffix=".weights.h5") as tmp:
        bare.save_weights(tmp)
    entry = {
        "name": name,
        "task": "text-classification" if vocabulary is not None else "image-classification",
        "dataset": spec["dataset"],
        "builder": spec["builder"],
        "params": spec["params"],
        "input": {"shape": [], "dtype": "string"} if vocabulary is not None else {"shape": [28, 28, 1], "dtype": "uint8"},
        "classes": datasets.class_names(spec["dataset"]),
        "weights": {"file": weights_file, "sha256": sha256_file(reg.weights_dir / weights_file)},
    }
    if vocabulary is not None:
        vocab_file = f"{name}.vocab.txt"
        atomic_write_text(reg.weights_dir / vocab_file, "".join(t + "\n" for t in vocabulary))
        entry["vocabulary"] = {"file": vocab_file, "sha256": sha256_file(reg.weights_dir / vocab_file)}
    entry.update(
        {
            "parameters": int(model.count_params()),
            "metrics": metrics,
            "recipe": cfg,
            "training": {
                "epochs_run": len(clf.history_["loss"]),
                "best_epoch": clf.best_epoch_,
                "seconds": round(seconds, 1),
                "fit_examples": len(y) - es_examples,
                "early_stopping_examples": es_examples,
                "subset": subset,
                "date": _dt.date.today().isoformat(),
                "command": f"zoo train {name}" + (f" --epochs {epochs}" if epochs is not None else ""),
            },
            "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__},
            "licence": datasets.DATASETS[spec["dataset"]]["licence"],
        }
    )
    reg.put(entry)
    atomic_write_text(run_dir / "metrics.json", json.dumps({"name": name, "metrics": metrics, "training": entry["training"]}, indent=2))
    return entry
