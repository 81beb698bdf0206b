"""How the domain reaches the rows it changes: an order, its award, a customer, locked.

`service.apply_snapshot` asks a `Rows` for them and never asks how they are found. Two
implementations, chosen by the caller:

- `OrmRows`: one query per row, each locked (SELECT … FOR UPDATE; on SQLite the transaction's
  write lock); a new row is inserted at once in a savepoint, and if a concurrent transaction
  inserted the same key first, theirs is locked and used. Safe anywhere, for any caller.
- `BatchRows`: the job worker's batch. The rows its deliveries name are loaded up front, one query
  per table (`load`), locked on PostgreSQL (each table in id order, so two batches cannot
  deadlock); a new row is inserted at once without a savepoint or a flush. What it loaded cannot
  change under it, and a key it looked for and did not find can appear only by the batch itself,
  or, on PostgreSQL, by another worker's insert, which then fails the whole batch on the UNIQUE
  constraint: the pipeline applies the batch again with `OrmRows`, one savepoint per delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import bindparam, insert
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, SQLModel, col, select

from app.ledger import LOCKED_CUSTOMER, lock_customer, new_customer
from app.models import Award, Customer, Order, Redemption
from app.storage.prepared import Prepared

_ORDER = (
    select(Order)
    .where(Order.shop_id == bindparam("shop_id"), Order.platform_order_id == bindparam("order_id"))
    .with_for_update()
)
_AWARD = select(Award).where(Award.order_id == bindparam("order_id")).with_for_update()
_REDEMPTIONS = Redemption.__table__  # type: ignore[attr-defined]
_ANY_REDEMPTION = core_select(_REDEMPTIONS.c.id).where(_REDEMPTIONS.c.shop_id == bindparam("shop_id")).limit(1)


class OrmRows:
    """Rows by query, one at a time (see the module's docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def order(self, shop_id: int, order_id: str, new: Callable[[], Order]) -> tuple[Order, bool] | None:
        """The order's row, locked, and whether it is `new` (inserted now, before the customer's
        row is locked: locks are taken order first, then customer). Never None here."""
        params = {"shop_id": shop_id, "order_id": order_id}
        found = self.session.exec(_ORDER, params=params).first()
        if found is not None:
            return found, False
        order = new()
        try:
            with self.session.begin_nested():
                self.session.add(order)
        except IntegrityError:  # created by a concurrent transaction: lock theirs
            return self.session.exec(_ORDER, params=params).one(), False
        return order, True

    def known_order(self, shop_id: int, order_id: str) -> Order | None:
        """The order's row, locked, if it exists."""
        return self.session.exec(_ORDER, params={"shop_id": shop_id, "order_id": order_id}).first()

    def add_order(self, order: Order) -> Order:  # pragma: no cover - `order` never leaves one to add
        raise AssertionError("OrmRows inserts a new order in `order`")

    def customer(self, shop_id: int, platform_customer_id: str, email: str | None) -> Customer:
        return lock_customer(self.session, shop_id, platform_customer_id, email)

    def award(self, order_id: int) -> Award | None:
        return self.session.exec(_AWARD, params={"order_id": order_id}).first()

    def add_award(self, award: Award) -> Award:
        self.session.add(award)
        self.session.flush()  # its id keys the ledger entries' idempotency
        return award

    def may_have_redemptions(self, shop_id: int) -> bool:
        return True

    def forget(self) -> None:
        """Nothing is kept between lookups."""


class BatchRows:
    """Rows loaded up front for a batch of deliveries (see the module's docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.orders: dict[tuple[int, str], Order | None] = {}
        self.customers: dict[tuple[int, str], Customer | None] = {}
        self.awards: dict[int, Award | None] = {}  # by the order's row id
        self.redemptions: dict[int, bool] = {}  # by shop: does it have any

    def load(self, shop_id: int, order_ids: Iterable[str], customer_ids: Iterable[str]) -> None:
        """Load one shop's orders, their awards and the customers (known absent when not found)."""
        order_ids, customer_ids = sorted(set(order_ids)), sorted(set(customer_ids))
        if order_ids:
            self.orders.update(dict.fromkeys(((shop_id, o) for o in order_ids), None))
            rows = self.session.exec(
                select(Order)
                .where(Order.shop_id == shop_id, col(Order.platform_order_id).in_(order_ids))
                .order_by(col(Order.id))
                .with_for_update()
            ).all()
            for order in rows:
                assert order.id is not None
                self.orders[(shop_id, order.platform_order_id)] = order
                self.awards[order.id] = None
            awards = select(Award).where(col(Award.order_id).in_([o.id for o in rows]))
            for award in self.session.exec(awards.order_by(col(Award.id)).with_for_update()).all():
                self.awards[award.order_id] = award
        if customer_ids:
            self.customers.update(dict.fromkeys(((shop_id, c) for c in customer_ids), None))
            for customer in self.session.exec(
                select(Customer).where(
                    Customer.shop_id == shop_id, col(Customer.platform_customer_id).in_(customer_ids)
                )
            ).all():
                self.customers[(shop_id, customer.platform_customer_id)] = customer

    def order(self, shop_id: int, order_id: str, new: Callable[[], Order]) -> tuple[Order, bool] | None:
        """The order's row, or None when it is new: the caller inserts it with `add_order` once its
        customer is known (one INSERT with every column, no UPDATE after)."""
        found = self.known_order(shop_id, order_id)
        return None if found is None else (found, False)

    def known_order(self, shop_id: int, order_id: str) -> Order | None:
        key = (shop_id, order_id)
        if key in self.orders:
            return self.orders[key]
        return self.session.exec(_ORDER, params={"shop_id": shop_id, "order_id": order_id}).first()

    def add_order(self, order: Order) -> Order:
        self._insert_now(order)
        assert order.id is not None
        self.orders[(order.shop_id, order.platform_order_id)] = order
        self.awards[order.id] = None
        return order

    def customer(self, shop_id: int, platform_customer_id: str, email: str | None) -> Customer:
        key = (shop_id, platform_customer_id)
        if key in self.customers:
            customer = self.customers[key]
        else:
            params = {"shop_id": shop_id, "customer_id": platform_customer_id}
            customer = self.session.exec(LOCKED_CUSTOMER, params=params).first()
        if customer is None:
            customer = new_customer(shop_id, platform_customer_id, email)
            self._insert_now(customer)
            self.customers[key] = customer
        elif email and customer.email != email:
            customer.email = email
        return customer

    def award(self, order_id: int) -> Award | None:
        if order_id in self.awards:
            return self.awards[order_id]
        return self.session.exec(_AWARD, params={"order_id": order_id}).first()

    def add_award(self, award: Award) -> Award:
        self._insert_now(award)
        self.awards[award.order_id] = award
        return award

    def may_have_redemptions(self, shop_id: int) -> bool:
        """False when the shop has no redemption at all, asked once per batch: within the batch's
        transaction the answer holds on SQLite (the only writer), and the batch creates none; on
        PostgreSQL a redemption committed meanwhile is linked by the order's next event or by the
        reconciliation, as it would be if it had been committed a moment after this query."""
        if shop_id not in self.redemptions:
            found = self.session.connection().execute(_ANY_REDEMPTION, {"shop_id": shop_id}).first()
            self.redemptions[shop_id] = found is not None
        return self.redemptions[shop_id]

    def forget(self) -> None:
        """Privacy and uninstall events delete and rewrite rows behind the loaded ones: look again."""
        self.orders.clear()
        self.customers.clear()
        self.awards.clear()
        self.redemptions.clear()

    def _insert_now(self, row: SQLModel) -> None:
        """INSERT a new row at once, and attach it to the session as if a query had loaded it
        (SQLAlchemy's public `make_transient_to_detached`, then `add`).

        The unit of work would flush every pending change just to learn this row's id (the next
        rows refer to it), several times per delivery; this way the batch flushes once, at its end.
        Only within a batch's all-or-nothing transaction: if it fails, the whole session is
        discarded with it, so no attached object can outlive a row that was rolled back."""
        table = type(row).__table__  # type: ignore[attr-defined]
        row_values = {c.key: getattr(row, c.key) for c in table.columns if not c.primary_key}
        row_values = {key: value for key, value in row_values.items() if value is not None}  # None: the default
        keys = tuple(row_values)
        statement = _INSERTS.get((table.name, keys))
        if statement is None:  # one per table and set of columns: the values come as parameters
            statement = _INSERTS[table.name, keys] = Prepared(insert(table).returning(table.c.id), column_keys=keys)
        inserted = statement.first(self.session.connection(), row_values)
        assert inserted is not None
        row.id = int(inserted[0])
        make_transient_to_detached(row)
        self.session.add(row)


_INSERTS: dict[tuple[str, tuple[str, ...]], Prepared] = {}


Rows = OrmRows | BatchRows
