"""Accept a delivery (one INSERT, deduplicated), then process it into the ledger, exactly once.

Accepting and processing are separate transactions: the platform gets its 200 as soon as the raw
body is durable, and processing can be retried from the stored row as often as needed. The rows
still waiting are the work queue: `pending` reads them and `process_batch` applies several per
transaction, each in its own savepoint. The
`parse` function comes from the caller (the web or job layer, which knows the connectors), so this
module stays free of any platform.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Protocol, cast

from sqlalchemy import Connection, bindparam, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from app import inbox, prefetch, privacy
from app.db import READ_ONLY, Database
from app.errors import MalformedDelivery
from app.events import (
    AppUninstalled,
    CustomerDataRequested,
    CustomerRedacted,
    Event,
    Ignored,
    OrderAmended,
    OrderChanged,
    ShopRedacted,
)
from app.models import Order, Shop, WebhookDelivery, as_utc, utcnow
from app.prepared import Prepared
from app.service import BATCH, Outcome, apply_snapshot
from app.snapshot import STICKY, OrderSnapshot

log = logging.getLogger(__name__)

Parser = Callable[[str, bytes, Shop], list[Event]]


_DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]
_INSERTS: dict[str, Any] = {}


def _insert_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT (shop_id, delivery_id) DO NOTHING RETURNING id, built once per dialect
    (the values come as parameters, so SQLAlchemy compiles it once and caches it)."""
    stmt = _INSERTS.get(dialect)
    if stmt is None:
        if dialect == "postgresql":
            stmt = pg_insert(_DELIVERIES).on_conflict_do_nothing(index_elements=["shop_id", "delivery_id"])
        elif dialect == "sqlite":
            stmt = sqlite_insert(_DELIVERIES).on_conflict_do_nothing(index_elements=["shop_id", "delivery_id"])
        else:  # pragma: no cover - only the two supported databases
            stmt = insert(_DELIVERIES)
        stmt = _INSERTS[dialect] = stmt.returning(_DELIVERIES.c.id)
    return stmt


def _values(
    shop_id: int, platform: str, topic: str, delivery_id: str, body: bytes, headers: Mapping[str, str]
) -> dict[str, Any]:
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


# The webhook's INSERT for SQLite's driver, with RETURNING id and without it (the inbox's move, an
# executemany), each column's value through SQLAlchemy's own bind processor (JSON headers, the
# DateTime storage format), so the stored values are exactly what the ORM writes and reads.
_COLUMN_VALUES: dict[str, Any] = {n: bindparam(n) for n in inbox.COLUMNS}
_SQLITE_INSERT = Prepared(_insert_statement("sqlite").values(_COLUMN_VALUES))
_PG_INSERT = Prepared(_insert_statement("postgresql").values(_COLUMN_VALUES))
_SQLITE_MOVE = Prepared(
    sqlite_insert(_DELIVERIES).on_conflict_do_nothing(index_elements=["shop_id", "delivery_id"]).values(_COLUMN_VALUES)
)


def _sqlite_params(db: Database, values: Mapping[str, Any]) -> list[Any]:
    """The INSERT's parameters, in inbox.COLUMNS order (the inbox stores them as they are)."""
    params = _SQLITE_INSERT.compiled(db.engine.dialect).parameters(values)
    assert isinstance(params, list)  # SQLite's driver takes them by position
    return params


def move_inbox(db: Database, spool: inbox.Inbox, limit: int = 200) -> inbox.Moved:
    """The job worker's first step on SQLite: spooled deliveries into `webhook_deliveries`."""
    compiled = _SQLITE_MOVE.compiled(db.engine.dialect)
    assert [name for name, _ in compiled.binds] == list(inbox.COLUMNS)  # the order the inbox keeps them in
    return spool.move(db, compiled.sql, limit)


def store_delivery(
    session: Session | Connection,
    *,
    shop_id: int,
    platform: str,
    topic: str,
    delivery_id: str,
    body: bytes,
    headers: Mapping[str, str],
) -> int | None:
    """Store a verified delivery; return its row id, or None when it was already stored.

    One INSERT … ON CONFLICT DO NOTHING: the UNIQUE (shop_id, delivery_id) constraint decides
    whether this is a duplicate, so two racing requests cannot both store it.
    """
    dialect = session.get_bind().dialect.name if isinstance(session, Session) else session.dialect.name
    values = _values(shop_id, platform, topic, delivery_id, body, headers)
    row = session.execute(_insert_statement(dialect), values).first()
    return None if row is None else int(row[0])


_SHOPS = Shop.__table__  # type: ignore[attr-defined]
_FIND_SHOP = Prepared(
    core_select(_SHOPS).where(_SHOPS.c.platform == bindparam("platform"), _SHOPS.c.domain == bindparam("domain"))
)
_SHOP_COLUMNS: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {}  # per dialect


def _as_shop(db: Database, found: tuple[Any, ...] | None) -> Shop | None:
    """A shops row from the driver, each value through SQLAlchemy's own result processor."""
    if found is None:
        return None
    dialect = db.engine.dialect
    columns = _SHOP_COLUMNS.get(dialect.name)
    if columns is None:
        columns = _SHOP_COLUMNS[dialect.name] = [
            (column.name, column.type.dialect_impl(dialect).result_processor(dialect, None) or (lambda v: v))
            for column in _SHOPS.columns
        ]
    return cast(Shop, SimpleNamespace(**{name: process(v) for (name, process), v in zip(columns, found, strict=True)}))


def find_shop(db: Database, platform: str, domain: str) -> Shop | None:
    """The shop a webhook's header names, read without a write lock. The result has every column
    of a Shop as an attribute, typed as the ORM types it, and stands in for one (read-only):
    building the ORM object would cost as much again as the query. The query goes through the
    driver (one statement, no BEGIN), its values through SQLAlchemy's own result processors."""
    if not db.is_sqlite:  # PostgreSQL: one statement on a kept connection, no transaction around it
        return _as_shop(db, db.first_autocommit(_FIND_SHOP, {"platform": platform, "domain": domain}))
    compiled = _FIND_SHOP.compiled(db.engine.dialect)
    with db.sqlite_read() as cursor:
        seen = _seen_shops(db, cursor)
        if (platform, domain) in seen:
            return seen[(platform, domain)]
        found = cursor.execute(compiled.sql, compiled.parameters({"platform": platform, "domain": domain})).fetchone()
    shop = _as_shop(db, found)
    if seen is not _NOT_KEPT:
        if len(seen) >= _SEEN_MAX:  # unknown domains must not grow it without bound
            seen.clear()
        seen[(platform, domain)] = shop
    return shop


_SEEN = threading.local()
_SEEN_MAX = 1000
_NOT_KEPT: dict[tuple[str, str], Shop | None] = {}


def _seen_shops(db: Database, cursor: sqlite3.Cursor) -> dict[tuple[str, str], Shop | None]:
    """The shops this thread's reading connection has looked up since the database last changed.

    SQLite's `PRAGMA data_version` changes on a connection whenever another connection has
    committed to the database, and the kept reading connection never writes: so while it stays the
    same, no shop row can have changed (installed, uninstalled, settings saved, erased) and the
    rows read before are the rows. One pragma instead of the SELECT and its decoding, which under
    load is most webhooks: the job worker commits a few times a second, the web a thousand."""
    if db.sqlite_file is None:  # in memory: the pool's one connection, which also writes
        return _NOT_KEPT
    version = cursor.execute("PRAGMA data_version").fetchone()[0]
    kept = getattr(_SEEN, "kept", None)
    if kept is None or kept[0] is not cursor.connection or kept[1] != version:
        kept = _SEEN.kept = (cursor.connection, version, {})
    seen: dict[tuple[str, str], Shop | None] = kept[2]
    return seen


@dataclass(frozen=True)
class Accepted:
    """What `accept` did: stored a new delivery, or found it already stored (and in what state)."""

    id: int
    duplicate: bool
    status: str = "received"
    attempts: int = 0


def accept(
    db: Database,
    *,
    shop_id: int,
    platform: str,
    topic: str,
    delivery_id: str,
    body: bytes,
    headers: Mapping[str, str],
    spool: inbox.Inbox | None = None,
) -> Accepted:
    """The webhook's whole write: one INSERT in its own short transaction, committed (durable)
    before this returns. No ORM, no second write: the stored row is the job (see `pending`).
    A duplicate costs one more read, outside any write lock, to report the stored row's state.

    With a `spool` (SQLite with a job worker: see app/inbox.py) the INSERT goes to the inbox
    instead, after a read that answers a duplicate of a stored delivery as one; the worker moves
    it into `webhook_deliveries`, where the UNIQUE constraint settles duplicates still spooled.
    """
    if spool is not None:
        found = _stored(db, shop_id, delivery_id)
        if found is not None:
            return found
        spool.spool(_sqlite_params(db, _values(shop_id, platform, topic, delivery_id, body, headers)))
        return Accepted(0, duplicate=False, status="spooled")
    values = _values(shop_id, platform, topic, delivery_id, body, headers)
    if db.is_sqlite:
        with db.sqlite_write() as cursor:
            row = cursor.execute(_SQLITE_INSERT.compiled(db.engine.dialect).sql, _sqlite_params(db, values)).fetchone()
        pk = None if row is None else int(row[0])
    else:  # PostgreSQL: the INSERT is its own transaction (autocommit), committed when it returns
        row = db.first_autocommit(_PG_INSERT, values)
        pk = None if row is None else int(row[0])
    if pk is not None:
        return Accepted(pk, duplicate=False)
    found = _stored(db, shop_id, delivery_id)
    if found is None:  # stored, then erased with its shop (shop/redact) in between
        return Accepted(0, duplicate=True, status="missing")
    return found


def warm(db: Database, spool: inbox.Inbox | None = None) -> None:
    """Ready this process's webhook path before its first webhook (a web worker, once started):
    open the connections it keeps and compile its statements. Otherwise the first webhook each
    web worker answers does it, 10 to 15 ms, while every connection queued behind it waits."""
    find_shop(db, "", "")  # the kept reading connection (SQLite) or autocommit one (PostgreSQL)
    _stored(db, 0, "")
    (_SQLITE_INSERT if db.is_sqlite else _PG_INSERT).compiled(db.engine.dialect)
    if spool is not None:
        spool.connect()


_STORED = Prepared(
    core_select(_DELIVERIES.c.id, _DELIVERIES.c.status, _DELIVERIES.c.attempts).where(
        _DELIVERIES.c.shop_id == bindparam("shop_id"), _DELIVERIES.c.delivery_id == bindparam("delivery_id")
    )
)


def _stored(db: Database, shop_id: int, delivery_id: str) -> Accepted | None:
    """The stored delivery with this id, read without a write lock (on SQLite through the driver:
    one statement, no BEGIN)."""
    params = {"shop_id": shop_id, "delivery_id": delivery_id[:200]}
    if db.is_sqlite:
        compiled = _STORED.compiled(db.engine.dialect)
        with db.sqlite_read() as cursor:
            found = cursor.execute(compiled.sql, compiled.parameters(params)).fetchone()
    else:
        found = db.first_autocommit(_STORED, params)
    if found is None:
        return None
    return Accepted(int(found[0]), duplicate=True, status=str(found[1]), attempts=int(found[2]))


def process_delivery(db: Database, delivery_pk: int, parse: Parser, *, now: datetime | None = None) -> str:
    """Process one stored delivery; return its final status. Safe to call again at any time.

    A delivery already processed is left alone ("already processed" is success). A malformed one
    is marked failed for the operator. Any other error rolls the work back, records the error on
    the row and re-raises so the job runner can retry with backoff.
    """
    try:
        with db.session() as session:
            delivery = session.exec(
                select(WebhookDelivery).where(WebhookDelivery.id == delivery_pk).with_for_update()
            ).first()
            if delivery is None:
                return "missing"  # the shop was erased meanwhile
            if delivery.status in ("processed", "ignored", "failed"):
                # Done, or dead-lettered (only `clawback replay` brings it back): a leftover or
                # repeated job must not run it again.
                return delivery.status
            shop = session.get(Shop, delivery.shop_id)
            assert shop is not None
            delivery.attempts += 1
            try:
                events = parse(delivery.topic, delivery.body, shop)
            except MalformedDelivery as exc:
                _finish(delivery, "failed", f"malformed: {exc}")
                session.add(delivery)
                return "failed"
            status = _carry_out(session, shop, delivery, events, now or utcnow())
            if status != "erased":
                # An ignored delivery keeps its reason where the operator will look for it.
                _finish(delivery, status, delivery.last_error if status == "ignored" else None)
                session.add(delivery)
            return status
    except Exception as exc:
        _record_error(db, delivery_pk, exc)
        raise


def give_up(db: Database, delivery_pk: int) -> None:
    """Retries are exhausted: mark the delivery failed, for `clawback deliveries --failed` and replay."""
    with db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_pk)
        if delivery is not None and delivery.status == "received":
            delivery.status = "failed"
            session.add(delivery)


def _finish(delivery: WebhookDelivery, status: str, error: str | None) -> None:
    delivery.status = status
    delivery.last_error = error
    delivery.processed_at = utcnow()


def _record_error(db: Database, delivery_pk: int, exc: Exception) -> None:
    with db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_pk)
        if delivery is not None:
            delivery.attempts += 1
            delivery.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            session.add(delivery)


# --- batches: the stored rows are the queue ------------------------------------------------------


@dataclass
class Pending:
    """A stored delivery read for processing, parsed outside any write transaction. It stands in
    for the row in `_carry_out` (the same attributes), and the changes are written back at once."""

    id: int
    shop_id: int
    platform: str
    topic: str
    delivery_id: str
    body: bytes
    received_at: datetime
    headers: dict[str, Any] = field(default_factory=dict)
    order_ref: str | None = None
    customer_ref: str | None = None
    last_error: str | None = None
    events: list[Event] = field(default_factory=list)
    error: Exception | None = None  # parsing raised this


@dataclass
class BatchResult:
    statuses: dict[int, str] = field(default_factory=dict)  # delivery id -> final status
    retry: list[tuple[int, str]] = field(default_factory=list)  # (id, platform) that raised: retry later
    transactions: int = 0


def pending(db: Database, parser_for: Callable[[str], Parser], limit: int = 100) -> list[Pending]:
    """The oldest deliveries never tried (status 'received', no attempt yet), read and parsed
    without taking a write lock. Deliveries that were tried and failed belong to the job queue's
    retries (with backoff) and to the sweep, never to this poll, so a poison delivery is not
    picked up again and again."""
    with db.read() as conn:
        rows = conn.execute(
            core_select(
                _DELIVERIES.c.id,
                _DELIVERIES.c.shop_id,
                _DELIVERIES.c.platform,
                _DELIVERIES.c.topic,
                _DELIVERIES.c.delivery_id,
                _DELIVERIES.c.body,
                _DELIVERIES.c.received_at,
            )
            .where(_DELIVERIES.c.status == "received", _DELIVERIES.c.attempts == 0)
            .order_by(_DELIVERIES.c.id)
            .limit(limit)
        ).all()
    if not rows:
        return []
    with Session(db.engine, expire_on_commit=False) as session:
        session.connection(execution_options={READ_ONLY: True})
        shop_ids = {int(r[1]) for r in rows}
        shops = {s.id: s for s in session.exec(select(Shop).where(col(Shop.id).in_(shop_ids)))}
    found = []
    for pk, shop_id, platform, topic, delivery_id, body, received_at in rows:
        item = Pending(int(pk), int(shop_id), platform, topic, delivery_id, bytes(body), as_utc(received_at))
        shop = shops.get(item.shop_id)
        if shop is not None:
            try:
                item.events = parser_for(platform)(topic, item.body, shop)
            except Exception as exc:  # MalformedDelivery, or anything else: decided when applied
                item.error = exc
        found.append(item)
    return found


class _Redo(Exception):
    """A delivery raised inside an all-or-nothing transaction: roll it back and apply the same
    deliveries again, each in its own savepoint."""


def process_batch(
    db: Database, batch: list[Pending], *, now: datetime | None = None, budget_s: float = 0.25
) -> BatchResult:
    """Apply parsed deliveries to the ledger, several per transaction.

    Oldest first, one after another, so two deliveries of one order apply in arrival order (and
    on PostgreSQL the order row lock serializes them against any other worker). A transaction
    first applies its deliveries all or nothing, with the rows they need loaded (and on PostgreSQL
    locked) up front (`app.prefetch`) and one flush at the end; if any delivery raises, it is rolled back
    and the same deliveries are applied again, each in its own savepoint: then a delivery that
    raises is rolled back alone, its attempt and error are recorded in the same transaction and
    it is returned in `retry` for the job queue's backoff, while the others commit. A malformed
    one is marked failed. Each transaction stops taking new deliveries after `budget_s`, or as
    soon as another writer waits for SQLite's single write lock: then it commits and steps aside.
    """
    result = BatchResult()
    todo = list(batch)
    erased: set[int] = set()
    careful = False
    while todo:
        done = BatchResult()
        try:
            with db.session() as session:
                taken = _transaction(db, session, todo, now, budget_s, erased, done, careful=careful)
        except _Redo as exc:
            log.info("a delivery raised in a batch (%s): applying it again, one savepoint each", exc.__cause__)
            result.transactions += 1
            careful = True
            continue
        result.transactions += 1
        result.statuses.update(done.statuses)
        result.retry.extend(done.retry)
        erased.update(item.shop_id for item in todo[:taken] if done.statuses.get(item.id) == "erased")
        todo, careful = todo[taken:], False
        if todo:
            _step_aside(db)
    return result


def _transaction(
    db: Database,
    session: Session,
    todo: list[Pending],
    now: datetime | None,
    budget_s: float,
    erased: set[int],
    done: BatchResult,
    *,
    careful: bool,
) -> int:
    """Apply deliveries from the head of `todo` in this transaction; return how many it took."""
    session.info[BATCH] = True
    began = time.perf_counter()
    live = set(
        session.execute(
            core_select(_DELIVERIES.c.id)
            .where(
                _DELIVERIES.c.id.in_([d.id for d in todo]),
                _DELIVERIES.c.status == "received",
                _DELIVERIES.c.attempts == 0,
            )
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not careful:
        _prefetch(session, [d for d in todo if d.id in live and d.shop_id not in erased])
    finished: list[dict[str, Any]] = []  # the rows' new states, written in one statement
    shops: dict[int, Shop | None] = {}  # held here: the session's identity map is weak
    gone: set[int] = set()  # shops erased by this transaction
    taken = 0
    for item in todo:
        if taken and (time.perf_counter() - began > budget_s or db.writers_waiting()):
            break  # commit now: another writer waits for the write lock
        taken += 1
        if item.id not in live or item.shop_id in erased or item.shop_id in gone:
            # Done meanwhile (another worker, a job, a replay), or erased with its shop.
            done.statuses[item.id] = "skipped"
            continue
        if not careful:
            try:
                status = _apply_pending(session, item, now or utcnow(), finished, shops, flush=False)
            except Exception as exc:
                raise _Redo from exc
            if any(not isinstance(e, OrderChanged | OrderAmended | Ignored) for e in item.events):
                # Privacy and uninstall events delete and rewrite rows behind the loaded objects.
                session.info.pop(prefetch.KEY, None)
        else:
            try:
                with session.begin_nested():
                    status = _apply_pending(session, item, now or utcnow(), finished, shops, flush=True)
            except Exception as exc:
                log.warning("delivery %s failed, to be retried: %s: %s", item.id, type(exc).__name__, exc)
                session.execute(
                    update(_DELIVERIES)
                    .where(_DELIVERIES.c.id == item.id)
                    .values(attempts=_DELIVERIES.c.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000])
                )
                done.statuses[item.id] = "retry"
                done.retry.append((item.id, item.platform))
                continue
        if status == "erased":
            gone.add(item.shop_id)
        done.statuses[item.id] = status
    if not careful:
        try:
            session.flush()  # every delivery's changes at once; a failure here is a delivery's too
        except Exception as exc:
            raise _Redo from exc
    if finished:
        _FINISH.run_many(session.connection(), finished)
    return taken


def _prefetch(session: Session, items: list[Pending]) -> None:
    """Load the orders, awards and customers these deliveries name (see app/prefetch.py)."""
    by_shop: dict[int, tuple[set[str], set[str]]] = {}
    for item in items:
        orders, customers = by_shop.setdefault(item.shop_id, (set(), set()))
        for event in item.events:
            if isinstance(event, OrderChanged):
                orders.add(event.snapshot.order_id)
                if event.snapshot.customer_id is not None:
                    customers.add(event.snapshot.customer_id)
            elif isinstance(event, OrderAmended):
                orders.add(event.order_id)
    for shop_id, (orders, customers) in by_shop.items():
        prefetch.load(session, shop_id, orders, customers)


_FINISH = Prepared(
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("pk"))
    .values(
        attempts=_DELIVERIES.c.attempts + 1,
        status=bindparam("status"),
        last_error=bindparam("last_error"),
        processed_at=bindparam("processed_at"),
        order_ref=bindparam("order_ref"),
        customer_ref=bindparam("customer_ref"),
    )
)


def _step_aside(db: Database, longest_s: float = 0.05) -> None:
    """Between a batch's transactions: let every writer that waits for the lock go first, for at
    most `longest_s` (under a steady stream of webhooks the worker still applies one delivery
    each time; it catches up when the stream thins)."""
    deadline = time.perf_counter() + longest_s
    time.sleep(0.0002)
    while db.writers_waiting() and time.perf_counter() < deadline:
        time.sleep(0.001)  # only the worker waits here: a coarse poll costs it little CPU


def _apply_pending(
    session: Session,
    item: Pending,
    now: datetime,
    finished: list[dict[str, Any]],
    shops: dict[int, Shop | None],
    *,
    flush: bool,
) -> str:
    """Apply one delivery; its row's new state goes to `finished`. `flush`: write its changes now
    (in the caller's savepoint, where its errors belong to it alone)."""
    row = {"pk": item.id, "processed_at": utcnow(), "order_ref": None, "customer_ref": None}
    if item.error is not None:
        if not isinstance(item.error, MalformedDelivery):
            raise item.error
        finished.append(row | {"status": "failed", "last_error": f"malformed: {item.error}"})
        return "failed"
    if item.shop_id not in shops:
        shops[item.shop_id] = session.get(Shop, item.shop_id)
    shop = shops[item.shop_id]
    if shop is None:
        return "missing"  # the shop was erased meanwhile
    body = item.body
    status = _carry_out(session, shop, item, item.events, now)
    if status == "erased":
        return status  # the row went with the shop
    if flush:
        session.flush()  # this delivery's errors belong to its own savepoint
    if item.body is not body:  # a customer redaction erased this very payload
        session.execute(
            update(_DELIVERIES).where(_DELIVERIES.c.id == item.id).values(body=item.body, headers=item.headers)
        )
    last_error = item.last_error if status == "ignored" else None
    finished.append(row | {"status": status, "last_error": last_error, "order_ref": item.order_ref,
                           "customer_ref": item.customer_ref})  # fmt: skip
    return status


class _Delivery(Protocol):
    """What `_carry_out` reads and sets: a WebhookDelivery row, or a `Pending` one."""

    platform: str
    delivery_id: str
    topic: str
    body: bytes
    headers: dict[str, Any]
    received_at: datetime
    order_ref: str | None
    customer_ref: str | None
    last_error: str | None


def _carry_out(session: Session, shop: Shop, delivery: _Delivery, events: list[Event], now: datetime) -> str:
    source = f"{delivery.platform}:webhook:{delivery.delivery_id}"
    status = "ignored"
    for event in events:
        if isinstance(event, OrderChanged):
            outcome = apply_snapshot(session, shop, event.snapshot, source=source, now=now)
            delivery.order_ref, delivery.customer_ref = event.snapshot.order_id, event.snapshot.customer_id
            _log(delivery, outcome)
            status = "processed"
        elif isinstance(event, OrderAmended):
            delivery.order_ref = event.order_id
            if event.at is None:
                event = replace(event, at=delivery.received_at)
            amended = apply_amendment(session, shop, event, source=source, now=now)
            if amended is not None:
                _log(delivery, amended)
                status = "processed"
            else:
                delivery.last_error = "order not seen yet: its order webhooks carry this fact too"
        elif isinstance(event, AppUninstalled):
            privacy.uninstall(session, shop, now)
            status = "processed"
        elif isinstance(event, CustomerDataRequested):
            delivery.customer_ref = event.customer_id
            privacy.export_customer(session, shop, event.customer_id, event.request_id)
            status = "processed"
        elif isinstance(event, CustomerRedacted):
            privacy.redact_customer(session, shop, event.customer_id, event.order_ids)
            # This very request names the customer too: erase it with the rest.
            delivery.body, delivery.headers, delivery.customer_ref = privacy.REDACTED_BODY, {}, None
            status = "processed"
        elif isinstance(event, ShopRedacted):
            privacy.redact_shop(session, shop)
            return "erased"
        elif isinstance(event, Ignored):
            delivery.last_error = event.why[:2000]
    return status


def apply_amendment(session: Session, shop: Shop, event: OrderAmended, *, source: str, now: datetime) -> Outcome | None:
    """Add one refund or sticky status to the order's last snapshot. An order never seen is left
    for the order webhooks (which carry every refund and status) and for reconciliation."""
    query = select(Order).where(Order.shop_id == shop.id, Order.platform_order_id == event.order_id)
    order = prefetch.lookup(session, "orders", (shop.id, event.order_id), lambda: session.exec(query).first())
    if order is None or not order.snapshot:
        return None
    stored = OrderSnapshot.from_json(order.snapshot)
    amended = replace(
        stored,
        refunds=stored.refunds | ({event.refund} if event.refund else frozenset()),
        statuses=stored.statuses | ({event.status} if event.status else frozenset()),
    )
    if event.status is not None and event.status not in STICKY:
        # A status that replaces the others (trashed) is the order's state from `at` on. A stored
        # snapshot from `at` or later already says what came after it (restored), so it stands.
        at = as_utc(event.at or now)
        if at <= stored.updated_at:
            amended = stored
        else:
            amended = replace(amended, statuses=(stored.statuses & STICKY) | {event.status}, updated_at=at)
    return apply_snapshot(session, shop, amended, source=source, now=now)


def _log(delivery: _Delivery, outcome: Outcome) -> None:
    # DEBUG: at hundreds a second one line each would cost the worker a tenth of its time; the
    # worker logs each batch (jobs.poll_deliveries), and the row and its entries say the rest.
    if log.isEnabledFor(logging.DEBUG):
        context = {"topic": delivery.topic, "delivery_id": delivery.delivery_id, "order_id": outcome.order_ref}
        log.debug("processed: %d entries, %+d coins", len(outcome.entries), outcome.coins_delta, extra=context)
