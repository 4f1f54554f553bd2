"""Checked reads, atomic writes and locks for files, shared by ``zoo`` and ``ensemble``.

Decisions: one helper per job. ``sha256_file`` is the one file digest;
``atomic_path`` is the one atomic write (a temporary file beside the target,
renamed onto it only when the body succeeds, so readers never see half a
file); ``locked`` is the one inter-process lock (``fcntl.flock`` on a lock
file, released when the block ends or the process dies). This package imports
neither ``zoo`` nor ``ensemble``: both depend on it, it depends on neither.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import tempfile
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", *, durable: bool = False):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary name ends in ``suffix`` (for writers that check extensions).
    With ``durable=True`` the file's bytes are flushed to the disk (``fsync``)
    before the rename and the rename itself after it, so a power cut leaves
    the old file or the new one (for small pointers that name other files).
    If the body raises, the temporary file is removed and ``path`` is untouched,
    so readers never see a half-written file. Errors name ``path``, never the
    hidden temporary file: a ``path`` that is a folder raises
    ``IsADirectoryError``, a name longer than the file system allows raises an
    ``OSError`` with ``errno.ENAMETOOLONG``.
    """
    path = Path(path)
    check_file_name(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the temporary name is bounded, so every valid final name works
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:_TMP_PREFIX]}.", suffix=".part" + suffix, dir=path.parent)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the final file the usual mode
    try:
        yield Path(tmp)
        if durable:
            _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        renamed = _naming(exc, tmp, path)
        if renamed is exc:
            raise
        raise renamed from exc


_TMP_PREFIX = 40  # characters of the final name kept in the temporary one


def _fsync(path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_file_name(path: str | os.PathLike) -> None:
    """Raise an ``OSError`` unless ``path`` can name a new file: its name too long, a file above it, or a folder."""
    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    if len(os.fsencode(path.name)) > limit:
        raise OSError(errno.ENAMETOOLONG, f"file name too long ({len(os.fsencode(path.name))} bytes; at most {limit})", str(path))
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder", str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file name", str(path))


def _naming(exc: BaseException, tmp: str, path: Path) -> BaseException:
    """``exc`` with the temporary file's name replaced by ``path`` (``exc`` itself if it does not name it)."""
    if isinstance(exc, OSError) and exc.filename == tmp:
        return type(exc)(exc.errno, exc.strerror, str(path))
    if tmp in str(exc):
        try:
            return type(exc)(str(exc).replace(tmp, str(path)))
        except Exception:  # an exception type that cannot be rebuilt from a message
            return exc
    return exc


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, prefix: str = ".tmp-"):
    """Yield a new temporary folder next to ``path``; rename it onto ``path`` on success.

    ``path`` must not exist or be an empty folder (a non-empty one makes the
    rename fail, so a folder filled meanwhile is never replaced). If the body
    raises, the temporary folder and what it holds are removed and ``path``
    is untouched. The temporary name starts with ``prefix`` followed by the
    process id (so a writer's leftovers can be told from a live writer's).
    """
    import shutil

    path = Path(path)
    parent = path.absolute().parent
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700; give the folder the usual mode
    try:
        yield tmp
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def locked(lock_file: str | os.PathLike):
    """Hold an exclusive ``fcntl.flock`` lock on ``lock_file`` (created if missing) for the block.

    The lock is advisory (every writer must take it) and is released when the
    block ends or when the process dies, so a killed writer never leaves a
    stale lock behind.
    """
    import fcntl

    with open(lock_file, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cache_dir() -> Path:
    """Directory for derived caches (``$ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/keras-zoo``, else ``~/.cache/keras-zoo``)."""
    env = os.environ.get("ZOO_CACHE_DIR")
    if env:
        return env_path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    return (env_path(base) if base else Path.home() / ".cache") / "keras-zoo"


@functools.cache
def env_path(value: str) -> Path:
    """A path from an environment variable, made absolute once, against the working directory of its first use.

    A later ``os.chdir`` does not move it (subprocesses and tests change
    directories; a relative ``ZOO_CACHE_DIR=../cache`` must keep meaning one
    folder).
    """
    return Path(value).expanduser().absolute()
