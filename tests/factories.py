"""Plain factory functions and a small driver over the real service: each order event is stored
as a delivery and applied by the worker's own path (app/pipeline.py)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import select

from app import audit, jsoncodec, pipeline, wallet
from app.crypto import Vault
from app.db import Database
from app.domain.events import Event, OrderChanged
from app.domain.shop_settings import ShopSettings, apply_changes
from app.domain.snapshot import OrderSnapshot, Refund, Status
from app.ledger import Entry
from app.models import Award, Customer, LedgerEntry, Redemption, Shop
from app.pipeline import Parser, Work
from app.service import Outcome, release_due
from app.shops import register_shop
from app.storage.deliveries import Deliveries
from app.storage.open import open_deliveries

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def snap(
    order_id: str = "1001",
    *,
    total: str = "100.00",
    customer: str | None = "c1",
    at: int = 0,
    statuses: tuple[str, ...] = ("paid",),
    refunds: dict[str, str] | None = None,
    tags: tuple[str, ...] = (),
    shop: str = "test.myshopify.com",
    currency: str = "USD",
    codes: tuple[str, ...] = (),
    customer_tags: tuple[str, ...] = (),
) -> OrderSnapshot:
    """An order snapshot `at` minutes after T0."""
    return OrderSnapshot(
        platform="shopify",
        shop=shop,
        order_id=order_id,
        order_name=f"#{order_id}",
        customer_id=customer,
        currency=currency,
        total=Decimal(total),
        updated_at=T0 + timedelta(minutes=at),
        statuses=frozenset(Status(s) for s in statuses),
        refunds=frozenset(Refund(k, Decimal(v)) for k, v in (refunds or {}).items()),
        tags=frozenset(tags),
        discount_codes=frozenset(codes),
        customer_tags=frozenset(customer_tags),
    )


SNAPSHOT = "snapshot"  # the stored deliveries' platform: their body is an order snapshot's JSON
_DELIVERIES = itertools.count(1)


def parse_snapshot(topic: str, body: bytes, shop: Shop) -> list[Event]:
    """A stored delivery whose body is an order snapshot. The one step where the tests' deliveries
    differ from a platform's: the properties generate order states directly, and each connector's
    translation is tested on its own; everything before (storing, the inbox) and after (the
    worker's batches, the service, the ledger) is what production runs."""
    return [OrderChanged(OrderSnapshot.from_json(jsoncodec.loads(body)))]


def parser_for(platform: str) -> Parser:
    if platform == SNAPSHOT:
        return parse_snapshot
    import connectors

    return connectors.get(platform)().parse


@dataclass
class Books:
    """Drive one shop through the real service: `apply` stores the snapshot as a delivery (through
    the same `Deliveries.accept` the webhook route uses) and runs the worker's poll to apply it."""

    db: Database
    vault: Vault
    domain: str = "test.myshopify.com"
    shop_id: int = 0
    sources: list[str] = field(default_factory=list)
    store: Deliveries | None = None

    @property
    def deliveries(self) -> Deliveries:
        if self.store is None:
            self.store = open_deliveries(self.db)
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def open(self, domain: str = "test.myshopify.com", platform: str = "shopify", **settings: Any) -> Books:
        changes = {k.replace("__", "."): v for k, v in settings.items()}
        with self.db.session() as session:
            shop, _ = register_shop(
                session, self.vault, platform=platform, domain=domain, settings=apply_changes(ShopSettings(), changes)
            )
            assert shop.id is not None
        return Books(self.db, self.vault, domain, shop.id, store=self.deliveries)

    def set(self, **settings: Any) -> None:
        with self.db.session() as session:
            shop = session.get(Shop, self.shop_id)
            assert shop is not None
            changes = {k.replace("__", "."): v for k, v in settings.items()}
            shop.settings = apply_changes(ShopSettings.from_stored(shop.settings), changes).to_stored()
            session.add(shop)

    def deliver(self, snapshot: OrderSnapshot, source: str = "test") -> str:
        """Store `snapshot` as a new delivery (not applied yet); its delivery id."""
        delivery_id = f"{source}:{next(_DELIVERIES)}:{uuid.uuid4().hex[:8]}"
        body = jsoncodec.dumps(snapshot.to_json()).encode()
        self.deliveries.accept(
            shop_id=self.shop_id, platform=SNAPSHOT, topic="orders/snapshot", delivery_id=delivery_id, body=body,
            headers={},
        )  # fmt: skip
        return delivery_id

    def work(self, now: datetime | None = None) -> list[Work]:
        """What the job worker's poll does, until no delivery waits: take, parse, apply."""
        done: list[Work] = []
        while stored := self.deliveries.take(100):
            done += pipeline.process(self.db, self.deliveries, stored, parser_for, now=now)
        return done

    def apply(self, snapshot: OrderSnapshot, source: str = "test", now: datetime | None = None) -> Outcome:
        """Deliver `snapshot` and let the worker's path apply it; what applying it did (nothing,
        when another thread's poll applied it first)."""
        delivery_id = self.deliver(snapshot, source)
        mine = [
            w for w in self.work(now or snapshot.updated_at) if w.delivery and w.delivery.delivery_id == delivery_id
        ]
        outcome = Outcome(snapshot.order_id, changed=False, note="applied by another poll")
        for item in mine:
            if item.failure is not None:
                raise item.failure
            for applied in item.outcomes:
                outcome = Outcome(applied.order_ref, applied.changed or outcome.changed,
                                  [*outcome.entries, *applied.entries], applied.note)  # fmt: skip
        return outcome

    def redeem(self, customer: str, coins: int, order: str | None = None, code: str | None = None) -> Redemption:
        with self.db.session() as session:
            shop = session.get(Shop, self.shop_id)
            assert shop is not None
            redemption, _ = wallet.redeem(session, shop, customer, coins, source="test", order_ref=order, code=code)
            return redemption

    def release(self, now: datetime) -> list[Entry]:
        with self.db.session() as session:
            return release_due(session, now=now)

    def balance(self, customer: str) -> dict[str, int]:
        with self.db.session() as session:
            row = session.exec(
                select(Customer).where(Customer.shop_id == self.shop_id, Customer.platform_customer_id == customer)
            ).first()
            if row is None:
                return {"available": 0, "pending": 0, "shortfall": 0}
            return {"available": row.available_coins, "pending": row.pending_coins, "shortfall": row.shortfall_coins}

    def customer(self, customer: str) -> Customer:
        with self.db.session() as session:
            return session.exec(
                select(Customer).where(Customer.shop_id == self.shop_id, Customer.platform_customer_id == customer)
            ).one()

    def entries(self, order: str | None = None) -> list[LedgerEntry]:
        with self.db.session() as session:
            query = select(LedgerEntry).where(LedgerEntry.shop_id == self.shop_id)
            if order is not None:
                query = query.where(LedgerEntry.order_ref == order)
            return list(session.exec(query.order_by(LedgerEntry.id)))  # type: ignore[arg-type]

    def award(self, order: str) -> Award | None:
        from app.models import Order

        with self.db.session() as session:
            row = session.exec(
                select(Order).where(Order.shop_id == self.shop_id, Order.platform_order_id == order)
            ).first()
            if row is None:
                return None
            return session.exec(select(Award).where(Award.order_id == row.id)).first()

    def violations(self) -> list[str]:
        with self.db.session() as session:
            return audit.violations(session)
