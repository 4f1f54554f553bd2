"""File helpers: atomic writes never leave a half-written file behind."""

import errno
import os

import pytest

from kze.files import atomic_path, atomic_write_text, sha256_file


def test_atomic_write_replaces_the_file_in_one_step(tmp_path):
    target = tmp_path / "weights.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.json"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_interrupted_write_leaves_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "weights.json"
    atomic_write_text(target, "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half of the new con")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of writing
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.json"]


def test_temporary_name_keeps_the_suffix_writers_check(tmp_path):
    with atomic_path(tmp_path / "m.weights.h5", suffix=".weights.h5") as tmp:
        assert tmp.name.endswith(".weights.h5") and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert sha256_file(tmp_path / "m.weights.h5") == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"


def test_long_valid_names_work_and_too_long_ones_name_the_users_path(tmp_path):
    long_name = tmp_path / ("w" * 250 + ".json")  # valid (255 bytes): its temporary name must fit too
    atomic_write_text(long_name, "ok")
    assert long_name.read_text() == "ok" and [p.name for p in tmp_path.iterdir()] == [long_name.name]
    too_long = tmp_path / ("w" * 300 + ".json")
    with pytest.raises(OSError, match="file name too long") as info:
        atomic_write_text(too_long, "no")
    assert info.value.errno == errno.ENAMETOOLONG and info.value.filename == str(too_long)
    assert [p.name for p in tmp_path.iterdir()] == [long_name.name]


def test_a_folder_or_a_file_above_is_refused_before_writing(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder") as info:
        atomic_write_text(tmp_path / "out", "x")
    assert info.value.filename == str(tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file is not a folder"):
        atomic_write_text(tmp_path / "file" / "weights.json", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]


def test_errors_inside_the_block_name_the_users_path_not_the_temporary_file(tmp_path):
    import numpy as np

    target = tmp_path / "arrays.npz"
    with pytest.raises(OSError) as info, atomic_path(target, suffix=".npz") as tmp:
        os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)  # fails, naming the temporary file
    assert info.value.filename == str(target) and ".part" not in str(info.value)
    with pytest.raises(ValueError) as info, atomic_path(target) as tmp:
        raise ValueError(f"cannot write {tmp}: bad data")
    assert str(info.value) == f"cannot write {target}: bad data"
    with atomic_path(target, suffix=".npz") as tmp:
        np.savez(tmp, X=np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["arrays.npz"]
