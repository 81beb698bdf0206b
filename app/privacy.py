"""Uninstall and the privacy requests: a customer's data, gathered or erased; a shop, erased.

Erasing a customer keeps the books: ledger entries and balances stay (anonymous sums, so the
shop's liabilities still add up), while everything that names the person goes: email, platform
id, tags, the raw webhook bodies of their orders, pending write-backs and earlier exports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from app.history import balances, find_customer, ledger_page
from app.models import (
    DataExport,
    Order,
    Redemption,
    Shop,
    WebhookDelivery,
    Writeback,
    as_utc,
)

REDACTED_BODY = b'{"redacted": true}'


def uninstall(session: Session, shop: Shop, now: datetime) -> None:
    """Stop work: the platform has revoked our token, so forget it; keep data for shop/redact."""
    shop.uninstalled_at = now
    shop.credentials = None
    session.add(shop)


def export_customer(session: Session, shop: Shop, customer_ref: str, request_id: str) -> DataExport:
    """Gather what Clawback holds about a customer, for the merchant to hand over."""
    customer = find_customer(session, shop, customer_ref)
    payload: dict[str, Any] = {"shop": shop.domain, "customer_id": customer_ref, "held": customer is not None}
    if customer is not None:
        entries = ledger_page(session, customer.shop_id, customer_id=customer.id, oldest_first=True).entries
        redemptions = session.exec(select(Redemption).where(Redemption.customer_id == customer.id)).all()
        payload |= {
            "email": customer.email,
            "tags": customer.tags,
            "balances": balances(customer),
            "ledger": [{"kind": e.kind, "coins_delta": e.coins_delta, "pending_delta": e.pending_delta,
                        "order_id": e.order_ref, "explanation": e.explanation,
                        "created_at": as_utc(e.created_at).isoformat()} for e in entries],
            "redemptions": [{"coins": r.coins_redeemed, "returned": r.coins_returned, "order_id": r.order_ref,
                             "code": r.code} for r in redemptions],
        }  # fmt: skip
    assert shop.id is not None
    export = DataExport(shop_id=shop.id, customer_ref=customer_ref, request_id=request_id[:64], payload=payload)
    session.add(export)
    session.flush()
    return export


def redact_customer(session: Session, shop: Shop, customer_ref: str, order_refs: tuple[str, ...] = ()) -> None:
    """Erase the customer's personal data; keep the anonymous ledger sums."""
    customer = find_customer(session, shop, customer_ref)
    anonymous = f"redacted-{customer.id}" if customer is not None else None
    orders = select(Order).where(Order.shop_id == shop.id)
    owned = [Order.platform_order_id.in_(order_refs)] if order_refs else []  # type: ignore[attr-defined]
    if customer is not None:
        owned.append(Order.customer_id == customer.id)
    for order in session.exec(orders.where(or_(*owned))).all() if owned else []:
        snapshot = dict(order.snapshot)
        snapshot["customer_email"] = None
        snapshot["customer_tags"] = []
        if anonymous and snapshot.get("customer_id") == customer_ref:
            snapshot["customer_id"] = anonymous
        order.snapshot = snapshot
        session.add(order)
    refs = [customer_ref, *order_refs]
    session.execute(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.shop_id) == shop.id)
        .where(or_(col(WebhookDelivery.customer_ref) == customer_ref, col(WebhookDelivery.order_ref).in_(refs)))
        .values(body=REDACTED_BODY, headers={}, customer_ref=anonymous)
    )
    for writeback in session.exec(select(Writeback).where(Writeback.shop_id == shop.id)).all():
        if writeback.payload.get("customer_id") == customer_ref:
            session.delete(writeback)
    session.execute(
        delete(DataExport).where(col(DataExport.shop_id) == shop.id, col(DataExport.customer_ref) == customer_ref)
    )
    if customer is not None and anonymous is not None:
        customer.platform_customer_id = anonymous
        customer.email = None
        customer.tags = []
        session.add(customer)


def redact_shop(session: Session, shop: Shop) -> None:
    """Erase the shop and, through ON DELETE CASCADE, everything that belongs to it."""
    session.delete(shop)
    session.flush()
