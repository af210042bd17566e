"""The engine, the data directory, migrations on start-up, and the one place sessions open.

SQLite (the default) is opened in WAL mode so the app can read while a training
process writes. Transactions that write start with ``BEGIN IMMEDIATE``: a
deferred transaction that reads first and writes later fails at once with
"database is locked" when another process wrote in between, whatever the busy
timeout; an immediate one waits its turn instead.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from .errors import StoreUnavailable

DEFAULT_HOME = "data"
#: How long a SQLite connection waits for another writer before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 60_000
_WRITE_OPTION = "cosmics_write"
#: Seconds to wait for a database server to accept a connection (unless the URL says).
CONNECT_TIMEOUT_S = 10
_MIGRATION_LOCK_ID = 7_020_611  # any constant; serialises concurrent upgrades on PostgreSQL

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()


def home() -> Path:
    """The data directory: ``COSMICS_HOME``, default ``./data``; created if missing."""
    path = Path(os.environ.get("COSMICS_HOME") or DEFAULT_HOME).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """``COSMICS_DB_URL``, or the SQLite file ``<COSMICS_HOME>/cosmics.db``."""
    return os.environ.get("COSMICS_DB_URL") or f"sqlite:///{home() / 'cosmics.db'}"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # The driver must not open transactions itself; the "begin" hook below does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` with the store's connection settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        _configure_sqlite(engine)
        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S  # a server that never answers must not hang the app
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def get_engine(url: str | None = None) -> Engine:
    """The shared engine for ``url`` (default :func:`database_url`), made once per process."""
    url = url or database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def _writer(engine: Engine) -> Engine:
    return engine.execution_options(**{_WRITE_OPTION: True})


@contextmanager
def migration_connection(engine: Engine) -> Iterator:
    """A connection in one write transaction, fit for altering tables on any backend."""
    with _writer(engine).connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by copying it and dropping the old one; with foreign
            # keys on, that drop would cascade into the rows that point at it.
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_ID})
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left rows without their parent: {broken[:5]}")
        finally:
            if sqlite:
                connection.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")


def _migrations_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return config


def schema_is_current(engine: Engine) -> bool:
    """True when the store's schema is at the newest revision (read only, no write lock)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current == set(ScriptDirectory.from_config(_migrations_config()).get_heads())


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision, keeping all data.

    A store already there is only read, so a read-only store (a file without write
    permission, ``?mode=ro``, a read-only database user) opens.
    """
    from alembic import command

    if schema_is_current(engine):
        return
    config = _migrations_config()
    with migration_connection(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def init_db(url: str | None = None) -> Engine:
    """Open the store, applying any pending migrations (once per process and URL)."""
    engine = get_engine(url)
    key = str(engine.url)
    if key not in _migrated:
        try:
            upgrade(engine)
        except OperationalError as exc:
            raise StoreUnavailable(_unavailable(exc, engine)) from exc
        _migrated.add(key)
    return engine


def reset() -> None:
    """Forget cached engines, e.g. after ``COSMICS_DB_URL`` or ``COSMICS_HOME`` changed."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


@contextmanager
def session_scope(write: bool = True) -> Iterator[Session]:
    """One short transaction: committed on success, rolled back on error, always closed.

    ``write=False`` for pure reads, which then never wait for a writer on SQLite.

    Raises
    ------
    StoreUnavailable when the database cannot be reached, read or written (locked
    past the busy timeout, read-only, server down), naming the store and the reason.
    """
    engine = init_db()
    session = Session(bind=_writer(engine) if write else engine, expire_on_commit=False)
    try:
        yield session
        # Also for reads: ends the transaction without expiring the loaded objects.
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise StoreUnavailable(_unavailable(exc, engine)) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _unavailable(exc: OperationalError, engine: Engine) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    store = engine.url.render_as_string(hide_password=True)
    return f"the store {store} cannot be used: {reason}"
