"""A zoo of pretrained Keras models for MNIST, Fashion-MNIST and IMDB.

>>> import zoo
>>> zoo.list_models("fashion_mnist_*")          # doctest: +SKIP
>>> model = zoo.load("fashion_mnist_bn_cnn")     # compiled keras.Model, sha256-checked
>>> X, y = zoo.datasets.load("fashion_mnist", "test")
>>> clf = zoo.ZooClassifier("bn_cnn", epochs=5).fit(X_train, y_train)   # doctest: +SKIP
>>> zoo.search("fashion_mnist_bn_cnn", library="lib", n_trials=20)     # doctest: +SKIP
>>> nbsvm = zoo.NBSVMClassifier(ngram_range=(1, 3)).fit(reviews, labels)  # doctest: +SKIP

TensorFlow is imported only when a model is built, loaded or trained.
"""

from zoo import datasets
from zoo._files import ChecksumError, DataUnavailableError
from zoo.models import evaluate, info, list_models, load, predict_proba
from zoo.registry import Registry, RegistryError
from zoo import search  # the package zoo.search, callable as the function search (see zoo.search)


def train(name, **kwargs):
    """Re-run the recipe of ``name``; see :func:`zoo.training.train`."""
    from zoo.training import train as _train

    return _train(name, **kwargs)


def __getattr__(name):
    # ZooClassifier and the NB classifiers import scikit-learn: only when asked for
    if name in ("ZooClassifier", "TrainingWarning"):
        from zoo import estimator

        return getattr(estimator, name)
    if name in ("NBSVMClassifier", "NBMLPClassifier"):
        from zoo import nbsvm

        return getattr(nbsvm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ChecksumError",
    "DataUnavailableError",
    "NBMLPClassifier",
    "NBSVMClassifier",
    "Registry",
    "RegistryError",
    "TrainingWarning",
    "ZooClassifier",
    "datasets",
    "evaluate",
    "info",
    "list_models",
    "load",
    "predict_proba",
    "search",
    "train",
]
__version__ = "0.1.0"
