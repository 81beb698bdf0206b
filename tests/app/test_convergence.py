"""The target principle end to end, on the worker's own path (stored deliveries, polled and
applied in batches): whatever the order of delivery, however often, the books end the same; and
racing workers applying one delivery post it once."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.crypto import Vault
from app.db import Database
from app.domain.snapshot import OrderSnapshot
from app.models import Shop
from app.rows import OrmRows
from app.service import apply_snapshot
from tests.factories import Books, snap

SETTINGS = {"revert__enabled": "true", "revert__tags": "chargeback", "revert__shortfall": "negative"}


@st.composite
def order_histories(draw: st.DrawFn) -> list[OrderSnapshot]:
    """Realistic histories for a few orders: refunds only grow, a cancel sticks, tags come and go."""
    snapshots: list[OrderSnapshot] = []
    minute = 0
    for n in range(draw(st.integers(1, 3))):
        order_id, customer = f"{n + 1}", draw(st.sampled_from(["c1", "c2"]))
        total = Decimal(draw(st.integers(1, 300)))
        refunds: dict[str, str] = {}
        statuses, tags = ["paid"], []
        for _ in range(draw(st.integers(1, 5))):
            step = draw(st.sampled_from(["refund", "cancel", "tag", "untag", "same"]))
            left = total - sum(Decimal(v) for v in refunds.values())
            if step == "refund" and left > 0:
                refunds[f"{order_id}-r{len(refunds)}"] = str(min(left, Decimal(draw(st.integers(1, 100)))))
            elif step == "cancel":
                statuses.append("cancelled")
            elif step in ("tag", "untag"):
                tags = ["chargeback"] if step == "tag" else []
            minute += 1
            snapshots.append(snap(order_id, customer=customer, total=str(total), at=minute,
                                  statuses=tuple(statuses), refunds=dict(refunds), tags=tuple(tags)))  # fmt: skip
    return snapshots


def _state(books: Books, snapshots: list[OrderSnapshot]) -> dict[str, object]:
    awards = {}
    for order_id in sorted({s.order_id for s in snapshots}):
        award = books.award(order_id)
        awards[order_id] = (award.coins_booked, award.coins_earned - award.coins_reverted) if award else (0, 0)
    return {"awards": awards, "balances": {c: books.balance(c) for c in ("c1", "c2")}}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=order_histories(), seed=st.randoms(use_true_random=False))
def test_final_state_does_not_depend_on_delivery_order_or_duplicates(
    fresh_database: Callable[[], str], history: list[OrderSnapshot], seed: random.Random
) -> None:
    db = Database(fresh_database())
    books = Books(db, Vault("k"))  # one store of deliveries, as one worker has
    try:
        in_order = books.open("in-order.myshopify.com", **SETTINGS)
        shuffled = books.open("shuffled.myshopify.com", **SETTINGS)
        for snapshot in history:
            in_order.apply(snapshot)  # one delivery per poll: a batch of one each
        chaos = history + [seed.choice(history) for _ in range(len(history))]
        seed.shuffle(chaos)
        for snapshot in chaos:  # all waiting at once: one poll applies them in batches, duplicates
            shuffled.deliver(snapshot)  # of one order in one transaction
        shuffled.work(now=max(s.updated_at for s in history))
        assert _state(shuffled, history) == _state(in_order, history)
        assert in_order.violations() == []
    finally:
        books.close()
        db.dispose()


def _race(workers: int, job: Callable[[], object]) -> list[BaseException]:
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            job()
        except BaseException as exc:  # collected and asserted on by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_racing_duplicates_of_one_refund_revert_once(books: Books) -> None:
    shop = books.open(**SETTINGS)
    shop.apply(snap("9001", total="100.00", at=0))
    refund = snap("9001", total="100.00", at=1, statuses=("partially_refunded",), refunds={"r1": "25.00"})
    assert _race(8, lambda: shop.apply(refund, source="race")) == []
    assert [e.coins_delta for e in shop.entries("9001")] == [100, -25]
    assert shop.violations() == []


def test_racing_first_deliveries_of_a_new_order_earn_once(books: Books) -> None:
    shop = books.open(**SETTINGS)
    first = snap("9002", total="80.00", at=0, customer="new-customer")
    errors = _race(8, lambda: shop.apply(first, source="race"))
    # A loser of the insert race may fail and be retried by its job; none may double-post.
    assert all("UNIQUE" in str(e) or "unique" in str(e) or "duplicate" in str(e) for e in errors), errors
    for _ in errors:
        shop.apply(first, source="retry")
    assert [e.coins_delta for e in shop.entries("9002")] == [80]
    assert shop.balance("new-customer")["available"] == 80


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=order_histories())
def test_both_ways_of_reaching_the_rows_end_the_same(
    fresh_database: Callable[[], str], history: list[OrderSnapshot]
) -> None:
    """`OrmRows` (one locked query per row: the demo, a batch's careful second pass) and
    `BatchRows` (the worker's batch, rows loaded up front) are two implementations of one
    contract: the same history through each ends in the same books."""
    db = Database(fresh_database())
    books = Books(db, Vault("k"))
    try:
        batched = books.open("batched.myshopify.com", **SETTINGS)
        one_by_one = books.open("one-by-one.myshopify.com", **SETTINGS)
        for snapshot in history:
            batched.apply(snapshot)
            with db.session() as session:
                shop = session.get(Shop, one_by_one.shop_id)
                assert shop is not None
                apply_snapshot(OrmRows(session), shop, snapshot, source="orm", now=snapshot.updated_at)
        assert _state(one_by_one, history) == _state(batched, history)
        assert books.violations() == []
    finally:
        books.close()
        db.dispose()
