"""Training-time image augmentation policies for the image builders.

A policy is a name (the builders' ``augment`` hyperparameter) for a short
list of Keras layers placed right after the model's ``Rescaling`` layer, so
they see pixels in [0, 1]. :data:`POLICIES` lists them with the zoo datasets
each suits; :func:`policy_layers` builds a policy's layers.

Design
------
* Inactive at inference: every layer returns its input unchanged unless
  called with ``training=True`` (``model.fit`` does), so a model predicts the
  same with or without its augmentation layers, for the same weights.
* No weights: the layers only hold a ``keras.random.SeedGenerator`` (state
  Keras keeps out of ``model.weights``), so weight files do not depend on the
  policy, and ``"shift"``/``"flip_shift"`` keep the layer names of the
  weights shipped before the other policies existed (``random_flip``,
  ``random_shift``).
* Seeded: each layer takes a ``seed``; without one :func:`policy_layers`
  draws it from Python's generator (seeded by ``keras.utils.set_random_seed``)
  exactly as Keras' random layers draw theirs, so ``"shift"`` and
  ``"flip_shift"`` get the seeds they got before; the seed is in each layer's
  config, so a loaded ``.keras`` model draws what the saved one would.
* One random rectangle, transform or shift per image, vectorised over the
  batch with ``keras.ops`` (graph mode, no per-image loop).
* Cheap on CPU (measured, batches of 256 28x28 images, ``tf.function``):
  the pad-4-and-crop of ``"crop"`` is an integer shift of up to 4 pixels with
  zero fill, done as one nearest-neighbour ``affine_transform`` (1.5 ms per
  batch; pad + per-image gathers 2.3 ms; Keras' ``RandomTranslation`` with
  nearest interpolation 2.3 ms, Keras' ``RandomCrop`` draws one crop per
  batch, not per image). ``"digits"`` composes rotation, zoom and shift into
  one bilinear transform (3.1 ms; Keras' ``RandomRotation`` +
  ``RandomZoom`` + ``RandomTranslation`` 6.6 ms and three interpolations).
  ``scripts/bench_augment.py`` measures whole epochs.
* Random erasing follows Zhong et al. (2020), "Random Erasing Data
  Augmentation", AAAI: with probability 0.5 one rectangle of 2-40 % of the
  image, aspect ratio 0.3-3.3, filled with uniform noise (their best
  variant). Instead of their rejection loop, the rectangle's sides are
  clipped to the image and its corner drawn among the positions where it
  fits.
* XLA: TensorFlow's ``ImageProjectiveTransformV3`` (behind Keras'
  ``RandomTranslation`` too) has no XLA kernel, so ``RandomPixelShift`` and
  ``RandomAffine`` say ``supports_jit = False`` and Keras compiles such
  models without XLA (``jit_compile="auto"``, on a GPU); ``RandomErasing``
  is plain tensor ops and compiles.
* Flips suit clothing (Fashion-MNIST), never digits (a mirrored 2 is no
  digit); the builder does not know its data, so the table says which policy
  suits which data and the choice is the caller's.

A ``.keras`` file of a model with these layers loads (``safe_mode=True``)
once ``zoo.augment`` is imported: the layers are registered as ``zoo>...``.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Callable, NamedTuple

import keras
from keras import layers, ops

__all__ = ["POLICIES", "Policy", "RandomAffine", "RandomErasing", "RandomPixelShift", "policy_layers"]


def _resolve_seed(seed: int | None) -> int:
    """``seed``, or one drawn from Python's generator, as Keras' random layers do (``keras.utils.set_random_seed`` seeds it)."""
    return int(seed) if seed is not None else random.randint(1, 10**9)


def _image_size(inputs) -> tuple[int, int]:
    if len(inputs.shape) != 4 or inputs.shape[1] is None or inputs.shape[2] is None:
        raise ValueError(f"expected a batch of images (batch, height, width, channels) of known size, got shape {inputs.shape}")
    return int(inputs.shape[1]), int(inputs.shape[2])


class _RandomImageLayer(layers.Layer):
    """Base: identity at inference, a seeded generator for training."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = _resolve_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, inputs, training=None):
        inputs = ops.cast(inputs, self.compute_dtype)
        if not training:
            return inputs
        return self._augment(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _affine(images, a, b, c, d, tx, ty, interpolation: str):
    """``ops.image.affine_transform`` with per-image rows: input point = [[a, b], [c, d]] @ output + (tx, ty)."""
    zeros = ops.zeros_like(a)
    transform = ops.stack([a, b, tx, c, d, ty, zeros, zeros], axis=1)
    dtype = images.dtype
    out = ops.image.affine_transform(ops.cast(images, "float32"), transform, interpolation=interpolation, fill_mode="constant", fill_value=0)
    return ops.cast(out, dtype)


@keras.saving.register_keras_serializable(package="zoo")
class RandomPixelShift(_RandomImageLayer):
    """Shift each image by a whole number of pixels, filling with zeros.

    The same as padding by ``pixels`` zeros and cropping a random window of
    the original size: shifts are drawn uniformly from ``-pixels..pixels``
    along each axis, independently per image. Identity at inference.

    Parameters
    ----------
    pixels : int, default 4
        Largest shift, in pixels.
    seed : int, optional
        Seed of the layer's random generator.
    **kwargs
        Passed to ``keras.layers.Layer`` (``name``, ``dtype``).
    """

    def __init__(self, pixels: int = 4, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if int(pixels) != pixels or pixels < 0:
            raise ValueError(f"pixels must be a non-negative integer, got {pixels!r}")
        self.pixels = int(pixels)
        self.supports_jit = False  # ImageProjectiveTransformV3 has no XLA kernel (as Keras' RandomTranslation)

    def _augment(self, images):
        _image_size(images)
        n = ops.shape(images)[0]
        shift = ops.cast(keras.random.randint((n, 2), -self.pixels, self.pixels + 1, seed=self.seed_generator), "float32")
        ones, zeros = ops.ones((n,)), ops.zeros((n,))
        return _affine(images, ones, zeros, zeros, ones, shift[:, 0], shift[:, 1], "nearest")

    def get_config(self):
        return {**super().get_config(), "pixels": self.pixels}


@keras.saving.register_keras_serializable(package="zoo")
class RandomAffine(_RandomImageLayer):
    """Rotate, zoom and shift each image in one bilinear transform, filling with zeros.

    Per image: an angle uniform in ``[-rotation, rotation]`` degrees about the
    centre, one zoom factor uniform in ``[1 - zoom, 1 + zoom]`` (aspect ratio
    kept; above 1 enlarges), and shifts uniform in ``[-shift, shift]`` times
    the height and the width. Identity at inference.

    Parameters
    ----------
    rotation : float, default 10.0
        Largest rotation, in degrees.
    zoom : float, default 0.1
        Largest relative change of scale.
    shift : float, default 0.1
        Largest shift, as a fraction of the image's height and width.
    seed : int, optional
        Seed of the layer's random generator.
    **kwargs
        Passed to ``keras.layers.Layer`` (``name``, ``dtype``).
    """

    def __init__(self, rotation: float = 10.0, zoom: float = 0.1, shift: float = 0.1, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not (0 <= zoom < 1):
            raise ValueError(f"zoom must be in [0, 1), got {zoom!r}")
        self.rotation, self.zoom, self.shift = float(rotation), float(zoom), float(shift)
        self.supports_jit = False  # ImageProjectiveTransformV3 has no XLA kernel (as Keras' RandomRotation)

    def _augment(self, images):
        height, width = _image_size(images)
        n = ops.shape(images)[0]
        angle = keras.random.uniform((n,), -1.0, 1.0, seed=self.seed_generator) * (self.rotation * math.pi / 180)
        scale = keras.random.uniform((n,), 1.0 - self.zoom, 1.0 + self.zoom, seed=self.seed_generator)
        shift = keras.random.uniform((n, 2), -self.shift, self.shift, seed=self.seed_generator) * ops.convert_to_tensor([width, height], "float32")
        # output = centre + scale * R(angle) @ (input - centre) + shift, inverted: input = M @ output + offset
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        cx, cy = (width - 1) / 2, (height - 1) / 2
        ux, uy = -cx - shift[:, 0], -cy - shift[:, 1]
        return _affine(images, cos, sin, -sin, cos, cos * ux + sin * uy + cx, -sin * ux + cos * uy + cy, "bilinear")

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom, "shift": self.shift}


@keras.saving.register_keras_serializable(package="zoo")
class RandomErasing(_RandomImageLayer):
    """Random erasing (Zhong et al. 2020): overwrite one random rectangle per image.

    With probability ``probability`` an image gets one rectangle whose area
    is a fraction of the image uniform in ``area`` and whose aspect ratio
    (height / width) is log-uniform in ``aspect``; its sides are rounded and
    clipped to the image, its corner uniform among the positions where it
    fits. The rectangle is filled with uniform noise in [0, 1) (images
    scaled to [0, 1]) or a constant. Identity at inference.

    Parameters
    ----------
    probability : float, default 0.5
        Probability that an image is erased.
    area : tuple of float, default (0.02, 0.4)
        Range of the rectangle's area, as a fraction of the image's.
    aspect : tuple of float, default (0.3, 3.3)
        Range of the rectangle's height / width.
    fill : "random" or float, default "random"
        Uniform noise in [0, 1), or this constant.
    seed : int, optional
        Seed of the layer's random generator.
    **kwargs
        Passed to ``keras.layers.Layer`` (``name``, ``dtype``).
    """

    def __init__(self, probability: float = 0.5, area=(0.02, 0.4), aspect=(0.3, 3.3), fill="random", seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        area, aspect = tuple(float(v) for v in area), tuple(float(v) for v in aspect)
        if not (0 <= probability <= 1):
            raise ValueError(f"probability must be in [0, 1], got {probability!r}")
        if len(area) != 2 or not (0 < area[0] <= area[1] <= 1):
            raise ValueError(f"area must be (low, high) with 0 < low <= high <= 1, got {area!r}")
        if len(aspect) != 2 or not (0 < aspect[0] <= aspect[1]):
            raise ValueError(f"aspect must be (low, high) with 0 < low <= high, got {aspect!r}")
        if fill != "random" and not isinstance(fill, (int, float)):
            raise ValueError(f"fill must be 'random' or a number, got {fill!r}")
        self.probability, self.area, self.aspect, self.fill = float(probability), area, aspect, fill

    def _augment(self, images):
        height, width = _image_size(images)
        n = ops.shape(images)[0]
        rand = self.seed_generator
        target = keras.random.uniform((n,), self.area[0], self.area[1], seed=rand) * (height * width)
        ratio = ops.exp(keras.random.uniform((n,), math.log(self.aspect[0]), math.log(self.aspect[1]), seed=rand))
        h = ops.clip(ops.round(ops.sqrt(target * ratio)), 1, height)
        w = ops.clip(ops.round(ops.sqrt(target / ratio)), 1, width)
        top = ops.floor(keras.random.uniform((n,), seed=rand) * (height - h + 1))
        left = ops.floor(keras.random.uniform((n,), seed=rand) * (width - w + 1))
        rows = ops.arange(height, dtype="float32")[None, :]
        cols = ops.arange(width, dtype="float32")[None, :]
        in_rows = ops.logical_and(rows >= top[:, None], rows < (top + h)[:, None])
        in_cols = ops.logical_and(cols >= left[:, None], cols < (left + w)[:, None])
        erased = keras.random.uniform((n,), seed=rand) < self.probability
        mask = ops.logical_and(ops.logical_and(in_rows[:, :, None], in_cols[:, None, :]), erased[:, None, None])
        if self.fill == "random":
            value = ops.cast(keras.random.uniform(ops.shape(images), seed=rand), images.dtype)
        else:
            value = ops.cast(self.fill, images.dtype)
        return ops.where(mask[..., None], value, images)

    def get_config(self):
        return {**super().get_config(), "probability": self.probability, "area": self.area, "aspect": self.aspect, "fill": self.fill}


# --------------------------------------------------------------------------- policies


class Policy(NamedTuple):
    """One augmentation policy: what it does, the zoo datasets it suits, its layers."""

    description: str
    datasets: tuple[str, ...]
    layers: Callable[[Callable[[], int | None]], list]


def _flip(seed):
    return layers.RandomFlip("horizontal", seed=seed(), name="random_flip")


def _shift(seed):
    return layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed(), name="random_shift")


def _crop(seed):
    return RandomPixelShift(4, seed=seed(), name="random_crop")


def _digits(seed):
    return RandomAffine(rotation=10.0, zoom=0.1, shift=0.1, seed=seed(), name="random_affine")


def _erase(seed):
    return RandomErasing(seed=seed(), name="random_erasing")


POLICIES: dict[str, Policy] = {
    "shift": Policy("random shifts of up to 10 % (bilinear)", ("mnist", "fashion_mnist"), lambda s: [_shift(s)]),
    "flip_shift": Policy("horizontal flips, then shifts of up to 10 %", ("fashion_mnist",), lambda s: [_flip(s), _shift(s)]),
    "crop": Policy("pad by 4 pixels and crop back at random (whole-pixel shifts of up to 4)", ("mnist", "fashion_mnist"), lambda s: [_crop(s)]),
    "flip_crop": Policy("horizontal flips, then pad-4 random crops", ("fashion_mnist",), lambda s: [_flip(s), _crop(s)]),
    "digits": Policy("rotations of up to 10 degrees, zooms of up to 10 %, shifts of up to 10 %", ("mnist",), lambda s: [_digits(s)]),
    "flip_crop_erase": Policy("flip_crop, then random erasing", ("fashion_mnist",), lambda s: [_flip(s), _crop(s), _erase(s)]),
    "digits_erase": Policy("digits, then random erasing", ("mnist",), lambda s: [_digits(s), _erase(s)]),
}
"""Policy name -> :class:`Policy`. Flips suit clothing, never digits."""


def policy_layers(name: str | None, seed: int | None = None) -> list:
    """The layers of augmentation policy ``name``, freshly built.

    Parameters
    ----------
    name : str or None
        A key of :data:`POLICIES`; None gives no layers.
    seed : int, optional
        Seed of the first layer; the next layers get ``seed + 1``, ``seed + 2``...
        Without one, each layer draws its seed from Python's generator
        (seeded by ``keras.utils.set_random_seed``).

    Returns
    -------
    list of keras.layers.Layer
        To apply in order, after rescaling to [0, 1].
    """
    if name is None:
        return []
    if name not in POLICIES:
        raise ValueError(f"augment must be one of {(None, *POLICIES)}, got {name!r}")
    offsets = itertools.count()

    def next_seed():
        i = next(offsets)  # drawn in the layers' order, as Keras' layers would draw them for themselves
        return _resolve_seed(None) if seed is None else int(seed) + i

    return POLICIES[name].layers(next_seed)
