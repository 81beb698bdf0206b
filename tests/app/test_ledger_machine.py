"""A rule-based state machine: random order events against the real service, checked after every
step against a model small enough to trust by reading (hypothesis stateful testing). Each event
is stored as a delivery and applied by the worker's own poll (tests.factories.Books), on SQLite
and, in CI's second run, on PostgreSQL.

The model knows the rule only as "1 coin per whole dollar of what stands": no rules module, no
ledger. Events are delivered duplicated, stale and out of order; the books must still agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from app.crypto import Vault
from app.db import Database
from app.domain.snapshot import OrderSnapshot
from app.errors import InsufficientCoins
from tests.factories import T0, Books, snap

CUSTOMERS = ("c1", "c2", "c3")
TAG = "chargeback"
COIN_VALUE = Decimal("0.50")  # one coin spent is worth 50 cents


@dataclass
class ModelOrder:
    """What the platform has said about one order, newest last, and what we have delivered."""

    order_id: str
    customer: str
    total: Decimal
    history: list[OrderSnapshot] = field(default_factory=list)
    delivered: list[OrderSnapshot] = field(default_factory=list)

    @property
    def latest(self) -> OrderSnapshot:
        return self.history[-1]

    def seen(self) -> OrderSnapshot | None:
        """The newest state delivered so far (every snapshot carries all earlier refunds)."""
        return max(self.delivered, key=lambda s: s.updated_at, default=None)

    def expected_coins(self, partial_full: bool) -> int:
        seen = self.seen()
        if seen is None or TAG in seen.tags or "cancelled" in seen.statuses:
            return 0
        refunded = sum((r.amount for r in seen.refunds), Decimal(0))
        net = seen.total - refunded
        if net <= 0 or (refunded and partial_full):
            return 0
        return int(net)  # floor: 1 coin per whole dollar


@dataclass
class ModelRedemption:
    customer: str
    coins: int
    order: ModelOrder | None
    returned: int = 0

    def due(self) -> int:
        seen = self.order.seen() if self.order else None
        if seen is None:
            return 0
        if "cancelled" in seen.statuses:
            return self.coins
        refunded = sum((r.amount for r in seen.refunds), Decimal(0))
        return min(self.coins, int(refunded / COIN_VALUE))


class LedgerMachine(RuleBasedStateMachine):
    make_database: Callable[[], str]

    def __init__(self) -> None:
        super().__init__()
        self.db = Database(type(self).make_database())
        self.orders: list[ModelOrder] = []
        self.redemptions: list[ModelRedemption] = []
        self.minute = 0
        self.now = T0
        self.books: Books

    def teardown(self) -> None:
        if hasattr(self, "books"):
            self.books.close()
        self.db.dispose()

    @initialize(
        shortfall=st.sampled_from(["negative", "floor_and_flag"]),
        partial=st.sampled_from(["proportional", "full"]),
        delay_days=st.sampled_from([0, 0, 3]),
    )
    def open_shop(self, shortfall: str, partial: str, delay_days: int) -> None:
        self.partial_full = partial == "full"
        self.shortfall = shortfall
        self.books = Books(self.db, Vault("k")).open(
            revert__enabled="true", revert__statuses="refunded,cancelled,partially_refunded",
            revert__tags=TAG, revert__partial=partial, revert__shortfall=shortfall,
            earn__delay_days=str(delay_days), redeem__coin_value=str(COIN_VALUE),
            redeem__refund_statuses="cancelled",
        )  # fmt: skip

    # --- the platform changes an order; we usually hear about it at once ------------------------

    def _tick(self) -> int:
        self.minute += 1
        return self.minute

    def _change(self, order: ModelOrder, deliver: bool = True, **changes: object) -> OrderSnapshot:
        base = order.latest
        new = snap(
            order.order_id, customer=order.customer, total=str(order.total), at=self._tick(),
            statuses=tuple(changes.get("statuses", base.statuses)),  # type: ignore[arg-type]
            refunds={r.refund_id: str(r.amount) for r in changes.get("refunds", base.refunds)},  # type: ignore[attr-defined]
            tags=tuple(changes.get("tags", base.tags)),  # type: ignore[arg-type]
        )  # fmt: skip
        order.history.append(new)
        if deliver:
            self._deliver(order, new)
        return new

    def _deliver(self, order: ModelOrder, snapshot: OrderSnapshot) -> None:
        self.books.apply(snapshot, source=f"test:{snapshot.updated_at.isoformat()}", now=self.now)
        order.delivered.append(snapshot)

    @rule(customer=st.sampled_from(CUSTOMERS), dollars=st.integers(1, 400), cents=st.sampled_from([0, 1, 50, 99]))
    def place_order(self, customer: str, dollars: int, cents: int) -> None:
        order = ModelOrder(str(len(self.orders) + 1000), customer, Decimal(dollars) + Decimal(cents) / 100)
        first = snap(order.order_id, customer=customer, total=str(order.total), at=self._tick())
        order.history.append(first)
        self.orders.append(order)
        self._deliver(order, first)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), share=st.fractions(0, 1), deliver=st.booleans())
    def refund(self, data: st.DataObject, share: object, deliver: bool) -> None:
        order = data.draw(st.sampled_from(self.orders))
        refunded = sum((r.amount for r in order.latest.refunds), Decimal(0))
        left = order.total - refunded
        amount = (left * Decimal(share.numerator) / Decimal(share.denominator)).quantize(Decimal("0.01"))  # type: ignore[attr-defined]
        if amount <= 0:
            return
        refunds = {*order.latest.refunds, *snap(refunds={f"r{self.minute}": str(amount)}).refunds}
        status = "refunded" if amount == left else "partially_refunded"
        self._change(order, deliver, refunds=refunds, statuses=(*order.latest.statuses, status))

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), deliver=st.booleans())
    def cancel(self, data: st.DataObject, deliver: bool) -> None:
        order = data.draw(st.sampled_from(self.orders))
        self._change(order, deliver, statuses=(*order.latest.statuses, "cancelled"))

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), add=st.booleans())
    def edit_tags(self, data: st.DataObject, add: bool) -> None:
        order = data.draw(st.sampled_from(self.orders))
        tags = {*order.latest.tags, TAG.upper() + " "} if add else set(order.latest.tags) - {TAG}
        self._change(order, tags=tuple(tags))

    # --- deliveries gone wrong: late, repeated, out of order ------------------------------------

    @precondition(lambda self: any(o.history for o in self.orders))
    @rule(data=st.data())
    def redeliver_any(self, data: st.DataObject) -> None:
        """A duplicate, a stale one, or one that was held back: any snapshot ever made."""
        order = data.draw(st.sampled_from(self.orders))
        self._deliver(order, data.draw(st.sampled_from(order.history)))

    # --- spending and time ---------------------------------------------------------------------

    @rule(customer=st.sampled_from(CUSTOMERS), coins=st.integers(1, 300), data=st.data())
    def redeem(self, customer: str, coins: int, data: st.DataObject) -> None:
        mine = [o for o in self.orders if o.customer == customer]
        order = data.draw(st.none() | st.sampled_from(mine)) if mine else None
        available = self.books.balance(customer)["available"]
        try:
            self.books.redeem(customer, coins, order=order.order_id if order else None)
        except InsufficientCoins:
            assert available < coins
            return
        except Exception as exc:  # an unknown customer is refused too
            assert "no customer" in str(exc)
            return
        assert available >= coins
        self.redemptions.append(ModelRedemption(customer, coins, order))

    @rule(days=st.integers(1, 5))
    def time_passes(self, days: int) -> None:
        self.now += timedelta(days=days)
        self.books.release(self.now)

    # --- what must hold after every step -------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        if not hasattr(self, "books"):
            return
        assert self.books.violations() == []

    @invariant()
    def every_order_stands_at_its_target(self) -> None:
        for order in self.orders if hasattr(self, "books") else []:
            award = self.books.award(order.order_id)
            booked = award.coins_booked if award else 0
            assert booked == order.expected_coins(self.partial_full), order
            if award:
                assert 0 <= award.coins_reverted <= award.coins_earned

    @invariant()
    def customers_hold_what_the_model_says(self) -> None:
        if not hasattr(self, "books"):
            return
        for r in self.redemptions:
            r.returned = max(r.returned, r.due())  # returned coins are never taken back
        for customer in CUSTOMERS:
            expected = sum(o.expected_coins(self.partial_full) for o in self.orders if o.customer == customer)
            expected -= sum(r.coins - r.returned for r in self.redemptions if r.customer == customer)
            got = self.books.balance(customer)
            assert got["available"] + got["pending"] - got["shortfall"] == expected
            assert got["pending"] >= 0 and got["shortfall"] >= 0
            if self.shortfall == "negative":
                assert got["shortfall"] == 0
            else:
                assert got["available"] >= 0


def test_ledger_state_machine(fresh_database: Callable[[], str]) -> None:
    machine = type("Machine", (LedgerMachine,), {"make_database": staticmethod(fresh_database)})
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=60, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1])
def test_model_knows_the_rise_example(seed: int) -> None:
    """The model itself, on the worked example, so a wrong model cannot pass quietly."""
    order = ModelOrder("1", "c1", Decimal("100.00"))
    order.delivered.append(snap("1", total="100.00", refunds={"r": "20.00"}))
    assert order.expected_coins(partial_full=False) == 80
    assert order.expected_coins(partial_full=True) == 0
