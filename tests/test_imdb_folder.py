"""An extracted aclImdb/ folder is verified against the known digest; symlinks are refused; its cache is keyed by that digest."""

import os
import subprocess
import sys
import tarfile

import pytest

from zoo import datasets
from zoo.datasets import ChecksumError

REVIEW = "aclImdb/train/pos/0_9.txt"


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, data_dir):
    """A real extracted copy of the shared archive, with the extra files of the full official archive."""
    root = tmp_path_factory.mktemp("imdb-folder")
    with tarfile.open(data_dir / "imdb" / "aclImdb_v1_labeled.tar.gz") as tar:
        tar.extractall(root / "imdb", filter="data")
    folder = root / "imdb" / "aclImdb"
    (folder / "train" / "unsup").mkdir()
    (folder / "train" / "unsup" / "0_0.txt").write_text("an unlabeled review, not read")
    (folder / "train" / "labeledBow.feat").write_text("0 0:1 1:2\n")
    (folder / "test" / "urls_neg.txt").write_text("http://www.imdb.com/title/tt0000001/usercomments\n")
    return root


@pytest.fixture
def cache(extracted, monkeypatch):
    """A parse cache shared by this module's tests (warm after the first load)."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(extracted / "cache"))
    return extracted / "cache"


@pytest.fixture(scope="module")
def reference(data_dir):
    return datasets.load("imdb", "validation")  # from the archive, through the session's cache


def test_folder_loads_like_the_archive_with_a_cache_keyed_by_its_digest(extracted, cache, reference):
    X, y = datasets.load("imdb", "validation", data_dir=extracted)
    assert list(X) == list(reference[0]) and (y == reference[1]).all()
    (entry,) = cache.glob("imdb-*.npz")
    assert entry.name.startswith(f"imdb-v2-{datasets._IMDB_FOLDER_SHA256[:16]}-")
    X2, _ = datasets.load("imdb", "validation", data_dir=extracted)  # from the cache, after verification
    assert list(X2) == list(X)


def test_known_digest_is_that_of_the_archives_labeled_reviews(data_dir):
    import hashlib

    reviews = sorted((name, text.encode("utf-8")) for name, text in datasets._iter_reviews(data_dir / "imdb" / "aclImdb_v1_labeled.tar.gz"))
    listing = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in reviews)
    assert hashlib.sha256(listing.encode()).hexdigest() == datasets._IMDB_FOLDER_SHA256


def test_edited_or_added_reviews_are_refused_not_served_from_the_cache(extracted, cache):
    # the first test left the cache warm for the known digest: verification comes first
    review = extracted / "imdb" / REVIEW
    original = review.read_bytes()
    extra = review.with_name("99999_10.txt")
    try:
        review.write_bytes(original.replace(b".", b"!", 1))
        with pytest.raises(ChecksumError, match=r"does not hold the official labeled reviews \(25000 train and 25000 test"):
            datasets.load("imdb", "test", data_dir=extracted)
        review.write_bytes(original)
        extra.write_bytes(original)
        with pytest.raises(ChecksumError, match="25001 train"):
            datasets.load("imdb", "test", data_dir=extracted)
    finally:
        review.write_bytes(original)
        extra.unlink(missing_ok=True)


def test_symlinks_are_refused_not_followed(extracted, cache, tmp_path):
    folder = extracted / "imdb" / "aclImdb"
    review = extracted / "imdb" / REVIEW
    original = review.read_bytes()
    same = tmp_path / "same.txt"
    same.write_bytes(original)  # followed, this link would even pass the digest
    try:
        for target in ("/etc/passwd", same):
            review.unlink()
            review.symlink_to(target)
            with pytest.raises(ChecksumError, match="0_9.txt is a symbolic link"):
                datasets.load("imdb", "validation", data_dir=extracted)
            review.unlink()
            review.write_bytes(original)
        (folder / "test" / "neg").rename(folder / "test" / "neg-real")
        (folder / "test" / "neg").symlink_to(folder / "test" / "neg-real")
        with pytest.raises(ChecksumError, match="neg is a symbolic link"):
            datasets.load("imdb", "validation", data_dir=extracted)
    finally:
        if review.is_symlink():
            review.unlink()
        review.write_bytes(original)
        if (folder / "test" / "neg-real").exists():
            (folder / "test" / "neg").unlink()
            (folder / "test" / "neg-real").rename(folder / "test" / "neg")
    linked = tmp_path / "linked"
    (linked / "imdb").mkdir(parents=True)
    (linked / "imdb" / "aclImdb").symlink_to(folder)
    with pytest.raises(ChecksumError, match="aclImdb is a symbolic link"):
        datasets.load("imdb", "validation", data_dir=linked)


def test_zoo_command_reports_an_edited_folder_in_one_line(extracted, cache):
    review = extracted / "imdb" / REVIEW
    original = review.read_bytes()
    review.write_bytes(original + b" (edited)")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "zoo", "evaluate", "imdb_bow", "--limit", "10"],
            capture_output=True, text=True, timeout=600, env={**os.environ, "ZOO_DATA_DIR": str(extracted)},
        )
    finally:
        review.write_bytes(original)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "does not hold the official labeled reviews" in line and str(extracted / "imdb" / "aclImdb") in line
