"""The number of weights a builder makes, computed from its hyperparameters without building it.

Hyperparameters read from a file (a registry entry, a saved ensemble's
manifest, a pickled or skops ``ZooClassifier``) decide how much memory
building the model allocates: ``units=2**31 - 1`` asks TensorFlow for
terabytes before the weight file is even opened. So a model rebuilt from a
file is first *counted* here, in plain Python, and built only when its count
equals the number of values its weights hold (:func:`stored_parameters` reads
a ``.weights.h5`` file's shapes, not its data). What a build then allocates is
what the weight file already holds on disk.

Hyperparameters that size activations rather than weights (image sides, text
sequence length, n-gram order, pooling) are bounded by :data:`LIMITS`, far
above anything the zoo trains, so that prediction cannot be made to allocate
absurd amounts either.

The formulas follow :mod:`zoo.architectures` layer by layer; a test builds
each family with random hyperparameters and compares with Keras' own count.
The wide variants' channels (``width`` of ``bn_cnn`` and ``residual``) are
rounded by :func:`widened`, which the builders call too, so the two cannot
round apart; ``width`` is bounded by :data:`LIMITS` (activations grow with it).
"""

from __future__ import annotations

import math
import numbers
import os

__all__ = ["LIMITS", "HyperparameterError", "check_hyperparameters", "count_parameters", "stored_parameters", "widened"]

LIMITS = {
    "image_side": 1024,  # height and width of image inputs
    "channels": 16,  # image channels
    "sequence_length": 20_000,  # tokens per review
    "ngrams": 8,
    "depth": 64,  # stages, blocks, layers, modules
    "strides": 8,
    "width": 8,  # the image builders' width multiplier
}


class HyperparameterError(ValueError):
    """Hyperparameters are malformed, out of bounds, or do not match the stored weights."""


def _int(value, name: str, low: int = 1, high: int | None = None) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f"from {low}" + (f" to {high}" if high is not None else "")
        raise HyperparameterError(f"hyperparameter {name}={str(value)[:40]}: expected a whole number {bound}")
    return int(value)


def _ints(value, name: str, high_len: int = LIMITS["depth"], min_len: int = 0) -> list[int]:
    if not isinstance(value, (list, tuple)) or not min_len <= len(value) <= high_len:
        raise HyperparameterError(f"hyperparameter {name}={str(value)[:40]}: expected a list of {min_len} to {high_len} whole numbers")
    return [_int(v, f"{name}[{i}]") for i, v in enumerate(value)]


def widened(channels: int, width=1) -> int:
    """``channels`` times ``width``, rounded half up, at least 1: the channels of the wide variants.

    ``bn_cnn`` and ``residual`` (``zoo.architectures``) build with it and the
    counts here count with it, so both round alike; ``width=1`` gives
    ``channels`` unchanged.

    Raises
    ------
    HyperparameterError
        ``width`` is not a number in ``(0, LIMITS["width"]]``.
    """
    if not isinstance(width, numbers.Real) or isinstance(width, bool) or not math.isfinite(width) or not 0 < width <= LIMITS["width"]:
        raise HyperparameterError(f"hyperparameter width={str(width)[:40]}: expected a number above 0, at most {LIMITS['width']}")
    if width == 1:
        return channels
    return max(1, math.floor(channels * width + 0.5))


def _image_channels(params: dict) -> int:
    shape = params.get("input_shape", (28, 28, 1))
    if not isinstance(shape, (list, tuple)) or len(shape) != 3:
        raise HyperparameterError(f"hyperparameter input_shape={str(shape)[:40]}: image builders take (height, width, channels)")
    _int(shape[0], "input_shape[0]", high=LIMITS["image_side"])
    _int(shape[1], "input_shape[1]", high=LIMITS["image_side"])
    return _int(shape[2], "input_shape[2]", high=LIMITS["channels"])


def _conv_bn(cin: int, filters: int, kernel: int = 3) -> int:
    return kernel * kernel * cin * filters + 4 * filters  # conv without bias + BatchNormalization (4 vectors)


def _dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _mlp(p, _):
    shape = p.get("input_shape", (28, 28, 1))
    if isinstance(shape, (list, tuple)) and len(shape) == 1:
        d = _int(shape[0], "input_shape[0]")
        total = 2 * d + 1  # Normalization: mean, variance, count
    else:
        _image_channels(p)
        d = math.prod(int(s) for s in shape)
        total = 0
    for n in _ints(p.get("units", (512, 256)), "units"):
        total += _dense(d, n)
        d = n
    return total + _dense(d, _int(p.get("num_classes", 10), "num_classes", low=2))


def _bn_cnn(p, _):
    c = _image_channels(p)
    width = p.get("width", 1)
    total = 0
    for f in _ints(p.get("filters", (32, 64, 128)), "filters", min_len=1):
        f = widened(f, width)
        total += _conv_bn(c, f) + _conv_bn(f, f)
        c = f
    dense = widened(_int(p.get("dense", 128), "dense"), width)
    return total + _dense(c, dense) + _dense(dense, _int(p.get("num_classes", 10), "num_classes", low=2))


def _sepconv(p, _):
    c = _image_channels(p)
    stem = _int(p.get("stem", 32), "stem")
    total = _conv_bn(c, stem)
    c = stem
    for f in _ints(p.get("filters", (64, 128, 256)), "filters", min_len=1):
        for _part in "ab":
            total += 9 * c + c * f + 4 * f  # depthwise 3x3, pointwise 1x1 (no bias), BatchNormalization
            c = f
    return total + _dense(c, _int(p.get("num_classes", 10), "num_classes", low=2))


def _stem(p, width=1) -> tuple[int, int]:
    """Weights and output channels of the image input's strided conv-BN stem (residual, inception)."""
    c = _image_channels(p)
    stem = widened(_int(p.get("stem", 32), "stem"), width)
    _int(p.get("stem_strides", 1), "stem_strides", high=LIMITS["strides"])
    return _conv_bn(c, stem), stem


def _residual(p, _):
    width = p.get("width", 1)
    total, c = _stem(p, width)
    blocks = _int(p.get("blocks", 2), "blocks", high=LIMITS["depth"])
    for s, f in enumerate(_ints(p.get("filters", (32, 64, 128)), "filters", min_len=1)):
        f = widened(f, width)
        for b in range(blocks):
            total += _conv_bn(c, f) + _conv_bn(f, f)
            if (s > 0 and b == 0) or c != f:
                total += _conv_bn(c, f, kernel=1)  # projection shortcut
            c = f
    return total + _dense(c, _int(p.get("num_classes", 10), "num_classes", low=2))


def _inception(p, _):
    total, c = _stem(p)
    modules = p.get("modules", ((16, 32, 16, 16), (32, 64, 32, 32), (64, 96, 48, 32)))
    if not isinstance(modules, (list, tuple)) or not 1 <= len(modules) <= LIMITS["depth"]:
        raise HyperparameterError(f"hyperparameter modules={str(modules)[:40]}: expected 1 to {LIMITS['depth']} modules")
    for m, module in enumerate(modules):
        b1, b3, b3r, bp = _ints(module, f"modules[{m}]", high_len=4, min_len=4)
        total += _conv_bn(c, b1, 1) + _conv_bn(c, b3r, 1) + _conv_bn(b3r, b3, 3) + _conv_bn(c, bp, 1)
        c = b1 + b3 + bp
    return total + _dense(c, _int(p.get("num_classes", 10), "num_classes", low=2))


def _text_head(c: int, p) -> int:
    num_classes = _int(p.get("num_classes", 2), "num_classes", low=2)
    return _dense(c, 1 if num_classes == 2 else num_classes)


def _sequence(p, default: int) -> int:
    return _int(p.get("sequence_length", default), "sequence_length", high=LIMITS["sequence_length"])


def _text_conv1d(p, _):
    length = _sequence(p, 400)
    dim = _int(p.get("embedding_dim", 64), "embedding_dim")
    filters = _int(p.get("filters", 128), "filters")
    kernel = _int(p.get("kernel_size", 5), "kernel_size", high=length)
    layers = _int(p.get("conv_layers", 2), "conv_layers", high=LIMITS["depth"])
    _int(p.get("pool_size", 3), "pool_size", high=length)
    total = _int(p.get("max_tokens", 20000), "max_tokens") * dim
    c = dim
    for _layer in range(layers):
        total += kernel * c * filters + filters
        c = filters
    return total + _text_head(c, p)


def _text_rnn(p, _):
    _sequence(p, 300)
    dim = _int(p.get("embedding_dim", 64), "embedding_dim")
    units = _int(p.get("units", 32), "units")
    cell = p.get("cell", "gru")
    gates = {"gru": 3, "lstm": 4}.get(cell) if isinstance(cell, str) else None
    if gates is None:
        raise HyperparameterError(f"hyperparameter cell={str(p.get('cell'))[:40]!r}: expected 'gru' or 'lstm'")
    bias = 2 * gates * units if gates == 3 else gates * units  # Keras' GRU keeps two bias vectors (reset_after)
    per_direction = gates * (dim * units + units * units) + bias
    return _int(p.get("max_tokens", 20000), "max_tokens") * dim + 2 * per_direction + _text_head(2 * units, p)


def _text_bow(p, vocabulary_size):
    ngrams = p.get("ngrams", 2)
    if isinstance(ngrams, (list, tuple)):
        _ints(ngrams, "ngrams", high_len=LIMITS["ngrams"], min_len=1)
        if max(ngrams) > LIMITS["ngrams"]:
            raise HyperparameterError(f"hyperparameter ngrams={str(ngrams)[:40]}: n-grams of at most {LIMITS['ngrams']} tokens")
    elif ngrams is not None:
        _int(ngrams, "ngrams", high=LIMITS["ngrams"])
    max_tokens = _int(p.get("max_tokens", 20000), "max_tokens")
    width = max_tokens if vocabulary_size is None else vocabulary_size + 1  # multi-hot over the vocabulary and OOV
    units = _int(p.get("units", 16), "units")
    return _dense(width, units) + _text_head(units, p)


def _text_nb(p, vocabulary_size):
    if _int(p.get("num_classes", 2), "num_classes") != 2:
        raise HyperparameterError("text_nb takes two classes (num_classes=2)")
    _int(p.get("ngrams", 3), "ngrams", high=LIMITS["ngrams"])
    max_tokens = _int(p.get("max_tokens", 200000), "max_tokens")
    width = max_tokens if vocabulary_size is None else vocabulary_size + 1  # multi-hot over the vocabulary and OOV
    units = _int(p.get("units", 8), "units")
    return width + _dense(width, units) + _text_head(units, p)  # the naive-Bayes ratios, then the network


def _text_region_cnn(p, _):
    length = _sequence(p, 1000)
    region = _int(p.get("region", 3), "region", high=length)
    maps = _int(p.get("maps", 1000), "maps")
    mode, pooling = p.get("mode", "seq"), p.get("pooling", "max")
    if mode not in ("seq", "bow"):
        raise HyperparameterError(f"hyperparameter mode={str(mode)[:40]!r}: expected 'seq' or 'bow'")
    if pooling not in ("max", "average", "max_average"):
        raise HyperparameterError(f"hyperparameter pooling={str(pooling)[:40]!r}: expected 'max', 'average' or 'max_average'")
    tables = region if mode == "seq" else 1  # one embedding table per position of the region (seq), or one (bow)
    pooled = 2 * maps if pooling == "max_average" else maps
    return tables * _int(p.get("max_tokens", 30000), "max_tokens") * maps + _text_head(pooled, p)


_COUNTS = {
    "mlp": _mlp,
    "bn_cnn": _bn_cnn,
    "sepconv": _sepconv,
    "residual": _residual,
    "inception": _inception,
    "text_conv1d": _text_conv1d,
    "text_rnn": _text_rnn,
    "text_bow": _text_bow,
    "text_nb": _text_nb,
    "text_region_cnn": _text_region_cnn,
}


def count_parameters(builder: str, params: dict, vocabulary_size: int | None = None) -> int:
    """The number of weight values ``builder(**params)`` makes (trainable or not), without building it.

    Parameters
    ----------
    builder : str
        A name in :data:`zoo.architectures.BUILDERS`.
    params : dict
        Its hyperparameters (defaults apply to those left out).
    vocabulary_size : int, optional
        Tokens in a text model's vocabulary (``text_bow``'s and ``text_nb``'s input width depends on it).

    Raises
    ------
    HyperparameterError
        Unknown builder, malformed hyperparameters, or values beyond :data:`LIMITS`.
    """
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise HyperparameterError(f"hyperparameters must be a mapping of names, got {type(params).__name__}")
    count = _COUNTS.get(builder) if isinstance(builder, str) else None
    if count is None:
        raise HyperparameterError(f"unknown builder {str(builder)[:40]!r}; expected one of {', '.join(_COUNTS)}")
    return count(params, vocabulary_size)


def check_hyperparameters(builder: str, params: dict, parameters: int, vocabulary_size: int | None = None) -> None:
    """Refuse ``params`` unless ``builder`` would make exactly ``parameters`` weight values.

    Raises
    ------
    HyperparameterError
        The count differs (the hyperparameters do not belong to these weights), or see
        :func:`count_parameters`.
    """
    expected = count_parameters(builder, params, vocabulary_size)
    if expected != parameters:
        raise HyperparameterError(
            f"{builder} with these hyperparameters has {expected:,} weights, but its weights hold {parameters:,}: "
            "they do not belong together; refusing to build it"
        )


def stored_parameters(path: str | os.PathLike) -> int:
    """The number of model weight values in a Keras ``.weights.h5`` file, from its dataset shapes.

    No data is read. The optimizer's state, which Keras adds for a compiled
    model (the top-level ``optimizer`` group), is not a model weight and is
    not counted.

    Raises
    ------
    HyperparameterError
        The file is not a readable HDF5 weights file.
    """
    import h5py

    sizes = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not name.startswith("optimizer/"):
            sizes.append(math.prod(obj.shape or ()))

    try:
        with h5py.File(path, "r") as fh:
            fh.visititems(visit)
    except (OSError, ValueError, RuntimeError) as exc:  # h5py raises these for files that are not HDF5
        raise HyperparameterError(f"{os.fspath(path)} is not a readable .weights.h5 file ({exc})") from None
    return sum(sizes)
