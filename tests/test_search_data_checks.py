"""Data a search's worker processes read again from a file is the data that was checked: a cluster trial unpickles
the very bytes whose sha256 it checked (one read of the scratch file, no second open to swap), and a worker on
this machine refuses a --data file whose arrays changed since the search started."""

import errno
import hashlib
import os
import pickle
import threading
import time

import numpy as np
import pytest

import zoo
from zoo import ChecksumError
from zoo.search.cluster import read_scratch
from zoo.search.config import SearchConfig, user_data
from zoo.search.objective import load_data


class _Touch:
    """Unpickling it creates a file: whether a pickle was loaded shows on the disk."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_scratch_data_is_checked_before_anything_is_unpickled(tmp_path):
    arrays = (np.arange(12, dtype=np.uint8).reshape(3, 2, 2), np.array(["a", "b", "a"]))
    good = pickle.dumps(arrays, protocol=pickle.HIGHEST_PROTOCOL)
    (tmp_path / "data.pickle").write_bytes(good)
    X, y = read_scratch(str(tmp_path / "data.pickle"), hashlib.sha256(good).hexdigest())
    np.testing.assert_array_equal(X, arrays[0])
    np.testing.assert_array_equal(y, arrays[1])

    (tmp_path / "data.pickle").write_bytes(pickle.dumps(_Touch(tmp_path / "ran")))  # replaced: would run code when unpickled
    with pytest.raises(ChecksumError, match=r"search data .*data\.pickle has sha256 [0-9a-f]{64}, expected " + hashlib.sha256(good).hexdigest()):
        read_scratch(str(tmp_path / "data.pickle"), hashlib.sha256(good).hexdigest())
    assert not (tmp_path / "ran").exists()


def test_scratch_data_is_unpickled_from_the_bytes_checked_not_from_a_second_open(tmp_path):
    """A FIFO serves the genuine pickle to its first reader and another one to any second: a check, then a second open
    to unpickle, would load the swapped pickle (creating the file ``ran``); one read loads what was checked."""
    good = pickle.dumps((np.arange(4), np.array([0, 1, 0, 1])))
    fifo = tmp_path / "data.pickle"
    os.mkfifo(fifo)
    finished = threading.Event()
    served = []

    def serve():
        for blob, wait in ((good, 30.0), (pickle.dumps(_Touch(tmp_path / "ran")), 2.0)):
            if served and finished.wait(wait):  # done with one read: nothing to swap
                return
            deadline = time.monotonic() + wait
            while True:
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds once a reader has the FIFO open
                    break
                except OSError as exc:
                    if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                        return
                    time.sleep(0.01)
            os.set_blocking(fd, True)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            served.append(blob)

    writer = threading.Thread(target=serve, daemon=True)
    writer.start()
    try:
        X, y = read_scratch(str(fifo), hashlib.sha256(good).hexdigest())
    finally:
        finished.set()
        writer.join(10)
    np.testing.assert_array_equal(X, np.arange(4))
    np.testing.assert_array_equal(y, [0, 1, 0, 1])
    assert served == [good] and not (tmp_path / "ran").exists()  # the file was opened once


def test_a_worker_refuses_a_data_file_changed_since_the_search_started(tmp_path):
    X, y = zoo.datasets.load("mnist", "train")
    np.savez(tmp_path / "train.npz", X=X[:200, ::4, ::4], y=y[:200])
    base = {"early_stopping_size": 50}
    _, data_info = user_data("mlp", None, None, tmp_path / "train.npz", base)
    config = SearchConfig(study="s", storage="", library=str(tmp_path / "lib"), builder="mlp", base=base, space={},
                          data_path=str(tmp_path / "train.npz"), data_info=data_info)
    X_read, y_read = load_data(config)
    np.testing.assert_array_equal(X_read, X[:200, ::4, ::4])
    np.testing.assert_array_equal(y_read, y[:200])

    changed = X[:200, ::4, ::4].copy()
    changed[7, 3, 3, 0] ^= 1  # one pixel of one image
    np.savez(tmp_path / "train.npz", X=changed, y=y[:200])
    with pytest.raises(ValueError, match=r"train\.npz changed since the search started .* refusing to train on it"):
        load_data(config)


def test_a_study_recorded_with_the_legacy_data_digest_resumes_on_the_same_data_only(tmp_path):
    """Studies record kze.data.data_hash_pair; one recorded by an earlier release (the legacy digest) still resumes."""
    import optuna

    from kze.data import data_hash_pair
    from zoo.search.config import legacy_data_digest
    from zoo.search.storage import STORAGE_FILE, open_storage

    X, y = zoo.datasets.load("mnist", "train")
    X, y = X[:240, ::4, ::4], y[:240]
    lib = tmp_path / "lib"
    options = dict(library=lib, X=X, y=y, epochs=1, space={}, study_name="legacy", executor="inprocess", progress=False, logs=False)
    zoo.search("mlp", n_trials=1, **options)
    study = optuna.load_study(study_name="legacy", storage=open_storage(str(lib / STORAGE_FILE)))
    recorded = study.user_attrs["zoo"]
    assert recorded["data_sha256"] == data_hash_pair(X, y) != legacy_data_digest(X, y)
    study.set_user_attr("zoo", {**recorded, "data_sha256": legacy_data_digest(X, y)})  # as release 0.1 recorded it

    assert zoo.search("mlp", n_trials=2, **options)["trials"]["complete"] == 2
    changed = X.copy()
    changed[0, 0, 0, 0] ^= 1
    with pytest.raises(ValueError, match="was created with data_sha256"):
        zoo.search("mlp", n_trials=3, **{**options, "X": changed})
