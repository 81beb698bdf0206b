"""The demo shop: a few customers and orders that show every rule, fed through the real path."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlmodel import Session, select

from app import wallet
from app.crypto import Vault
from app.domain.shop_settings import ShopSettings, apply_changes
from app.domain.snapshot import OrderSnapshot, Refund, Status
from app.models import Shop, utcnow
from app.rows import OrmRows
from app.service import apply_snapshot, release_due
from app.shops import register_shop

DEMO_DOMAIN = "demo.clawback.test"
SOURCE = "demo"


def seed(session: Session, vault: Vault) -> str:
    """Reset the demo shop and replay its story; return a one-line summary."""
    old = session.exec(select(Shop).where(Shop.platform == "demo", Shop.domain == DEMO_DOMAIN)).first()
    if old is not None:
        session.delete(old)
        session.flush()
    settings = apply_changes(ShopSettings(), {
        "earn.mode": "per_unit", "earn.rate": "1", "revert.enabled": "true",
        "revert.statuses": "refunded,cancelled,partially_refunded", "revert.tags": "fraud-order, chargeback",
        "revert.shortfall": "floor_and_flag", "redeem.coin_value": "0.10",
    })  # fmt: skip
    shop, _ = register_shop(session, vault, platform="demo", domain=DEMO_DOMAIN, name="Clawback Demo Store",
                            currency="USD", settings=settings)  # fmt: skip
    start = utcnow() - timedelta(days=10)

    def order(n: int, customer: str, total: str, hours: int, **kw: object) -> None:
        snap = OrderSnapshot(platform="demo", shop=DEMO_DOMAIN, order_id=str(n), order_name=f"#{n}",
                             customer_id=customer, customer_email=f"{customer}@example.com", currency="USD",
                             total=Decimal(total), updated_at=start + timedelta(hours=hours), **kw)  # type: ignore[arg-type]  # fmt: skip
        apply_snapshot(OrmRows(session), shop, snap, source=f"{SOURCE}:order:{n}:{hours}", now=snap.updated_at)

    paid = frozenset({Status.PAID})
    # Nector: 200 coins earned on #1001, reverted once when it is cancelled.
    order(1001, "alice", "200.00", 1, statuses=paid)
    order(1001, "alice", "200.00", 5, statuses=paid | {Status.CANCELLED})
    # Rise: a partial refund reverts in proportion, at the rate the coins were earned.
    order(1002, "bob", "100.00", 2, statuses=paid)
    order(1002, "bob", "100.00", 6, statuses=paid | {Status.PARTIALLY_REFUNDED},
          refunds=frozenset({Refund("r-1002-1", Decimal("20.00"))}))  # fmt: skip
    # A merchant's tag reverts the coins too.
    order(1003, "carol", "150.00", 3, statuses=paid)
    order(1003, "carol", "150.00", 7, statuses=paid, tags=frozenset({"Fraud-Order"}))
    # Fynd: coins spent on an order come back when it is cancelled.
    order(1004, "alice", "300.00", 8, statuses=paid)
    wallet.redeem(session, shop, "alice", 120, source=SOURCE, order_ref="1005")
    order(1005, "alice", "40.00", 9, statuses=paid)
    order(1005, "alice", "40.00", 12, statuses=paid | {Status.CANCELLED})
    # Rise: coins already spent when the order is refunded: deduct to zero, record, tag 'Fraud'.
    order(1006, "dave", "250.00", 10, statuses=paid)
    wallet.redeem(session, shop, "dave", 200, source=SOURCE, code="DAVE-200")
    order(1006, "dave", "250.00", 14, statuses=paid | {Status.REFUNDED},
          refunds=frozenset({Refund("r-1006-1", Decimal("250.00"))}))  # fmt: skip
    # Delayed rewards: held for the return window, then released by the job.
    session.add(shop)
    shop.settings = apply_changes(ShopSettings.from_stored(shop.settings), {"earn.delay_days": "3"}).to_stored()
    order(1007, "erin", "80.00", 15, statuses=paid)
    release_due(session, now=start + timedelta(days=4), source=f"{SOURCE}:release")
    order(1008, "erin", "60.00", 24 * 9, statuses=paid)
    return "5 customers, 8 orders, earned, reverted, returned, flagged and held coins"
