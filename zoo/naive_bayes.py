r"""Naive-Bayes-scaled n-gram features inside a Keras model: the parts of the ``text_nb`` builder.

``text_nb`` is :class:`zoo.nbsvm.NBMLPClassifier` as a Keras model that reads
raw strings: binary n-gram indicators, each scaled by its naive-Bayes
log-count ratio (Wang & Manning 2012), then a small ReLU layer. Being a Keras
model it is a zoo entry (weights checked by sha256, loaded by ``zoo.load``)
and it learns from soft targets, so it can be a distilled student.

Decisions:

- Tokens as in :mod:`zoo.nbsvm`: lower-cased, HTML tags removed, words and
  each punctuation mark on its own (:func:`standardize_text`, a registered
  Keras function, so a ``.keras`` file loads it by name with
  ``safe_mode=True``). Letters, digits and spaces are Unicode classes, as
  Python's ``\w`` and ``\s`` (TensorFlow's regular expressions are RE2's,
  whose ``\w`` and ``\s`` are ASCII only); checked against scikit-learn's
  tokens on IMDB reviews, where 0.1 % of the n-grams' counts still differ.
- The vocabulary is the ``max_tokens - 1`` n-grams found in the most training
  texts (document frequency, scikit-learn's ``CountVectorizer(binary=True,
  max_features=...)``): :func:`document_frequency_vocabulary`. Keras'
  ``TextVectorization.adapt`` ranks n-grams by occurrences instead.
- The multi-hot rows stay sparse (``TextVectorization(sparse=True)``) up to
  the first Dense layer: a dense batch of 128 rows of 200,000 n-grams is
  100 MB, and training on it measured 5x slower (and less accurate, 91.4 %
  against 92.5 % validation accuracy on IMDB after two epochs; the cause was
  not found).
- :class:`NBScale` holds the ratios as a non-trainable weight (saved with the
  weights). :func:`fit_ratios` sets them before training from the training
  texts and their targets: ``r = log((a + p) / |a + p|_1) - log((a + q) /
  |a + q|_1)``, with ``p`` and ``q`` the numbers of texts of the second and
  the first class containing each n-gram, each text counted with its target
  probability (soft targets give soft counts), ``a`` the smoothing ``alpha``.
  Two classes only: with more, each class would need its own ratios and its
  own copy of the features (as ``NBMLPClassifier`` does), which this builder
  does not make.
"""

from __future__ import annotations

import re

import keras
import numpy as np

__all__ = ["NBScale", "document_frequency_vocabulary", "fit_ratios", "standardize_text"]

_TAGS = r"<[^>]*>"
_SPACES = r"[\pZ\x{1c}-\x{1f}\x{85}]"  # what Python's \s matches beyond ASCII whitespace (no-break spaces...)
_PUNCTUATION = r"([^\pL\pN\pM_\s])"  # each punctuation mark a token of its own, as zoo.nbsvm's (?u)\w+|[^\w\s]


@keras.saving.register_keras_serializable(package="zoo")
def standardize_text(texts):
    """Lower-case, remove HTML tags and put spaces around each punctuation mark (a ``TextVectorization`` standardizer)."""
    import tensorflow as tf

    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, _TAGS, " ")
    texts = tf.strings.regex_replace(texts, _SPACES, " ")
    return tf.strings.regex_replace(texts, _PUNCTUATION, r" \1 ")


def document_frequency_vocabulary(texts, max_tokens: int, ngrams: int) -> list[str]:
    """The ``max_tokens - 1`` n-grams (1 to ``ngrams`` tokens) in the most ``texts``, tokenized as :func:`standardize_text`.

    One slot of ``max_tokens`` is the out-of-vocabulary index. Ties are
    broken as scikit-learn's ``CountVectorizer`` breaks them.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    tags = re.compile(_TAGS)
    vectorizer = CountVectorizer(
        preprocessor=lambda text: tags.sub(" ", text.lower()), token_pattern=r"(?u)\w+|[^\w\s]",
        ngram_range=(1, int(ngrams)), max_features=int(max_tokens) - 1, binary=True, dtype=np.float32,
    )
    vectorizer.fit([str(t) for t in texts])
    vocabulary = vectorizer.vocabulary_
    return sorted(vocabulary, key=vocabulary.get)


@keras.saving.register_keras_serializable(package="zoo")
class NBScale(keras.layers.Layer):
    """Multiplies each feature of a (sparse) multi-hot row by its naive-Bayes log-count ratio.

    Parameters
    ----------
    alpha : float, default=1.0
        Smoothing count added to every n-gram's counts by :func:`fit_ratios`.
    """

    def __init__(self, alpha=1.0, **kwargs):
        kwargs.pop("trainable", None)  # a saved config repeats it
        super().__init__(trainable=False, **kwargs)
        self.alpha = float(alpha)

    def build(self, input_shape):
        self.ratios = self.add_weight(name="ratios", shape=(int(input_shape[-1]),), initializer="ones", trainable=False)

    def call(self, x):
        import tensorflow as tf

        ratios = keras.ops.cast(self.ratios, self.compute_dtype)
        if isinstance(x, tf.SparseTensor):  # multi-hot indicators come as int64
            return tf.SparseTensor(x.indices, tf.cast(x.values, ratios.dtype) * tf.gather(ratios, x.indices[:, -1]), x.dense_shape)
        return keras.ops.cast(x, ratios.dtype) * ratios

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype=self.compute_dtype, sparse=getattr(x, "sparse", False))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


def fit_ratios(model, texts, targets, *, batch_size: int = 1000) -> None:
    """Set the ratios of ``model``'s :class:`NBScale` layer from training ``texts`` and their targets.

    Parameters
    ----------
    model : keras.Model
        A ``text_nb`` model (its ``vectorize`` layer gives the n-gram indicators).
    texts : array of str
    targets : array of shape (n,) or (n, 2)
        Class indices 0/1, or probabilities of the two classes (soft counts).
    """
    import tensorflow as tf

    scale = next(layer for layer in model.layers if isinstance(layer, NBScale))
    vectorize = model.get_layer("vectorize")
    targets = np.asarray(targets, dtype=np.float32)
    if targets.ndim == 1:
        targets = np.stack([1.0 - targets, targets], axis=1)
    if targets.shape[1] != 2:
        raise ValueError(f"text_nb takes two classes; got targets for {targets.shape[1]}")
    counts = np.zeros((int(scale.ratios.shape[0]), 2))
    for start in range(0, len(texts), batch_size):
        rows = vectorize(np.asarray(texts[start:start + batch_size]))  # sparse multi-hot indicators
        rows = tf.cast(rows, tf.float32) if isinstance(rows, tf.SparseTensor) else tf.sparse.from_dense(tf.cast(rows, tf.float32))
        counts += tf.sparse.sparse_dense_matmul(rows, targets[start:start + batch_size], adjoint_a=True).numpy()
    positive = scale.alpha + counts[:, 1]
    negative = scale.alpha + counts[:, 0]
    ratios = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
    scale.ratios.assign(ratios.astype(np.float32))
