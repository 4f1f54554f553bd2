"""Shared test setup: real data from $ZOO_DATA_DIR (default ../shared/data), quiet TensorFlow.

Relative ``$ZOO_DATA_DIR``/``$ZOO_CACHE_DIR`` values (the README's command uses
``ZOO_DATA_DIR=../shared/data``) are made absolute here, against the directory
pytest was started from, so subprocesses started elsewhere see the same folders.
"""

import functools
import http.server
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if not os.environ.get("ZOO_DATA_DIR") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["ZOO_DATA_DIR"] = str(ROOT.parent / "shared" / "data")
for _var in ("ZOO_DATA_DIR", "ZOO_CACHE_DIR"):
    if os.environ.get(_var):
        os.environ[_var] = str(Path(os.environ[_var]).expanduser().absolute())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The read-only directory of official dataset files."""
    path = Path(os.environ.get("ZOO_DATA_DIR", ""))
    if not (path / "mnist").is_dir():
        pytest.fail(f"ZOO_DATA_DIR={path!s} does not hold the datasets; point it at ../shared/data")
    return path


@pytest.fixture
def http_mirror(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/'mirror'."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL database URL: ``$ZOO_TEST_POSTGRES_URL``, else a throwaway server started here.

    The throwaway server: ``initdb`` into a fresh folder under the system's temporary
    folder (owned by the ``postgres`` user when running as root: the server refuses
    root), listening on 127.0.0.1 only, on a free port, its socket in that folder,
    trust authentication for 127.0.0.1 and the socket; database ``zoo_test``. Stopped
    and deleted at the end of the session. Without a URL, server binaries
    (``pg_ctl`` on the PATH or ``/usr/lib/postgresql/*/bin``) or psycopg2 the tests
    are skipped, or fail when ``ZOO_REQUIRE_POSTGRES=1`` (``.ci/run``).
    """
    def unavailable(why: str):
        if os.environ.get("ZOO_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"ZOO_REQUIRE_POSTGRES=1 but {why}", pytrace=False)
        pytest.skip(why)

    if os.environ.get("ZOO_TEST_POSTGRES_URL"):
        yield os.environ["ZOO_TEST_POSTGRES_URL"]
        return
    try:
        import psycopg2  # noqa: F401 (the driver of the URL below)
    except ImportError:
        unavailable("psycopg2 is not installed (pip install psycopg2-binary)")
    found = shutil.which("pg_ctl")
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    bindir = Path(found).resolve().parent if found else versions[-1].parent if versions else None
    if bindir is None or not (bindir / "initdb").is_file():
        unavailable("no PostgreSQL server binaries (apt-get install postgresql), and ZOO_TEST_POSTGRES_URL is not set")
    owner = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        if shutil.which("runuser") is None:
            unavailable("running as root needs runuser to start PostgreSQL as the postgres user")
        try:
            import pwd

            user = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root needs a postgres user to start PostgreSQL")
        owner = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="zoo-postgres-"))
    if owner:
        os.chown(folder, user.pw_uid, user.pw_gid)
    data, log = folder / "data", folder / "server.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*command):
        proc = subprocess.run([*owner, *map(str, command)], capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{Path(str(command[0])).name} failed: {proc.stderr.strip()}\n{tail}", pytrace=False)

    try:
        run(bindir / "initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--no-sync", "--auth=trust")
        (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")  # 127.0.0.1 only, no ::1
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200"
        run(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")
        try:
            run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "zoo_test")
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/zoo_test"
        finally:
            run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
