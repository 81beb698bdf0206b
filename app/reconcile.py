"""Reconciliation: pull the orders a shop changed since the last sync and feed them through the
same path as webhooks. Deliveries can be lost; this is how a lost one still ends in the right
balance. The report says what it corrected: every order whose books moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.db import Database
from app.models import Shop, as_utc, utcnow
from app.service import apply_snapshot
from app.snapshot import OrderSnapshot

FIRST_SYNC_LOOKBACK = timedelta(days=1)


@dataclass
class Report:
    shop: str
    since: str
    orders_seen: int = 0
    orders_changed: int = 0
    coins_delta: int = 0
    corrected: list[dict[str, object]] = field(default_factory=list)


def since_for(shop: Shop, now: datetime) -> datetime:
    """Where the next run starts: the last sync (a little before, for clock skew), or a day back."""
    return as_utc(shop.synced_at) - timedelta(minutes=5) if shop.synced_at else now - FIRST_SYNC_LOOKBACK


def reconcile(
    db: Database, shop_id: int, snapshots: Iterable[OrderSnapshot], *, since: datetime, now: datetime | None = None
) -> Report:
    """Apply each snapshot in its own transaction (like a webhook job); then record the sync."""
    started = now or utcnow()
    with db.session() as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        report = Report(shop=shop.domain, since=since.isoformat())
    for snapshot in snapshots:
        report.orders_seen += 1
        with db.session() as session:
            shop = session.get(Shop, shop_id)
            assert shop is not None
            outcome = apply_snapshot(session, shop, snapshot, source=f"reconcile:{started.isoformat()}", now=started)
        if outcome.entries:
            report.orders_changed += 1
            report.coins_delta += outcome.coins_delta
            report.corrected.append({"order_id": snapshot.order_id, "order": snapshot.label,
                                     "entries": [e.explanation for e in outcome.entries]})  # fmt: skip
    with db.session() as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        shop.synced_at = started
        session.add(shop)
    return report
