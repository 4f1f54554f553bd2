"""Verified downloads and checksum errors for the zoo's data and weights (file helpers are in ``kze.files``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from kze.files import atomic_path, sha256_file

_CHUNK = 1 << 20


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
