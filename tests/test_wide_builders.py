"""Wider variants of ``bn_cnn`` and ``residual`` (the ``width`` hyperparameter).

Real Keras models, real Fashion-MNIST images (a few hundred) for the one tiny fit.
"""

import pickle
import warnings

import numpy as np
import pytest

import zoo
from zoo import datasets
from zoo.architectures import build
from zoo.estimator import TrainingWarning, ZooClassifier
from zoo.parameter_count import HyperparameterError, count_parameters, widened

WIDE = ("bn_cnn", "residual")


def _layout(model) -> list:
    return [(layer.name, type(layer).__name__, [tuple(w.shape) for w in layer.weights]) for layer in model.layers]


def test_width_one_builds_every_shipped_entry_exactly_as_before():
    entries = [(name, zoo.info(name)) for name in zoo.list_models()
               if zoo.info(name)["builder"] in WIDE and "width" not in zoo.info(name)["params"]]  # v2 entries set their own
    assert {e["builder"] for _, e in entries} == set(WIDE)
    for name, entry in entries:
        default = build(entry["builder"], **entry["params"])
        assert default.count_params() == entry["parameters"] == count_parameters(entry["builder"], entry["params"]), name
        assert _layout(build(entry["builder"], **entry["params"], width=1)) == _layout(default), name
        assert _layout(build(entry["builder"], **entry["params"], width=1.0)) == _layout(default), name
        wide = build(entry["builder"], **entry["params"], width=2)
        assert [layer.name for layer in wide.layers] == [layer.name for layer in default.layers]  # same layers, wider
        assert wide.count_params() > 3 * default.count_params()
    model = zoo.load("mnist_residual")  # the shipped weights still load into the default build
    assert model.count_params() == zoo.info("mnist_residual")["parameters"]


def test_the_two_named_wide_configurations_and_their_counts():
    bn = {"filters": (32, 64, 128), "dense": 128, "width": 2}
    res = {**{k: v for k, v in zoo.info("fashion_mnist_residual")["params"].items() if k not in ("input_shape", "num_classes", "augment")}, "width": 2}
    assert res == {"stem": 32, "stem_strides": 2, "filters": [32, 64, 128], "blocks": 1, "dropout": 0.2, "width": 2}
    for builder, params, count in (("bn_cnn", bn, 1_215_306), ("residual", res, 1_229_130)):
        model = build(builder, **params)
        assert model.count_params() == count_parameters(builder, params) == count
        assert 500_000 <= count <= 1_500_000
    first = build("bn_cnn", **bn).get_layer("stage0a_conv")
    assert first.filters == 64 and build("bn_cnn", **bn).get_layer("dense").units == 256
    assert build("residual", **res).get_layer("stem_conv").filters == 64


@pytest.mark.parametrize("width", [0.5, 0.7, 1.25, 1.5, 2, 3])
def test_wider_and_narrower_counts_match_keras(width):
    rng = np.random.default_rng(int(width * 100))
    for _ in range(2):
        filters = tuple(int(f) for f in rng.integers(1, 12, size=rng.integers(1, 4)))
        cases = [
            ("bn_cnn", {"input_shape": (12, 12, int(rng.integers(1, 4))), "filters": filters, "dense": int(rng.integers(1, 20)), "width": width}),
            ("residual", {"input_shape": (12, 12, int(rng.integers(1, 4))), "stem": int(rng.integers(1, 12)), "filters": filters,
                          "blocks": int(rng.integers(1, 3)), "stem_strides": int(rng.integers(1, 3)), "width": width}),
        ]
        for builder, params in cases:
            assert build(builder, **params).count_params() == count_parameters(builder, params), (builder, params)
    assert widened(5, 0.5) == 3 and widened(5, 0.7) == 4 and widened(1, 0.1) == 1 and widened(32, 1.25) == 40  # rounded half up, at least 1


@pytest.mark.parametrize("width", [0, -1, True, "2", float("nan"), float("inf"), 9, None])
def test_invalid_widths_are_refused_by_the_builder_and_the_count(width):
    for builder in WIDE:
        with pytest.raises(HyperparameterError, match="hyperparameter width=.*expected a number above 0, at most 8"):
            count_parameters(builder, {"width": width})
        with pytest.raises(HyperparameterError, match="hyperparameter width"):
            build(builder, input_shape=(8, 8, 1), filters=(4,), width=width)


def test_a_tiny_fit_of_a_wide_variant_trains_pickles_and_records_its_width(data_dir):
    X, y = datasets.load("fashion_mnist", "train")
    X, y = X[:240], y[:240]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)  # 2 epochs on 200 images: tiny on purpose
        clf = ZooClassifier("residual", builder__filters=(8, 16), builder__stem=8, builder__blocks=1, builder__width=1.5,
                            epochs=2, batch_size=32, early_stopping_size=40).fit(X, y)
    assert clf.spec_["params"]["width"] == 1.5
    assert clf.model_.get_layer("stage1_block0_1_conv").filters == 24 and clf.model_.get_layer("stem_conv").filters == 12
    assert clf.model_.count_params() == count_parameters("residual", clf.spec_["params"])
    assert len(clf.history_["loss"]) == 2 and np.isfinite(clf.history_["loss"]).all()
    proba = clf.predict_proba(X[:20])
    restored = pickle.loads(pickle.dumps(clf))  # rebuilt from the spec, its weights counted first
    np.testing.assert_allclose(restored.predict_proba(X[:20]), proba, atol=1e-6)
    assert ZooClassifier.from_spec(clf.spec_).get_params()["builder__width"] == 1.5
