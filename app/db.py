"""The engine, and the one way to get a session: `Database.session()`, a unit of work that
commits on success and rolls back on any exception.

SQLite is the default. Its writers are serialized with BEGIN IMMEDIATE so that a transaction that
reads a balance and then writes it cannot interleave with another one (SQLite's stand-in for the
row locks PostgreSQL takes with SELECT … FOR UPDATE). A read that will not write asks for a plain
(deferred) BEGIN with `Database.read()`: in WAL mode it never waits for, nor holds up, a writer.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlmodel import Session

from app import jsoncodec
from app.prepared import Prepared


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


log = logging.getLogger(__name__)


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)
BUSY_TIMEOUT_S = 30
READ_ONLY = "clawback_read_only"  # an execution option: this transaction only reads


def begin_immediate(dbapi_conn: Any, waiters: str | None) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock with short, steady polls, and saying so.

    SQLite's own busy handler sleeps 1, 2, 5, … then 100 ms between tries, so a small write (a
    webhook's INSERT) that arrives while the job worker holds the lock could sleep past many
    chances to take it: seconds of tail latency under load. Instead: no busy handler for the
    BEGIN itself, and retry every 0.1 to 0.5 ms (a try is a few microseconds), for as long as
    busy_timeout would have waited. Statements inside the transaction keep the busy_timeout.

    While it waits, it holds a shared flock on the `waiters` file beside the database, which is
    how the job worker knows a writer is waiting (`Database.writers_waiting`): it then commits its
    batch early and steps aside, so a webhook waits for one delivery's processing, not a batch's.
    """
    dbapi_conn.execute("PRAGMA busy_timeout=0")
    fd = None
    try:
        try:
            dbapi_conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
        if waiters is not None:
            try:
                fd = os.open(waiters, os.O_RDWR | os.O_CREAT, 0o660)
                fcntl.flock(fd, fcntl.LOCK_SH)
            except OSError:  # a hint only: without it the worker just does not step aside early
                log.warning("cannot lock %s; the job worker will not know that writers wait", waiters)
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        pause = 0.0001
        while True:
            time.sleep(pause)
            pause = min(pause * 1.5, 0.0005)
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                if time.monotonic() > deadline:  # as SQLAlchemy reports it for any statement
                    raise sa_exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc
    finally:
        if fd is not None:
            os.close(fd)  # and with it the shared lock: no longer waiting
        dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")


class Kept(Generic[C]):
    """One connection per thread, kept for the life of the thread rather than checked out of a pool
    per use, and opened again in a forked process (a connection must not cross a fork)."""

    def __init__(self, make: Callable[[], C]) -> None:
        self._make = make
        self._local = threading.local()

    def get(self) -> C:
        conn: C | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._make()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def drop(self, close: bool = True) -> None:
        """Forget this thread's connection (closing it when this process opened it)."""
        conn = getattr(self._local, "conn", None)
        if close and conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None


def waiters_file(url: str) -> str | None:
    """The file beside a SQLite database that waiting writers hold a shared lock on."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database + "-writers"


# The JSON columns are written and read through orjson (see app/jsoncodec.py).
JSON_CODEC = {"json_serializer": jsoncodec.dumps, "json_deserializer": jsoncodec.loads}


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **JSON_CODEC, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    waiters = waiters_file(url)
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
    """Owns the engine for one app or CLI invocation."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self._waiters = waiters_file(self.url)
        self._waiters_fd: int | None = None
        self._reader: Kept[sqlite3.Connection] = Kept(self._open_reader)
        self._kept: Kept[Connection] = Kept(
            lambda: self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        )

    def writers_waiting(self) -> bool:
        """Whether another transaction is waiting for SQLite's write lock right now (always False
        on PostgreSQL, whose row locks let writers of different rows run side by side)."""
        if self._waiters is None:
            return False
        try:
            if self._waiters_fd is None:
                self._waiters_fd = os.open(self._waiters, os.O_RDWR | os.O_CREAT, 0o660)
            fcntl.flock(self._waiters_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # someone holds it shared: waiting in begin_immediate
        except OSError:
            return False  # cannot tell (permissions): behave as before, batches end by their budget
        fcntl.flock(self._waiters_fd, fcntl.LOCK_UN)
        return False

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

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
    def read(self) -> Iterator[Connection]:
        """A Core connection for reading only: on SQLite a deferred BEGIN, which takes no write lock
        (a write inside it may fail with "database is locked"). Rolled back when the block ends."""
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            try:
                yield conn
            finally:
                conn.rollback()

    @contextmanager
    def sqlite_read(self) -> Iterator[sqlite3.Cursor]:
        """SQLite only: a cursor on this thread's own reading connection, in autocommit mode: each
        SELECT is its own read transaction (no BEGIN, no write lock). For the webhook path's
        lookups: the connection is kept, not checked out of the pool per request (a checkout and
        its return cost as much as the SELECT). Opened again in a forked process."""
        if self.sqlite_file is None:  # in memory, one database per connection: the pool's
            raw = self.engine.raw_connection()
            try:
                driver = raw.driver_connection
                assert driver is not None
                yield driver.cursor()
            finally:
                raw.close()
            return
        yield self._reader.get().cursor()

    @property
    def sqlite_file(self) -> str | None:
        """The SQLite database's file; None in memory or on PostgreSQL."""
        database = self.engine.url.database
        if not self.is_sqlite or not database or database == ":memory:":
            return None
        return database

    def _open_reader(self) -> sqlite3.Connection:
        database = self.sqlite_file
        assert database
        conn = sqlite3.connect(database, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")  # this connection never writes
        return conn

    def first_autocommit(self, statement: Any, params: dict[str, Any]) -> Any:
        """PostgreSQL: run one statement on this thread's kept connection in autocommit mode (its
        own transaction, committed, durable, before this returns) and return its first row.

        For the webhook path's two statements: no pool checkout and pre-ping, no BEGIN and COMMIT
        round trips. A connection found broken (the server restarted) is replaced and the
        statement tried once more: both of the path's statements may run twice (a lookup; an
        INSERT … ON CONFLICT DO NOTHING, whose second run finds the first). A `Prepared`
        statement runs on the driver's cursor and returns a plain tuple."""
        for attempt in (1, 2):
            try:
                if isinstance(statement, Prepared):  # on the driver's cursor: see app/prepared.py
                    return statement.first(self._kept.get(), params)
                return self._kept.get().execute(statement, params).first()
            except sa_exc.DBAPIError as exc:
                if not exc.connection_invalidated or attempt == 2:
                    raise
                self._kept.drop(close=False)  # SQLAlchemy has invalidated it: a new one next time
        raise AssertionError("unreachable")

    @contextmanager
    def sqlite_write(self) -> Iterator[sqlite3.Cursor]:
        """SQLite only: a cursor on a pooled driver connection inside BEGIN IMMEDIATE, committed
        when the block ends (rolled back if it raises). For the one statement on the webhook's
        path, where SQLAlchemy's own transaction and statement machinery would cost more than the
        statement itself."""
        raw = self.engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            begin_immediate(driver, self._waiters)
            try:
                yield driver.cursor()
                driver.commit()
            except BaseException:
                driver.rollback()
                raise
        finally:
            raw.close()  # back to the pool

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
        with self.read() as conn:  # a health check must not queue for the write lock
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self._reader.drop()
        self._kept.drop()
        self.engine.dispose()
        if self._waiters_fd is not None:
            os.close(self._waiters_fd)
            self._waiters_fd = None
