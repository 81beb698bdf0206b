"""Reading the books for a customer: finding them by their platform id, their balances, and their
ledger history a page at a time.

One place for what the JSON API, the merchant pages, the development overview and the `clawback`
command all show, so they cannot drift apart. Flask-free: every function takes the Session.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from sqlmodel import Session, col, select

from app.models import Customer, LedgerEntry, Order, Shop

IN_CHUNK = 1000  # values per IN (…): well under SQLite's and PostgreSQL's limits on bound parameters
T = TypeVar("T")


def find_customer(session: Session, shop: Shop, platform_customer_id: str) -> Customer | None:
    """The shop's customer with this platform id; another shop's customer is not found."""
    return session.exec(
        select(Customer).where(Customer.shop_id == shop.id, Customer.platform_customer_id == platform_customer_id)
    ).first()


def balances(customer: Customer) -> dict[str, int]:
    """A customer's three balances, under the names the API and the CLI print."""
    return {"available": customer.available_coins, "pending": customer.pending_coins,
            "shortfall": customer.shortfall_coins}  # fmt: skip


@dataclass(frozen=True)
class HistoryPage:
    entries: list[LedgerEntry]
    next_before: int | None  # `before` for the next, older page; None when there is none


def ledger_page(
    session: Session,
    shop_id: int,
    *,
    customer_id: int | None = None,
    order_ref: str | None = None,
    limit: int | None = None,
    before: int | None = None,
    oldest_first: bool = False,
) -> HistoryPage:
    """The shop's ledger entries (one customer's, one order's, or both), newest first.

    Paging is a keyset on the entry id: `limit` entries with an id below `before`, so a late page
    costs what the first does (a backward walk of ix_ledger_shop_customer_id, no OFFSET). Without
    `limit`, every entry. `oldest_first` lists forwards instead, whole: it pages with neither.
    """
    if oldest_first and (limit is not None or before is not None):
        raise ValueError("only a newest-first history is paged")
    query = select(LedgerEntry).where(LedgerEntry.shop_id == shop_id)
    if customer_id is not None:
        query = query.where(LedgerEntry.customer_id == customer_id)
    if order_ref is not None:
        query = query.where(LedgerEntry.order_ref == order_ref)
    if before is not None:
        query = query.where(col(LedgerEntry.id) < before)
    query = query.order_by(col(LedgerEntry.id) if oldest_first else col(LedgerEntry.id).desc())
    if limit is None:
        return HistoryPage(list(session.exec(query)), None)
    rows = list(session.exec(query.limit(limit + 1)))  # one more says whether an older page exists
    entries = rows[:limit]
    return HistoryPage(entries, entries[-1].id if len(rows) > limit and entries else None)


def _chunks(values: Iterable[T]) -> Iterator[list[T]]:
    distinct = list(dict.fromkeys(values))
    for start in range(0, len(distinct), IN_CHUNK):
        yield distinct[start : start + IN_CHUNK]


def customer_refs(session: Session, shop_id: int, entries: Iterable[LedgerEntry]) -> dict[int, str]:
    """The platform ids of these entries' customers, by customer id, within the shop."""
    refs: dict[int, str] = {}
    for ids in _chunks(e.customer_id for e in entries):
        rows = session.exec(
            select(Customer.id, Customer.platform_customer_id).where(
                Customer.shop_id == shop_id, col(Customer.id).in_(ids)
            )
        )
        refs |= {int(pk): ref for pk, ref in rows if pk is not None}
    return refs


def order_names(session: Session, shop_id: int, entries: Iterable[LedgerEntry]) -> dict[str, str]:
    """The names of the orders these entries are on (#1001), by platform order id, within the shop."""
    names: dict[str, str] = {}
    for refs in _chunks(e.order_ref for e in entries if e.order_ref):
        rows = session.exec(
            select(Order.platform_order_id, Order.name).where(
                Order.shop_id == shop_id, col(Order.platform_order_id).in_(refs)
            )
        )
        names |= {ref: name for ref, name in rows}
    return names
