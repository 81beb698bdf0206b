"""SQLite's one write lock: taken with BEGIN IMMEDIATE in short, steady polls, and a file that
says when a writer waits for it.

Every SQLite transaction that writes begins here (the engine's `begin` event in app/db.py, the
webhook's INSERT, the inbox's spool and move). The job worker asks `WritersWaiting` between the
deliveries of its batch, and commits and steps aside as soon as someone waits.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)
BUSY_TIMEOUT_S = 30
T = TypeVar("T")


def waiters_file(database: str | None) -> str | None:
    """The file beside a SQLite database file that waiting writers hold a shared lock on."""
    if not database or database == ":memory:":
        return None
    return database + "-writers"


def begin_immediate(dbapi_conn: Any, waiters: str | None) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock with short, steady polls, and saying so.

    SQLite's own busy handler sleeps 1, 2, 5, … then 100 ms between tries, so a small write (a
    webhook's INSERT) that arrives while the job worker holds the lock could sleep past many
    chances to take it: seconds of tail latency under load. Instead: no busy handler for the
    BEGIN itself, and retry every 0.1 to 0.5 ms (a try is a few microseconds), for as long as
    busy_timeout would have waited. Statements inside the transaction keep the busy_timeout.

    While it waits, it holds a shared flock on the `waiters` file beside the database, which is
    how the job worker knows a writer is waiting (`WritersWaiting`): it then commits its batch
    early and steps aside, so a webhook waits for one delivery's processing, not a batch's.
    """
    dbapi_conn.execute("PRAGMA busy_timeout=0")
    fd = None
    try:
        if _began(dbapi_conn):
            return
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
            if _began(dbapi_conn):
                return
            if time.monotonic() > deadline:  # as SQLAlchemy reports it for any statement
                raise sa_exc.OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
    finally:
        if fd is not None:
            os.close(fd)  # and with it the shared lock: no longer waiting
        dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")


def _began(dbapi_conn: Any) -> bool:
    """BEGIN IMMEDIATE once: True when it began, False when another connection holds the lock."""
    try:
        dbapi_conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False
    return True


def until_locked_s(timeout_s: float, attempt: Callable[[], T]) -> T:
    """`attempt()`, tried again every millisecond while SQLite answers "database is locked", for up
    to `timeout_s` (for statements SQLite refuses at once instead of calling its busy handler)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.001)


class WritersWaiting:
    """Whether another transaction waits in `begin_immediate` for the database's write lock."""

    def __init__(self, waiters: str | None) -> None:
        self.path = waiters
        self._fd: int | None = None

    def __call__(self) -> bool:
        if self.path is None:
            return False
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o660)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # someone holds it shared: waiting in begin_immediate
        except OSError:
            return False  # cannot tell (permissions): behave as before, batches end by their budget
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
