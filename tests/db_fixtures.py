"""Fixtures for the store tests: a fresh data folder and database per test.

``store`` runs a test on SQLite and, when PostgreSQL's server binaries and
psycopg are installed, on a throwaway PostgreSQL cluster started for the test
session (a fresh database per test; marked ``postgres`` and ``slow``, skipped with
the reason when PostgreSQL is missing, or failed where ``COSMICS_REQUIRE_POSTGRES=1``).
``sqlite_store`` is SQLite only.

Use from a test module with ``from db_fixtures import *``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from tiers import REQUIRE_POSTGRES, skip_or_fail

import db
from segcore import io

__all__ = [
    "make_layout",
    "postgres_cluster",
    "sqlite_store",
    "store",
    "write_png_bomb",
]


def _use(monkeypatch, home: Path, url: str | None) -> Path:
    monkeypatch.setenv("COSMICS_HOME", str(home))
    if url:
        monkeypatch.setenv("COSMICS_DB_URL", url)
    else:
        monkeypatch.delenv("COSMICS_DB_URL", raising=False)
    db.reset()
    db.init_db()
    return home


@pytest.fixture
def sqlite_store(tmp_path, monkeypatch):
    """A fresh COSMICS_HOME with the default SQLite database; yields the home folder."""
    home = _use(monkeypatch, tmp_path / "home", None)
    yield home
    db.reset()


# --- PostgreSQL ------------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """A server in a temporary folder, reachable only through a unix socket there."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="cosmics-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.port = _free_port()
        self.user = "postgres"
        as_root = os.geteuid() == 0
        if as_root:  # the server refuses to run as root
            shutil.chown(self.root, "postgres", "postgres")
        else:
            self.user = os.environ.get("USER") or "postgres"
        self._prefix = ["runuser", "-u", "postgres", "--"] if as_root else []

    def _run(self, *args: str) -> None:
        subprocess.run(self._prefix + list(args), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync")
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses='' -c fsync=off"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l",
                  str(self.root / "server.log"), "start")

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self) -> str:
        import sqlalchemy

        name = f"cosmics_{uuid.uuid4().hex[:12]}"
        engine = sqlalchemy.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL server for the test session, or a skip (a failure where required) saying what is missing."""
    try:
        import psycopg  # noqa: F401  (the driver the URL names)
    except ImportError:
        skip_or_fail("psycopg is not installed (pip install 'psycopg[binary]')", REQUIRE_POSTGRES)
    bin_dir = _pg_bin()
    if bin_dir is None:
        skip_or_fail("PostgreSQL server binaries not found (apt-get install postgresql)", REQUIRE_POSTGRES)
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        skip_or_fail("running as root without runuser to start PostgreSQL as its own user", REQUIRE_POSTGRES)
    cluster = None
    try:
        cluster = PostgresCluster(bin_dir)
        cluster.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, LookupError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        if cluster is not None:
            shutil.rmtree(cluster.root, ignore_errors=True)
        skip_or_fail(f"could not start PostgreSQL: {exc} {detail.decode(errors='replace')[-300:]}", REQUIRE_POSTGRES)
    yield cluster
    cluster.stop()


# The PostgreSQL runs start a server and make a database per test: CI runs them, the quick tier does not.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.slow])])
def store(request, tmp_path, monkeypatch):
    """A fresh store on each backend; yields the COSMICS_HOME folder."""
    if request.param == "sqlite":
        home = _use(monkeypatch, tmp_path / "home", None)
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        home = _use(monkeypatch, tmp_path / "home", cluster.create_database())
    yield home
    db.reset()


# --- data ------------------------------------------------------------------------


def make_layout(
    folder: Path,
    counts: dict[str, int] | None = None,
    size: int = 64,
    seed: int = 0,
    real: int = 0,
) -> dict[str, list[str]]:
    """Write a small dataset in the original layout: 16-bit frames, 0/1 masks with a few hits.

    Returns the frame file names per split folder.
    """
    counts = counts or {"Train": 2, "Validation": 1, "Test": 1}
    rng = np.random.default_rng(seed)
    names: dict[str, list[str]] = {}
    index = 0
    for split, n in counts.items():
        names[split] = []
        for _ in range(n):
            name = f"frame_{index:03d}.png"
            frame = rng.integers(100, 200, size=(size, size)).astype(np.uint16)
            mask = np.zeros((size, size), np.uint8)
            for _ in range(3):
                r, c = rng.integers(2, size - 4, size=2)
                mask[r : r + 2, c : c + 3] = 1
                frame[mask.astype(bool)] = 4000
            io.write_frame(folder / split / name, frame)
            io.write_mask(folder / f"{split}Annotation" / name, mask)
            names[split].append(name)
            index += 1
    for i in range(real):
        name = f"real_{i:03d}.png"
        io.write_frame(folder / "Real" / name, rng.integers(100, 200, size=(size, size)).astype(np.uint16))
        names.setdefault("Real", []).append(name)
    return names


def write_png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> None:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    rows = zlib.compress(b"\x00" * 64)  # far fewer rows than claimed
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
