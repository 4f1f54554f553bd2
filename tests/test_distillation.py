"""ensemble.distill: a student trained on a teacher's soft labels, on real MNIST images; ZooClassifier's soft targets."""

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import ensemble
import kze.data
from ensemble import BlendClassifier
from ensemble.distillation import soften
from ensemble.persistence import MANIFEST, read_manifest
from kze.files import sha256_file
from zoo import ZooClassifier, datasets


class SoftLogistic(ClassifierMixin, BaseEstimator):
    """A real soft-label learner: multinomial logistic regression on each example repeated once per class,
    weighted by that class's probability (the weighted log loss is the cross-entropy on the soft labels)."""

    accepts_soft_targets = True

    def __init__(self, C=0.1):
        self.C = C

    def fit(self, X, P):
        P = np.asarray(P, dtype=np.float64)
        n, k = P.shape
        self.targets_ = P
        weights = P.ravel()
        keep = weights > 1e-12
        rows = np.repeat(np.asarray(X), k, axis=0)[keep]
        self.model_ = LogisticRegression(C=self.C, tol=1e-3, max_iter=100).fit(rows, np.tile(np.arange(k), n)[keep], sample_weight=weights[keep])
        self.classes_ = np.arange(k)
        return self

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)

    def predict_proba(self, X):
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, self.model_.classes_] = self.model_.predict_proba(X)
        return proba


@pytest.fixture(scope="module")
def mnist(data_dir):
    """Flattened MNIST pixels in [0, 1]: 500 to fit the teacher on, 600 to distil on, 500 held out."""
    X, y = datasets.load("mnist", "train", data_dir)
    X = X[:1600].reshape(1600, -1).astype(np.float32) / 255
    return (X[:500], y[:500]), X[500:1100], X[1100:1600]


@pytest.fixture(scope="module")
def teacher(mnist):
    (X, y), _, _ = mnist
    return BlendClassifier([LogisticRegression(max_iter=300), RandomForestClassifier(n_estimators=50, random_state=0)]).fit(X, y)  # accuracy 0.81


def test_a_zoo_student_learns_the_blends_predictions(mnist, teacher):
    _, X, X_held = mnist
    student = ensemble.distill(teacher, X, ZooClassifier("mlp", builder__units=(128,), epochs=2, batch_size=16, random_state=0))
    assert student.classes_.tolist() == list(range(10))
    agreement = np.mean(student.predict(X_held) == teacher.predict_proba(X_held).argmax(axis=1))
    assert agreement > 0.6  # measured 0.73 (0.74 with random_state=1); chance: about 0.1
    proba = student.predict_proba(X_held)
    assert proba.shape == (500, 10) and np.allclose(proba.sum(axis=1), 1)
    assert student.distilled_from_ == {
        "teacher": "BlendClassifier",
        "teacher_sha256": None,
        "temperature": 1.0,
        "n_examples": 600,
        "data_sha256": kze.data.data_hash(X),
        "classes": list(range(10)),
    }
    # trained on the soft cross-entropy, early-stopped on its slice; model_ then takes integer labels again
    assert len(student.history_["val_loss"]) == 2 and student.early_stopping_scores_["accuracy"] > 0.5
    assert student.model_.loss == "sparse_categorical_crossentropy"


def test_a_distillation_interrupted_mid_way_resumes_from_its_backup(tmp_path, mnist, teacher):
    """fit_params={"backup_dir": ...}: the teacher predicts again, its soft labels match the backup's record, and the
    student goes on from its last completed epoch instead of starting over."""
    import keras
    from interrupt import InterruptAfter

    class Started(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    _, X, X_held = mnist
    params = {"builder__units": (32,), "epochs": 4, "batch_size": 64, "patience": 10, "random_state": 0}
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        ensemble.distill(teacher, X, ZooClassifier("mlp", **params), fit_params={"backup_dir": backup, "callbacks": [InterruptAfter(2)]})
    assert (backup / "state.json").is_file()
    started = Started()
    student = ensemble.distill(teacher, X, ZooClassifier("mlp", **params), fit_params={"backup_dir": backup, "callbacks": [started]})
    assert started.epochs == [2, 3] and len(student.history_["loss"]) == 4
    assert student.distilled_from_["n_examples"] == 600 and not backup.exists()  # deleted after the successful fit
    assert student.predict_proba(X_held).shape == (500, 10)


def test_the_distill_command_killed_mid_way_resumes_when_run_again(tmp_path, data_dir):
    """`ensemble distill` backs the student up in LIB/.backups/distill_ENTRY; the same command run again finishes it."""
    import signal
    import subprocess
    import sys
    import time

    from sklearn.pipeline import make_pipeline

    import zoo
    from ensemble.preprocessing import Flatten

    X, y = datasets.load("mnist", "train", data_dir)
    teacher = BlendClassifier([make_pipeline(Flatten(), LogisticRegression(max_iter=200))]).fit(X[:400], y[:400])
    ensemble.save(teacher, tmp_path / "teacher")
    np.savez(tmp_path / "distil.npz", X=X[400:1000], y=y[400:1000])
    library = tmp_path / "lib"
    command = [sys.executable, "-m", "ensemble", "distill", str(tmp_path / "teacher"), "--student", "mnist_bn_cnn", "--out", str(library),
               "--data", str(tmp_path / "distil.npz"), "--epochs", "5", "--quiet"]
    state_file = library / ".backups" / "distill_distil_student" / "state.json"
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (state_file.is_file() and json.loads(state_file.read_text() or "{}").get("epoch", 0) >= 1):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read().decode()[-3000:]
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()
    done = json.loads(state_file.read_text())["epoch"]
    assert 1 <= done < 5 and not (library / "registry.yaml").exists()

    both = subprocess.run([*command, "--no-backup", "--backup-dir", str(tmp_path / "b")], check=False, capture_output=True, text=True)
    assert both.returncode == 2 and "--backup-dir and --no-backup" in both.stderr
    again = subprocess.run(command, check=False, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not (library / ".backups" / "distill_distil_student").exists()
    entry = zoo.Registry(library / "registry.yaml").entry("distil_student")
    assert entry["training"]["epochs_run"] == 5 and entry["distilled_from"]["n_examples"] == 600


def test_temperature_softens_or_sharpens_the_targets_as_computed_by_hand(mnist, teacher):
    _, X, _ = mnist
    X = X[:100]
    p = teacher.predict_proba(X)
    for T in (1.0, 2.0, 0.5):
        student = ensemble.distill(teacher, X, SoftLogistic(), temperature=T)
        by_hand = p ** (1 / T) / (p ** (1 / T)).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(student.targets_, by_hand, rtol=1e-9, atol=1e-12)
        assert student.distilled_from_["temperature"] == T
        assert np.mean(student.predict(X) == p.argmax(axis=1)) > 0.8  # measured 0.91-0.96 on its own training set
    assert np.allclose(soften(p, 1.0), p)
    entropy = [-(q * np.log(np.clip(q, 1e-300, 1))).sum(axis=1).mean() for q in (soften(p, 0.5), p, soften(p, 2.0))]
    assert entropy[0] < entropy[1] < entropy[2]
    # a tiny temperature is the argmax, without underflow
    np.testing.assert_array_equal(soften(p, 1e-4).argmax(axis=1), p.argmax(axis=1))
    assert np.isfinite(soften(p, 1e-4)).all()


def test_a_saved_teacher_records_its_manifest_sha256(tmp_path, mnist, teacher):
    _, X, _ = mnist
    X = X[:100]
    path = tmp_path / "blend"
    ensemble.save(teacher, path)
    _, folder = read_manifest(path)
    digest = sha256_file(folder / MANIFEST)
    np.save(tmp_path / "X.npy", X)
    student = ensemble.distill(path, tmp_path / "X.npy", SoftLogistic())  # inputs read memory-mapped
    assert student.distilled_from_["teacher_sha256"] == digest
    assert student.distilled_from_["data_sha256"] == kze.data.data_hash(X)
    np.testing.assert_allclose(student.targets_, teacher.predict_proba(X), rtol=1e-6)  # float32 X from a memory map: rounding of the teacher's own
    # an estimator's digest is taken as given; one that contradicts the saved teacher's is refused
    assert ensemble.distill(teacher, X, SoftLogistic(), teacher_sha256=digest).distilled_from_["teacher_sha256"] == digest
    with pytest.raises(ValueError, match="manifest has sha256"):
        ensemble.distill(path, X, SoftLogistic(), teacher_sha256="0" * 64)


def test_a_student_without_soft_target_support_is_refused(mnist, teacher):
    _, X, _ = mnist
    with pytest.raises(TypeError, match=r"LogisticRegression cannot be a distillation student: .*fit\(X, P\) learns from soft targets.*accepts_soft_targets = True"):
        ensemble.distill(teacher, X, LogisticRegression())
    with pytest.raises(TypeError, match="an estimator instance"):
        ensemble.distill(teacher, X, ZooClassifier)
    with pytest.raises(TypeError, match="no predict_proba"):
        ensemble.distill(object(), X, SoftLogistic())
    for bad in (0, -1.0, float("inf"), float("nan"), True):
        with pytest.raises(ValueError, match="temperature"):
            ensemble.distill(teacher, X, SoftLogistic(), temperature=bad)


def test_zoo_soft_targets_are_checked_and_scored_against_the_targets():
    from sklearn.datasets import load_iris
    from sklearn.metrics import log_loss

    X, y = load_iris(return_X_y=True)
    clf = ZooClassifier("mlp", builder__units=(16,), epochs=1, early_stopping_size=30)
    P = np.full((150, 3), 1 / 3)
    with pytest.raises(ValueError, match="rows sum to 1; row 0 sums to 0.9"):
        clf.fit(X, P * 0.9)
    with pytest.raises(ValueError, match="non-negative"):
        clf.fit(X, np.hstack([P[:, :2] * 2, -P[:, :1]]))
    P = soften(LogisticRegression(max_iter=500).fit(X, y).predict_proba(X), 3.0)  # soft: far from one-hot
    clf.fit(X, P)
    assert clf.classes_.tolist() == [0, 1, 2] and clf.predict(X[:5]).dtype.kind == "i"
    # the slice's scores: Keras' val_loss is the cross-entropy on the soft targets, and with one
    # epoch model_ holds that epoch's weights, so early_stopping_scores_ measures the same thing
    scores = clf.early_stopping_scores_
    assert scores["log_loss"] == pytest.approx(clf.history_["val_loss"][0], rel=1e-4)
    assert scores["accuracy"] == pytest.approx(clf.history_["val_accuracy"][0], abs=1e-6)
    hard = log_loss(P.argmax(axis=1), clf.predict_proba(X), labels=[0, 1, 2])
    soft = -(P * np.log(clf.predict_proba(X))).sum(axis=1).mean()
    assert abs(hard - soft) > 0.02  # measured 0.066, far beyond the 1e-4 above: that equality tells soft from hard targets
    assert clf.model_.loss == "sparse_categorical_crossentropy"


def test_a_sigmoid_text_model_learns_two_class_soft_targets():
    texts = np.array(["good fun film", "bad dull film", "fun and good", "dull and bad"] * 10)
    P = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4]] * 10)
    clf = ZooClassifier("text_bow", builder__max_tokens=50, epochs=30, batch_size=128, learning_rate=0.05, early_stopping_size=None).fit(texts, P)
    assert clf.model_.output_shape[-1] == 1 and clf.classes_.tolist() == [0, 1]
    np.testing.assert_allclose(clf.predict_proba(texts[:4]), P[:4], atol=0.15)  # measured within 0.07: probabilities, not labels
    assert clf.history_["accuracy"][-1] > 0.9  # agreement with each row's argmax (Keras' binary accuracy would be 0 on soft targets)


def test_the_distill_command_writes_a_loadable_library_entry_with_its_provenance(tmp_path, data_dir):
    """`ensemble distill DIR --student RECIPE --out LIB`: a zoo recipe's student, distilled on a few hundred raw MNIST
    images for one epoch, becomes a model-library entry that zoo.load reads back, recording the teacher's manifest sha256."""
    from sklearn.pipeline import make_pipeline

    import zoo
    from clirun import run_command
    from ensemble.preprocessing import Flatten

    X, y = datasets.load("mnist", "train", data_dir)
    teacher = BlendClassifier([make_pipeline(Flatten(), LogisticRegression(max_iter=200)), make_pipeline(Flatten(), RandomForestClassifier(n_estimators=30, random_state=0))])
    teacher.fit(X[:400], y[:400])
    ensemble.save(teacher, tmp_path / "teacher")
    np.savez(tmp_path / "distil.npz", X=X[400:800], y=y[400:800])
    proc = run_command("ensemble", "distill", tmp_path / "teacher", "--student", "mnist_mlp", "--out", tmp_path / "lib", "--data",
                       tmp_path / "distil.npz", "--epochs", "1", "--temperature", "2", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["name"] == "distil_student"
    _, folder = read_manifest(tmp_path / "teacher")
    entry = zoo.Registry(tmp_path / "lib" / "registry.yaml").entry("distil_student")
    assert entry["distilled_from"]["teacher_sha256"] == sha256_file(folder / MANIFEST)
    assert entry["distilled_from"]["temperature"] == 2.0 and entry["distilled_from"]["n_examples"] == 400
    assert entry["training"]["command"].startswith("ensemble distill") and entry["builder"] == "mlp"
    student = zoo.load("distil_student", registry=tmp_path / "lib" / "registry.yaml")
    proba = zoo.predict_proba(student, X[800:900])
    assert proba.shape == (100, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-4)

    again = run_command("ensemble", "distill", tmp_path / "teacher", "--student", tmp_path / "lib" / "distil_student", "--out",
                        tmp_path / "lib", "--name", "from_entry", "--data", tmp_path / "distil.npz", "--epochs", "1", "--json", "--quiet")
    assert again.returncode == 0, again.stderr  # LIB/ENTRY: a library entry's architecture and recipe as the student
    second = zoo.Registry(tmp_path / "lib" / "registry.yaml").entry("from_entry")
    assert second["params"] == entry["params"] and second["recipe"]["optimizer"] == entry["recipe"]["optimizer"]

    unknown = run_command("ensemble", "distill", tmp_path / "teacher", "--student", "mnist_resnet152", "--out", tmp_path / "lib2",
                          "--data", tmp_path / "distil.npz", "--quiet")
    assert unknown.returncode == 2 and "student 'mnist_resnet152' is not a zoo recipe" in unknown.stderr
    assert not (tmp_path / "lib2").exists()


def test_split_metrics_score_a_students_columns_against_the_dataset_labels(data_dir):
    """What a shipped student's entry records: accuracy and log loss on the validation and test splits, the probability
    columns being the teacher's classes (here reversed, so a label mix-up would show)."""
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.pipeline import make_pipeline

    from ensemble.preprocessing import Flatten
    from zoo.library import split_metrics

    X, y = datasets.load("mnist", "train", data_dir)
    clf = make_pipeline(Flatten(), LogisticRegression(max_iter=100)).fit(X[:500], y[:500])
    classes = np.arange(10)[::-1]

    def reversed_columns(Z):
        return clf.predict_proba(Z)[:, ::-1]

    metrics = split_metrics(reversed_columns, "mnist", classes)
    X_test, y_test = datasets.load("mnist", "test", data_dir)
    proba = clf.predict_proba(X_test)
    assert metrics["test"]["accuracy"] == round(accuracy_score(y_test, proba.argmax(1)), 6)
    assert metrics["test"]["log_loss"] == pytest.approx(log_loss(y_test, proba, labels=np.arange(10)), abs=1e-6)
    assert set(metrics) == {"validation", "test"} and 0.8 < metrics["validation"]["accuracy"] < 1
    assert split_metrics(reversed_columns, "my_own_data", classes) == {}
