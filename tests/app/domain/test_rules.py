"""The rules service on its own: pure functions, no database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.domain.rules import EarnRule, earn_target, may_start_award, redeem_target
from app.domain.shop_settings import EarnSettings, RedeemSettings, RevertSettings
from tests.factories import snap


def rule(mode: str = "per_unit", rate: str = "1", rounding: str = "down", min_order: str = "0",
         currency: str = "USD") -> EarnRule:  # fmt: skip
    return EarnRule(mode, Decimal(rate), rounding, Decimal(min_order), currency)


@pytest.mark.parametrize(
    ("mode", "rate", "rounding", "amount", "coins"),
    [
        ("per_unit", "1", "down", "99.99", 99),
        ("per_unit", "1", "half_up", "99.50", 100),
        ("per_unit", "1", "half_up", "99.49", 99),
        ("per_unit", "1", "up", "99.01", 100),
        ("per_unit", "2.5", "down", "10.00", 25),
        ("per_unit", "0.1", "down", "9.99", 0),
        ("percent", "10", "down", "100.00", 1000),  # Rise: 10% of $100 in cents
        ("percent", "10", "down", "80.00", 800),
        ("percent", "3", "down", "33.33", 99),  # 99.99 cents, floored
        ("percent", "3", "half_up", "33.33", 100),
        ("percent", "3", "up", "33.30", 100),  # exactly 99.9 -> 100 only when rounding up
        ("fixed", "25", "down", "0.01", 25),
    ],
)
def test_rounding_is_explicit(mode: str, rate: str, rounding: str, amount: str, coins: int) -> None:
    assert rule(mode, rate, rounding).coins_for(Decimal(amount)) == coins


def test_percent_counts_minor_units_of_the_currency() -> None:
    assert rule("percent", "10", currency="JPY").coins_for(Decimal("1000")) == 100
    assert rule("percent", "10", currency="KWD").coins_for(Decimal("1.000")) == 100
    assert rule("percent", "10", currency="EUR").coins_for(Decimal("1.00")) == 10


def test_minimum_order_and_zero_earn_nothing() -> None:
    fixed = rule("fixed", "50", min_order="20")
    assert fixed.coins_for(Decimal("19.99")) == 0
    assert fixed.coins_for(Decimal("20.00")) == 50
    assert fixed.coins_for(Decimal("0")) == 0


def test_rule_round_trips_through_json_unchanged() -> None:
    original = rule("percent", "12.5", "half_up", "10", "EUR")
    assert EarnRule.from_json(original.to_json()) == original
    assert original.describe() == "12.5% of the order in cents"
    assert rule().describe() == "1 coin per USD 1"


ON = RevertSettings(enabled=True, statuses=["refunded", "cancelled", "partially_refunded", "returned"],
                    tags=["Chargeback", "fraud order"])  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "coins", "reason"),
    [
        ({}, 100, "earned"),
        ({"statuses": ("paid", "cancelled")}, 0, "order_cancelled"),
        ({"statuses": ("voided",)}, 0, "order_cancelled"),
        ({"statuses": ("refunded",), "refunds": {"r": "100.00"}}, 0, "order_refunded"),
        ({"refunds": {"r": "100.00"}}, 0, "order_refunded"),  # refunds summing to the total
        ({"refunds": {"r1": "20.00", "r2": "5.50"}}, 74, "order_partially_refunded"),
        ({"statuses": ("paid", "delivered", "returned")}, 0, "order_returned"),
        ({"tags": (" CHARGEBACK ",)}, 0, "order_tagged"),
        ({"tags": ("Fraud Order",)}, 0, "order_tagged"),
        ({"tags": ("fraud",)}, 100, "earned"),  # a tag matches whole, not by prefix
    ],
)
def test_revert_conditions(kwargs: dict, coins: int, reason: str) -> None:
    decision = earn_target(snap(total="100.00", **kwargs), rule(), ON, booked=100, held=False)
    assert (decision.coins, decision.reason) == (coins, reason)


def test_unselected_status_does_not_revert() -> None:
    only_cancel = RevertSettings(enabled=True, statuses=["cancelled"])
    refunded = snap(total="100.00", statuses=("refunded",), refunds={"r": "100.00"})
    assert earn_target(refunded, rule(), only_cancel, booked=100, held=False).coins == 100
    partial = snap(total="100.00", refunds={"r": "40.00"})
    assert earn_target(partial, rule(), only_cancel, booked=100, held=False).coins == 100


def test_partial_refund_reverts_all_when_set_to_full() -> None:
    settings = RevertSettings(enabled=True, partial="full")
    decision = earn_target(snap(total="100.00", refunds={"r": "1.00"}), rule(), settings, booked=100, held=False)
    assert decision.coins == 0


def test_keep_on_return_keeps_earned_coins_whatever_the_refunds() -> None:
    keep = RevertSettings(enabled=True, statuses=["returned", "refunded"], keep_on_return=True)
    returned = snap(total="100.00", statuses=("returned", "refunded"), refunds={"r": "100.00"})
    decision = earn_target(returned, rule(), keep, booked=100, held=False)
    assert (decision.coins, decision.reason) == (100, "kept_on_return")


def test_disabled_revert_keeps_booked_but_held_coins_follow_the_order() -> None:
    off = RevertSettings(enabled=False)
    cancelled = snap(statuses=("paid", "cancelled"))
    assert earn_target(cancelled, rule(), off, booked=100, held=False).coins == 100
    assert earn_target(cancelled, rule(), off, booked=100, held=True).coins == 0


@pytest.mark.parametrize(
    ("trigger", "statuses", "allowed"),
    [
        ("paid", ("pending",), False),
        ("paid", ("paid",), True),
        ("paid", ("partially_refunded",), True),  # implies paid
        ("fulfilled", ("paid",), False),
        ("fulfilled", ("paid", "fulfilled"), True),
        ("delivered", ("paid", "fulfilled"), False),
        ("delivered", ("returned",), True),  # a return implies delivery
    ],
)
def test_earn_trigger(trigger: str, statuses: tuple[str, ...], allowed: bool) -> None:
    earn = EarnSettings(trigger=trigger)  # type: ignore[arg-type]
    blocked = may_start_award(snap(statuses=statuses), earn, RevertSettings(), frozenset())
    assert (blocked is None) is allowed


def test_guests_and_excluded_customers_do_not_earn() -> None:
    earn = EarnSettings(exclude_tags=["Wholesale"])
    assert may_start_award(snap(customer=None), earn, RevertSettings(), frozenset()).reason == "guest_order"  # type: ignore[union-attr]
    blocked = may_start_award(snap(), earn, RevertSettings(), frozenset({"wholesale"}))
    assert blocked is not None and blocked.reason == "customer_excluded"
    flagged = RevertSettings(exclude_flagged=True, flag_tag="Fraud")
    assert may_start_award(snap(), EarnSettings(), flagged, frozenset({"fraud"})) is not None


@pytest.mark.parametrize(
    ("kwargs", "back"),
    [
        ({}, 0),
        ({"statuses": ("paid", "cancelled")}, 300),
        ({"statuses": ("paid", "returned")}, 300),
        ({"refunds": {"r": "1.00"}}, 100),  # refunded money returns to coins first...
        ({"refunds": {"r": "2.50", "s": "0.55"}}, 300),  # ...up to what was spent
        ({"refunds": {"r": "0.019"}}, 1),  # never more than the refund is worth
    ],
)
def test_redeemed_coins_come_back(kwargs: dict, back: int) -> None:
    settings = RedeemSettings(refund_statuses=["cancelled", "returned"], coin_value=Decimal("0.01"))
    assert redeem_target(snap(**kwargs), 300, settings).coins == back
