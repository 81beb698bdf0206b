"""Rows a worker's batch will need, loaded with one query per table instead of one per delivery.

On SQLite the batch's transaction holds the database's only write lock (BEGIN IMMEDIATE) before
it loads anything, so what it loads cannot change under it, and a key it looked for and did not
find cannot appear, except by the batch itself: `service` and `ledger` record the orders,
customers and awards they create here as they go. The loaded objects are the session's own (its
identity map), so a change made by one delivery is what the next delivery of the same order or
customer sees. Used only where no other writer can interleave (`ledger.sole_writer`); PostgreSQL
keeps its row locks per delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from app.models import Award, Customer, Order

KEY = "clawback_prefetched"  # Session.info key


@dataclass
class Prefetched:
    """Looked-up keys, each with its row or None (known absent)."""

    orders: dict[tuple[int, str], Order | None] = field(default_factory=dict)
    customers: dict[tuple[int, str], Customer | None] = field(default_factory=dict)
    awards: dict[int, Award | None] = field(default_factory=dict)  # by the order's row id


def load(session: Session, shop_id: int, order_ids: Iterable[str], customer_ids: Iterable[str]) -> Prefetched:
    """Load one shop's orders, their awards and the customers, and remember them on the session."""
    found = session.info.setdefault(KEY, Prefetched())
    order_ids, customer_ids = sorted(set(order_ids)), sorted(set(customer_ids))
    if order_ids:
        found.orders.update(dict.fromkeys(((shop_id, o) for o in order_ids), None))
        rows = session.exec(
            select(Order).where(Order.shop_id == shop_id, col(Order.platform_order_id).in_(order_ids))
        ).all()
        for order in rows:
            assert order.id is not None
            found.orders[(shop_id, order.platform_order_id)] = order
            found.awards[order.id] = None
        for award in session.exec(select(Award).where(col(Award.order_id).in_([o.id for o in rows]))).all():
            found.awards[award.order_id] = award
    if customer_ids:
        found.customers.update(dict.fromkeys(((shop_id, c) for c in customer_ids), None))
        for customer in session.exec(
            select(Customer).where(Customer.shop_id == shop_id, col(Customer.platform_customer_id).in_(customer_ids))
        ).all():
            found.customers[(shop_id, customer.platform_customer_id)] = customer
    return found


def of(session: Session) -> Prefetched | None:
    """What the session's batch loaded, if it loaded anything."""
    found = session.info.get(KEY)
    return found if isinstance(found, Prefetched) else None
