"""A WooCommerce order (REST API v3 resource, which is also an `order.*` webhook's body) → the
canonical snapshot, through a declarative status table with an explicit UNKNOWN.

What WooCommerce documents, and where:

- The order resource: https://woocommerce.github.io/woocommerce-rest-api-docs/#order-properties
  (`id`, `number`, `status`, `currency`, `total` as a string, `customer_id` 0 for a guest,
  `billing.email`, `coupon_lines[].code`, `meta_data[]` of `{id, key, value}`, `refunds[]` of
  `{id, reason, total}` where `total` is a negative string, `date_modified_gmt`). The fixtures in
  tests/fixtures/woocommerce are the documentation's own examples.
- Statuses: pending, processing, on-hold, completed, cancelled, refunded, failed, trash, and the
  block checkout's checkout-draft; plugins add custom ones. A partial refund leaves the status
  as it was and grows `refunds[]`; a full refund sets `refunded`.
- Webhook payloads are built when the webhook is delivered, not when the event happened
  (WC_Webhook::build_payload), so one delivery may carry several new refunds, and a late
  `order.created` may already be `refunded`. The snapshot is the order as delivered; the target
  principle and per-refund ids make that enough.
- WooCommerce has no order tags. A shop's `woocommerce.*` settings say what counts as one: the
  values of chosen meta keys, coupon codes, and any status outside the built-in table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.domain.shop_settings import WooCommerceSettings
from app.domain.snapshot import MAX_AMOUNT, MAX_ID_CHARS, OrderSnapshot, Refund, Status
from app.domain.text import whole_number
from app.errors import TranslationError

PLATFORM = "woocommerce"

# status → canonical statuses. Anything not here (nor in the shop's status_map) is UNKNOWN.
STATUS: Mapping[str, frozenset[Status]] = {
    "pending": frozenset({Status.PENDING}),  # awaiting payment
    "checkout-draft": frozenset({Status.PENDING}),  # a block checkout in progress
    "on-hold": frozenset({Status.PENDING}),  # awaiting payment confirmation (bank transfer, cheque)
    "processing": frozenset({Status.PAID}),  # paid, awaiting fulfilment
    # Fulfilled and complete. WooCommerce has no delivery step, so "delivered" is reached here too.
    "completed": frozenset({Status.PAID, Status.FULFILLED, Status.DELIVERED}),
    "cancelled": frozenset({Status.CANCELLED}),
    "refunded": frozenset({Status.REFUNDED}),
    "failed": frozenset({Status.VOIDED}),  # payment failed or was declined: never paid
    # Moved to the bin by the merchant: counted as cancelled unless the shop maps it otherwise
    # (`woocommerce.status_map` trash=unknown keeps coins on trashed orders).
    "trash": frozenset({Status.CANCELLED}),
}
UNKNOWN = frozenset({Status.UNKNOWN})


def status_meaning(status: str, settings: WooCommerceSettings) -> frozenset[Status]:
    """What an order status says, by the shop's own mapping first, then the built-in table."""
    slug = status.strip().lower().removeprefix("wc-")
    if slug in settings.status_map:
        return frozenset({Status(settings.status_map[slug])})
    return STATUS.get(slug, UNKNOWN)


def money(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TranslationError(f"{field} is not an amount: {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise TranslationError(f"{field} is not an amount: {value!r}") from None
    if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
        raise TranslationError(f"{field} is not a possible amount")
    return amount


def order_id(body: Mapping[str, Any]) -> str:
    """The order's id: a positive integer (WooCommerce post or HPOS order id)."""
    raw = body.get("id")
    number = whole_number(str(raw).strip(), MAX_ID_CHARS) if isinstance(raw, int | str) else None
    if isinstance(raw, bool) or number is None:
        raise TranslationError(f"the order has no id: {raw!r}")
    value = str(number)
    if value == "0" or len(value) > MAX_ID_CHARS:
        raise TranslationError(f"the order id {raw!r} is not one WooCommerce gives")
    return value


def when(body: Mapping[str, Any]) -> datetime:
    """The order's last modification in UTC (`date_modified_gmt`; older stores: `date_created_gmt`)."""
    for key in ("date_modified_gmt", "date_created_gmt"):
        raw = body.get(key)
        if isinstance(raw, str) and raw.strip():
            try:
                moment = datetime.fromisoformat(raw.strip().removesuffix("Z"))
            except ValueError:
                raise TranslationError(f"{key} is not a date: {raw[:40]!r}") from None
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise TranslationError("the order has neither date_modified_gmt nor date_created_gmt")


def refunds(body: Mapping[str, Any]) -> frozenset[Refund]:
    """`refunds[]`: each `{id, total}` with a negative total string; the amount refunded is its size."""
    found = set()
    for item in body.get("refunds") or []:
        if not isinstance(item, Mapping) or item.get("id") in (None, ""):
            raise TranslationError("a refund has no id")
        amount = money(item.get("total"), "refunds[].total")
        found.add(Refund(str(item["id"]), abs(amount)))
    return frozenset(found)


def _customer(body: Mapping[str, Any]) -> str | None:
    raw = body.get("customer_id", 0)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise TranslationError(f"customer_id is not an id: {raw!r}")
    value = whole_number(str(raw).strip(), MAX_ID_CHARS)
    if value is None:
        raise TranslationError(f"customer_id is not an id: {raw!r}")
    return None if value == 0 else str(value)  # 0: a guest, who earns nothing


def _meta_tags(body: Mapping[str, Any], keys: list[str]) -> set[str]:
    wanted = set(keys)
    tags: set[str] = set()
    for item in body.get("meta_data") or []:
        if not isinstance(item, Mapping) or item.get("key") not in wanted:
            continue
        value = item.get("value")
        values = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
        tags.update(v for v in values if isinstance(v, str))
    return tags


def _coupons(body: Mapping[str, Any]) -> set[str]:
    codes = set()
    for line in body.get("coupon_lines") or []:
        if isinstance(line, Mapping) and isinstance(line.get("code"), str) and line["code"].strip():
            codes.add(line["code"].strip())
    return codes


def order_snapshot(body: Mapping[str, Any], shop: str, currency: str, settings: WooCommerceSettings) -> OrderSnapshot:
    """The order as delivered. Raises TranslationError (a ValueError) for a payload without the
    fields every order has."""
    status = body.get("status")
    if not isinstance(status, str) or not status.strip():
        raise TranslationError("the order has no status")
    slug = status.strip().lower().removeprefix("wc-")
    statuses = status_meaning(slug, settings)
    coupons = _coupons(body)
    tags = _meta_tags(body, settings.tag_meta_keys)
    if settings.coupon_tags:
        tags |= coupons
    if slug not in STATUS:
        tags.add(slug)  # a custom status can be a revert tag by its slug
    billing = body.get("billing") if isinstance(body.get("billing"), Mapping) else {}
    email = billing.get("email") if isinstance(billing, Mapping) else None
    number = body.get("number")
    return OrderSnapshot(
        platform=PLATFORM,
        shop=shop,
        order_id=order_id(body),
        order_name=f"#{number}" if isinstance(number, str | int) and str(number).strip() else "",
        updated_at=when(body),
        total=money(body.get("total"), "total"),
        currency=str(body.get("currency") or currency).upper()[:3],
        customer_id=_customer(body),
        customer_email=email.strip() if isinstance(email, str) and email.strip() else None,
        statuses=statuses,
        refunds=refunds(body),
        tags=frozenset(tags),
        discount_codes=frozenset(coupons),
        extra={"status": slug},
    )
