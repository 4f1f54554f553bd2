"""Snapshot ensembles (``ZooClassifier(snapshots=M)``, ``zoo.snapshots``).

Real TensorFlow, real Fashion-MNIST images (a few hundred), tiny models, a few epochs.
"""

import pickle
import warnings

import keras
import numpy as np
import pytest

import zoo
from zoo import datasets
from zoo.estimator import TrainingWarning, ZooClassifier
from zoo.snapshots import cycle_epochs, cyclic_rate, cyclic_schedule
from interrupt import InterruptAfter

LR = 5e-3


def _images(n=400):
    X, y = datasets.load("fashion_mnist", "train")
    return X[:n], y[:n]


@pytest.fixture(scope="module")
def fitted(data_dir):
    """bn_cnn, 6 epochs in 3 cycles of 2 (batches of 40 on 360 images: 9 steps an epoch, 18 a cycle), no warm-up."""
    X, y = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)  # 54 steps: a tiny fit on purpose
        clf = ZooClassifier("bn_cnn", builder__filters=(8, 16), epochs=6, batch_size=40, snapshots=3, learning_rate=LR, early_stopping_size=40)
        clf.fit(X, y)
    return clf, X, y


def test_the_rate_follows_the_cyclic_schedule_high_after_each_restart_low_at_each_cycle_end(fitted):
    clf, _, _ = fitted
    rates = clf.history_["learning_rate"]
    assert len(rates) == 6 and clf.spec_["recipe"]["lr_schedule"] == {"name": "cyclic_cosine", "cycles": 3, "cycle_steps": 18, "warmup_steps": 0}
    for epoch, rate in enumerate(rates, start=1):  # the rate of each epoch's last step
        assert rate == pytest.approx(cyclic_rate(9 * epoch - 1, LR, 18), rel=1e-5)
    for start, end in ((0, 1), (2, 3), (4, 5)):  # first and last epoch of each cycle
        assert rates[start] > 0.4 * LR and rates[end] < 0.01 * LR
    assert rates[2] > 40 * rates[1] and rates[4] > 40 * rates[3]  # restarted


def test_the_keras_schedule_computes_the_documented_rate_with_and_without_warmup():
    for warmup in (0, 3):
        schedule = cyclic_schedule(LR, 30, warmup)
        got = [float(keras.ops.convert_to_numpy(schedule(step))) for step in range(95)]
        np.testing.assert_allclose(got, [cyclic_rate(step, LR, 30, warmup) for step in range(95)], rtol=1e-5, atol=1e-9)
        assert got[30] == got[60] == pytest.approx(LR) and got[29] < 0.01 * LR  # restarts at the rate, ends near 0
    assert cyclic_rate(0, LR, 30, 3) == 0 and cyclic_rate(3, LR, 30, 3) == pytest.approx(LR)  # warm-up in the first cycle only
    assert cyclic_rate(0, LR, 30) == pytest.approx(LR)


def test_snapshots_are_distinct_fitted_members_and_the_last_is_the_model(fitted):
    clf, X, _ = fitted
    assert clf.snapshot_epochs_ == [2, 4, 6] and clf.best_epoch_ == 6 and len(clf.history_["loss"]) == 6
    weights = clf.snapshot_weights_
    assert len(weights) == 3 and all(w.dtype == np.float32 for snap in weights for w in snap)
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert max(float(np.abs(u - v).max()) for u, v in zip(weights[a], weights[b])) > 1e-3  # they differ
    for u, v in zip(weights[-1], clf.model_.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert len(clf.snapshot_scores_) == 3 and clf.snapshot_scores_[-1] == clf.early_stopping_scores_

    members = clf.snapshot_estimators()
    assert [m.snapshot_ for m in members] == [{"index": i, "of": 3, "epoch": 2 * i} for i in (1, 2, 3)]
    probas = [m.predict_proba(X[:100]) for m in members]
    assert all(p.shape == (100, 10) for p in probas)
    assert not np.allclose(probas[0], probas[1]) and not np.allclose(probas[1], probas[2])
    np.testing.assert_allclose(probas[-1], clf.predict_proba(X[:100]), atol=1e-6)  # predict_proba: the last snapshot
    for member, scores in zip(members, clf.snapshot_scores_):
        assert member.early_stopping_scores_ == scores and member.classes_ is clf.classes_ and member.spec_ is clf.spec_
        assert len(member.history_["loss"]) == member.best_epoch_ == member.snapshot_["epoch"]
        assert member.get_params() == clf.get_params() and not hasattr(member, "snapshot_weights_")
    restored = pickle.loads(pickle.dumps(members[0]))
    np.testing.assert_allclose(restored.predict_proba(X[:100]), probas[0], atol=1e-6)
    again = pickle.loads(pickle.dumps(clf))  # the whole estimator, snapshots included
    assert again.snapshot_epochs_ == [2, 4, 6]
    np.testing.assert_allclose(again.snapshot_estimators()[1].predict_proba(X[:100]), probas[1], atol=1e-6)


def test_each_snapshot_saves_as_its_own_registry_entry_that_zoo_load_loads(fitted, tmp_path):
    from zoo.library import open_library, write_model

    clf, X, _ = fitted
    lib = open_library(tmp_path / "lib")
    for member in clf.snapshot_estimators():
        name = f"snap_s{member.snapshot_['index']}"
        entry = write_model(member, lib.weights_dir, name, dataset="fashion_mnist", seconds=1.0, examples=400,
                            metrics={"early_stopping": member.early_stopping_scores_})
        lib.put(entry)
        assert entry["training"]["epochs_run"] == entry["training"]["best_epoch"] == member.snapshot_["epoch"]
        model = zoo.load(name, registry=lib.path)
        np.testing.assert_allclose(zoo.predict_proba(model, X[:50]), member.predict_proba(X[:50]), atol=1e-5)


def test_the_recipe_records_the_snapshots_and_from_spec_rebuilds_the_estimator(fitted):
    clf, _, _ = fitted
    recipe = clf.spec_["recipe"]
    assert recipe["snapshots"] == 3 and "early_stopping" not in recipe["callbacks"] and "reduce_lr_on_plateau" not in recipe["callbacks"]
    again = ZooClassifier.from_spec(clf.spec_)
    assert (again.snapshots, again.epochs, again.early_stopping_size, again.lr_schedule) == (3, 6, 40, "plateau")


def test_refusals_and_auto_epochs_rounded_up_to_whole_cycles(data_dir):
    X, y = _images(100)
    for bad in (0, -1, 1.5, "3", True):
        with pytest.raises(ValueError, match="snapshots must be a positive integer"):
            ZooClassifier("mlp", snapshots=bad).fit(X, y)
    with pytest.raises(ValueError, match=r"epochs=10 does not divide into snapshots=3 cycles of whole epochs; use epochs=9 or 12"):
        ZooClassifier("mlp", epochs=10, snapshots=3).fit(X, y)
    with pytest.raises(ValueError, match=r"epochs=2 does not divide into snapshots=3 .* use epochs=3 "):
        ZooClassifier("mlp", epochs=2, snapshots=3).fit(X, y)
    assert cycle_epochs(118, 7, auto=True) == 119 and cycle_epochs(20, 4, auto=True) == 20 and cycle_epochs(10, 1, auto=False) == 10


def test_snapshots_survive_a_resume_from_the_backup_folder_and_a_tampered_one_is_refused(tmp_path, data_dir):
    from zoo.resume import BackupRefusedError

    X, y = _images(300)
    folder = tmp_path / "backup"

    def make():
        return ZooClassifier("mlp", builder__units=(32,), epochs=6, batch_size=32, snapshots=3, learning_rate=LR)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        with pytest.raises(KeyboardInterrupt):
            make().fit(X, y, callbacks=[InterruptAfter(3)], backup_dir=folder)
        assert sorted(p.name for p in folder.glob("snapshot-*.npz")) == ["snapshot-00002.npz"]
        with np.load(folder / "snapshot-00002.npz") as arrays:
            first = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        clf = make().fit(X, y, backup_dir=folder)
    assert clf.snapshot_epochs_ == [2, 4, 6] and len(clf.history_["loss"]) == 6 and not folder.exists()
    for u, v in zip(clf.snapshot_weights_[0], first):  # the snapshot taken before the interruption
        np.testing.assert_array_equal(u, v)
    rates = clf.history_["learning_rate"]  # epochs 4 to 6 ran after the resume: the step counter went on
    assert rates[3] < 0.01 * LR and rates[4] > 40 * rates[3] and rates[5] < 0.01 * LR

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        with pytest.raises(KeyboardInterrupt):
            make().fit(X, y, callbacks=[InterruptAfter(3)], backup_dir=folder)
        np.savez(folder / "snapshot-00002.npz", *[w + 1 for w in first])
        with pytest.raises(BackupRefusedError, match="snapshot 'snapshot-00002.npz' does not match its record"):
            make().fit(X, y, backup_dir=folder)


def test_a_search_trial_with_snapshots_writes_one_loadable_entry_per_snapshot(tmp_path, data_dir):
    import optuna

    from zoo.library import find_trial, open_library
    from zoo.search.config import make_config
    from zoo.search.executors import InProcess
    from zoo.search.storage import open_storage

    X, y = _images(300)
    library = tmp_path / "lib"
    config, arrays, pruner = make_config("mlp", library=library, n_trials=2, X=X, y=y, epochs=4, executor="inprocess", logs=False,
                                         space={"units": {"choices": [[16], [32]]}, "dropout": 0.1}, study_name="snap")
    config = config.replace(base={**config.base, "snapshots": 2, "batch_size": 32})
    registry = open_library(library)
    storage = open_storage(str(library / "search.journal"))
    study = optuna.create_study(study_name="snap", storage=storage, direction="maximize", pruner=pruner)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        InProcess().run(study, storage, registry, config, arrays=arrays, pruner=pruner, progress=False)

    registry = open_library(library)
    assert sorted(registry.names()) == ["snap_t0000", "snap_t0000_s1", "snap_t0001", "snap_t0001_s1"]
    for number in (0, 1):
        last, first = registry.entry(f"snap_t{number:04d}"), registry.entry(f"snap_t{number:04d}_s1")
        assert find_trial(registry, "snap", number) == last and study.trials[number].value == last["search"]["objective"]["value"]
        assert last["snapshot"] == {"index": 2, "of": 2, "epoch": 4} and first["snapshot"] == {"index": 1, "of": 2, "epoch": 2}
        assert first["search"]["objective"]["value"] == first["metrics"]["early_stopping"]["accuracy"]
        assert last["weights"]["sha256"] != first["weights"]["sha256"]
        probas = [zoo.predict_proba(zoo.load(e["name"], registry=registry.path), X[:50]) for e in (first, last)]
        assert all(p.shape == (50, 10) and np.allclose(p.sum(axis=1), 1, atol=1e-4) for p in probas)
        assert not np.allclose(probas[0], probas[1])
