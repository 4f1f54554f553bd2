"""The text_region_cnn builder (Johnson & Zhang's region CNN over one-hot words), on real IMDB reviews."""

import keras
import numpy as np
import pytest
import yaml

import zoo
from zoo import Registry, ZooClassifier, datasets
from zoo.architectures import build
from zoo.library import write_model
from zoo.models import predict_proba, scores
from zoo.parameter_count import HyperparameterError, count_parameters

SMALL = {"max_tokens": 3000, "sequence_length": 200, "maps": 16}


@pytest.fixture(scope="module")
def reviews(data_dir):
    X, y = datasets.load("imdb", "train", data_dir)
    Xv, yv = datasets.load("imdb", "validation", data_dir)
    return X[:600], y[:600], Xv[:200], yv[:200]


@pytest.mark.parametrize("params", [{"mode": "seq"}, {"mode": "bow", "pooling": "max_average"}, {"mode": "seq", "region": 1, "pooling": "average"},
                                    {"mode": "bow", "region": 4, "num_classes": 3}])
def test_shapes_and_parameter_counts(params):
    vocabulary = [f"w{i}" for i in range(40)]
    p = {"max_tokens": 50, "sequence_length": 12, "maps": 5, **params}
    model = build("text_region_cnn", vocabulary=vocabulary, **p)
    out = model.predict(np.array(["w1 w2 w3 w4 w5", "w7", "unknown words only", ""], dtype=object), verbose=0)
    assert out.shape == (4, 1 if p.get("num_classes", 2) == 2 else 3)
    assert model.count_params() == count_parameters("text_region_cnn", p, len(vocabulary))


def test_seq_mode_keeps_the_word_order_inside_a_region_and_bow_mode_does_not():
    vocabulary = ["good", "not"]
    texts = np.array(["not good", "good not"], dtype=object)
    for mode, differ in (("seq", True), ("bow", False)):
        model = build("text_region_cnn", vocabulary=vocabulary, max_tokens=4, sequence_length=2, region=2, maps=8, mode=mode)
        rng = np.random.default_rng(0)
        model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
        p = model.predict(texts, verbose=0).ravel()
        assert (abs(p[0] - p[1]) > 1e-4) == differ, mode


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="mode"):
        build("text_region_cnn", vocabulary=["a"], mode="conv")
    with pytest.raises(ValueError, match="pooling"):
        build("text_region_cnn", vocabulary=["a"], pooling="sum")
    with pytest.raises(ValueError, match="region"):
        build("text_region_cnn", vocabulary=["a"], sequence_length=3, region=4)
    with pytest.raises(HyperparameterError, match="mode"):
        count_parameters("text_region_cnn", {"mode": "conv"})
    with pytest.raises(HyperparameterError, match="region"):
        count_parameters("text_region_cnn", {"sequence_length": 3, "region": 4})


def test_a_small_region_cnn_learns_and_round_trips_through_keras_and_zoo_load(tmp_path, reviews):
    X, y, Xv, yv = reviews
    clf = ZooClassifier("text_region_cnn", **{f"builder__{k}": v for k, v in SMALL.items()}, epochs=4, batch_size=16, learning_rate=1e-2,
                        early_stopping_size=None, random_state=0)
    clf.fit(X, y)
    proba = clf.predict_proba(Xv)
    assert proba.shape == (len(Xv), 2)
    assert (proba.argmax(axis=1) == yv).mean() > 0.65  # 600 reviews; a constant guess is about 0.5

    expected = clf.model_.predict(Xv[:50], verbose=0)
    clf.model_.save(tmp_path / "region.keras")
    loaded = keras.saving.load_model(tmp_path / "region.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(Xv[:50], verbose=0), expected, atol=1e-6)

    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"format_version": 1, "models": []}))
    registry = Registry(path)
    metrics = {split: scores(yv, proba) for split in ("validation", "test")}
    entry = write_model(clf, registry.weights_dir, "imdb_region_small", dataset="imdb", seconds=1.0, examples=len(y), metrics=metrics)
    registry.put(entry)
    assert entry["parameters"] == count_parameters("text_region_cnn", entry["params"])
    model = zoo.load("imdb_region_small", registry=Registry(path))
    np.testing.assert_allclose(predict_proba(model, Xv[:50])[:, 1], expected.ravel(), atol=1e-6)
