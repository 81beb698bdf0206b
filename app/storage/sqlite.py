"""Deliveries on SQLite: the inbox beside the file, a kept reading connection, the writers' lock.

SQLite has one write lock per database file, shared by the webhook's INSERT and the job worker's
transactions. So:
- a webhook is spooled into the inbox (`<db>-inbox`, app/storage/inbox.py), whose write lock only
  the web workers take, and the worker's `take` moves the inbox into `webhook_deliveries` first
  (an in-memory database has no file beside it: there the webhook's INSERT goes in directly);
- lookups (the shop, a duplicate) run on a reading connection each thread keeps, one statement,
  no BEGIN; the shop found is kept until `PRAGMA data_version` says another connection committed;
- a writer waiting in `begin_immediate` holds a shared lock on `<db>-writers`, which is how the
  worker knows to commit early and step aside (`writers_waiting`, `step_aside`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from app.db import Database
from app.models import Shop
from app.storage.deliveries import (
    COLUMNS,
    FIND_SHOP,
    STORED,
    Accepted,
    Deliveries,
    StoredDelivery,
    insert_statement,
    values,
)
from app.storage.inbox import Inbox, Moved
from app.storage.kept import Kept
from app.storage.prepared import Prepared
from app.storage.sqlite_lock import BUSY_TIMEOUT_S, WritersWaiting, begin_immediate, waiters_file

_INSERT = Prepared(insert_statement("sqlite"))
_MOVE = Prepared(insert_statement("sqlite", returning=False))  # the inbox's executemany
_SEEN_MAX = 1000  # shops kept per thread: unknown domains must not grow it without bound
MOVE_LIMIT = 200  # inbox rows moved per transaction


class SqliteDeliveries(Deliveries):
    """See the module's docstring."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.file = db.sqlite_file
        self.inbox = Inbox.beside(self.file) if self.file else None
        self._reader: Kept[sqlite3.Connection] = Kept(self._open_reader)
        self._waiters = waiters_file(self.file)
        self._waiting = WritersWaiting(self._waiters)
        self._seen = threading.local()

    # --- connections -----------------------------------------------------------------------------

    def _open_reader(self) -> sqlite3.Connection:
        assert self.file
        conn = sqlite3.connect(self.file, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")  # this connection never writes
        return conn

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Cursor]:
        """A cursor on this thread's reading connection, in autocommit mode: each SELECT is its own
        read transaction (no BEGIN, no write lock). In memory (one database per connection) the
        pool's connection."""
        if self.file is None:
            raw = self.db.engine.raw_connection()
            try:
                driver = raw.driver_connection
                assert driver is not None
                yield driver.cursor()
            finally:
                raw.close()
            return
        yield self._reader.get().cursor()

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Cursor]:
        """A cursor on a pooled driver connection inside BEGIN IMMEDIATE, committed when the block
        ends (rolled back if it raises): for the inbox's move and the webhook's INSERT, where
        SQLAlchemy's own transaction and statement machinery would cost more than the statement."""
        raw = self.db.engine.raw_connection()
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

    # --- the web ---------------------------------------------------------------------------------

    def find_shop(self, platform: str, domain: str) -> Shop | None:
        compiled = FIND_SHOP.compiled(self.db.engine.dialect)
        with self.reading() as cursor:
            seen = self._seen_shops(cursor)
            if seen is not None and (platform, domain) in seen:
                return seen[(platform, domain)]
            found = cursor.execute(
                compiled.sql, compiled.parameters({"platform": platform, "domain": domain})
            ).fetchone()
        shop = self.as_shop(found)
        if seen is not None:
            if len(seen) >= _SEEN_MAX:
                seen.clear()
            seen[(platform, domain)] = shop
        return shop

    def _seen_shops(self, cursor: sqlite3.Cursor) -> dict[tuple[str, str], Shop | None] | None:
        """The shops this thread's reading connection has looked up since the database last changed.

        SQLite's `PRAGMA data_version` changes on a connection whenever another connection has
        committed to the database, and the kept reading connection never writes: so while it stays
        the same, no shop row can have changed (installed, uninstalled, settings saved, erased) and
        the rows read before are the rows. One pragma instead of the SELECT and its decoding, which
        under load is most webhooks: the job worker commits a few times a second, the web a
        thousand. None in memory, where the connection also writes."""
        if self.file is None:
            return None
        version = cursor.execute("PRAGMA data_version").fetchone()[0]
        kept = getattr(self._seen, "kept", None)
        if kept is None or kept[0] is not cursor.connection or kept[1] != version:
            kept = self._seen.kept = (cursor.connection, version, {})
        seen: dict[tuple[str, str], Shop | None] = kept[2]
        return seen

    def accept(
        self, *, shop_id: int, platform: str, topic: str, delivery_id: str, body: bytes, headers: Mapping[str, str]
    ) -> Accepted:
        """With an inbox: a read that answers a duplicate of a stored delivery as one, then the
        INSERT into the inbox; the worker's move lets the UNIQUE constraint settle duplicates still
        spooled. In memory: the INSERT itself."""
        row = values(shop_id, platform, topic, delivery_id, body, headers)
        params = _INSERT.compiled(self.db.engine.dialect).parameters(row)
        assert isinstance(params, list) and len(params) == len(COLUMNS)  # by position, in COLUMNS order
        if self.inbox is not None:
            found = self.stored(shop_id, delivery_id)
            if found is not None:
                return found
            self.inbox.spool(params)
            return Accepted(0, duplicate=False, status="spooled")
        with self.writing() as cursor:
            inserted = cursor.execute(_INSERT.compiled(self.db.engine.dialect).sql, params).fetchone()
        if inserted is not None:
            return Accepted(int(inserted[0]), duplicate=False)
        return self.stored(shop_id, delivery_id) or Accepted(0, duplicate=True, status="missing")

    def stored(self, shop_id: int, delivery_id: str) -> Accepted | None:
        compiled = STORED.compiled(self.db.engine.dialect)
        with self.reading() as cursor:
            found = cursor.execute(
                compiled.sql, compiled.parameters({"shop_id": shop_id, "delivery_id": delivery_id[:200]})
            )
            return self.as_accepted(found.fetchone())

    def warm(self) -> None:
        super().warm()
        _INSERT.compiled(self.db.engine.dialect)
        if self.inbox is not None:
            self.inbox.connect()

    def spooled(self) -> int | None:
        return None if self.inbox is None else self.inbox.depth()

    # --- the worker ------------------------------------------------------------------------------

    def move_inbox(self, limit: int = MOVE_LIMIT) -> Moved:
        """Spooled deliveries into `webhook_deliveries` (the webhook's own INSERT, so the UNIQUE
        constraint still decides what is a duplicate)."""
        if self.inbox is None:
            return Moved()
        compiled = _MOVE.compiled(self.db.engine.dialect)
        assert [name for name, _ in compiled.binds] == list(COLUMNS)  # the order the inbox keeps them in
        return self.inbox.move(self.writing, compiled.sql, limit)

    def take(self, limit: int) -> list[StoredDelivery]:
        self.move_inbox()
        return super().take(limit)

    def writers_waiting(self) -> bool:
        return self._waiting()

    def step_aside(self, longest_s: float = 0.05) -> None:
        """Let every writer that waits for the lock go first, for at most `longest_s` (under a
        steady stream of webhooks the worker still applies one delivery each time; it catches up
        when the stream thins)."""
        deadline = time.perf_counter() + longest_s
        time.sleep(0.0002)
        while self._waiting() and time.perf_counter() < deadline:
            time.sleep(0.001)  # only the worker waits here: a coarse poll costs it little CPU

    def close(self) -> None:
        self._reader.drop()
        self._waiting.close()
        if self.inbox is not None:
            self.inbox.close()
