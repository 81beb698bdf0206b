"""What each domain event does to the books: the one place an event meets the service.

The pipeline (app/pipeline.py) hands every event of a delivery, or of any other source of order
facts, to `carry_out`, with the `Rows` of its transaction.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from app import privacy
from app.domain.events import (
    AppUninstalled,
    CustomerDataRequested,
    CustomerRedacted,
    Event,
    Ignored,
    OrderAmended,
    OrderChanged,
    ShopRedacted,
)
from app.domain.snapshot import STICKY, OrderSnapshot
from app.models import Shop, as_utc
from app.rows import Rows
from app.service import Outcome, apply_snapshot

log = logging.getLogger(__name__)

# Events after which rows a batch loaded may have been deleted or rewritten behind it.
ROW_CHANGING = (AppUninstalled, CustomerDataRequested, CustomerRedacted, ShopRedacted)


class Target(Protocol):
    """What `carry_out` reads and records: the work item it applies (app.pipeline.Work)."""

    source: str
    order_ref: str | None
    customer_ref: str | None
    note: str | None
    redacted: bool
    outcomes: list[Outcome]

    @property
    def topic(self) -> str: ...

    @property
    def received_at(self) -> datetime | None: ...


def carry_out(rows: Rows, shop: Shop, target: Target, events: list[Event], now: datetime) -> str:
    """Apply `events` for `shop`; return the status the work ends in: processed, ignored (with a
    note why), or erased (the shop's data is gone, with the delivery's own row)."""
    session = rows.session
    status = "ignored"
    for event in events:
        if isinstance(event, OrderChanged):
            outcome = apply_snapshot(rows, shop, event.snapshot, source=target.source, now=now)
            target.order_ref, target.customer_ref = event.snapshot.order_id, event.snapshot.customer_id
            _record(target, outcome)
            status = "processed"
        elif isinstance(event, OrderAmended):
            target.order_ref = event.order_id
            if event.at is None:
                event = replace(event, at=target.received_at or now)
            amended = apply_amendment(rows, shop, event, source=target.source, now=now)
            if amended is not None:
                _record(target, amended)
                status = "processed"
            else:
                target.note = "order not seen yet: its order webhooks carry this fact too"
        elif isinstance(event, AppUninstalled):
            privacy.uninstall(session, shop, now)
            status = "processed"
        elif isinstance(event, CustomerDataRequested):
            target.customer_ref = event.customer_id
            privacy.export_customer(session, shop, event.customer_id, event.request_id)
            status = "processed"
        elif isinstance(event, CustomerRedacted):
            privacy.redact_customer(session, shop, event.customer_id, event.order_ids)
            # This very request names the customer too: erase it with the rest.
            target.redacted, target.customer_ref = True, None
            status = "processed"
        elif isinstance(event, ShopRedacted):
            privacy.redact_shop(session, shop)
            return "erased"
        elif isinstance(event, Ignored):
            target.note = event.why[:2000]
    return status


def apply_amendment(rows: Rows, shop: Shop, event: OrderAmended, *, source: str, now: datetime) -> Outcome | None:
    """Add one refund or sticky status to the order's last snapshot. An order never seen is left
    for the order webhooks (which carry every refund and status) and for reconciliation."""
    assert shop.id is not None
    order = rows.known_order(shop.id, event.order_id)
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
    return apply_snapshot(rows, shop, amended, source=source, now=now)


def _record(target: Target, outcome: Outcome) -> None:
    target.outcomes.append(outcome)
    # DEBUG: at hundreds a second one line each would cost the worker a tenth of its time; the
    # worker logs each batch (jobs.poll_deliveries), and the row and its entries say the rest.
    if log.isEnabledFor(logging.DEBUG):
        context = {"topic": target.topic, "source": target.source, "order_id": outcome.order_ref}
        log.debug("processed: %d entries, %+d coins", len(outcome.entries), outcome.coins_delta, extra=context)
