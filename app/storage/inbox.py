"""The inbox: on SQLite, where an accepted webhook waits between its 200 and the job worker.

SQLite has one write lock per database file. A webhook's INSERT into `webhook_deliveries` would
share it with the job worker, so every answer could wait for a worker transaction to end, and the
worker (which runs at the lowest CPU priority, so that answering comes first) may be descheduled
while it holds the lock. So with a job worker on SQLite, the webhook writes its row into a file of
its own beside the database (`<db>-inbox`), whose write lock only the web workers take, and the
worker's mover once per batch. The mover copies the rows into `webhook_deliveries` with the very
INSERT … ON CONFLICT DO NOTHING the web would have run (so the UNIQUE (shop_id, delivery_id)
constraint still decides what is a duplicate), commits, and only then deletes them from the
inbox: a crash between the two moves them again, which the constraint makes harmless.

Durability is the database's own (WAL, synchronous=NORMAL: see app/db.py): a row is in the inbox
file before the 200 goes out. The inbox is a spool, not data: one table created when it is first opened, no
migrations (a row lives for milliseconds to seconds, and an empty inbox file can be deleted).
PostgreSQL has row locks, so there the webhook writes `webhook_deliveries` directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.storage.kept import Kept
from app.storage.sqlite_lock import BUSY_TIMEOUT_S, begin_immediate, until_locked_s

log = logging.getLogger(__name__)

# The webhook INSERT's parameters, in its order (app/intake checks that they match).
COLUMNS = ("shop_id", "platform", "topic", "delivery_id", "body", "headers", "received_at", "status", "attempts")
# AUTOINCREMENT: a seq is never used twice, so a mover that deletes the seqs it read (below) can
# never delete a row spooled after it read, even when two workers move at once.
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, {", ".join(COLUMNS)}
)
"""
_SPOOL = f"INSERT INTO inbox ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608 - constants
# Without the mover, the -wal file would grow with every webhook: a stat of it every so many
# webhooks, and a checkpoint by the web when it is over the bound (64 MB: about 3,000 webhooks)
# and the worker is away (the oldest row has waited longer than WORKER_AWAY_S).
WAL_CHECK_EVERY = 500
WAL_MAX_BYTES = 64 * 1024 * 1024
WORKER_AWAY_S = 30
_OLDEST_RECEIVED = "SELECT received_at FROM inbox ORDER BY seq LIMIT 1"
_OLDEST = f"SELECT seq, {', '.join(COLUMNS)} FROM inbox ORDER BY seq LIMIT ?"  # noqa: S608 - constants


@dataclass(frozen=True)
class Moved:
    """What one move did: rows copied into webhook_deliveries, duplicates of rows already there,
    and rows whose shop was erased meanwhile (dropped, as the erasure would have dropped them)."""

    stored: int = 0
    duplicates: int = 0
    dropped: int = 0


class Inbox:
    """The spool file beside a SQLite database: `spool` (the web) and `move` (the job worker)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._kept: Kept[sqlite3.Connection] = Kept(self._open)
        self._spooled = 0  # by this process: every WAL_CHECK_EVERY, the WAL's size is checked
        self._bounding: threading.Thread | None = None  # this process's checkpoint of an overgrown WAL

    @classmethod
    def beside(cls, database_file: str) -> Inbox:
        return cls(database_file + "-inbox")

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (see `app.storage.kept.Kept`)."""
        return self._kept.get()

    def connect(self) -> None:
        """Open this thread's connection now, rather than on its first spool."""
        self._kept.get()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        # Several processes (the web workers, warming at once) may open a new inbox together: turning
        # a new file to WAL takes its exclusive lock, which SQLite answers "locked" at once rather
        # than through the busy handler. So try again, as the busy handler would have waited.
        until_locked_s(BUSY_TIMEOUT_S, lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute("PRAGMA synchronous=NORMAL")  # the database's durability, and its reason
        # No automatic checkpoints: the mover checkpoints after each move (below). Automatic,
        # the commit that finds the WAL over its size copies it back and fsyncs, in the middle of
        # an answer, and so does every commit after it until the WAL starts over, which under
        # a steady stream of webhooks (and a worker at idle priority) it seldom does: each a stall
        # of tens of milliseconds that the other web workers queue behind. `spool` keeps a
        # ceiling for when the worker stays away, off the answer's path (see `_bound_wal`).
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(f"PRAGMA journal_size_limit={WAL_MAX_BYTES}")  # and when it starts over, it shrinks
        # Debian's SQLite zeroes every freed page (secure_delete=ON): the mover's DELETE of a
        # move's rows would write each 10 KB body once more, four times as long under the write
        # lock the web needs. A moved row's bytes are in the database (where a redaction erases
        # them with secure_delete on), and the inbox's WAL holds them until it is overwritten
        # anyway; FAST still clears what is cleared without extra writes.
        conn.execute("PRAGMA secure_delete=FAST")
        until_locked_s(BUSY_TIMEOUT_S, lambda: conn.execute(_SCHEMA))
        return conn

    def spool(self, params: Sequence[Any]) -> None:
        """Store one delivery's INSERT parameters (in COLUMNS order), durably: committed before
        this returns, so before the webhook is answered."""
        conn = self._conn()
        begin_immediate(conn, None)
        try:
            conn.execute(_SPOOL, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._spooled += 1
        if self._spooled % WAL_CHECK_EVERY == 0:
            self._bound_wal()

    def _bound_wal(self) -> None:
        """With no mover checkpointing (the worker is stopped, or starved for long), one webhook
        in WAL_CHECK_EVERY looks at the -wal file's size; once it is over WAL_MAX_BYTES while the
        oldest spooled row has waited over WORKER_AWAY_S, it starts a checkpoint in a thread of
        its own, at idle CPU priority.

        Only when the worker is away: during a burst the worker, at idle priority, falls behind
        for seconds and its mover checkpoints when it catches up; a checkpoint meanwhile (copying
        and syncing tens of megabytes while the webhooks write the same WAL) halved the answers
        for 100 ms, the slowest of a benchmark run. Not in the answer: the webhooks queued behind
        this web worker would wait for it (60 ms of CPU, measured). SQLite runs it without
        holding the GIL, and a PASSIVE checkpoint never blocks the webhooks' writes. A WAL over
        the bound costs disk only, and the rows stay in the inbox until the worker moves them."""
        try:
            size = os.stat(self.path + "-wal").st_size
        except OSError:
            return
        if size <= WAL_MAX_BYTES or (self._bounding is not None and self._bounding.is_alive()):
            return
        if self.oldest_wait_s() <= WORKER_AWAY_S:
            return
        self._bounding = threading.Thread(target=self._checkpoint, name="inbox-checkpoint", daemon=True)
        self._bounding.start()

    def _checkpoint(self) -> None:
        # This thread only (on Linux a thread is a task of its own), as the job worker's mover;
        # where that is not permitted, or not Linux, the usual priority.
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        conn = self._open()  # its own connection: a connection serves one thread at a time
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:  # the next check tries again; meanwhile the WAL only grows
            log.exception("inbox checkpoint failed")
        finally:
            conn.close()

    def bounded(self, timeout_s: float | None = None) -> None:
        """Wait for a checkpoint `_bound_wal` started."""
        if self._bounding is not None:
            self._bounding.join(timeout_s)

    def oldest_wait_s(self) -> float:
        """How long the oldest spooled row has waited (0 with none): the mover's lag."""
        found = self._conn().execute(_OLDEST_RECEIVED).fetchone()
        if found is None:
            return 0.0
        received = datetime.fromisoformat(found[0]).replace(tzinfo=UTC)  # stored as UTC without a zone
        return (datetime.now(UTC) - received).total_seconds()

    def depth(self) -> int:
        """Rows waiting to be moved."""
        return int(self._conn().execute("SELECT count(*) FROM inbox").fetchone()[0])

    def move(
        self, write: Callable[[], AbstractContextManager[sqlite3.Cursor]], insert_sql: str, limit: int = 200
    ) -> Moved:
        """Copy the oldest `limit` rows into the database (one transaction), then delete them here.

        `write()` opens a cursor inside a write transaction on the database, committed when its
        block ends. `insert_sql` is the webhook's own INSERT … ON CONFLICT DO NOTHING without RETURNING, whose
        parameters the rows hold. Rows of a shop that no longer exists are dropped.
        """
        conn = self._conn()
        rows = conn.execute(_OLDEST, (limit,)).fetchall()
        if not rows:
            return Moved()
        shop_ids = sorted({int(r[1]) for r in rows})  # COLUMNS[0]
        with write() as cursor:
            marks = ",".join("?" * len(shop_ids))
            live = {int(r[0]) for r in cursor.execute(f"SELECT id FROM shops WHERE id IN ({marks})", shop_ids)}  # noqa: S608 - placeholders only
            keep = [r[1:] for r in rows if int(r[1]) in live]
            before = cursor.connection.total_changes
            if keep:
                cursor.executemany(insert_sql, keep)
            stored = cursor.connection.total_changes - before
        moved = Moved(stored=stored, duplicates=len(keep) - stored, dropped=len(rows) - len(keep))
        begin_immediate(conn, None)
        try:
            marks = ",".join("?" * len(rows))
            conn.execute(f"DELETE FROM inbox WHERE seq IN ({marks})", [r[0] for r in rows])  # noqa: S608
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # as far as readers allow; never waits
        if moved.dropped:
            log.info("dropped %d spooled deliveries of erased shops", moved.dropped)
        return moved

    def close(self) -> None:
        self.bounded()
        self._kept.drop()
