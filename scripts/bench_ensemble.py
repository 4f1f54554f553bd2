"""Benchmark the ensemble package on Fashion-MNIST validation data; prints one table.

Measured side by side in one run:

1. BlendClassifier(method="mean") vs VotingClassifier(voting="soft") over the same
   prefit members: max |probability difference| (target <= 1e-12);
2. weight fitting time of slsqp / nnls / caruana for 8 members on 10,000 x 10-class
   validation predictions: noisy softmax outputs built from the real labels (target <= 0.5 s);
3. refitting a blend of Keras members on the same data with ``memory=``: warm vs cold
   (target >= 20x faster warm);
4. blend ``predict_proba`` vs the sum of its Keras members' own ``model.predict``
   (target <= 10% more), and the fused ``to_keras()`` model for comparison.

Keras members are small models trained here for one epoch; ``--zoo`` uses the
zoo's pretrained Fashion-MNIST models instead (``zoo.load``).

Usage: python scripts/bench_ensemble.py [--zoo] [--repeat 3]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline

from ensemble import BlendClassifier, KerasMember, solvers
from ensemble.preprocessing import Flatten
from zoo import datasets

BATCH = 256


def timed(fn, repeat=1):
    """Median wall time of ``fn()`` over ``repeat`` runs, and its last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def flat(est):
    return make_pipeline(Flatten(), est)


def train_keras_members(X, y):
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    bodies = {
        "mlp": [L.Flatten(), L.Dense(128, activation="relu")],
        "cnn": [L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(), L.Conv2D(32, 3, activation="relu"),
                L.MaxPooling2D(), L.Flatten(), L.Dense(64, activation="relu")],
        "wide_cnn": [L.Conv2D(32, 5, strides=2, activation="relu"), L.Flatten(), L.Dense(64, activation="relu")],
    }
    models = []
    for name, body in bodies.items():
        inputs = keras.Input((28, 28, 1), dtype="uint8")
        x = L.Rescaling(1 / 255)(inputs)
        for layer in body:
            x = layer(x)
        model = keras.Model(inputs, L.Dense(10, activation="softmax")(x), name=name)
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(X, y, epochs=1, batch_size=128, verbose=0)
        models.append(model)
    return models


def zoo_members():
    import zoo

    names = zoo.list_models("fashion_mnist_*")
    if len(names) < 2:
        raise SystemExit(f"--zoo needs at least two fashion_mnist models in the registry; found {names}")
    return [zoo.load(name) for name in names]


def noisy_softmax(y, m=8, k=10, seed=0):
    """``m`` members' probabilities around the true labels, from sharp to nearly random."""
    rng = np.random.default_rng(seed)
    P = []
    for i in range(m):
        logits = rng.normal(scale=1.0 + 0.25 * i, size=(len(y), k))
        logits[np.arange(len(y)), y] += 3.0 - 0.3 * i
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        P.append(e / e.sum(axis=1, keepdims=True))
    return np.stack(P)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", action="store_true", help="use the zoo's pretrained fashion_mnist models")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (median)")
    parser.add_argument("--train-size", type=int, default=10000, help="training images for the quick models")
    args = parser.parse_args()

    X, y = datasets.load("fashion_mnist", "train")
    X, y = X[: args.train_size], y[: args.train_size]
    Xv, yv = datasets.load("fashion_mnist", "validation")
    rows = []

    # (1) mean blend vs VotingClassifier over the same prefit members
    t, models = timed(lambda: zoo_members() if args.zoo else train_keras_members(X, y))
    print(f"{'loaded' if args.zoo else 'trained'} {len(models)} Keras members in {t:.1f} s: {[m.name for m in models]}")
    prefit = [(m.name, KerasMember(m, batch_size=BATCH)) for m in models] + [
        ("forest", FrozenEstimator(flat(RandomForestClassifier(50, random_state=0, n_jobs=1)).fit(X, y))),
        ("nb", FrozenEstimator(flat(GaussianNB()).fit(X, y))),
    ]
    blend = BlendClassifier(prefit).fit(Xv, yv)
    voting = VotingClassifier(prefit, voting="soft").fit(Xv, yv)
    diff = np.abs(blend.predict_proba(Xv) - voting.predict_proba(Xv)).max()
    rows.append(("(1) mean blend vs VotingClassifier soft: max |dp|", f"{diff:.1e}", "", "", "<= 1e-12", diff <= 1e-12))

    # (2) weight solvers, 8 members x 10,000 x 10 classes
    P = noisy_softmax(yv)
    mean_loss = log_loss(yv, P.mean(axis=0))
    for name, solve in [
        ("slsqp", lambda: solvers.slsqp_weights(P, yv)),
        ("nnls", lambda: solvers.nnls_weights(P, yv)),
        ("caruana", lambda: solvers.caruana_weights(P, yv)),
        ("caruana, 20 bags", lambda: solvers.caruana_weights(P, yv, n_bags=20, random_state=0)),
    ]:
        t, w = timed(solve, args.repeat)
        loss = log_loss(yv, np.tensordot(w, P, axes=1))
        label = f"(2) {name} weights: time (log loss {loss:.3f} vs mean {mean_loss:.3f})"
        rows.append((label, f"{t:.3f} s", "", "", "<= 0.5 s", t <= 0.5))

    # (3) memory: refit on the same validation data, warm vs cold
    keras_members = [(m.name, m) for m in models]
    with tempfile.TemporaryDirectory() as cache:
        cold, _ = timed(lambda: BlendClassifier(keras_members, method="slsqp", memory=cache).fit(Xv, yv))
        warm, _ = timed(lambda: BlendClassifier(keras_members, method="slsqp", memory=cache).fit(Xv, yv), args.repeat)
    speedup = cold / warm
    rows.append(("(3) slsqp refit with memory=: warm vs cold", f"{warm:.3f} s", f"{cold:.3f} s", f"{speedup:.0f}x faster", ">= 20x", speedup >= 20))

    # (4) predict overhead vs the members' own predicts, and the fused model
    blend = BlendClassifier([(m.name, KerasMember(m, batch_size=BATCH)) for m in models], method="slsqp").fit(Xv, yv)
    fused = blend.to_keras()
    for model in [*models, fused]:
        model.predict(Xv[:BATCH], batch_size=BATCH, verbose=0)  # build the predict functions
    runs = {"members": [], "blend": [], "fused": []}
    for _ in range(max(args.repeat, 5)):  # interleaved, so drifting machine load hits all three alike
        t, _ = timed(lambda: [m.predict(Xv, batch_size=BATCH, verbose=0) for m in models])
        runs["members"].append(t)
        t, proba = timed(lambda: blend.predict_proba(Xv))
        runs["blend"].append(t)
        t, fused_proba = timed(lambda: fused.predict(Xv, batch_size=BATCH, verbose=0))
        runs["fused"].append(t)
    members_time, blend_time, fused_time = (statistics.median(runs[k]) for k in ("members", "blend", "fused"))
    overhead = blend_time / members_time - 1
    times = f"{blend_time:.3f} s", f"{members_time:.3f} s"
    rows.append(("(4) blend predict_proba vs sum of member predicts", *times, f"{overhead:+.1%}", "<= +10%", overhead <= 0.10))
    fused_diff = np.abs(fused_proba - proba).max()
    times = f"{fused_time:.3f} s", f"{members_time:.3f} s"
    ok = fused_time < members_time and fused_diff <= 1e-5
    label = f"    to_keras() fused model (max |dp| {fused_diff:.1e})"
    rows.append((label, *times, f"{members_time / fused_time:.1f}x faster", "faster, 1e-5", ok))

    header = ("measurement", "ours", "baseline", "ratio", "target", "ok")
    table = [header] + [(*r[:5], "yes" if r[5] else "NO") for r in rows]
    widths = [max(len(str(r[j])) for r in table) for j in range(len(header))]
    for r in table:
        print("  ".join(str(c).ljust(w) if j == 0 else str(c).rjust(w) for j, (c, w) in enumerate(zip(r, widths))))


if __name__ == "__main__":
    main()
