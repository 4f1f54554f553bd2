"""Model builders, one per architecture family, all with the functional API.

Every builder takes raw inputs (uint8 images or raw strings) and keeps its
preprocessing (``Rescaling``, ``TextVectorization``) inside the model, so a
loaded model predicts straight from what ``zoo.datasets.load`` returns.
Image models end in a softmax over the classes; two-class text models in a
single sigmoid unit (probability of the positive class), text models with more
classes in a softmax. ``mlp`` also takes float feature vectors (an
``input_shape`` of length one). Output layers compute in float32, so models
trained under a ``mixed_bfloat16`` policy stay stable.

Wide variants: ``bn_cnn`` and ``residual`` take ``width``, a multiplier of
their channel counts (``filters`` and ``dense``; ``stem`` and ``filters``),
rounded half up by ``zoo.parameter_count.widened``. A multiplier rather than
wider defaults: ``width=1`` (the default) builds the shipped models exactly
(same layers, names and weights, so their weight files load), the layer names
do not depend on it, and one number scales a tuned configuration. ``width=2``
on the shipped configurations gives about 1.2M weights each (README,
"Weight averaging and wider variants").
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from zoo.augment import POLICIES, policy_layers
from zoo.naive_bayes import NBScale, standardize_text
from zoo.parameter_count import widened

__all__ = ["BUILDERS", "bn_cnn", "build", "inception", "mlp", "residual", "sepconv", "text_bow", "text_conv1d", "text_nb", "text_region_cnn", "text_rnn", "text_vectorizer"]


# --------------------------------------------------------------------------- images


_AUGMENTATIONS = (None, *POLICIES)


def _image_input(input_shape: Sequence[int], augment: str | None = None):
    """uint8 image input, scaled to [0, 1], then training-time augmentation.

    ``augment``: None or a policy of :data:`zoo.augment.POLICIES` (``"shift"``,
    ``"flip_shift"``, ``"crop"``, ``"flip_crop"``, ``"digits"``,
    ``"flip_crop_erase"``, ``"digits_erase"``); flips suit clothing, not digits.
    The augmentation layers are inactive at inference.
    """
    if augment not in _AUGMENTATIONS:
        raise ValueError(f"augment must be one of {_AUGMENTATIONS}, got {augment!r}")
    if len(input_shape) != 3:
        raise ValueError(f"image builders take an input_shape (height, width, channels), got {tuple(input_shape)}")
    inputs = keras.Input(shape=tuple(input_shape), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for layer in policy_layers(augment):
        x = layer(x)
    return inputs, x


def _head(x, num_classes: int, dropout: float):
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)


# BatchNormalization momentum for every BN family: 0.9 (Keras' default is 0.99) lets the
# moving statistics used at inference catch up within one epoch of these short recipes.
BN_MOMENTUM = 0.9


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, name: str = "", activation: bool = True):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if activation else x


def mlp(input_shape=(28, 28, 1), num_classes=10, units=(512, 256), dropout=0.3):
    """Dense baseline: Flatten, then Dense + Dropout layers.

    An ``input_shape`` of length one, ``(d,)``, takes float feature vectors
    instead of images: they are standardised by a ``Normalization`` layer
    named ``"normalize"``, to be adapted on training data before fitting.

    Parameters
    ----------
    input_shape : tuple of int, default (28, 28, 1)
        Shape of one input: an image (height, width, channels) of uint8
        pixels, or ``(d,)`` for float feature vectors.
    num_classes : int, default 10
        Number of classes of the softmax output.
    units : tuple of int, default (512, 256)
        Width of each hidden Dense layer.
    dropout : float, default 0.3
        Dropout rate after each hidden layer.

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    if len(input_shape) == 1:
        inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="features")
        x = layers.Normalization(name="normalize")(inputs)
    else:
        inputs, x = _image_input(input_shape)
        x = layers.Flatten(name="flatten")(x)
    for i, n in enumerate(units):
        x = layers.Dense(n, activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")


def bn_cnn(input_shape=(28, 28, 1), num_classes=10, filters=(32, 64, 128), dense=128, dropout=0.3, augment=None, width=1):
    """Conv2D + BatchNormalization CNN: per stage two conv-BN-ReLU and a max-pool.

    Parameters
    ----------
    input_shape : tuple of int, default (28, 28, 1)
        Shape of one input image, (height, width, channels); uint8 pixels.
    num_classes : int, default 10
        Number of classes of the softmax output.
    filters : tuple of int, default (32, 64, 128)
        Filters of the two convolutions of each stage (one stage per value).
    dense : int, default 128
        Width of the Dense layer after global average pooling.
    dropout : float, default 0.3
        Dropout rate before the output layer.
    augment : {None, "shift", "flip_shift", "crop", "flip_crop", "digits", "flip_crop_erase", "digits_erase"}, default None
        Training-time augmentation policy (``zoo.augment.POLICIES``): shifts
        up to 10 % (``"shift"``), pad-4 random crops (``"crop"``), rotation +
        zoom + shift (``"digits"``, for digits), ``"flip_"`` adds horizontal
        flips (clothing, never digits), ``"_erase"`` random erasing.
    width : float, default 1
        Multiplier of ``filters`` and ``dense`` (rounded half up): ``2`` is
        the wide variant (about 1.2M weights on 28x28x1); ``1`` builds the
        shipped models exactly.

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    inputs, x = _image_input(input_shape, augment)
    filters, dense = [widened(f, width) for f in filters], widened(dense, width)
    for s, f in enumerate(filters):
        x = _conv_bn(x, f, name=f"stage{s}a")
        x = _conv_bn(x, f, name=f"stage{s}b")
        if s < len(filters) - 1:
            x = layers.MaxPooling2D(2, name=f"stage{s}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(dense, activation="relu", name="dense")(x)
    return keras.Model(inputs, _head(x, num_classes, dropout), name="bn_cnn")


def sepconv(input_shape=(28, 28, 1), num_classes=10, stem=32, filters=(64, 128, 256), dropout=0.3, augment=None):
    """Separable convnet: a strided Conv2D stem, then SeparableConv2D + BN stages.

    Parameters
    ----------
    input_shape : tuple of int, default (28, 28, 1)
        Shape of one input image, (height, width, channels); uint8 pixels.
    num_classes : int, default 10
        Number of classes of the softmax output.
    stem : int, default 32
        Filters of the stride-2 Conv2D stem.
    filters : tuple of int, default (64, 128, 256)
        Filters of the two separable convolutions of each stage.
    dropout : float, default 0.3
        Dropout rate before the output layer.
    augment : {None, "shift", "flip_shift", "crop", "flip_crop", "digits", "flip_crop_erase", "digits_erase"}, default None
        Training-time augmentation policy (``zoo.augment.POLICIES``): shifts
        up to 10 % (``"shift"``), pad-4 random crops (``"crop"``), rotation +
        zoom + shift (``"digits"``, for digits), ``"flip_"`` adds horizontal
        flips (clothing, never digits), ``"_erase"`` random erasing.

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    inputs, x = _image_input(input_shape, augment)
    x = _conv_bn(x, stem, strides=2, name="stem")  # 28x28 -> 14x14 keeps the separable stages cheap
    for s, f in enumerate(filters):
        for part in "ab":
            x = layers.SeparableConv2D(f, 3, padding="same", use_bias=False, name=f"stage{s}{part}_sepconv")(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"stage{s}{part}_bn")(x)
            x = layers.Activation("relu", name=f"stage{s}{part}_relu")(x)
        if s < len(filters) - 1:
            x = layers.MaxPooling2D(2, padding="same", name=f"stage{s}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, _head(x, num_classes, dropout), name="sepconv")


def _residual_block(x, filters: int, strides: int, name: str):
    shortcut = x
    y = _conv_bn(x, filters, strides=strides, name=f"{name}_1")
    y = _conv_bn(y, filters, name=f"{name}_2", activation=False)
    if strides != 1 or x.shape[-1] != filters:  # 1x1 projection shortcut
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj_conv")(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def residual(input_shape=(28, 28, 1), num_classes=10, stem=32, stem_strides=1, filters=(32, 64, 128), blocks=2, dropout=0.2, augment=None, width=1):
    """Residual CNN: identity shortcuts inside a stage, 1x1 projections between stages.

    Parameters
    ----------
    input_shape : tuple of int, default (28, 28, 1)
        Shape of one input image, (height, width, channels); uint8 pixels.
    num_classes : int, default 10
        Number of classes of the softmax output.
    stem : int, default 32
        Filters of the stem convolution.
    stem_strides : int, default 1
        Strides of the stem convolution (2 halves the resolution early).
    filters : tuple of int, default (32, 64, 128)
        Filters of each stage's residual blocks; stages after the first
        start with a stride-2 block.
    blocks : int, default 2
        Residual blocks per stage.
    dropout : float, default 0.2
        Dropout rate before the output layer.
    augment : {None, "shift", "flip_shift", "crop", "flip_crop", "digits", "flip_crop_erase", "digits_erase"}, default None
        Training-time augmentation policy (``zoo.augment.POLICIES``): shifts
        up to 10 % (``"shift"``), pad-4 random crops (``"crop"``), rotation +
        zoom + shift (``"digits"``, for digits), ``"flip_"`` adds horizontal
        flips (clothing, never digits), ``"_erase"`` random erasing.
    width : float, default 1
        Multiplier of ``stem`` and ``filters`` (rounded half up): ``2``
        with the shipped models' ``stem_strides=2, blocks=1`` is the wide
        variant (about 1.2M weights on 28x28x1); ``1`` builds them exactly.

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    inputs, x = _image_input(input_shape, augment)
    stem, filters = widened(stem, width), [widened(f, width) for f in filters]
    x = _conv_bn(x, stem, strides=stem_strides, name="stem")
    for s, f in enumerate(filters):
        for b in range(blocks):
            strides = 2 if (s > 0 and b == 0) else 1
            x = _residual_block(x, f, strides, name=f"stage{s}_block{b}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, _head(x, num_classes, dropout), name="residual")


def _inception_module(x, b1: int, b3: int, b3_reduce: int, bpool: int, name: str):
    branch1 = _conv_bn(x, b1, kernel=1, name=f"{name}_1x1")
    branch3 = _conv_bn(x, b3_reduce, kernel=1, name=f"{name}_3x3reduce")
    branch3 = _conv_bn(branch3, b3, kernel=3, name=f"{name}_3x3")
    pooled = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    pooled = _conv_bn(pooled, bpool, kernel=1, name=f"{name}_poolproj")
    return layers.Concatenate(name=f"{name}_concat")([branch1, branch3, pooled])


def inception(
    input_shape=(28, 28, 1),
    num_classes=10,
    stem=32,
    stem_strides=1,
    modules=((16, 32, 16, 16), (32, 64, 32, 32), (64, 96, 48, 32)),
    dropout=0.3,
    augment=None,
):
    """Inception-style CNN: modules of parallel 1x1, 3x3 and pooled branches, concatenated.

    ``modules`` holds, per module, the filters of the 1x1 branch, the 3x3
    branch, the 1x1 reduction before the 3x3, and the pooled branch's 1x1.

    Parameters
    ----------
    input_shape : tuple of int, default (28, 28, 1)
        Shape of one input image, (height, width, channels); uint8 pixels.
    num_classes : int, default 10
        Number of classes of the softmax output.
    stem : int, default 32
        Filters of the stem convolution.
    stem_strides : int, default 1
        Strides of the stem convolution (2 halves the resolution early).
    modules : tuple of tuple of int, default ((16, 32, 16, 16), (32, 64, 32, 32), (64, 96, 48, 32))
        Per module: filters of the 1x1, 3x3, 3x3-reduction and pooled
        branches; modules after the first are preceded by a max-pool.
    dropout : float, default 0.3
        Dropout rate before the output layer.
    augment : {None, "shift", "flip_shift", "crop", "flip_crop", "digits", "flip_crop_erase", "digits_erase"}, default None
        Training-time augmentation policy (``zoo.augment.POLICIES``): shifts
        up to 10 % (``"shift"``), pad-4 random crops (``"crop"``), rotation +
        zoom + shift (``"digits"``, for digits), ``"flip_"`` adds horizontal
        flips (clothing, never digits), ``"_erase"`` random erasing.

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    inputs, x = _image_input(input_shape, augment)
    x = _conv_bn(x, stem, strides=stem_strides, name="stem")
    for m, (b1, b3, b3r, bp) in enumerate(modules):
        if m > 0:
            x = layers.MaxPooling2D(2, name=f"module{m}_downsample")(x)
        x = _inception_module(x, b1, b3, b3r, bp, name=f"module{m}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, _head(x, num_classes, dropout), name="inception")


# --------------------------------------------------------------------------- text


_VECTORIZE = {
    "text_conv1d": lambda p: {"output_mode": "int", "output_sequence_length": p.get("sequence_length", 400)},
    "text_rnn": lambda p: {"output_mode": "int", "output_sequence_length": p.get("sequence_length", 300)},
    "text_bow": lambda p: {"output_mode": "multi_hot", "ngrams": p.get("ngrams", 2)},
    "text_nb": lambda p: {"output_mode": "multi_hot", "ngrams": p.get("ngrams", 3), "standardize": standardize_text, "sparse": True},
    "text_region_cnn": lambda p: {"output_mode": "int", "output_sequence_length": p.get("sequence_length", 1000), "standardize": standardize_text},
}


def text_vectorizer(builder: str, vocabulary=None, max_tokens: int = 20000, **params):
    """The ``TextVectorization`` layer a text builder uses, for its hyperparameters.

    Call ``adapt`` on it to learn a vocabulary, then pass
    ``get_vocabulary(include_special_tokens=False)`` to the builder.
    """
    return layers.TextVectorization(
        max_tokens=max_tokens,
        vocabulary=list(vocabulary) if vocabulary is not None else None,
        name="vectorize",
        **_VECTORIZE[builder](params),
    )


def _text_input(builder: str, vocabulary, params: dict):
    if vocabulary is None:
        raise ValueError(f"{builder} needs a vocabulary: adapt zoo.architectures.text_vectorizer({builder!r}) on training texts")
    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    return inputs, text_vectorizer(builder, vocabulary, **params)(inputs)


def _text_head(x, num_classes: int, dropout: float):
    """One sigmoid unit for two classes (the shipped models), else a softmax."""
    if num_classes == 2:
        if dropout:
            x = layers.Dropout(dropout, name="head_dropout")(x)
        return layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return _head(x, num_classes, dropout)


def text_conv1d(
    vocabulary=None,
    num_classes=2,
    max_tokens=20000,
    sequence_length=400,
    embedding_dim=64,
    filters=128,
    kernel_size=5,
    conv_layers=2,
    pool_size=3,
    spatial_dropout=0.0,
    dropout=0.5,
):
    """Embedding + Conv1D text classifier with GlobalMaxPooling1D.

    ``conv_layers`` Conv1D layers, with a MaxPooling1D of ``pool_size``
    between consecutive ones, then a global max-pool over the sequence.

    Parameters
    ----------
    vocabulary : list of str
        Vocabulary of the ``TextVectorization`` layer, without its special
        tokens (required; see ``text_vectorizer``).
    num_classes : int, default 2
        Number of classes: 2 gives one sigmoid unit, more a softmax.
    max_tokens : int, default 20000
        Vocabulary size of the ``TextVectorization`` layer.
    sequence_length : int, default 400
        Tokens kept per text (padded or truncated).
    embedding_dim : int, default 64
        Size of the token embeddings.
    filters : int, default 128
        Filters of each Conv1D layer.
    kernel_size : int, default 5
        Kernel size of each Conv1D layer.
    conv_layers : int, default 2
        Number of Conv1D layers.
    pool_size : int, default 3
        Size of the MaxPooling1D between consecutive Conv1D layers.
    spatial_dropout : float, default 0.0
        SpatialDropout1D rate on the embeddings (0 disables it).
    dropout : float, default 0.5
        Dropout rate before the output layer.

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    inputs, x = _text_input("text_conv1d", vocabulary, {"max_tokens": max_tokens, "sequence_length": sequence_length})
    x = layers.Embedding(max_tokens, embedding_dim, name="embedding")(x)
    if spatial_dropout:
        x = layers.SpatialDropout1D(spatial_dropout, name="embedding_dropout")(x)
    for i in range(conv_layers):
        if i:
            x = layers.MaxPooling1D(pool_size, name=f"pool{i}")(x)
        x = layers.Conv1D(filters, kernel_size, activation="relu", name=f"conv{i + 1}")(x)
    x = layers.GlobalMaxPooling1D(name="global_max")(x)
    return keras.Model(inputs, _text_head(x, num_classes, dropout), name="text_conv1d")


def text_rnn(vocabulary=None, num_classes=2, max_tokens=20000, sequence_length=300, embedding_dim=64, units=32, cell="gru", dropout=0.5):
    """Embedding + bidirectional LSTM or GRU text classifier (padding masked).

    Parameters
    ----------
    vocabulary : list of str
        Vocabulary of the ``TextVectorization`` layer, without its special
        tokens (required; see ``text_vectorizer``).
    num_classes : int, default 2
        Number of classes: 2 gives one sigmoid unit, more a softmax.
    max_tokens : int, default 20000
        Vocabulary size of the ``TextVectorization`` layer.
    sequence_length : int, default 300
        Tokens kept per text (padded or truncated).
    embedding_dim : int, default 64
        Size of the token embeddings.
    units : int, default 32
        Units of the recurrent layer, per direction.
    cell : {"gru", "lstm"}, default "gru"
        Recurrent cell.
    dropout : float, default 0.5
        Dropout rate before the output layer.

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    if cell not in ("gru", "lstm"):
        raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
    inputs, x = _text_input("text_rnn", vocabulary, {"max_tokens": max_tokens, "sequence_length": sequence_length})
    x = layers.Embedding(max_tokens, embedding_dim, mask_zero=True, name="embedding")(x)
    rnn = layers.GRU if cell == "gru" else layers.LSTM
    x = layers.Bidirectional(rnn(units), name=f"bi{cell}")(x)
    return keras.Model(inputs, _text_head(x, num_classes, dropout), name="text_rnn")


def text_bow(vocabulary=None, num_classes=2, max_tokens=20000, ngrams=2, units=16, dropout=0.5):
    """Bag-of-words (multi-hot n-grams) dense classifier.

    Parameters
    ----------
    vocabulary : list of str
        Vocabulary of the ``TextVectorization`` layer, without its special
        tokens (required; see ``text_vectorizer``).
    num_classes : int, default 2
        Number of classes: 2 gives one sigmoid unit, more a softmax.
    max_tokens : int, default 20000
        Vocabulary size of the ``TextVectorization`` layer.
    ngrams : int, default 2
        Longest n-gram counted (multi-hot over 1- to ``ngrams``-grams).
    units : int, default 16
        Width of the hidden Dense layer.
    dropout : float, default 0.5
        Dropout rate before the output layer.

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    inputs, x = _text_input("text_bow", vocabulary, {"max_tokens": max_tokens, "ngrams": ngrams})
    x = layers.Dense(units, activation="relu", name="dense")(x)
    return keras.Model(inputs, _text_head(x, num_classes, dropout), name="text_bow")


def text_nb(vocabulary=None, num_classes=2, max_tokens=200000, ngrams=3, units=8, dropout=0.0, alpha=1.0):
    """Naive-Bayes-scaled n-grams and one ReLU layer (an NB-MLP, Wang & Manning 2012), for two classes.

    Parameters
    ----------
    vocabulary : list of str
        N-grams of the ``TextVectorization`` layer, without its special
        tokens (required; ``zoo.naive_bayes.document_frequency_vocabulary``).
    num_classes : int, default 2
        Number of classes: two only (one naive-Bayes ratio per n-gram).
    max_tokens : int, default 200000
        Vocabulary size of the ``TextVectorization`` layer (n-grams in the most texts, plus one out-of-vocabulary slot).
    ngrams : int, default 3
        Longest n-gram counted (sparse multi-hot over 1- to ``ngrams``-grams).
    units : int, default 8
        Width of the hidden Dense layer.
    dropout : float, default 0.0
        Dropout rate before the output layer.
    alpha : float, default 1.0
        Smoothing count of the naive-Bayes ratios, set from the training texts
        before training (``zoo.naive_bayes.fit_ratios``).

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    if num_classes != 2:
        raise ValueError(f"text_nb takes two classes (one naive-Bayes ratio per n-gram), got num_classes={num_classes}")
    inputs, x = _text_input("text_nb", vocabulary, {"max_tokens": max_tokens, "ngrams": ngrams})
    x = NBScale(alpha, name="nb_scale")(x)
    x = layers.Dense(units, activation="relu", name="dense")(x)
    return keras.Model(inputs, _text_head(x, num_classes, dropout), name="text_nb")


_REGION_MODES = ("seq", "bow")
_REGION_POOLING = ("max", "average", "max_average")


def text_region_cnn(vocabulary=None, num_classes=2, max_tokens=30000, sequence_length=1000, region=3, maps=1000, mode="seq",
                    pooling="max", dropout=0.5):
    """A region CNN over one-hot words (Johnson & Zhang 2015): one wide layer of region features, pooled.

    Each feature map is a linear function of the one-hot vectors of
    ``region`` consecutive tokens, followed by a ReLU and a pooling over the
    whole text. ``mode="seq"`` (J&Z's seq-CNN) keeps the word order inside a
    region: one embedding table of width ``maps`` per position of the region,
    the table of position ``k`` looked up at token ``t + k`` and the
    ``region`` lookups summed, which is a convolution over the concatenated
    one-hot vectors without ever materialising them. ``mode="bow"``
    (bow-CNN) uses one table and averages it over the region (a bag of
    words per region). There is no bias: every region holds ``region``
    tokens (padding included), so a bias is part of the embeddings. Tokens as
    ``text_nb``'s (lower-cased, HTML tags removed, punctuation marks kept as
    tokens); texts are padded or truncated to ``sequence_length`` tokens and
    the padding token has an embedding of its own.

    Parameters
    ----------
    vocabulary : list of str
        Vocabulary of the ``TextVectorization`` layer, without its special
        tokens (required; see ``text_vectorizer``).
    num_classes : int, default 2
        Number of classes: 2 gives one sigmoid unit, more a softmax.
    max_tokens : int, default 30000
        Vocabulary size of the ``TextVectorization`` layer (padding and
        out-of-vocabulary tokens included).
    sequence_length : int, default 1000
        Tokens kept per text (padded or truncated).
    region : int, default 3
        Tokens per region (the convolution's width).
    maps : int, default 1000
        Feature maps; each region embedding table has ``max_tokens * maps`` weights.
    mode : {"seq", "bow"}, default "seq"
        Word order inside a region kept (``region`` tables) or not (one table).
    pooling : {"max", "average", "max_average"}, default "max"
        Global pooling over the text; ``"max_average"`` concatenates both.
    dropout : float, default 0.5
        Dropout rate before the output layer.

    Returns
    -------
    keras.Model
        The uncompiled model.
    """
    if mode not in _REGION_MODES:
        raise ValueError(f"mode must be one of {_REGION_MODES}, got {mode!r}")
    if pooling not in _REGION_POOLING:
        raise ValueError(f"pooling must be one of {_REGION_POOLING}, got {pooling!r}")
    if not 1 <= region <= sequence_length:
        raise ValueError(f"region must be between 1 and sequence_length={sequence_length}, got {region!r}")
    inputs, tokens = _text_input("text_region_cnn", vocabulary, {"max_tokens": max_tokens, "sequence_length": sequence_length})
    if mode == "bow":
        x = layers.Embedding(max_tokens, maps, name="embedding")(tokens)
        if region > 1:
            x = layers.AveragePooling1D(region, strides=1, name="region_bow")(x)
    else:
        parts = []
        for k in range(region):
            part = layers.Embedding(max_tokens, maps, name=f"region{k}")(tokens)
            if region > 1:  # position k of the region starting at t is token t + k
                part = layers.Cropping1D((k, region - 1 - k), name=f"region{k}_crop")(part)
            parts.append(part)
        x = layers.Add(name="region_sum")(parts) if region > 1 else parts[0]
    x = layers.Activation("relu", name="region_relu")(x)
    pooled = []
    if pooling in ("max", "max_average"):
        pooled.append(layers.GlobalMaxPooling1D(name="global_max")(x))
    if pooling in ("average", "max_average"):
        pooled.append(layers.GlobalAveragePooling1D(name="global_average")(x))
    x = layers.Concatenate(name="pooled")(pooled) if len(pooled) > 1 else pooled[0]
    return keras.Model(inputs, _text_head(x, num_classes, dropout), name="text_region_cnn")


BUILDERS = {
    "mlp": mlp,
    "bn_cnn": bn_cnn,
    "sepconv": sepconv,
    "residual": residual,
    "inception": inception,
    "text_conv1d": text_conv1d,
    "text_rnn": text_rnn,
    "text_bow": text_bow,
    "text_nb": text_nb,
    "text_region_cnn": text_region_cnn,
}

TEXT_BUILDERS = frozenset(_VECTORIZE)


def build(builder: str, **params) -> keras.Model:
    """Build an architecture by its builder name with the given hyperparameters."""
    try:
        fn = BUILDERS[builder]
    except KeyError:
        raise ValueError(f"unknown builder {builder!r}; expected one of {', '.join(BUILDERS)}") from None
    return fn(**params)
