"""The one storage factory of a search, and reading studies back.

Decisions:

- :func:`open_storage` opens every storage a search uses, through Optuna's
  public API: a journal file (a path: ``JournalFileBackend``, safe for several
  processes of one machine; the default ``LIB/search.journal``), a Redis
  journal (``redis://``), or any SQLAlchemy URL (``sqlite:///file.db``,
  ``postgresql://user@host/db``) as ``RDBStorage``: SQLite waits up to 60 s
  for a lock (loops, trials and the coordinator write at once), other
  databases ping a pooled connection before use (idle for a whole trial, it
  may have been dropped) and give up connecting to PostgreSQL after 10 s.
- ``heartbeat=N`` (a search on a Dask cluster, which needs a database every
  worker reaches): a running trial records a heartbeat every N seconds; one
  silent for three intervals is failed and queued again with the same values
  by Optuna's retry callback (``RetryHeartbeatStaleTrialCallback``, before
  Optuna 4.9 ``RetryFailedTrialCallback``; up to ``MAX_RETRY`` times).
- Any failure to open is one ``ValueError`` naming the storage without its
  password (:func:`redact`).
- Reading (``history``, ``plot_history``) opens the same way and never creates:
  :func:`library_storage` refuses a library without a storage.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

__all__ = ["DB_FILE", "MAX_RETRY", "STORAGE_FILE", "absolute_url", "check_url", "fail_stale", "first_line", "library_storage", "open_storage",
           "read_study", "redact", "retry_trial", "trial_id"]

STORAGE_FILE = "search.journal"  # the default storage, in the library folder
DB_FILE = "search.db"  # the default storage of a search on a Dask cluster, in the library folder
MAX_RETRY = 3  # times a trial whose worker died is run again
_GRACE = 3  # heartbeats a trial may miss before it counts as dead


def open_storage(where: str, *, heartbeat: int | None = None, database: bool = False):
    """An Optuna storage; ``ValueError`` if it cannot be opened.

    Parameters
    ----------
    where : str
        A journal file's path, or an Optuna storage URL (``sqlite:///study.db``,
        ``postgresql://user@host/db``, ``redis://host``).
    heartbeat : int, optional
        Seconds between heartbeats of a running trial (a database only); a trial
        that misses three is failed and run again.
    database : bool, default=False
        Refuse anything but a database every worker reaches (a Dask cluster).
    """
    import optuna

    url = isinstance(where, str) and "://" in where
    if database and (not url or where.startswith(("redis://", "rediss://", "unix://"))):
        raise ValueError(f"storage {where if not isinstance(where, str) else redact(where)!r}: a search on a cluster needs a database every worker "
                         "reaches: postgresql://user@host/db (sqlite:///file.db for workers on this machine)")
    if not url:  # a journal file: the library's default, never a user's --storage (check_url refuses paths there)
        if not isinstance(where, str) or not where:
            check_url(where)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(where))
    try:
        if where.startswith(("redis://", "rediss://", "unix://")):
            from optuna.storages.journal import JournalRedisBackend, JournalStorage

            return JournalStorage(JournalRedisBackend(where))
        engine: dict = {}
        if where.startswith("sqlite"):
            engine["connect_args"] = {"timeout": 60}
        else:
            engine["pool_pre_ping"] = True
            if where.startswith(("postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://")):
                engine["connect_args"] = {"connect_timeout": 10}
        kwargs = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if heartbeat is not None:
                # Optuna 4.9 renamed failed_trial_callback and RetryFailedTrialCallback
                name = "heartbeat_stale_trial_callback" if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback") else "failed_trial_callback"
                kwargs = {"heartbeat_interval": heartbeat, "grace_period": _GRACE * heartbeat, name: retry_trial}
            return optuna.storages.RDBStorage(where, engine_kwargs=engine, **kwargs)
    except Exception as exc:  # noqa: BLE001 (any driver's error: unknown dialect, missing module, unreachable server, unwritable file)
        raise ValueError(f"storage {redact(where)}: cannot open it: {first_line(exc)}") from None


def check_url(storage) -> str:
    """A user's ``storage`` if it is an Optuna storage URL, else a ``ValueError`` (a bare path would silently make a journal)."""
    if not isinstance(storage, str) or "://" not in storage:
        raise ValueError(f"storage {storage!r}: expected an Optuna storage URL such as sqlite:///study.db or postgresql://user@host/db")
    return storage


def retry_trial(study, trial) -> None:
    """Queue a trial whose worker died again, with the same values (Optuna's retry callback, up to ``MAX_RETRY`` times)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
        retry(max_retry=MAX_RETRY)(study, trial)


def fail_stale(study) -> None:
    """Fail trials whose heartbeat stopped; Optuna's retry callback queues them again."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def trial_id(storage, study_name: str, number: int) -> int:
    """The storage's id of trial ``number`` of ``study_name`` (Optuna's public storage API)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)


def absolute_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute (workers start elsewhere)."""
    if isinstance(url, str) and url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        return "sqlite:///" + str(Path(url[len("sqlite:///"):]).expanduser().absolute())
    return url


def redact(url: str) -> str:
    """``url`` without a password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def library_storage(library, storage: str | None) -> tuple[Path, str]:
    """``(library folder, storage)`` of an existing library; a ``ValueError`` where there is none (nothing is created)."""
    folder = Path(library).expanduser().absolute()
    if not folder.is_dir():
        raise ValueError(f"library {library}: no such folder")
    if storage is not None:
        return folder, check_url(storage)
    if (folder / STORAGE_FILE).is_file():
        return folder, str(folder / STORAGE_FILE)
    if (folder / DB_FILE).is_file():
        return folder, f"sqlite:///{folder / DB_FILE}"
    raise ValueError(f"library {library}: no {STORAGE_FILE} or {DB_FILE} there; give the storage URL the search used")


def read_study(name: str, storage):
    """``optuna.load_study`` for reading: a plain random sampler (no TPE set-up; nothing is drawn)."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))


@contextlib.contextmanager
def quiet_optuna():
    """Optuna's INFO lines ("A new study created") muted inside."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
