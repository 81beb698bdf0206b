"""The worked examples of the three help articles, one test each, through the real service."""

from __future__ import annotations

import pytest

from app.errors import InsufficientCoins
from tests.factories import Books, snap


def test_nector_cancel_reverts_200_coins_once(books: Books) -> None:
    shop = books.open(revert__enabled="true", revert__statuses="cancelled")
    shop.apply(snap("1001", total="200.00", at=0))
    assert shop.balance("c1")["available"] == 200
    cancelled = snap("1001", total="200.00", at=5, statuses=("paid", "cancelled"))
    shop.apply(cancelled)
    shop.apply(cancelled)  # the same delivery again
    shop.apply(snap("1001", total="200.00", at=9, statuses=("paid", "cancelled")))  # a later, identical state
    assert shop.balance("c1")["available"] == 0
    reverts = [e for e in shop.entries("1001") if e.kind == "revert"]
    assert [e.coins_delta for e in reverts] == [-200]
    assert reverts[0].explanation.startswith("Order #1001 was cancelled; 200 coins earned on it were reverted")
    assert shop.violations() == []


def test_nector_tag_reverts_200_coins_once(books: Books) -> None:
    shop = books.open(revert__enabled="true", revert__tags="cancelled order, refunded-order")
    shop.apply(snap("1001", total="200.00", at=0, tags=("vip",)))
    shop.apply(snap("1001", total="200.00", at=1, tags=("vip", " Refunded-Order ")))
    shop.apply(snap("1001", total="200.00", at=2, tags=("vip", "refunded-order", "CANCELLED ORDER")))
    assert shop.balance("c1")["available"] == 0
    reverts = [e for e in shop.entries("1001") if e.kind == "revert"]
    assert [e.coins_delta for e in reverts] == [-200]
    assert reverts[0].reason == "order_tagged"
    assert "tagged 'refunded-order'" in reverts[0].explanation


def test_nector_nothing_reverted_when_disabled_or_never_rewarded(books: Books) -> None:
    shop = books.open(revert__enabled="false")
    shop.apply(snap("1", total="200.00", at=0))
    shop.apply(snap("1", total="200.00", at=1, statuses=("paid", "cancelled")))
    assert shop.balance("c1")["available"] == 200
    # Never rewarded (still pending payment when cancelled): nothing to revert, nothing booked.
    shop.set(revert__enabled="true")
    shop.apply(snap("2", total="50.00", at=0, statuses=("pending",)))
    shop.apply(snap("2", total="50.00", at=1, statuses=("pending", "cancelled")))
    assert shop.entries("2") == []


def test_fynd_scenario_1_redeemed_points_return_on_cancel(books: Books) -> None:
    # Customer has 500 points, spends 50 on an order, the order is cancelled: back to 500.
    shop = books.open(
        earn__mode="fixed", earn__rate="500", redeem__coin_value="1", redeem__refund_statuses="cancelled,returned"
    )
    shop.apply(snap("earlier", total="999.00", at=0))
    assert shop.balance("c1")["available"] == 500
    shop.redeem("c1", 50, order="2001")
    assert shop.balance("c1")["available"] == 450
    shop.apply(snap("2001", total="450.00", at=10, statuses=("pending",)))
    cancelled = snap("2001", total="450.00", at=20, statuses=("pending", "cancelled"))
    shop.apply(cancelled)
    shop.apply(cancelled)
    assert shop.balance("c1")["available"] == 500
    returned = [e for e in shop.entries("2001") if e.kind == "redeem_refund"]
    assert [e.coins_delta for e in returned] == [50]


def test_fynd_scenario_2_keep_earned_on_return_but_return_redeemed(books: Books) -> None:
    # 500 points; 25 earned on delivery; 50 redeemed; returned: 50 come back, 25 are kept.
    shop = books.open(
        earn__mode="fixed", earn__rate="25", earn__trigger="delivered",
        revert__enabled="true", revert__statuses="returned,cancelled", revert__keep_on_return="true",
        redeem__coin_value="1",
    )  # fmt: skip
    shop.set(earn__rate="500", earn__trigger="paid")
    shop.apply(snap("start", total="1000.00", at=0, customer="c1"))
    shop.set(earn__rate="25", earn__trigger="delivered")
    assert shop.balance("c1")["available"] == 500
    shop.redeem("c1", 50, order="3001")
    shop.apply(snap("3001", total="500.00", at=10))
    assert shop.balance("c1")["available"] == 450  # paid, not yet delivered: nothing earned
    shop.apply(snap("3001", total="500.00", at=20, statuses=("paid", "delivered")))
    assert shop.balance("c1")["available"] == 475
    shop.apply(snap("3001", total="500.00", at=30, statuses=("paid", "delivered", "returned", "refunded"),
                    refunds={"ret-1": "500.00"}))  # fmt: skip
    assert shop.balance("c1")["available"] == 525
    kinds = [(e.kind, e.coins_delta) for e in shop.entries("3001")]
    assert kinds == [("redeem", -50), ("earn", 25), ("redeem_refund", 50)]


def test_rise_partial_refund_reverts_at_earned_rate_never_more_than_earned(books: Books) -> None:
    # Store credit in cents: 10% of $100 = 1000; $20 refunded -> reward 800, 200 removed.
    shop = books.open(earn__mode="percent", earn__rate="10", revert__enabled="true",
                      revert__statuses="refunded,cancelled,partially_refunded")  # fmt: skip
    shop.apply(snap("4001", total="100.00", at=0))
    assert shop.balance("c1")["available"] == 1000
    shop.set(earn__rate="50")  # today's rate must not matter for coins earned before
    shop.apply(snap("4001", total="100.00", at=1, statuses=("partially_refunded",), refunds={"r1": "20.00"}))
    assert shop.balance("c1")["available"] == 800
    shop.apply(
        snap("4001", total="100.00", at=2, statuses=("partially_refunded",), refunds={"r1": "20.00", "r2": "30.00"})
    )
    assert shop.balance("c1")["available"] == 500
    shop.apply(snap("4001", total="100.00", at=3, statuses=("refunded",),
                    refunds={"r1": "20.00", "r2": "30.00", "r3": "50.00"}))  # fmt: skip
    shop.apply(snap("4001", total="100.00", at=4, statuses=("refunded", "cancelled"),
                    refunds={"r1": "20.00", "r2": "30.00", "r3": "50.00"}))  # fmt: skip
    assert shop.balance("c1")["available"] == 0
    reverts = [e.coins_delta for e in shop.entries("4001") if e.kind == "revert"]
    assert reverts == [-200, -300, -500]
    award = shop.award("4001")
    assert award is not None and award.coins_earned == 1000 and award.coins_reverted == 1000
    assert "10% of the order in cents" in shop.entries("4001")[1].explanation


def test_rise_spent_credit_floors_at_zero_records_shortfall_and_flags(books: Books) -> None:
    shop = books.open(earn__mode="percent", earn__rate="10", revert__enabled="true",
                      revert__shortfall="floor_and_flag", revert__flag_tag="Fraud")  # fmt: skip
    shop.apply(snap("5001", total="100.00", at=0))
    shop.redeem("c1", 700)
    shop.apply(snap("5001", total="100.00", at=1, statuses=("refunded",), refunds={"r1": "100.00"}))
    assert shop.balance("c1") == {"available": 0, "pending": 0, "shortfall": 700}
    assert "Fraud" in shop.customer("c1").tags
    # Excluding flagged customers from earning, as Rise advises.
    shop.set(revert__exclude_flagged="true")
    shop.apply(snap("5002", total="100.00", at=2))
    assert shop.balance("c1")["available"] == 0


def test_rise_negative_balance_policy_is_paid_back_by_future_earnings(books: Books) -> None:
    shop = books.open(earn__mode="percent", earn__rate="10", revert__enabled="true", revert__shortfall="negative")
    shop.apply(snap("6001", total="100.00", at=0))
    shop.redeem("c1", 1000)
    shop.apply(snap("6001", total="100.00", at=1, statuses=("paid", "cancelled")))
    assert shop.balance("c1") == {"available": -1000, "pending": 0, "shortfall": 0}
    shop.apply(snap("6002", total="150.00", at=2))
    assert shop.balance("c1")["available"] == 500


def test_rise_fixed_reward_keeps_value_on_partial_refund_until_under_minimum(books: Books) -> None:
    shop = books.open(earn__mode="fixed", earn__rate="10", earn__min_order="50", revert__enabled="true")
    shop.apply(snap("7001", total="100.00", at=0))
    shop.apply(snap("7001", total="100.00", at=1, refunds={"r1": "30.00"}))
    assert shop.balance("c1")["available"] == 10
    shop.apply(snap("7001", total="100.00", at=2, refunds={"r1": "30.00", "r2": "25.00"}))
    assert shop.balance("c1")["available"] == 0


def test_rise_delayed_reward_is_voided_by_refund_during_hold_and_released_after(books: Books) -> None:
    from datetime import timedelta

    from tests.factories import T0

    shop = books.open(earn__delay_days="14", revert__enabled="true")
    shop.apply(snap("8001", total="100.00", at=0))
    shop.apply(snap("8002", total="60.00", at=0))
    assert shop.balance("c1") == {"available": 0, "pending": 160, "shortfall": 0}
    with pytest.raises(InsufficientCoins):
        shop.redeem("c1", 1)  # held coins are visible but not spendable
    shop.apply(snap("8001", total="100.00", at=60, statuses=("refunded",), refunds={"r": "100.00"}))
    shop.apply(snap("8002", total="60.00", at=60, statuses=("partially_refunded",), refunds={"r": "10.00"}))
    assert shop.balance("c1") == {"available": 0, "pending": 50, "shortfall": 0}
    assert shop.release(T0 + timedelta(days=13)) == []
    released = shop.release(T0 + timedelta(days=14, minutes=1))
    assert [e.coins_delta for e in released] == [50]
    assert shop.release(T0 + timedelta(days=20)) == []  # once only
    assert shop.balance("c1") == {"available": 50, "pending": 0, "shortfall": 0}
    assert shop.violations() == []
