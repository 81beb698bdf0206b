"""The ledger: append-only entries and the balances cached beside them, moved in one transaction.

Callers pass an idempotency key built from foreign ids (the order, the award's move number, a
redemption id), so a retried job finds its entry already there and posts nothing: "exists is as
good as created". The UNIQUE (shop_id, idempotency_key) constraint is the backstop when two
workers race; the customer row lock (SELECT … FOR UPDATE, BEGIN IMMEDIATE on SQLite) makes the
race rare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from app.domain.postings import Balances, Entry, Posting, after
from app.models import Customer, LedgerEntry, utcnow
from app.storage.prepared import Prepared

LOCKED_CUSTOMER = (  # the customer's row, locked for the transaction
    select(Customer)
    .where(Customer.shop_id == bindparam("shop_id"), Customer.platform_customer_id == bindparam("customer_id"))
    .with_for_update()
)
# Plain Core on the table: the entry is written and looked up without the ORM (no unit of work,
# no model construction, no autoflush); the values come as parameters.
_ENTRIES = LedgerEntry.__table__  # type: ignore[attr-defined]
# INSERT … ON CONFLICT (shop_id, idempotency_key) DO NOTHING RETURNING id: no row back means the
# key was taken (a retry), in the one statement that would otherwise be a SELECT and an INSERT.
_ENTRY_COLUMNS = [c.key for c in _ENTRIES.columns if not c.primary_key]
_INSERT_ENTRY = {
    name: Prepared(
        stmt.on_conflict_do_nothing(index_elements=["shop_id", "idempotency_key"]).returning(_ENTRIES.c.id),
        column_keys=_ENTRY_COLUMNS,
    )
    for name, stmt in (("sqlite", sqlite_insert(_ENTRIES)), ("postgresql", pg_insert(_ENTRIES)))
}
_CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
_MOVE_BALANCES = Prepared(
    update(_CUSTOMERS)
    .where(_CUSTOMERS.c.id == bindparam("customer"))
    .values(
        available_coins=_CUSTOMERS.c.available_coins + bindparam("coins"),
        pending_coins=_CUSTOMERS.c.pending_coins + bindparam("pending"),
        shortfall_coins=_CUSTOMERS.c.shortfall_coins + bindparam("shortfall"),
    )
)


def new_customer(shop_id: int, platform_customer_id: str, email: str | None) -> Customer:
    """A customer row never seen before."""
    # The fields with a default factory are given: pydantic would inspect each factory's signature
    # on every construction, which costs more than the rest of it.
    return Customer(
        shop_id=shop_id, platform_customer_id=platform_customer_id, email=email, tags=[], created_at=utcnow()
    )


def lock_customer(session: Session, shop_id: int, platform_customer_id: str, email: str | None = None) -> Customer:
    """The customer's row, locked for this transaction; created on first sight (in a savepoint: if
    a concurrent transaction created it first, theirs is as good as ours once locked)."""
    params = {"shop_id": shop_id, "customer_id": platform_customer_id}
    customer = session.exec(LOCKED_CUSTOMER, params=params).first()
    if customer is None:
        try:
            with session.begin_nested():
                session.add(new_customer(shop_id, platform_customer_id, email))
        except IntegrityError:
            pass
        customer = session.exec(LOCKED_CUSTOMER, params=params).one()
    if email and customer.email != email:
        customer.email = email
    return customer


def post(session: Session, customer: Customer, posting: Posting) -> Entry | None:
    """Write `posting` for a locked `customer` and move its cached balances with it.

    Returns the new entry, or None when an entry with this key already exists (a retry). Two Core
    statements, no unit of work: the entry's INSERT (which the UNIQUE constraint turns into nothing
    for a taken key) and the balances' UPDATE, by the deltas.
    """
    assert customer.id is not None
    conn = session.connection()
    values: dict[str, Any] = {
        "shop_id": customer.shop_id,
        "customer_id": customer.id,
        "order_ref": posting.order_ref,
        "award_id": posting.award_id,
        "redemption_id": posting.redemption_id,
        "kind": posting.kind,
        "coins_delta": posting.coins_delta,
        "pending_delta": posting.pending_delta,
        "shortfall_delta": posting.shortfall_delta,
        "reason": posting.reason,
        "explanation": posting.explanation,
        "source": posting.source[:200],
        "idempotency_key": posting.key,
        "created_at": utcnow(),
    }
    inserted = _INSERT_ENTRY[conn.dialect.name].first(conn, values)
    if inserted is None:
        return None  # the key is taken: this posting was made before ("exists is as good as created")
    # Checked after the INSERT, so that a retry (key taken) is None whatever the balances say now;
    # raising rolls the new entry back with the caller's transaction or savepoint.
    before = Balances(customer.available_coins, customer.pending_coins, customer.shortfall_coins)
    available, pending, shortfall = after(before, posting, who=f"customer {customer.platform_customer_id}")
    moves = {"coins": posting.coins_delta, "pending": posting.pending_delta, "shortfall": posting.shortfall_delta}
    _MOVE_BALANCES.run(conn, {"customer": customer.id, **moves})
    # The object now says what the row says, without a second UPDATE from the unit of work. The
    # session does not know it changed: a caller that rolls back a savepoint around a posting
    # must expire the session's objects (`app.pipeline` does: see `expire_after_rollback`).
    set_committed_value(customer, "available_coins", available)
    set_committed_value(customer, "pending_coins", pending)
    set_committed_value(customer, "shortfall_coins", shortfall)
    return Entry(id=int(inserted[0]), **values)


@dataclass(frozen=True)
class Sums:
    available: int
    pending: int
    shortfall: int


def sums(session: Session, customer_id: int) -> Sums:
    """The balances recomputed from the entries themselves (the auditor's view)."""
    row = session.exec(
        select(
            func.coalesce(func.sum(LedgerEntry.coins_delta), 0),
            func.coalesce(func.sum(LedgerEntry.pending_delta), 0),
            func.coalesce(func.sum(LedgerEntry.shortfall_delta), 0),
        ).where(LedgerEntry.customer_id == customer_id)
    ).one()
    return Sums(int(row[0]), int(row[1]), int(row[2]))
