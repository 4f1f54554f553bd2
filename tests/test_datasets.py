"""Dataset loaders: official formats, fixed splits, checksums, caching and downloads."""

import collections
import gzip
import hashlib
import io
import shutil
import tarfile

import numpy as np
import pytest

from zoo import datasets
from zoo.datasets import ChecksumError, DataUnavailableError

IMAGE_SIZES = {"train": 50000, "validation": 10000, "test": 10000}
IMDB_SIZES = {"train": 20000, "validation": 5000, "test": 25000}


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_image_splits_have_documented_sizes_and_partition_the_official_train_set(name, data_dir):
    splits = {s: datasets.load(name, s) for s in datasets.SPLITS}
    for split, (X, y) in splits.items():
        assert X.shape == (IMAGE_SIZES[split], 28, 28, 1) and X.dtype == np.uint8
        assert y.shape == (IMAGE_SIZES[split],) and y.dtype == np.int64
        assert set(np.unique(y)) == set(range(10))
    # train = first 50,000 official training images, validation = the last 10,000
    official = datasets._read_idx(data_dir / name / "train-images-idx3-ubyte.gz", 2051)
    np.testing.assert_array_equal(np.concatenate([splits["train"][0], splits["validation"][0]])[..., 0], official)
    assert splits["test"][0].max() == 255 and splits["test"][0].min() == 0


def test_imdb_splits_are_stratified_disjoint_and_cover_the_official_train_reviews(data_dir):
    splits = {s: datasets.load("imdb", s) for s in datasets.SPLITS}
    for split, (X, y) in splits.items():
        assert X.shape == (IMDB_SIZES[split],) and X.dtype == object and isinstance(X[0], str)
        assert np.bincount(y).tolist() == [IMDB_SIZES[split] // 2] * 2  # stratified, balanced
    # train and validation partition the official 25,000 training reviews
    official = list(datasets._iter_reviews(data_dir / "imdb" / "aclImdb_v1_labeled.tar.gz"))
    official_train = collections.Counter(text for name, text in official if "/train/" in name)
    official_test = collections.Counter(text for name, text in official if "/test/" in name)
    assert collections.Counter(splits["train"][0]) + collections.Counter(splits["validation"][0]) == official_train
    assert collections.Counter(splits["test"][0]) == official_test
    shared = set(splits["train"][0]) & set(splits["validation"][0])
    assert all(official_train[text] >= 2 for text in shared)  # only reviews the archive itself holds twice
    # fixed seed: the same split every time
    X2, y2 = datasets.load("imdb", "validation")
    assert list(X2) == list(splits["validation"][0]) and (y2 == splits["validation"][1]).all()


def test_imdb_parse_is_cached_outside_the_data_dir(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    X, y = datasets.load("imdb", "validation")
    caches = list((tmp_path / "cache").glob("imdb-*.npz"))
    assert len(caches) == 1
    X2, y2 = datasets.load("imdb", "validation")
    assert list(X2) == list(X) and (y2 == y).all()


def test_parse_cache_entries_are_checked_against_the_digest_in_their_name(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    arrays = {"labels": np.array([0, 1, 1]), "offsets": np.array([0, 4, 9])}
    datasets._write_cache("imdb-test", arrays)
    (entry,) = tmp_path.glob("imdb-test-*.npz")
    assert entry.stem.rpartition("-")[2] == hashlib.sha256(entry.read_bytes()).hexdigest()
    assert datasets._read_cache("imdb-test", set(arrays))["labels"].tolist() == [0, 1, 1]
    np.savez(entry, labels=np.array([1, 0, 0]), offsets=arrays["offsets"])  # well-formed, other labels, old name
    assert datasets._read_cache("imdb-test", set(arrays)) is None and list(tmp_path.iterdir()) == []  # a miss, removed
    (tmp_path / "imdb-test-0.npz").symlink_to("/etc/passwd")
    assert datasets._read_cache("imdb-test", set(arrays)) is None and list(tmp_path.iterdir()) == []


def test_unusable_cache_folder_warns_once(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with pytest.warns(UserWarning, match="is not usable") as record:
        datasets._write_cache("imdb-test", {"labels": np.array([0])})
        datasets._write_cache("imdb-test", {"labels": np.array([0])})
    assert len(record) == 1


def test_imdb_parser_skips_unlabeled_reviews_and_feature_files_of_the_official_archive(tmp_path):
    archive = tmp_path / "aclImdb_v1.tar.gz"
    members = {
        "aclImdb/README": "readme",
        "aclImdb/train/labeledBow.feat": "0 0:1",
        "aclImdb/train/unsup/0_0.txt": "unlabeled",
        "aclImdb/train/pos/3_9.txt": "good",
        "aclImdb/test/neg/7_2.txt": "bad",
        "aclImdb/test/urls_neg.txt": "http://",
    }
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert sorted(datasets._iter_reviews(archive)) == [("aclImdb/test/neg/7_2.txt", "bad"), ("aclImdb/train/pos/3_9.txt", "good")]


def _copy_dataset(src, dst, name):
    shutil.copytree(src / name, dst / name)
    for f in (dst / name).iterdir():
        f.chmod(0o644)


def test_corrupted_file_is_rejected_with_its_name(tmp_path, data_dir):
    _copy_dataset(data_dir, tmp_path, "mnist")
    target = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        datasets.load("mnist", "test", data_dir=tmp_path)


def test_truncated_file_is_rejected_with_its_name(tmp_path, data_dir):
    _copy_dataset(data_dir, tmp_path, "fashion_mnist")
    target = tmp_path / "fashion_mnist" / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:100000])
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte.gz"):
        datasets.load("fashion_mnist", "train", data_dir=tmp_path)


def test_idx_parser_reports_truncated_payload(tmp_path):
    path = tmp_path / "short.gz"
    header = (2051).to_bytes(4, "big") + (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path.write_bytes(gzip.compress(header + bytes(28 * 28 * 2)))
    with pytest.raises(ValueError, match="truncated"):
        datasets._read_idx(path, 2051)


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        datasets.load("cifar", "train")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        datasets.load("mnist", "dev")


# ----------------------------------------------------------------------------- downloads


def test_missing_file_is_downloaded_verified_and_written_atomically(tmp_path, monkeypatch, http_mirror, data_dir):
    root, url = http_mirror
    _copy_dataset(data_dir, root, "mnist")
    monkeypatch.setenv("ZOO_DATA_MIRROR", url)
    target = tmp_path / "fresh"
    X, y = datasets.load("mnist", "test", data_dir=target)
    X_ref, y_ref = datasets.load("mnist", "test")
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)
    assert sorted(p.name for p in (target / "mnist").iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_corrupted_download_is_rejected_and_leaves_nothing_behind(tmp_path, monkeypatch, http_mirror, data_dir):
    root, url = http_mirror
    _copy_dataset(data_dir, root, "mnist")
    bad = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setenv("ZOO_DATA_MIRROR", url)
    target = tmp_path / "fresh"
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz"):
        datasets.load("mnist", "test", data_dir=target)
    assert not target.exists()  # no file, no partial download, no folder made for it


def test_unreachable_network_names_file_url_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_MIRROR", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(DataUnavailableError) as info:
        datasets.load("fashion_mnist", "test", data_dir=tmp_path)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "http://127.0.0.1:9/fashion_mnist/" in message and "ZOO_DATA_DIR" in message
    assert list(tmp_path.iterdir()) == []  # no file, and no fashion_mnist/ folder either
    with pytest.raises(DataUnavailableError):
        datasets.load("mnist", "test", data_dir=tmp_path / "shraed" / "data")  # a mistyped data directory
    assert list(tmp_path.iterdir()) == []  # is not created when nothing was downloaded


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "env"))
    assert datasets.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert datasets.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("ZOO_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ZOO_CACHE_DIR", raising=False)
    assert datasets.resolve_data_dir() == tmp_path / "xdg" / "keras-zoo" / "data"


def test_relative_env_paths_are_resolved_once_against_the_working_directory(tmp_path, monkeypatch):
    rel = f"data-{tmp_path.name}"  # unique: resolution is remembered per value
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_DATA_DIR", rel)
    monkeypatch.setenv("ZOO_CACHE_DIR", f"{rel}-cache")
    assert datasets.resolve_data_dir() == tmp_path / rel and datasets.resolve_data_dir().is_absolute()
    assert datasets.cache_dir() == tmp_path / f"{rel}-cache"
    monkeypatch.chdir(tmp_path.parent)  # a later chdir does not move them
    assert datasets.resolve_data_dir() == tmp_path / rel and datasets.cache_dir() == tmp_path / f"{rel}-cache"
