"""One connection per thread, kept for the life of the thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class Kept(Generic[C]):
    """One connection per thread, kept for the life of the thread rather than checked out of a pool
    per use (a checkout and its return cost as much as the webhook's statement), and opened again
    in a forked process (a connection must not cross a fork)."""

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
