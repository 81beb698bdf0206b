"""One path from stored deliveries (or any order facts) to the ledger, for every caller.

The job worker's poll, a delivery's retry, `clawback replay`, reconciliation and the tests all
come here: `parse` turns stored deliveries into `Work` (outside any write lock), and `apply`
applies a list of `Work`, several per transaction. A batch of one is still this path.

A transaction first applies its work all or nothing, with the rows it needs loaded (and on
PostgreSQL locked) up front (`BatchRows`) and one flush at the end. If anything raises, it is
rolled back and the same work is applied again, each item in its own savepoint (`OrmRows`): then
an item that raises is rolled back alone, its delivery's attempt and error are recorded in the same
transaction, and it ends as "retry" (the job queue retries it with backoff), while the others
commit. A malformed delivery ends "failed". Each transaction stops taking new work after
`budget_s`, or as soon as another writer waits for SQLite's single write lock: then it commits and
steps aside (`Deliveries.step_aside`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from app import privacy
from app.db import Database
from app.dispatch import ROW_CHANGING, carry_out
from app.domain.events import Event, OrderAmended, OrderChanged
from app.errors import MalformedDelivery
from app.models import Shop, WebhookDelivery, utcnow
from app.rows import BatchRows, OrmRows, Rows
from app.service import Outcome
from app.storage.deliveries import DELIVERIES, Deliveries, StoredDelivery

log = logging.getLogger(__name__)

Parser = Callable[[str, bytes, Shop], list[Event]]
DONE = frozenset({"processed", "ignored", "failed"})  # a delivery in these states is never applied again


@dataclass
class Work:
    """Order facts to apply for one shop: the events one delivery means (`delivery`), or a
    snapshot from reconciliation. `apply` records what became of it."""

    shop_id: int
    events: list[Event]
    source: str
    delivery: StoredDelivery | None = None
    error: Exception | None = None  # reading the delivery raised this (MalformedDelivery: for good)
    # What applying it did:
    status: str = ""  # processed, ignored, failed, erased, missing, skipped, retry
    outcomes: list[Outcome] = field(default_factory=list)
    order_ref: str | None = None
    customer_ref: str | None = None
    note: str | None = None  # why it was ignored, or how it failed
    redacted: bool = False  # a customer redaction erased this very delivery's body
    failure: Exception | None = None  # applying raised this: retry later

    @property
    def topic(self) -> str:
        return self.delivery.topic if self.delivery else "snapshot"

    @property
    def received_at(self) -> datetime | None:
        return self.delivery.received_at if self.delivery else None

    def reset(self) -> None:
        """Forget a rolled-back attempt."""
        self.status, self.outcomes, self.order_ref, self.customer_ref = "", [], None, None
        self.note, self.redacted, self.failure = None, False, None


def parse(db: Database, stored: Sequence[StoredDelivery], parser_for: Callable[[str], Parser]) -> list[Work]:
    """What each stored delivery means, read and parsed without a write lock. A delivery that cannot
    be parsed carries its error (decided when applied); one whose shop is gone has no events."""
    if not stored:
        return []
    with db.read() as session:
        shop_ids = {d.shop_id for d in stored}
        shops = {s.id: s for s in session.exec(select(Shop).where(col(Shop.id).in_(shop_ids)))}
    found = []
    for delivery in stored:
        item = Work(delivery.shop_id, [], f"{delivery.platform}:webhook:{delivery.delivery_id}", delivery)
        shop = shops.get(delivery.shop_id)
        if shop is not None:
            try:
                item.events = parser_for(delivery.platform)(delivery.topic, delivery.body, shop)
            except Exception as exc:  # MalformedDelivery, or anything else: decided when applied
                item.error = exc
        found.append(item)
    return found


class _Redo(Exception):
    """Something raised inside an all-or-nothing transaction: roll it back and apply the same work
    again, each item in its own savepoint."""


def apply(
    db: Database, deliveries: Deliveries, work: Sequence[Work], *, now: datetime | None = None, budget_s: float = 0.25
) -> int:
    """Apply `work`, oldest first (two deliveries of one order apply in arrival order); return how
    many transactions it took. Each item's `status` (and `outcomes`) say what became of it."""
    todo = list(work)
    erased: set[int] = set()
    careful = False
    transactions = 0
    while todo:
        try:
            with db.session() as session:
                taken = _transaction(session, deliveries, todo, now, budget_s, erased, careful=careful)
        except _Redo as exc:
            log.info("work raised in a batch (%s): applying it again, one savepoint each", exc.__cause__)
            transactions += 1
            careful = True
            for item in todo:
                item.reset()
            continue
        transactions += 1
        erased.update(item.shop_id for item in todo[:taken] if item.status == "erased")
        todo, careful = todo[taken:], False
        if todo:
            deliveries.step_aside()
    return transactions


def _transaction(
    session: Session,
    deliveries: Deliveries,
    todo: list[Work],
    now: datetime | None,
    budget_s: float,
    erased: set[int],
    *,
    careful: bool,
) -> int:
    """Apply work from the head of `todo` in this transaction; return how many items it took."""
    began = time.perf_counter()
    live = deliveries.lock_live(session, [item.delivery for item in todo if item.delivery is not None])
    rows: Rows = OrmRows(session) if careful else BatchRows(session)
    if isinstance(rows, BatchRows):
        _load(rows, [i for i in todo if _is_live(i, live) and i.shop_id not in erased])
    shops: dict[int, Shop | None] = {}  # held here: the session's identity map is weak
    gone: set[int] = set()  # shops erased by this transaction
    taken = 0
    for item in todo:
        if taken and (time.perf_counter() - began > budget_s or deliveries.writers_waiting()):
            break  # commit now: another writer waits for the write lock
        taken += 1
        if not _is_live(item, live) or item.shop_id in erased or item.shop_id in gone:
            item.status = "skipped"  # done meanwhile (another worker, a retry, a replay), or its shop erased
            continue
        if not careful:
            try:
                _apply_one(rows, item, now or utcnow(), shops)
            except Exception as exc:
                raise _Redo from exc
            if any(isinstance(e, ROW_CHANGING) for e in item.events):
                rows.forget()
        else:
            try:
                with session.begin_nested():
                    _apply_one(rows, item, now or utcnow(), shops)
                    session.flush()  # this item's errors belong to its own savepoint
            except Exception as exc:
                expire_after_rollback(session)
                _failed(session, item, exc)
                continue
        if item.status == "erased":
            gone.add(item.shop_id)
    if not careful:
        try:
            session.flush()  # every item's changes at once; a failure here is an item's too
        except Exception as exc:
            raise _Redo from exc
    _finish(session, deliveries, [item for item in todo[:taken] if item.status not in ("skipped", "retry")])
    return taken


def _is_live(item: Work, live: set[int]) -> bool:
    return item.delivery is None or item.delivery.id in live


def _load(rows: BatchRows, items: Iterable[Work]) -> None:
    """Load the orders and customers these items name, one query per table and shop."""
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
        rows.load(shop_id, orders, customers)


def _apply_one(rows: Rows, item: Work, now: datetime, shops: dict[int, Shop | None]) -> None:
    if item.error is not None:
        if not isinstance(item.error, MalformedDelivery):
            raise item.error
        item.status, item.note = "failed", f"malformed: {item.error}"
        return
    if item.shop_id not in shops:
        shops[item.shop_id] = rows.session.get(Shop, item.shop_id)
    shop = shops[item.shop_id]
    if shop is None:
        item.status = "missing"  # the shop was erased meanwhile, and its deliveries with it
        return
    item.status = carry_out(rows, shop, item, item.events, now)


def expire_after_rollback(session: Session) -> None:
    """After a savepoint rolled back: every object the session holds is read again from the rows.

    `ledger.post` moves a customer's balances with an UPDATE and sets the object's values as
    committed, without the session knowing they changed; SQLAlchemy expires on a savepoint's
    rollback only the objects it saw change. So a posting rolled back with its savepoint would
    leave its balances on the object, and the next item of the same customer would read them."""
    session.expire_all()


def _failed(session: Session, item: Work, exc: Exception) -> None:
    """Applying `item` raised: record the attempt and the error on its delivery, for a retry."""
    log.warning("%s failed, to be retried: %s: %s", item.source, type(exc).__name__, exc)
    item.reset()
    item.status, item.failure = "retry", exc
    if item.delivery is not None:
        session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == item.delivery.id)
            .values(attempts=DELIVERIES.c.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000])
        )


def _finish(session: Session, deliveries: Deliveries, items: list[Work]) -> None:
    """The applied deliveries' new states, in this transaction."""
    finished: list[dict[str, Any]] = []
    for item in items:
        if item.delivery is None or item.status in ("erased", "missing"):
            continue  # no row, or its row went with the shop
        if item.redacted:
            session.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == item.delivery.id)
                .values(body=privacy.REDACTED_BODY, headers={})
            )
        keep_note = item.status in ("ignored", "failed")  # where the operator will look for why
        finished.append({
            "pk": item.delivery.id, "status": item.status, "last_error": item.note if keep_note else None,
            "processed_at": utcnow(), "order_ref": item.order_ref, "customer_ref": item.customer_ref,
        })  # fmt: skip
    deliveries.finish(session, finished)


def give_up(db: Database, delivery_pk: int) -> None:
    """Retries are exhausted: mark the delivery failed, for `clawback deliveries --failed` and replay."""
    with db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_pk)
        if delivery is not None and delivery.status == "received":
            delivery.status = "failed"
            session.add(delivery)


def process(
    db: Database,
    deliveries: Deliveries,
    stored: Sequence[StoredDelivery],
    parser_for: Callable[[str], Parser],
    *,
    now: datetime | None = None,
) -> list[Work]:
    """Parse and apply stored deliveries: what the worker's poll, a retry and a replay run."""
    work = parse(db, stored, parser_for)
    apply(db, deliveries, work, now=now)
    return work
