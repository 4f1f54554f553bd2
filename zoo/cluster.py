"""Former home of the Dask executor; kept so that ``zoo.cluster``'s public names keep working.

The Dask executor lives in :mod:`zoo.search.cluster`, storages in
:mod:`zoo.search.storage`; this module only re-exports what it exported.
"""

from zoo.search import storage
from zoo.search.cluster import connect
from zoo.search.config import DEFAULT_HEARTBEAT
from zoo.search.storage import DB_FILE as STORAGE_FILE
from zoo.search.storage import MAX_RETRY, absolute_url

__all__ = ["DEFAULT_HEARTBEAT", "MAX_RETRY", "STORAGE_FILE", "absolute_url", "connect", "open_storage"]


def open_storage(url: str, heartbeat: int | None = DEFAULT_HEARTBEAT):
    """Optuna's RDB storage at ``url``, with heartbeats; see ``zoo.search.storage.open_storage``."""
    return storage.open_storage(url, heartbeat=heartbeat, database=True)
