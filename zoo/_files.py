"""File helpers: sha256, atomic writes and verified downloads."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
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
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary name ends in ``suffix`` (for writers that check extensions).
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
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        renamed = _naming(exc, tmp, path)
        if renamed is exc:
            raise
        raise renamed from exc


_TMP_PREFIX = 40  # characters of the final name kept in the temporary one


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


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


_show_progress = True


@contextlib.contextmanager
def progress_bars(enabled: bool):
    """Within the block, downloads show progress bars only if ``enabled`` (``--quiet`` turns them off)."""
    global _show_progress
    saved, _show_progress = _show_progress, enabled
    try:
        yield
    finally:
        _show_progress = saved


def download(url: str, dest: str | os.PathLike, sha256: str, *, hint: str = "", progress: bool | None = None) -> Path:
    """Download ``url`` to ``dest``, verify its sha256, and write it atomically.

    Parameters
    ----------
    url : str
        Where to fetch the file from.
    dest : path
        Final location. Nothing is written there unless the checksum matches.
    sha256 : str
        Expected hex digest.
    hint : str
        Appended to the error message when the network fails (e.g. how to
        point the loader at a local copy instead).
    progress : bool, optional
        Show a tqdm progress bar on stderr; by default unless inside
        ``progress_bars(False)``.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    progress = _show_progress if progress is None else progress
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(dest) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            got = digest.hexdigest()
            if got != sha256:
                raise ChecksumError(f"downloaded {dest.name} from {url} has sha256 {got}, expected {sha256}; file discarded")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataUnavailableError(f"could not download {dest.name} from {url}: {exc}. {hint}".strip()) from exc
    return dest


class ChecksumError(ValueError):
    """A file's sha256 does not match the known-good value."""


class DataUnavailableError(FileNotFoundError):
    """A data file is missing and could not be downloaded."""


def verify(path: str | os.PathLike, sha256: str, what: str = "file") -> None:
    """Raise ChecksumError unless the file at ``path`` has the given sha256."""
    got = sha256_file(path)
    if got != sha256:
        raise ChecksumError(f"{what} {path} has sha256 {got}, expected {sha256}; refusing to use it (corrupted, truncated or replaced?)")
