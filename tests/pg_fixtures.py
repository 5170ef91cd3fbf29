"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, a free local port, a temp directory.

:func:`pg_cluster` (session) runs ``scripts/ensure-postgres.sh`` (installs Debian's ``postgresql`` when
missing and prints its bin directory), then ``initdb`` + ``pg_ctl start`` on ``127.0.0.1:<free port>`` with
the socket in the cluster's temp directory, and stops and removes it when the session ends. As root, the
server runs as the ``postgres`` user (``runuser``), since PostgreSQL refuses to run as root. A test that needs
PostgreSQL **fails** when it cannot be had: it is never skipped.

:func:`pg_url` gives each test a database of its own (``postgresql://aceorch@127.0.0.1:<port>/<name>``).
:meth:`PgCluster.stop` / :meth:`PgCluster.start` take the server away and back (durability tests).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER = "aceorch"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One PostgreSQL server in a temp directory; ``url(db)`` for a database on it."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        """``initdb`` with trust authentication and the superuser ``aceorch``."""
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
                  "--no-sync")

    def start(self) -> None:
        """Start the server on 127.0.0.1:port and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server now (fast mode: open connections are cut)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def createdb(self, name: str) -> None:
        """Create an empty database."""
        self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)

    def dropdb(self, name: str) -> None:
        """Drop a database, cutting its connections."""
        self._run(str(self.bindir / "dropdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "--force",
                  "--if-exists", name, check=False)

    def url(self, name: str) -> str:
        """The plain ``DB_URL`` an operator would write for this database."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server for the whole session (started on first use, stopped at the end)."""
    try:
        out = subprocess.run([str(ROOT / "scripts" / "ensure-postgres.sh")], check=True, capture_output=True,
                             text=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"PostgreSQL cannot be had: {exc.stderr}")
    bindir = Path(out.stdout.strip().splitlines()[-1])
    root = Path(tempfile.mkdtemp(prefix="aceorch-pg-"))
    cluster = PgCluster(bindir, root)
    try:
        cluster.init()
        cluster.start()
    except subprocess.CalledProcessError as exc:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"the test PostgreSQL did not start: {exc.stderr}\n{log}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database for this test, dropped afterwards; its plain ``postgresql://`` URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_cluster.createdb(name)
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.dropdb(name)
