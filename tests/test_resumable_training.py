"""Resumable training (zoo.resume): a fit killed mid-way goes on from its last epoch; other trainings' backups are refused.

Real TensorFlow, real MNIST images (a few hundred), tiny models, a few epochs.
"""

import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from zoo import datasets
from zoo.estimator import ZooClassifier
from interrupt import InterruptAfter

# A fit in its own process: it records every epoch it runs (pid, epoch, loss) and, when told, waits
# at the start of epoch KILL_AT for the SIGKILL the test sends.
FIT_SCRIPT = r"""
import json, os, sys, time
import keras
from zoo import datasets
from zoo.estimator import ZooClassifier

out, kill_at = sys.argv[1], int(sys.argv[2])
X, y = datasets.load("mnist", "train")
X, y = X[:300], y[:300]

class Record(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == kill_at:
            time.sleep(600)

    def on_epoch_end(self, epoch, logs=None):
        with open(os.path.join(out, "ran.txt"), "a") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "epoch": epoch, "loss": logs["loss"]}) + "\n")

clf = ZooClassifier("bn_cnn", builder__filters=(8, 16), epochs=5, batch_size=64, patience=10, lr_schedule="cosine",
                    log_dir=os.path.join(out, "logs"))
clf.fit(X, y, callbacks=[Record()], backup_dir=os.path.join(out, "backup"))
with open(os.path.join(out, "result.json"), "w") as fh:
    json.dump({"history": clf.history_, "best_epoch": clf.best_epoch_, "resumed_seconds": clf.resumed_seconds_}, fh)
"""


def _wait_for_epoch(state_file, epoch, process, timeout=300):
    """Poll the backup's state.json until it records ``epoch`` completed epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        try:
            if json.loads(state_file.read_text())["epoch"] >= epoch:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{state_file} never reached epoch {epoch}")


def test_a_fit_killed_after_two_epochs_resumes_at_the_third_and_ends_with_the_planned_epochs(tmp_path, data_dir):
    backup = tmp_path / "backup"
    first = subprocess.Popen([sys.executable, "-c", FIT_SCRIPT, str(tmp_path), "2"], stderr=subprocess.PIPE)
    try:
        _wait_for_epoch(backup / "state.json", 2, first)
        time.sleep(0.5)  # it waits at the start of epoch 3
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()
    assert first.returncode == -signal.SIGKILL and not (tmp_path / "result.json").exists()
    seconds = json.loads((backup / "state.json").read_text())["seconds"]  # the training time of the two epochs backed up
    assert seconds > 0

    subprocess.run([sys.executable, "-c", FIT_SCRIPT, str(tmp_path), "-1"], check=True, capture_output=True)
    ran = [json.loads(line) for line in (tmp_path / "ran.txt").read_text().splitlines()]
    assert [r["epoch"] for r in ran if r["pid"] == first.pid] == [0, 1]
    assert [r["epoch"] for r in ran if r["pid"] != first.pid] == [2, 3, 4]  # the second process started at the third epoch
    result = json.loads((tmp_path / "result.json").read_text())
    history = result["history"]
    assert len(history["loss"]) == 5 and len(history["val_loss"]) == 5
    assert history["loss"] == pytest.approx([r["loss"] for r in ran])  # the killed process's epochs, then the second one's
    # the cosine schedule went on from the restored step counter: the rate falls epoch after epoch to 0 at the last step
    rates = history["learning_rate"]
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] == pytest.approx(0.0, abs=1e-9)
    assert result["best_epoch"] == int(np.argmin(history["val_loss"])) + 1
    assert result["resumed_seconds"] == seconds  # added to the resumed process's own time where an entry records it
    rows = (tmp_path / "logs" / "training.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2", "3", "4"]  # one row per epoch, across the restart
    assert not backup.exists()  # deleted after the successful fit


class _InterruptWhenStopped(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the end of the epoch where early stopping ended the training (after the backup)."""

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training:
            raise KeyboardInterrupt


def _images(n=300):
    X, y = datasets.load("mnist", "train")
    return X[:n], y[:n]


def test_a_fit_killed_after_early_stopping_does_not_train_again_and_keeps_the_best_epoch(tmp_path, data_dir):
    X, y = _images()
    params = dict(epochs=30, batch_size=32, monitor="val_accuracy", patience=0, learning_rate=3e-3)
    whole = ZooClassifier("mlp", **params).fit(X, y)
    assert whole.best_epoch_ < len(whole.history_["loss"]) < 30  # early stopping ended it
    with pytest.raises(KeyboardInterrupt):
        ZooClassifier("mlp", **params).fit(X, y, callbacks=[_InterruptWhenStopped()], backup_dir=tmp_path / "b")
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert state["stopped"] and state["epoch"] == len(whole.history_["loss"])

    resumed = ZooClassifier("mlp", **params).fit(X, y, backup_dir=tmp_path / "b")
    assert resumed.history_ == whole.history_  # no epoch trained after the restart
    assert resumed.best_epoch_ == whole.best_epoch_
    np.testing.assert_allclose(resumed.predict_proba(X[:50]), whole.predict_proba(X[:50]), rtol=1e-5, atol=1e-6)  # the best epoch's weights
    assert resumed.early_stopping_scores_ == pytest.approx(whole.early_stopping_scores_)
    assert not (tmp_path / "b").exists()


def test_a_backup_of_another_training_or_one_that_does_not_match_its_record_is_refused(tmp_path, data_dir):
    X, y = _images()
    folder = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        ZooClassifier("mlp", epochs=4, batch_size=64).fit(X, y, callbacks=[InterruptAfter(2)], backup_dir=folder)
    recorded = (folder / "state.json").read_text()

    with pytest.raises(ValueError, match="holds the backup of another training"):
        ZooClassifier("mlp", epochs=5, batch_size=64).fit(X, y, backup_dir=folder)  # other parameters
    with pytest.raises(ValueError, match="holds the backup of another training"):
        ZooClassifier("mlp", epochs=4, batch_size=64).fit(X[:-1], y[:-1], backup_dir=folder)  # other data
    with pytest.raises(ValueError, match="holds the backup of another training"):
        ZooClassifier("mlp", epochs=4, batch_size=64).fit(X, (y + 1) % 10, backup_dir=folder)  # other labels
    assert (folder / "state.json").read_text() == recorded  # refused, untouched

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no training backup"):
        ZooClassifier("mlp", epochs=4, batch_size=64).fit(X, y, backup_dir=foreign)
    assert (foreign / "notes.txt").read_text() == "mine"

    # a kill while Keras rewrote the weights: the previous copy (.bkp) matches the record and is put back
    weights = folder / "latest.weights.h5"
    (folder / "latest.weights.h5.bkp").write_bytes(weights.read_bytes())
    weights.write_bytes(b"half-written")
    clf = ZooClassifier("mlp", epochs=4, batch_size=64).fit(X, y, backup_dir=folder)
    assert len(clf.history_["loss"]) == 4 and not folder.exists()

    # weights that match no record are never loaded
    with pytest.raises(KeyboardInterrupt):
        ZooClassifier("mlp", epochs=4, batch_size=64).fit(X, y, callbacks=[InterruptAfter(2)], backup_dir=folder)
    for name in ("latest.weights.h5", "latest.weights.h5.bkp"):
        (folder / name).write_bytes(b"tampered")
    with pytest.raises(ValueError, match="no weights file matches the record of epoch 2"):
        ZooClassifier("mlp", epochs=4, batch_size=64).fit(X, y, backup_dir=folder)


# One search trial in its own process (a worker), SIGKILLed mid-training by the test.
TRIAL_SCRIPT = r"""
import sys
import optuna
from zoo import datasets
from zoo.search.config import SearchConfig
from zoo.search.objective import fit_trial
from zoo.search.storage import open_storage
from zoo.search.trials import who

config = SearchConfig.from_json(open(sys.argv[1]).read())
X, y = datasets.load("mnist", "train")
study = optuna.load_study(study_name=config.study, storage=open_storage(config.storage))
trial = study.ask()
for key, value in who().items():
    trial.set_user_attr(key, value)
fit_trial(trial, config, X[:300], y[:300])
"""


def test_a_search_trial_whose_process_died_is_retried_and_resumes_its_training(tmp_path, data_dir):
    import optuna

    from zoo.library import open_library
    from zoo.search.config import SearchConfig
    from zoo.search.objective import backup_folder, fit_trial, original_trial
    from zoo.search.storage import open_storage
    from zoo.search.trials import reap

    library = tmp_path / "lib"
    open_library(library)
    base = {"builder": "bn_cnn", "builder__filters": [8, 16], "epochs": 10, "batch_size": 64, "patience": 20, "early_stopping_size": 50}
    config = SearchConfig(study="s", storage=str(library / "search.journal"), library=str(library), builder="bn_cnn", base=base,
                          space={}, logs=False, dataset="mnist")
    storage = open_storage(config.storage)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    (tmp_path / "config.json").write_text(config.to_json())
    worker = subprocess.Popen([sys.executable, "-c", TRIAL_SCRIPT, str(tmp_path / "config.json")], stderr=subprocess.PIPE)
    state_file = library / ".backups" / "s_t0000" / "state.json"
    try:
        _wait_for_epoch(state_file, 2, worker)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        worker.stderr.close()
    done = json.loads(state_file.read_text())["epoch"]
    assert 2 <= done < 10

    assert reap(study, open_library(library), storage) == [0]  # failed and queued again (user attribute retry_of)
    X, y = datasets.load("mnist", "train")
    trial = study.ask()
    assert trial.number == 1 and original_trial(trial) == 0
    assert backup_folder(config, trial) == library / ".backups" / "s_t0000" and state_file.is_file()
    clf, record = fit_trial(trial, config, X[:300], y[:300])
    assert len(clf.history_["loss"]) == 10
    assert sorted(study.trials[1].intermediate_values) == list(range(done, 10))  # it trained the epochs the dead trial had not
    assert record["trial"] == 1 and not (library / ".backups").exists()


def test_original_trial_follows_retries_of_retries_and_optunas_retry_callback(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from zoo.search.objective import original_trial
    from zoo.search.storage import retry_trial

    study = optuna.create_study()
    first = study.ask()
    assert original_trial(first) == 0
    study.tell(first, state=TrialState.FAIL)
    study.enqueue_trial({}, user_attrs={"retry_of": 0})  # zoo.search.trials.reap's retry
    second = study.ask()
    study.tell(second, state=TrialState.FAIL)
    study.enqueue_trial({}, user_attrs={"retry_of": second.number})
    third = study.ask()
    assert (second.number, third.number) == (1, 2) and original_trial(third) == 0
    study.tell(third, state=TrialState.FAIL)

    fresh = study.ask()
    assert original_trial(fresh) == fresh.number
    study.tell(fresh, state=TrialState.FAIL)
    retry_trial(study, study.trials[fresh.number])  # Optuna's RetryHeartbeatStaleTrialCallback (a stale heartbeat)
    retried = study.ask()
    study.tell(retried, state=TrialState.FAIL)
    retry_trial(study, study.trials[retried.number])
    again = study.ask()
    assert original_trial(retried) == fresh.number and original_trial(again) == fresh.number


def test_zoo_train_killed_mid_way_resumes_when_run_again(tmp_path, data_dir):
    """The default backup (LIB/.backups/train_NAME): the same command run again goes on; another training's is refused."""
    library, out = tmp_path / "lib", tmp_path / "run"
    command = [sys.executable, "-m", "zoo", "train", "mnist_bn_cnn", "--subset", "800", "--library", str(library), "--out", str(out)]
    state_file = library / ".backups" / "train_mnist_bn_cnn" / "state.json"
    first = subprocess.Popen([*command, "--epochs", "6"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_epoch(state_file, 2, first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()
    done = json.loads(state_file.read_text())["epoch"]
    assert 2 <= done < 6

    other = subprocess.run([*command, "--epochs", "7"], capture_output=True, text=True)
    assert other.returncode != 0 and "holds the backup of another training" in other.stderr
    assert json.loads(state_file.read_text())["epoch"] == done

    again = subprocess.run([*command, "--epochs", "6"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    started = [int(line.split()[1].split("/")[0]) for line in (again.stdout + again.stderr).splitlines() if line.startswith("Epoch ") and line.endswith("/6")]
    # Keras's "Epoch k/6" lines: only the epochs the killed run had not finished (up to 6, or until early stopping)
    assert started and started == list(range(done + 1, started[-1] + 1))
    assert f"trained mnist_bn_cnn: {started[-1]} epochs" in again.stdout  # the entry counts the epochs of both runs
    rows = (out / "training.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == [str(e) for e in range(started[-1])]
    assert not (library / ".backups").exists()
