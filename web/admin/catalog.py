"""The features the merchant pages offer: what the Features page lists, with a one-line summary of
each one's settings, and what every page's navigation links to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.domain.rules import EarnRule
from app.domain.shop_settings import ShopSettings
from app.models import Shop

STATUS_LABELS = {
    "refunded": "Refunded",
    "cancelled": "Cancelled",
    "partially_refunded": "Partially Refunded",
    "returned": "Returned",
}


@dataclass(frozen=True)
class Feature:
    endpoint: str
    title: str
    section: str
    blurb: str
    is_on: Callable[[ShopSettings], bool]
    summary: Callable[[ShopSettings, Shop], str]
    platforms: tuple[str, ...] = ()  # shown only for these platforms (all when empty)


def _statuses(values: list[str]) -> str:
    return ", ".join(STATUS_LABELS.get(v, v) for v in values) or "no status"


def _revert_summary(s: ShopSettings, _shop: Shop) -> str:
    tags = f"; tags {', '.join(s.revert.tags)}" if s.revert.tags else ""
    return f"Reverts on {_statuses(list(s.revert.statuses))}{tags}"


def _earn_summary(s: ShopSettings, shop: Shop) -> str:
    rule = EarnRule.from_settings(s.earn, shop.currency)
    return f"{rule.describe()}, once the order is {s.earn.trigger}"


FEATURES: tuple[Feature, ...] = (
    Feature("admin.revert_earned", "Revert Earned Coins", "Orders",
            "Take back coins earned on an order that is cancelled, refunded or returned.",
            lambda s: s.revert.enabled, _revert_summary),
    Feature("admin.revert_spent", "Revert Spent Coins", "Orders",
            "Give back coins a customer spent on an order that is cancelled, returned or refunded.",
            lambda s: bool(s.redeem.refund_statuses),
            lambda s, _shop: f"Returns coins on {_statuses(list(s.redeem.refund_statuses))}"),
    Feature("admin.earn", "Earn on Orders", "Orders", "Customers earn coins on the orders they place.",
            lambda s: True, _earn_summary),
    Feature("admin.delayed", "Delayed Rewards", "Orders",
            "Hold earned coins for the return window before customers can spend them.",
            lambda s: s.earn.delay_days > 0,
            lambda s, _shop: f"Held for {s.earn.delay_days} days" if s.earn.delay_days else "Coins are usable at once"),
    Feature("admin.woocommerce", "Order Statuses and Tags", "WooCommerce",
            "Say what your custom order statuses mean, and what counts as an order's tags.",
            lambda s: bool(s.woocommerce.status_map or s.woocommerce.tag_meta_keys or s.woocommerce.coupon_tags),
            lambda s, _shop: f"{len(s.woocommerce.status_map)} mapped statuses; tags from "
            + (", ".join([*s.woocommerce.tag_meta_keys, *(["coupons"] if s.woocommerce.coupon_tags else [])])
               or "custom statuses only"),
            platforms=("woocommerce",)),
)  # fmt: skip


def shown_to(shop: Shop) -> list[Feature]:
    """The features this shop's platform has, in the catalog's order."""
    return [f for f in FEATURES if not f.platforms or shop.platform in f.platforms]
