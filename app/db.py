"""The engine, and the one way to get a session: `Database.session()`, a unit of work that
commits on success and rolls back on any exception.

SQLite is the default. Its writers are serialized with BEGIN IMMEDIATE so that a transaction that
reads a balance and then writes it cannot interleave with another one (SQLite's stand-in for the
row locks PostgreSQL takes with SELECT … FOR UPDATE). A read that will not write asks for a plain
(deferred) BEGIN with `Database.read()`: in WAL mode it never waits for, nor holds up, a writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from app import jsoncodec
from app.storage.sqlite_lock import BUSY_TIMEOUT_S, begin_immediate, waiters_file


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


READ_ONLY = "clawback_read_only"  # an execution option: this transaction only reads


# The JSON columns are written and read through orjson (see app/jsoncodec.py).
JSON_CODEC = {"json_serializer": jsoncodec.dumps, "json_deserializer": jsoncodec.loads}


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **JSON_CODEC, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    waiters = waiters_file(parsed.database)
    connect_args = {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
    engine = create_engine(url, connect_args=connect_args, **JSON_CODEC, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's own BEGIN is DEFERRED and late).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        # WAL: readers never block the writer nor wait for it, and a commit is one append to the
        # -wal file instead of a rewrite of the pages plus a rollback journal.
        cur.execute("PRAGMA journal_mode=WAL")
        # Durability, and what "no accepted webhook is ever lost" rests on. In WAL mode NORMAL
        # writes every commit to the -wal file before COMMIT returns but fsyncs only at checkpoints.
        # A committed transaction is then in the operating system's page cache, and survives the
        # death of the process that wrote it (kill -9, OOM, a crash of Python): the 200 we answer
        # after COMMIT is a promise kept through any process failure. What NORMAL gives up is power
        # loss or a kernel crash: the transactions committed since the last checkpoint's fsync
        # (SQLite checkpoints every 1000 pages of WAL: a few hundred webhooks at most) may roll
        # back. The database stays consistent (never corrupt), but deliveries answered 200 in that
        # window would be gone, and the platforms do not resend what they saw accepted; the hourly
        # reconciliation (`reconcile_all`) then recovers their order facts from the platform.
        # FULL would fsync the WAL on every commit: on a cloud disk that is 1-10 ms per webhook and
        # caps intake at a few hundred per second. Deployments that must survive power loss without
        # reconciliation run PostgreSQL (synchronous_commit=on).
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA cache_size=-16000")  # 16 MB of pages per connection (default: 2 MB)
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")  # deferred: a snapshot for reading, no write lock
        else:
            begin_immediate(conn.connection.dbapi_connection, waiters)

    return engine


class Database:
    """Owns the engine for one app or CLI invocation: `session()` to read and write, `read()` to
    read only. The webhook path's own statements are in app/storage."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def sqlite_file(self) -> str | None:
        """The SQLite database's file; None in memory or on PostgreSQL."""
        database = self.engine.url.database
        if not self.is_sqlite or not database or database == ":memory:":
            return None
        return database

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commit when the block ends, roll back if it raises."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only: on SQLite a deferred BEGIN, which takes no write lock (a
        write inside it may fail with "database is locked"). Closed when the block ends: its
        connection goes back to the pool, which rolls it back, and the objects it loaded keep their
        values (detached, not expired: they may be read after the block)."""
        with Session(self.engine, expire_on_commit=False) as session:
            session.connection(execution_options={READ_ONLY: True})
            yield session

    def analyze(self) -> None:
        """Refresh the query planner's statistics (SQLite has no autovacuum to do it). Without them
        SQLite guesses that `shop_id = ?` is selective, and with 100 thousand customers in one
        shop it would scan them all through the (shop_id, platform_customer_id) index to find 50 by
        id. analysis_limit keeps it to a sample of each index: milliseconds, even at millions."""
        if not self.is_sqlite:
            return  # PostgreSQL's autovacuum analyzes on its own
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            conn.exec_driver_sql("ANALYZE")
            conn.commit()

    def ping(self) -> None:
        with self.read() as session:  # a health check must not queue for the write lock
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
