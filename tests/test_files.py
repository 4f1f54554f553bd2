"""File helpers: atomic writes never leave a half-written file behind."""

import pytest

from zoo._files import atomic_path, atomic_write_text, sha256_file


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
