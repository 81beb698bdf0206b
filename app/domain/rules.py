"""The rules service: what an order is worth, and what should stand after each event. Pure.

Everything here is a function of its arguments: no clock, no database, no Flask. The ledger asks
`earn_target` and `redeem_target` for the coins that should stand on an order *now*, and moves
by the difference from what is booked (DESIGN 2.3, the target principle).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from app.domain.shop_settings import EarnSettings, RedeemSettings, RevertSettings
from app.domain.snapshot import OrderSnapshot, Status, normalize_tag

# ISO 4217 minor units for currencies that are not the common two decimals. Store-credit
# programs count minor units, so 10% of JPY 1000 is 100 coins, of USD 100.00 is 1000.
_MINOR_UNITS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
}
_ROUNDING = {"down": ROUND_FLOOR, "half_up": ROUND_HALF_UP, "up": ROUND_CEILING}


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


@dataclass(frozen=True)
class EarnRule:
    """The rule an award was earned under, frozen on the award so reversals use the earned rate."""

    mode: str  # per_unit | percent | fixed
    rate: Decimal
    rounding: str  # down | half_up | up
    min_order: Decimal
    currency: str

    @classmethod
    def from_settings(cls, earn: EarnSettings, currency: str) -> EarnRule:
        return cls(earn.mode, earn.rate, earn.rounding, earn.min_order, currency.upper())

    def coins_for(self, amount: Decimal) -> int:
        """Coins for an order whose net amount is `amount`; 0 under the minimum or at zero."""
        if amount <= 0 or amount < self.min_order:
            return 0
        if self.mode == "fixed":
            return int(self.rate)
        if self.mode == "percent":
            exact = amount * (10 ** minor_units(self.currency)) * self.rate / 100
        else:
            exact = amount * self.rate
        coins = int(exact.quantize(Decimal(1), rounding=_ROUNDING[self.rounding]))
        assert coins >= 0
        return coins

    def describe(self) -> str:
        """The rate in words, for explanations: '10% of the order, in cents'."""
        rate = f"{self.rate.normalize():f}"
        coins = "coin" if self.rate == 1 else "coins"
        if self.mode == "fixed":
            return f"{rate} {coins} per order"
        if self.mode == "percent":
            unit = "minor units" if minor_units(self.currency) != 2 else "cents"
            return f"{rate}% of the order in {unit}"
        return f"{rate} {coins} per {self.currency} 1"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"], data["min_order"] = str(self.rate), str(self.min_order)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EarnRule:
        return cls(data["mode"], Decimal(data["rate"]), data["rounding"], Decimal(data["min_order"]), data["currency"])


@dataclass(frozen=True)
class Decision:
    """The coins that should stand, the reason code, and the cause in words ('Order #1 was cancelled')."""

    coins: int
    reason: str
    cause: str

    def __post_init__(self) -> None:
        assert self.coins >= 0, "a target is never negative"


_TRIGGERS = {"paid": Status.PAID, "fulfilled": Status.FULFILLED, "delivered": Status.DELIVERED}


def may_start_award(
    snapshot: OrderSnapshot, earn: EarnSettings, revert: RevertSettings, customer_tags: frozenset[str]
) -> Decision | None:
    """Why this order may not earn yet, or None when an award may be created now."""
    label = snapshot.label
    if snapshot.customer_id is None:
        return Decision(0, "guest_order", f"Order {label} was placed by a guest")
    if not snapshot.has(_TRIGGERS[earn.trigger]):
        return Decision(0, "not_yet_earned", f"Order {label} is not {earn.trigger} yet")
    excluded = {normalize_tag(t) for t in earn.exclude_tags}
    if revert.exclude_flagged:
        excluded.add(normalize_tag(revert.flag_tag))
    if hit := sorted(excluded & customer_tags):
        return Decision(0, "customer_excluded", f"The customer carries the excluded tag '{hit[0]}'")
    return None


def _earn_value(snapshot: OrderSnapshot, rule: EarnRule) -> Decision:
    """What the order is worth by the earn rule alone: voided or cancelled orders earn nothing."""
    label = snapshot.label
    if snapshot.has(Status.CANCELLED) or snapshot.has(Status.VOIDED):
        return Decision(0, "order_cancelled", f"Order {label} was cancelled")
    coins = rule.coins_for(snapshot.net)
    if snapshot.refunds:
        return Decision(
            coins,
            "order_refunded" if coins == 0 else "order_partially_refunded",
            f"Order {label} was refunded {snapshot.refunded} {snapshot.currency}",
        )
    return Decision(coins, "earned", f"Order {label} was placed")


def earn_target(
    snapshot: OrderSnapshot, rule: EarnRule, revert: RevertSettings, *, booked: int, held: bool
) -> Decision:
    """The coins an award should hold now, at its own earned `rule`.

    Held (pending) coins are not booked yet, so the earn rule is re-checked on the net amount
    whether or not reverting is enabled; booked coins move back only when it is enabled and a
    selected status or tag matches (DESIGN 2.3 and 2.4).
    """
    if not revert.enabled:
        if held:
            return _earn_value(snapshot, rule)
        return Decision(booked, "revert_disabled", f"Order {snapshot.label} changed; reverting is off")
    return _revert_target(snapshot, rule, revert)


def _revert_target(snapshot: OrderSnapshot, rule: EarnRule, revert: RevertSettings) -> Decision:
    label = snapshot.label
    gross = rule.coins_for(snapshot.total)
    selected = set(revert.statuses)
    if hit := sorted({normalize_tag(t) for t in revert.tags} & snapshot.tags):
        return Decision(0, "order_tagged", f"Order {label} was tagged '{hit[0]}'")
    if snapshot.has(Status.RETURNED) and revert.keep_on_return:
        # Keep-earned policy (Fynd scenario 2): a return, and the refund that pays for it, leave
        # earned coins alone. Judged on the gross total so the result does not depend on order.
        return Decision(gross, "kept_on_return", f"Order {label} was returned; earned coins are kept")
    if "cancelled" in selected and (snapshot.has(Status.CANCELLED) or snapshot.has(Status.VOIDED)):
        return Decision(0, "order_cancelled", f"Order {label} was cancelled")
    if "returned" in selected and snapshot.has(Status.RETURNED):
        return Decision(0, "order_returned", f"Order {label} was returned")
    fully_refunded = snapshot.has(Status.REFUNDED) or (bool(snapshot.refunds) and snapshot.net == 0)
    if "refunded" in selected and fully_refunded:
        return Decision(0, "order_refunded", f"Order {label} was refunded in full")
    if "partially_refunded" in selected and snapshot.refunds:
        cause = f"Order {label} was refunded {snapshot.refunded} of {snapshot.total} {snapshot.currency}"
        if revert.partial == "full":
            return Decision(0, "order_partially_refunded", cause)
        return Decision(rule.coins_for(snapshot.net), "order_partially_refunded", cause)
    return Decision(gross, "earned", f"Order {label} stands")


def redeem_target(snapshot: OrderSnapshot, redeemed: int, redeem: RedeemSettings) -> Decision:
    """Coins spent on this order that should be back with the customer now (DESIGN 2.5).

    A selected status returns everything spent; otherwise refunded money goes back to coins
    first, up to what was spent, at the shop's coin value.
    """
    label = snapshot.label
    for status in redeem.refund_statuses:
        if snapshot.has(Status(status)):
            word = {"cancelled": "cancelled", "returned": "returned", "refunded": "refunded in full"}[status]
            return Decision(redeemed, f"order_{status}", f"Order {label} was {word}")
    if snapshot.refunds:
        worth = int((snapshot.refunded / redeem.coin_value).to_integral_value(rounding=ROUND_FLOOR))
        return Decision(
            min(redeemed, worth),
            "order_partially_refunded",
            f"Order {label} was refunded {snapshot.refunded} {snapshot.currency}",
        )
    return Decision(0, "redeemed", f"Coins were spent on order {label}")
