"""Reconciliation: pull the orders a shop changed since the last sync and feed them through the
same path as webhooks. Deliveries can be lost; this is how a lost one still ends in the right
balance. The report says what it corrected: every order whose books moved.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app import pipeline
from app.db import Database
from app.domain.events import OrderChanged
from app.domain.snapshot import OrderSnapshot
from app.models import Shop, as_utc, utcnow
from app.pipeline import Work
from app.storage.deliveries import Deliveries

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
    db: Database,
    deliveries: Deliveries,
    shop_id: int,
    snapshots: Iterable[OrderSnapshot],
    *,
    since: datetime,
    now: datetime | None = None,
    batch: int = 100,
) -> Report:
    """Apply the snapshots through the worker's own path (`pipeline.apply`, `batch` at a time as
    the platform's pages arrive); then record the sync. A snapshot that fails stops the run after
    the others of its batch are committed: the next run starts from the last sync again."""
    started = now or utcnow()
    with db.read() as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        report = Report(shop=shop.domain, since=since.isoformat())
    source = f"reconcile:{started.isoformat()}"
    pages = iter(snapshots)
    while chunk := list(itertools.islice(pages, batch)):
        work = [Work(shop_id, [OrderChanged(snapshot)], source) for snapshot in chunk]
        pipeline.apply(db, deliveries, work, now=started)
        for snapshot, item in zip(chunk, work, strict=True):
            if item.failure is not None:
                raise item.failure
            report.orders_seen += 1
            entries = [entry for outcome in item.outcomes for entry in outcome.entries]
            if entries:
                report.orders_changed += 1
                report.coins_delta += sum(e.coins_delta for e in entries)
                report.corrected.append({"order_id": snapshot.order_id, "order": snapshot.label,
                                         "entries": [e.explanation for e in entries]})  # fmt: skip
    with db.session() as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        shop.synced_at = started
        session.add(shop)
    return report
