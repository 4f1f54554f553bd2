"""Re-run a zoo recipe: seeded training with the classic Keras callbacks.

Each run writes into its run directory a CSV log (``training.csv``),
TensorBoard event files (``tensorboard/``, histograms every epoch), the best
checkpoint (``best.weights.h5``) and ``metrics.json``; then the weights (and
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
from zoo.registry import BUILDER_KINDS, Registry

__all__ = ["train"]


def _carve(y: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of the train split into (fit, early-stopping) indices."""
    from sklearn.model_selection import train_test_split

    fit_idx, es_idx = train_test_split(np.arange(len(y)), test_size=size, stratify=y, random_state=seed)
    return np.sort(fit_idx), np.sort(es_idx)


def _callbacks(cfg: dict, run_dir: Path):
    import keras

    c = cfg["callbacks"]
    return [
        keras.callbacks.EarlyStopping(**c["early_stopping"]),
        keras.callbacks.ModelCheckpoint(str(run_dir / "best.weights.h5"), **c["model_checkpoint"]),
        keras.callbacks.ReduceLROnPlateau(**c["reduce_lr_on_plateau"]),
        keras.callbacks.CSVLogger(str(run_dir / c["csv_logger"]["filename"])),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), **c["tensorboard"]),
    ]


def _adapt_vocabulary(builder: str, params: dict, texts: np.ndarray) -> list[str]:
    from zoo.architectures import text_vectorizer

    layer = text_vectorizer(builder, **{k: v for k, v in params.items() if k in ("max_tokens", "sequence_length", "ngrams")})
    layer.adapt(texts, batch_size=1024)
    return [str(t) for t in layer.get_vocabulary(include_special_tokens=False)]


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
        Train on the first ``subset`` examples and measure on the first
        ``subset`` of each split: a smoke test, recorded as such in the entry.
    verbose : int or "auto"
        Keras progress output.

    Returns
    -------
    dict
        The new registry entry.
    """
    import keras
    import tensorflow as tf

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

    keras.utils.set_random_seed(cfg["seed"])
    X, y = datasets.load(spec["dataset"], "train", data_dir)
    fit_idx, es_idx = _carve(y, cfg["early_stopping_size"], cfg["seed"])
    if subset is not None:
        fit_idx, es_idx = fit_idx[:subset], es_idx[: max(subset // 4, 32)]
    X_fit, y_fit, X_es, y_es = X[fit_idx], y[fit_idx], X[es_idx], y[es_idx]

    vocabulary = None
    if BUILDER_KINDS[spec["builder"]] == "text":
        vocabulary = _adapt_vocabulary(spec["builder"], spec["params"], X_fit)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(cfg["precision"])
    try:
        model = build_model(spec["builder"], spec["params"], cfg, vocabulary=vocabulary)
        start = time.perf_counter()
        callbacks = _callbacks(cfg, run_dir)
        history = model.fit(
            X_fit,
            y_fit,
            validation_data=(X_es, y_es),
            epochs=cfg["epochs"],
            batch_size=cfg["batch_size"],
            callbacks=callbacks,
            verbose=verbose,
        )
        seconds = time.perf_counter() - start
        model.load_weights(run_dir / "best.weights.h5")  # best epoch by the monitored early-stopping metric
    finally:
        keras.config.set_dtype_policy(previous_policy)
    early_stopping = next(c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping))
    best_epoch = early_stopping.best_epoch + 1  # its own record of the monitored best (0-based)
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
                "epochs_run": len(history.epoch),
                "best_epoch": best_epoch,
                "seconds": round(seconds, 1),
                "fit_examples": len(fit_idx),
                "early_stopping_examples": len(es_idx),
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
