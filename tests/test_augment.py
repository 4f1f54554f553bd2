"""Augmentation policies of ``zoo.augment``: inactive at inference, random and seeded in training, saved and trained.

Every check runs the real Keras layers on real MNIST / Fashion-MNIST images.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from zoo import datasets  # noqa: E402
from zoo.architectures import bn_cnn  # noqa: E402
from zoo.augment import POLICIES, RandomAffine, RandomErasing, RandomPixelShift, policy_layers  # noqa: E402

NEW_POLICIES = ["crop", "flip_crop", "digits", "flip_crop_erase", "digits_erase"]
SMALL = {"filters": (8, 16), "dense": 16}  # a bn_cnn that fits in seconds


@pytest.fixture(scope="module")
def images():
    """64 Fashion-MNIST and 64 MNIST test images as uint8, then scaled to [0, 1] as the models' ``rescale`` layer does."""
    raw = np.concatenate([datasets.load("fashion_mnist", "test")[0][:64], datasets.load("mnist", "test")[0][:64]])
    return raw, raw.astype("float32") / 255


def _apply(layers, x, training):
    for layer in layers:
        x = layer(x, training=training)
    return np.asarray(x)


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_is_identity_at_inference_and_random_seeded_in_training(images, name):
    _, x = images
    layers = policy_layers(name, seed=7)
    assert _apply(layers, x, training=False).tobytes() == x.tobytes()
    out = _apply(layers, x, training=True)
    assert out.shape == x.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    changed = np.any(out != x, axis=(1, 2, 3))
    assert changed.mean() > 0.5, f"{name} changed only {changed.mean():.0%} of the images"
    again = _apply(policy_layers(name, seed=7), x, training=True)
    assert np.array_equal(again, out), "same seed, different augmentation"
    other = _apply(policy_layers(name, seed=8), x, training=True)
    assert not np.array_equal(other, out), "another seed, the same augmentation"
    assert not np.array_equal(_apply(layers, x, training=True), out), "the second batch repeats the first one's draws"


def test_shift_and_flip_shift_keep_their_layers():
    """The policies shipped weights were trained with: the Keras layers, names and settings built before policies existed."""

    def config(layer):
        return type(layer).__name__, {k: v for k, v in layer.get_config().items() if k != "seed"}

    former_flip = keras.layers.RandomFlip("horizontal", name="random_flip")
    former_shift = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", name="random_shift")
    assert [config(layer) for layer in policy_layers("shift")] == [config(former_shift)]
    assert [config(layer) for layer in policy_layers("flip_shift")] == [config(former_flip), config(former_shift)]


def test_shift_and_flip_shift_draw_the_seeds_they_drew_before():
    """Under ``keras.utils.set_random_seed`` the shipped recipes' augmentation draws what it drew before policies."""

    def states(layers):
        return [np.asarray(v).tolist() for layer in layers for v in layer.variables]

    keras.utils.set_random_seed(123)
    former = [keras.layers.RandomFlip("horizontal", name="random_flip"), keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", name="random_shift")]
    keras.utils.set_random_seed(123)
    assert states(policy_layers("flip_shift")) == states(former)


def test_crop_is_a_pad_4_random_crop_per_image(images):
    _, x = images
    out = _apply([RandomPixelShift(4, seed=1)], x, training=True)
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    offsets = []
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(9) for dx in range(9) if np.array_equal(padded[i, dy : dy + 28, dx : dx + 28], out[i])]
        assert found, f"image {i} is no 28x28 window of the padded image"
        offsets.append(found[0])
    assert len(set(offsets)) > 20, "the crops do not vary from image to image"


def test_affine_keeps_the_centre_and_is_the_identity_without_range():
    rng = np.random.default_rng(0)
    x = rng.random((32, 29, 29, 1)).astype("float32")  # odd size: the centre is a pixel
    assert np.allclose(_apply([RandomAffine(0, 0, 0, seed=1)], x, training=True), x, atol=1e-6)
    out = _apply([RandomAffine(rotation=10, zoom=0.1, shift=0.0, seed=1)], x, training=True)
    assert np.allclose(out[:, 14, 14], x[:, 14, 14], atol=1e-5), "rotation and zoom must turn about the centre"
    assert not np.allclose(out, x, atol=1e-3)


def test_affine_shifts_by_at_most_the_fraction():
    x = np.zeros((64, 40, 40, 1), "float32")
    x[:, 19:21, 19:21] = 1.0
    out = _apply([RandomAffine(rotation=0, zoom=0, shift=0.1, seed=3)], x, training=True)
    ys, xs = np.indices((40, 40))
    mass = out[..., 0].sum(axis=(1, 2))
    centre = np.stack([(out[..., 0] * ys).sum(axis=(1, 2)) / mass, (out[..., 0] * xs).sum(axis=(1, 2)) / mass], 1) - 19.5
    assert np.abs(centre).max() <= 4.0 + 1e-4 and np.abs(centre).max() > 2.0


def test_erasing_erases_one_rectangle_within_the_area_and_aspect_bounds():
    n, size = 2000, 28
    ones = np.ones((n, size, size, 1), "float32")
    out = _apply([RandomErasing(probability=1.0, area=(0.02, 0.4), aspect=(0.3, 3.3), fill=0.0, seed=5)], ones, training=True)
    erased = out[..., 0] == 0
    rows, cols = erased.any(axis=2), erased.any(axis=1)
    h, w = rows.sum(axis=1), cols.sum(axis=1)
    assert np.array_equal(h * w, erased.sum(axis=(1, 2))), "the erased pixels are not one rectangle"
    rounding = (0.5 * (h + w) + 0.25) / size**2  # sides rounded to whole pixels
    fraction = h * w / size**2
    assert np.all(fraction >= 0.02 - rounding) and np.all(fraction <= 0.4 + rounding)
    assert fraction.min() < 0.05 and fraction.max() > 0.3, "the areas do not span their range"
    assert np.all(h >= 1) and np.all(w >= 1)
    aspect = h / w
    assert (aspect > 1.5).mean() > 0.2 and (aspect < 1 / 1.5).mean() > 0.2, "tall and wide rectangles both occur"
    top, left = rows.argmax(axis=1), cols.argmax(axis=1)
    assert top.min() == 0 and left.min() == 0 and (top + h).max() == size and (left + w).max() == size


def test_erasing_erases_half_the_images_with_noise_by_default(images):
    _, x = images
    many = np.repeat(np.ones_like(x[:1]), 2000, axis=0) * 2.0  # outside [0, 1): noise is told apart
    out = _apply([RandomErasing(seed=9)], many, training=True)
    touched = np.any(out != 2.0, axis=(1, 2, 3))
    assert 0.45 < touched.mean() < 0.55
    noise = out[out != 2.0]
    assert 0.0 <= noise.min() and noise.max() < 1.0 and noise.std() > 0.2


def test_layers_compute_in_bfloat16_under_a_mixed_policy(images):
    _, x = images
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layers = policy_layers("digits_erase", seed=1) + [RandomPixelShift(seed=2)]
        out = x
        for layer in layers:
            out = layer(out, training=True)
        assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    finally:
        keras.config.set_dtype_policy(previous)


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="augment must be one of"):
        bn_cnn(augment="sideways")
    with pytest.raises(ValueError, match="augment must be one of"):
        policy_layers("flip_digits")


@pytest.mark.parametrize("name", ["flip_crop_erase", "digits_erase"])
def test_predictions_do_not_depend_on_the_policy_and_weights_load_across(tmp_path, images, name):
    raw, _ = images
    augmented, plain = bn_cnn(augment=name, **SMALL), bn_cnn(**SMALL)
    assert len(augmented.weights) == len(plain.weights)
    plain.set_weights(augmented.get_weights())
    assert np.array_equal(augmented.predict(raw, verbose=0), plain.predict(raw, verbose=0))
    path = tmp_path / "augmented.weights.h5"
    augmented.save_weights(path)
    rebuilt = bn_cnn(augment=name, **SMALL)
    rebuilt.load_weights(path)
    assert np.array_equal(rebuilt.predict(raw, verbose=0), augmented.predict(raw, verbose=0))


@pytest.mark.parametrize("name", ["flip_crop_erase", "digits_erase"])
def test_keras_file_round_trip_in_safe_mode(tmp_path, images, name):
    raw, x = images
    model = bn_cnn(augment=name, **SMALL)
    aug_names = [layer.name for layer in policy_layers(name)]
    path = tmp_path / "augmented.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [type(loaded.get_layer(n)).__name__ for n in aug_names] == [type(model.get_layer(n)).__name__ for n in aug_names]
    assert [loaded.get_layer(n).get_config() for n in aug_names] == [model.get_layer(n).get_config() for n in aug_names]
    assert np.array_equal(loaded.predict(raw, verbose=0), model.predict(raw, verbose=0))
    after = _apply([loaded.get_layer(n) for n in aug_names], x, training=True)
    replay = _apply([model.get_layer(n) for n in aug_names], x, training=True)
    assert not np.array_equal(after, x)
    assert np.array_equal(after, replay), "a loaded model does not draw the augmentation its seeds fix"


@pytest.mark.parametrize("name", NEW_POLICIES)
def test_a_tiny_fit_runs_each_policy_in_training_mode_only(name):
    dataset = "mnist" if name.startswith("digits") else "fashion_mnist"
    X, y = datasets.load(dataset, "train")
    X, y = X[:256], y[:256]
    keras.utils.set_random_seed(0)
    model = bn_cnn(augment=name, **SMALL)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    aug = [model.get_layer(layer.name) for layer in policy_layers(name)]
    states = lambda: [np.asarray(v).copy() for layer in aug for v in layer.variables]  # noqa: E731  the seed generators
    start = states()
    history = model.fit(X, y, batch_size=64, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    trained = states()
    assert all(not np.array_equal(a, b) for a, b in zip(start, trained)), "an augmentation layer drew nothing in fit"
    model.predict(X[:64], verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(trained, states())), "an augmentation layer drew at inference"


def test_transform_policies_opt_out_of_xla_and_erasing_compiles(images):
    """ImageProjectiveTransformV3 has no XLA kernel: Keras must fall back (``jit_compile="auto"`` on a GPU) not crash."""
    raw, x = images
    y = np.arange(len(raw)) % 10
    for name in ["crop", "digits"]:
        model = bn_cnn(augment=name, **SMALL)
        with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=True)
        assert model.jit_compile is False
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(RandomErasing(seed=1)(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=True)
    assert model.jit_compile is True
    assert np.isfinite(model.fit(x, y, batch_size=64, epochs=1, verbose=0).history["loss"][0])
