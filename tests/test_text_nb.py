"""The text_nb builder: naive-Bayes-scaled n-grams in a Keras model, on real IMDB reviews."""

import re

import keras
import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from zoo import ZooClassifier, datasets
from zoo.architectures import build
from zoo.naive_bayes import NBScale, document_frequency_vocabulary, standardize_text


@pytest.fixture(scope="module")
def reviews(data_dir):
    X, y = datasets.load("imdb", "train", data_dir)
    Xv, yv = datasets.load("imdb", "validation", data_dir)
    return X[:1500], y[:1500], Xv[:1000], yv[:1000]


def test_tokens_are_those_of_the_scikit_learn_nb_models():
    """Lower case, HTML tags removed, each punctuation mark a token, accented words kept whole."""
    texts = ["Great film!<br /><br />Don't miss it... 10/10", "Carrère (Gérald) was BAD, really: bad?!"]
    tokens = [t.decode().split() for t in standardize_text(np.array(texts)).numpy()]
    analyzer = CountVectorizer(preprocessor=lambda t: re.sub(r"<[^>]*>", " ", t).lower(), token_pattern=r"(?u)\w+|[^\w\s]").build_analyzer()
    assert tokens == [analyzer(t) for t in texts]


def test_vocabulary_ranks_ngrams_by_the_texts_containing_them():
    """'bad' is in two texts, 'good' in one (four times): by texts 'bad' comes first, by occurrences (Keras' adapt) 'good'."""
    texts = ["good good good good", "bad film", "bad plot"]
    assert document_frequency_vocabulary(texts, max_tokens=2, ngrams=1) == ["bad"]  # one slot is out-of-vocabulary
    assert set(document_frequency_vocabulary(texts, max_tokens=100, ngrams=2)) == {"good", "bad", "film", "plot", "good good", "bad film", "bad plot"}


def test_ratios_are_the_naive_bayes_log_count_ratios_of_the_texts_trained_on(reviews):
    X, y, _, _ = reviews
    clf = ZooClassifier("text_nb", builder__max_tokens=5000, epochs=1, batch_size=64, early_stopping_size=None, random_state=0)
    with pytest.warns(Warning):  # a 1-epoch fit is warned about
        clf.fit(X, y)
    ratios = clf.model_.get_layer("nb_scale").ratios.numpy()
    vocabulary = clf.vocabulary_
    counts = CountVectorizer(preprocessor=lambda t: re.sub(r"<[^>]*>", " ", t).lower(), token_pattern=r"(?u)\w+|[^\w\s]",
                             ngram_range=(1, 3), binary=True, vocabulary=vocabulary).fit_transform(X)
    positive = 1.0 + np.asarray(counts[y == 1].sum(axis=0)).ravel()
    negative = 1.0 + np.asarray(counts[y == 0].sum(axis=0)).ravel()
    expected = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
    # column 0 is the out-of-vocabulary slot; a few n-grams with characters tokenized apart may differ
    close = np.isclose(ratios[1:], expected, atol=1e-3)
    assert close.mean() > 0.999, close.mean()


def test_a_small_text_nb_learns_and_soft_targets_give_soft_ratios(reviews):
    X, y, Xv, yv = reviews
    clf = ZooClassifier("text_nb", builder__max_tokens=20000, epochs=2, batch_size=16, early_stopping_size=None, random_state=0)
    clf.fit(X, y)
    assert (clf.predict(Xv) == yv).mean() > 0.8
    soft = np.where(y[:, None] == np.arange(2), 0.9, 0.1)  # 0.9 for each text's class
    student = ZooClassifier("text_nb", builder__max_tokens=20000, epochs=2, batch_size=16, early_stopping_size=None, random_state=0)
    student.fit(X, soft)
    sliced = ZooClassifier("text_nb", builder__max_tokens=20000, epochs=2, batch_size=16, early_stopping_size=0.2, monitor="val_accuracy",
                           random_state=0).fit(X, soft)  # early stopping on the soft targets' agreement, a metric Keras cannot rank alone
    assert sliced.early_stopping_scores_["accuracy"] > 0.75
    hard_ratios = clf.model_.get_layer("nb_scale").ratios.numpy()
    soft_ratios = student.model_.get_layer("nb_scale").ratios.numpy()
    assert np.all(np.abs(soft_ratios) <= np.abs(hard_ratios) + 1e-6)  # counting each text 0.9 / 0.1 shrinks every ratio
    assert np.corrcoef(soft_ratios, hard_ratios)[0, 1] > 0.99


def test_weights_and_a_keras_file_round_trip(tmp_path, reviews):
    X, y, Xv, _ = reviews
    clf = ZooClassifier("text_nb", builder__max_tokens=5000, epochs=1, batch_size=32, early_stopping_size=None, random_state=0).fit(X, y)
    expected = clf.model_.predict(Xv[:50], verbose=0)
    rebuilt = build("text_nb", vocabulary=clf.vocabulary_, **{k: v for k, v in clf.spec_["params"].items()})
    clf.model_.save_weights(tmp_path / "nb.weights.h5")
    rebuilt.load_weights(tmp_path / "nb.weights.h5")  # the ratios are a (non-trainable) weight
    np.testing.assert_allclose(rebuilt.predict(Xv[:50], verbose=0), expected, atol=1e-6)
    clf.model_.save(tmp_path / "nb.keras")
    loaded = keras.saving.load_model(tmp_path / "nb.keras", safe_mode=True)
    assert any(isinstance(layer, NBScale) for layer in loaded.layers)
    np.testing.assert_allclose(loaded.predict(Xv[:50], verbose=0), expected, atol=1e-6)


def test_more_than_two_classes_are_refused():
    with pytest.raises(ValueError, match="two classes"):
        build("text_nb", vocabulary=["a", "b"], num_classes=3)
