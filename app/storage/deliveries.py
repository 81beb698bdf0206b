"""Deliveries between their 200 and the ledger: the one interface the web and the worker use.

The web calls `find_shop` (the shop a webhook's header names) and `accept` (one durable INSERT,
deduplicated by the UNIQUE (shop_id, delivery_id) constraint). The job worker calls `take` (the
oldest deliveries never tried), `load` (chosen ones: a retry, a replay), and inside its own
transaction `lock_live` (those still waiting, locked) and `finish` (their new states, in one
statement); between transactions it asks `writers_waiting` and may `step_aside`.

`open_deliveries` (app/storage/open.py) picks the implementation for the database: `SqliteDeliveries` (the inbox beside
the file, a kept reading connection, the writers' lock) or `PostgresDeliveries` (a kept autocommit
connection). Both run their hottest statements as `Prepared` statements on the driver's cursor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import bindparam, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.db import Database
from app.models import Shop, WebhookDelivery, as_utc, utcnow
from app.storage.prepared import Prepared

DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]
SHOPS = Shop.__table__  # type: ignore[attr-defined]
# The webhook INSERT's columns, in the order the SQLite inbox keeps its parameters.
COLUMNS = ("shop_id", "platform", "topic", "delivery_id", "body", "headers", "received_at", "status", "attempts")
_COLUMN_VALUES: dict[str, Any] = {n: bindparam(n) for n in COLUMNS}


def insert_statement(dialect: str, returning: bool = True) -> Any:
    """INSERT … ON CONFLICT (shop_id, delivery_id) DO NOTHING [RETURNING id], every value a bind
    parameter: the UNIQUE constraint decides what is a duplicate, so two racing requests cannot
    both store one delivery."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(DELIVERIES).on_conflict_do_nothing(index_elements=["shop_id", "delivery_id"]).values(_COLUMN_VALUES)
    return stmt.returning(DELIVERIES.c.id) if returning else stmt


def values(
    shop_id: int, platform: str, topic: str, delivery_id: str, body: bytes, headers: Mapping[str, str]
) -> dict[str, Any]:
    """A new delivery row's values."""
    return {
        "shop_id": shop_id,
        "platform": platform,
        "topic": topic[:100],
        "delivery_id": delivery_id[:200],
        "body": body,
        "headers": dict(headers),
        "received_at": utcnow(),
        "status": "received",
        "attempts": 0,
    }


@dataclass(frozen=True)
class Accepted:
    """What `accept` did: stored a new delivery, or found it already stored (and in what state).
    `status` "spooled": durable in SQLite's inbox, not yet in `webhook_deliveries`."""

    id: int
    duplicate: bool
    status: str = "received"
    attempts: int = 0


@dataclass
class StoredDelivery:
    """A stored delivery as the worker reads it, with `attempts` as read (the transaction that
    applies it checks the row still says so)."""

    id: int
    shop_id: int
    platform: str
    topic: str
    delivery_id: str
    body: bytes
    received_at: datetime
    attempts: int
    status: str = "received"


FIND_SHOP = Prepared(
    core_select(SHOPS).where(SHOPS.c.platform == bindparam("platform"), SHOPS.c.domain == bindparam("domain"))
)
STORED = Prepared(
    core_select(DELIVERIES.c.id, DELIVERIES.c.status, DELIVERIES.c.attempts).where(
        DELIVERIES.c.shop_id == bindparam("shop_id"), DELIVERIES.c.delivery_id == bindparam("delivery_id")
    )
)
_READ = core_select(
    DELIVERIES.c.id,
    DELIVERIES.c.shop_id,
    DELIVERIES.c.platform,
    DELIVERIES.c.topic,
    DELIVERIES.c.delivery_id,
    DELIVERIES.c.body,
    DELIVERIES.c.received_at,
    DELIVERIES.c.attempts,
    DELIVERIES.c.status,
)
_FINISH = Prepared(
    update(DELIVERIES)
    .where(DELIVERIES.c.id == bindparam("pk"))
    .values(
        attempts=DELIVERIES.c.attempts + 1,
        status=bindparam("status"),
        last_error=bindparam("last_error"),
        processed_at=bindparam("processed_at"),
        order_ref=bindparam("order_ref"),
        customer_ref=bindparam("customer_ref"),
    )
)
_SHOP_COLUMNS: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {}  # per dialect


class Deliveries(ABC):
    """The webhook path's storage on one database (see the module's docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- the web ---------------------------------------------------------------------------------

    @abstractmethod
    def find_shop(self, platform: str, domain: str) -> Shop | None:
        """The shop a webhook names, read without a write lock. The result has every column of a
        Shop as an attribute, typed as the ORM types it, and stands in for one (read-only):
        building the ORM object would cost as much again as the query."""

    @abstractmethod
    def accept(
        self, *, shop_id: int, platform: str, topic: str, delivery_id: str, body: bytes, headers: Mapping[str, str]
    ) -> Accepted:
        """The webhook's whole write: durable (committed) before this returns. A duplicate costs
        one more read, outside any write lock, to report the stored row's state."""

    @abstractmethod
    def stored(self, shop_id: int, delivery_id: str) -> Accepted | None:
        """The stored delivery with this id, read without a write lock."""

    def warm(self) -> None:
        """Ready this process's webhook path before its first webhook (a web worker, once started):
        open the connections it keeps and compile its statements. Otherwise the first webhook each
        web worker answers does it, 10 to 15 ms, while every connection queued behind it waits."""
        self.find_shop("", "")
        self.stored(0, "")

    def spooled(self) -> int | None:
        """Deliveries answered but not yet in `webhook_deliveries` (SQLite's inbox); None when
        deliveries are stored there directly."""
        return None

    # --- the worker ------------------------------------------------------------------------------

    def take(self, limit: int) -> list[StoredDelivery]:
        """The oldest deliveries never tried (status 'received', no attempt yet), read without a
        write lock. Deliveries tried and failed belong to the queue's retries and the sweep, never
        to this poll, so a poison delivery is not picked up again and again."""
        query = _READ.where(DELIVERIES.c.status == "received", DELIVERIES.c.attempts == 0)
        return self._read(query.order_by(DELIVERIES.c.id).limit(limit))

    def load(self, ids: Sequence[int]) -> list[StoredDelivery]:
        """These deliveries, whatever their state (a retry, a replay), oldest first."""
        return self._read(_READ.where(DELIVERIES.c.id.in_(list(ids))).order_by(DELIVERIES.c.id))

    def _read(self, query: Any) -> list[StoredDelivery]:
        with self.db.read() as session:
            rows = session.connection().execute(query).all()
        return [
            StoredDelivery(int(pk), int(shop), platform, topic, did, bytes(body), as_utc(at), int(attempts), status)
            for pk, shop, platform, topic, did, body, at, attempts, status in rows
        ]

    def lock_live(self, session: Session, deliveries: Sequence[StoredDelivery]) -> set[int]:
        """Of `deliveries`, the ids still waiting as they were read (status 'received', the same
        attempts), locked for this transaction: FOR UPDATE SKIP LOCKED on PostgreSQL, where another
        worker may hold some; on SQLite the transaction's write lock already excludes everyone."""
        if not deliveries:
            return set()
        read = {d.id: d.attempts for d in deliveries}
        rows = session.connection().execute(
            core_select(DELIVERIES.c.id, DELIVERIES.c.attempts)
            .where(DELIVERIES.c.id.in_(list(read)), DELIVERIES.c.status == "received")
            .with_for_update(skip_locked=True)
        )
        return {int(pk) for pk, attempts in rows if read[int(pk)] == attempts}

    def finish(self, session: Session, finished: Sequence[Mapping[str, Any]]) -> None:
        """Write the deliveries' new states in this transaction: each a mapping of `pk`, `status`,
        `last_error`, `processed_at`, `order_ref`, `customer_ref` (one attempt more each)."""
        if finished:
            _FINISH.run_many(session.connection(), finished)

    def writers_waiting(self) -> bool:
        """Whether another transaction waits for the write lock the worker holds (SQLite only:
        PostgreSQL's row locks let writers of different rows run side by side)."""
        return False

    def step_aside(self) -> None:  # noqa: B027 - a hook: only SQLite's single writer needs it
        """Between the worker's transactions: let waiting writers go first."""

    def close(self) -> None:  # noqa: B027 - a hook: PostgreSQL's implementation keeps a connection
        """Close what this process keeps open."""

    # --- shared by the implementations -------------------------------------------------------------

    def as_shop(self, found: Sequence[Any] | None) -> Shop | None:
        """A shops row from the driver, each value through SQLAlchemy's own result processor."""
        if found is None:
            return None
        dialect = self.db.engine.dialect
        columns = _SHOP_COLUMNS.get(dialect.name)
        if columns is None:
            columns = _SHOP_COLUMNS[dialect.name] = [
                (column.name, column.type.dialect_impl(dialect).result_processor(dialect, None) or (lambda v: v))
                for column in SHOPS.columns
            ]
        shop = SimpleNamespace(**{name: process(v) for (name, process), v in zip(columns, found, strict=True)})
        return cast(Shop, shop)

    @staticmethod
    def as_accepted(found: Sequence[Any] | None) -> Accepted | None:
        if found is None:
            return None
        return Accepted(int(found[0]), duplicate=True, status=str(found[1]), attempts=int(found[2]))
