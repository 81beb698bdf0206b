"""Rows a worker's batch will need, loaded with one query per table instead of one per delivery.

On SQLite the batch's transaction holds the database's only write lock (BEGIN IMMEDIATE) before
it loads anything; on PostgreSQL the loads lock the rows (FOR UPDATE, each table in id order, so
two batches cannot deadlock over them). Either way what it loads cannot change under it. A key it
looked for and did not find can appear only by the batch itself (`service` and `ledger` record
the orders, customers and awards they create here as they go), or, on PostgreSQL, by another
worker's insert, which then fails this batch on the UNIQUE constraint: the batch is applied
again one savepoint each, without this. The loaded objects are the session's own (its identity
map), so a change made by one delivery is what the next delivery of the same order or customer
sees.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import insert
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, SQLModel, col, select

from app.models import Award, Customer, Order
from app.prepared import Prepared

KEY = "clawback_prefetched"  # Session.info key
T = TypeVar("T")


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
            select(Order)
            .where(Order.shop_id == shop_id, col(Order.platform_order_id).in_(order_ids))
            .order_by(col(Order.id))
            .with_for_update()
        ).all()
        for order in rows:
            assert order.id is not None
            found.orders[(shop_id, order.platform_order_id)] = order
            found.awards[order.id] = None
        awards = select(Award).where(col(Award.order_id).in_([o.id for o in rows]))
        for award in session.exec(awards.order_by(col(Award.id)).with_for_update()).all():
            found.awards[award.order_id] = award
    if customer_ids:
        found.customers.update(dict.fromkeys(((shop_id, c) for c in customer_ids), None))
        for customer in session.exec(
            select(Customer).where(Customer.shop_id == shop_id, col(Customer.platform_customer_id).in_(customer_ids))
        ).all():
            found.customers[(shop_id, customer.platform_customer_id)] = customer
    return found


_INSERTS: dict[tuple[str, tuple[str, ...]], Prepared] = {}


def insert_now(session: Session, row: SQLModel) -> None:
    """INSERT a new row at once, and attach it to the session as if a query had loaded it
    (SQLAlchemy's public `make_transient_to_detached`, then `add`).

    In a batch the unit of work would flush every pending change just to learn this row's id
    (the next rows refer to it), several times per delivery; this way the batch flushes once, at
    its end. Only within a batch's all-or-nothing transaction: if it fails, the whole session is
    discarded with it, so no attached object can outlive a row that was rolled back.
    """
    table = type(row).__table__  # type: ignore[attr-defined]
    values = {c.key: getattr(row, c.key) for c in table.columns if not c.primary_key}
    values = {key: value for key, value in values.items() if value is not None}  # None: the column's default
    keys = tuple(values)
    statement = _INSERTS.get((table.name, keys))
    if statement is None:  # one per table and set of columns: the values come as parameters
        statement = _INSERTS[table.name, keys] = Prepared(insert(table).returning(table.c.id), column_keys=keys)
    inserted = statement.first(session.connection(), values)
    assert inserted is not None
    row.id = int(inserted[0])
    make_transient_to_detached(row)
    session.add(row)


def lookup(session: Session, table: str, key: Hashable, query: Callable[[], T | None]) -> T | None:
    """The row the batch loaded (or created) for `key` in `table` ("orders", "customers",
    "awards"), None when it looked and found none; `query()` when the batch did not look."""
    known = of(session)
    rows: dict[Any, Any] | None = None if known is None else getattr(known, table)
    if rows is not None and key in rows:
        return cast("T | None", rows[key])
    return query()


def of(session: Session) -> Prefetched | None:
    """What the session's batch loaded, if it loaded anything."""
    found = session.info.get(KEY)
    return found if isinstance(found, Prefetched) else None
