"""Accept a delivery (one INSERT, deduplicated), then process it into the ledger, exactly once.

Accepting and processing are separate transactions: the platform gets its 200 as soon as the raw
body is durable, and processing can be retried from the stored row as often as needed. The
`parse` function comes from the caller (the web or job layer, which knows the connectors), so this
module stays free of any platform.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from app import privacy
from app.db import Database
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
from app.service import Outcome, apply_snapshot
from app.snapshot import STICKY, OrderSnapshot

log = logging.getLogger(__name__)

Parser = Callable[[str, bytes, Shop], list[Event]]


class MalformedDelivery(ValueError):
    """The body cannot be understood (bad JSON, missing fields). Retrying cannot fix it."""


def store_delivery(
    session: Session,
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
    values: dict[str, Any] = {
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
    table = WebhookDelivery.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = pg_insert(table).values(values).on_conflict_do_nothing(index_elements=["shop_id", "delivery_id"])
    elif dialect == "sqlite":
        stmt = sqlite_insert(table).values(values).on_conflict_do_nothing(index_elements=["shop_id", "delivery_id"])
    else:  # pragma: no cover - only the two supported databases
        stmt = insert(table).values(values)
    row = session.execute(stmt.returning(table.c.id)).first()
    return None if row is None else int(row[0])


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


def _carry_out(session: Session, shop: Shop, delivery: WebhookDelivery, events: list[Event], now: datetime) -> str:
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
    order = session.exec(
        select(Order).where(Order.shop_id == shop.id, Order.platform_order_id == event.order_id)
    ).first()
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


def _log(delivery: WebhookDelivery, outcome: Outcome) -> None:
    context = {"topic": delivery.topic, "delivery_id": delivery.delivery_id, "order_id": outcome.order_ref}
    log.info("processed: %d entries, %+d coins", len(outcome.entries), outcome.coins_delta, extra=context)
