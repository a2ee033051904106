"""Shared fixtures: a real PostgreSQL server started for the run, migrated databases, and the CLI as a subprocess.

PostgreSQL comes from Debian's ``postgresql`` package (installed by ``make test``); the server is
a private cluster in a temporary directory on a free loopback port, removed at the end. Set
``CALLCENTER_TEST_POSTGRES_URL`` to use an existing server instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = REPO / "config" / "callcenter.toml"
# Tests on real SIP, real timers and several processes each: with pytest-xdist (make test) they run
# one after another on one worker, so none of them competes with another for the CPU.
REAL_SIP = ("front", "e2e", "telephony")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts and parts[0] in REAL_SIP:
            item.add_marker(pytest.mark.xdist_group("real-sip"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    raise RuntimeError(f"PostgreSQL's {name} not found: install Debian's postgresql package (make test does)")


class _PostgresCluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cc-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.root.chmod(0o755)

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """URL of a maintenance database on a real PostgreSQL server."""
    url = os.environ.get("CALLCENTER_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    cluster = _PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    import psycopg

    name = f"cc_test_{uuid.uuid4().hex[:12]}"
    plain = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path) -> str:
    """Each test using this runs twice: on an SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'callcenter.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def migrated_db(database_url: str):
    from callcenter.db import Database, upgrade

    db = Database(database_url)
    upgrade(db)
    yield db
    db.dispose()


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Cli:
    """Runs ``python -m callcenter`` in a subprocess, as a user would, against a given database."""

    cwd: Path
    database_url: str
    config: Path = SAMPLE_CONFIG

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_") or k.startswith("CALLCENTER_TEST_")
        }
        environ.update({"COLUMNS": "160", "NO_COLOR": "1", "CALLCENTER_DATABASE__URL": self.database_url})
        environ.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "callcenter", "--config", str(self.config), *args],
            cwd=self.cwd, env=environ, capture_output=True, text=True, timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return Cli(cwd=tmp_path, database_url=database_url)


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    return Cli(cwd=tmp_path, database_url=f"sqlite:///{tmp_path / 'callcenter.db'}")
