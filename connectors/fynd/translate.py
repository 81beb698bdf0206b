"""One Fynd shipment → the canonical snapshot, through declarative tables with an explicit UNKNOWN.

A Fynd order is split into shipments, and every `application/shipment/*` delivery carries exactly
one of them (`payload.shipment`), with that shipment's own status. Clawback therefore snapshots each
shipment as an order of its own: `order_id` is the shipment id, the label names the Fynd order, and
the total is what the customer paid for that shipment. Earning, reverting and keep-on-return are then
exact per shipment, and a shipment cancelled or returned alone is a refund of that shipment's amount
only: the other shipments of the Fynd order keep their coins. (A snapshot of the whole Fynd order
cannot be built from one delivery: the merge takes the total and the non-sticky statuses from the
newer snapshot, so each shipment's delivery would overwrite the facts of the others.) A redemption
follows the shipment that carries its code (or the shipment id given to `clawback redeem --order`).

Where each field comes from, and how sure we are of it:

- The envelope (`event.{name,type,version,category,id,created_timestamp}`, `company_id`,
  `application_id` as string or array, `contains`, `payload.shipment`), the three shipment events and
  `payload.shipment.shipment_status.{status,bag_list,created_ts,updated_ts}` are documented:
  https://docs.fynd.com/partners/commerce/webhooks/latest/application/shipment
- The status slugs (`delivery_done`, `cancelled_fynd`, `cancelled_customer`, `bag_not_confirmed`,
  `return_*`, `rto_*`, `refund_*`) are Fynd OMS statuses as the SDKs list them (gofynd/fdk-client-*
  `documentation/platform/ORDER.md`, `getfilters`); which status counts as what is the table below.
  Precedence of `shipment_status.current_shipment_status` follows the company webhook reference
  (https://platform.fynd.com/help/docs/company-settings/webhook/webhook-events/shipment/).
- INFERRED, not in the reference we could read: `shipment.shipment_id` / `order_id`, `status` (the
  OMS slug), `user.{user_oid,email,is_anonymous_user}`, `prices.amount_paid` and
  `bags[].prices.amount_paid`, `currency.currency_code`, and coupon codes in
  `bags[].affiliate_bag_details.affiliate_meta.coupon_code`. They come from Fynd's Platform order
  models (fdk-client-python `UserObj`, `Prices`, `AffiliateMeta`) and from extensions that read these
  webhooks. Each is read through a short list of candidate paths (`*_PATHS`), so a correction is a
  one-line change; a shipment with no amount at all is refused as malformed, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.domain.snapshot import MAX_ID_CHARS, OrderSnapshot, Refund, Status
from app.domain.text import whole_number
from app.errors import TranslationError

PLATFORM = "fynd"


@dataclass(frozen=True)
class Meaning:
    """What one shipment status says about that shipment, in the canonical vocabulary."""

    statuses: frozenset[Status]
    refunded: bool = False  # the shipment's money goes back: one refund of its whole amount
    tags: frozenset[str] = frozenset()


NOT_YET = Meaning(frozenset())  # a known step before delivery: nothing to earn or take back yet
SHIPPED = Meaning(frozenset({Status.FULFILLED}))
# Cash on delivery is paid at the door, so a delivered shipment is a paid one whatever the mode.
DELIVERED = Meaning(frozenset({Status.PAID, Status.DELIVERED}))
CANCELLED = Meaning(frozenset({Status.CANCELLED}), refunded=True)
RETURNED = Meaning(frozenset({Status.RETURNED}), refunded=True)
REFUNDED = Meaning(frozenset({Status.REFUNDED}), refunded=True)
# Return to origin: the courier brought the parcel back undelivered. The merchant chooses what that
# means through the shop's settings: it counts as a cancellation (revert.statuses and
# redeem.refund_statuses "cancelled"), and the `rto` tag lets revert.tags treat it on its own.
# Never "returned": in the canonical vocabulary that implies delivered, which an RTO never was.
RTO = Meaning(frozenset({Status.CANCELLED}), refunded=True, tags=frozenset({"rto"}))
UNKNOWN = Meaning(frozenset({Status.UNKNOWN}))

# shipment status → meaning. Anything not listed (and not matched by a prefix) is UNKNOWN.
SHIPMENT_STATUS: Mapping[str, Meaning] = {
    "placed": NOT_YET,
    "pending": NOT_YET,
    "bag_confirmed": NOT_YET,
    "bag_invoiced": NOT_YET,
    "ready_for_dp_assignment": NOT_YET,
    "dp_assigned": NOT_YET,
    "bag_packed": NOT_YET,
    "bag_picked": SHIPPED,
    "out_for_delivery": SHIPPED,
    "delivery_done": DELIVERED,
    "handed_over_to_customer": DELIVERED,  # store pick-up: the customer has the goods
    "cancelled_fynd": CANCELLED,
    "cancelled_customer": CANCELLED,
    "bag_not_confirmed": CANCELLED,
    # A return asked for but not yet on its way changes nothing: "returned" is sticky.
    "return_initiated": NOT_YET,
    "return_dp_assigned": NOT_YET,
    "return_accepted": RETURNED,
    "return_bag_in_transit": RETURNED,
    "return_bag_delivered": RETURNED,
    "return_completed": RETURNED,
    "refund_initiated": REFUNDED,
    "refund_approved": REFUNDED,
    "refund_completed": REFUNDED,
}
STATUS_PREFIXES: Sequence[tuple[str, Meaning]] = (("rto_", RTO),)

# Candidate paths, first match wins. INFERRED paths are marked in the module docstring.
# Read from `payload`: the company webhook reference puts `shipment_id` beside `shipment`.
SHIPMENT_ID_PATHS = (("shipment", "shipment_id"), ("shipment_id",), ("shipment", "id"))
ORDER_ID_PATHS = (("order_id",), ("fynd_order_id",), ("order", "fynd_order_id"), ("order", "order_id"))
STATUS_PATHS = (("shipment_status", "current_shipment_status"), ("shipment_status", "status"), ("status",))
CUSTOMER_ID_KEYS = ("user_oid", "mongo_user_id", "user_id", "uid", "u_id", "id", "_id")
AMOUNT_PATHS = (("prices", "amount_paid"), ("amount_paid",))
BAG_AMOUNT_PATHS = (("prices", "amount_paid"), ("amount_paid",))
CURRENCY_PATHS = (("currency", "currency_code"), ("currency",), ("order", "currency", "currency_code"))
TIME_PATHS = (("shipment_status", "updated_ts"), ("shipment_status", "created_ts"), ("updated_ts",), ("updated_at",))
BAG_CODE_PATHS = (("affiliate_bag_details", "affiliate_meta", "coupon_code"), ("coupon_code",))
SHIPMENT_CODE_PATHS = (("coupon_code",), ("order", "coupon_code"))


def dig(obj: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def first(obj: Any, paths: Sequence[Sequence[str]]) -> Any:
    """The first value found at one of `paths` that is neither None nor an empty string."""
    for path in paths:
        value = dig(obj, path)
        if value is not None and value != "":
            return value
    return None


def meaning(status: str | None) -> Meaning:
    slug = (status or "").strip().lower()
    if slug in SHIPMENT_STATUS:
        return SHIPMENT_STATUS[slug]
    for prefix, found in STATUS_PREFIXES:
        if slug.startswith(prefix):
            return found
    return UNKNOWN


def money(value: Any, field: str) -> Decimal:
    if isinstance(value, bool):
        raise TranslationError(f"{field} is not an amount: {value!r}")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError):
        raise TranslationError(f"{field} is not an amount: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise TranslationError(f"{field} is not a non-negative amount: {value!r}")
    return amount


def amount_paid(shipment: Mapping[str, Any]) -> Decimal:
    """What the customer paid for this shipment: its own total, else the sum over its bags."""
    total = first(shipment, AMOUNT_PATHS)
    if total is not None:
        return money(total, "shipment amount_paid")
    bags = [bag for bag in shipment.get("bags") or [] if isinstance(bag, Mapping)]
    paid = [first(bag, BAG_AMOUNT_PATHS) for bag in bags]
    if bags and all(value is not None for value in paid):
        return sum((money(value, "bag amount_paid") for value in paid), Decimal(0))
    raise TranslationError("the shipment carries no amount paid (prices.amount_paid or its bags')")


def timestamp(body: Mapping[str, Any], shipment: Mapping[str, Any]) -> datetime:
    """When Fynd produced the event (`event.created_timestamp`, epoch milliseconds: documented);
    the shipment status's own time when the event has none."""
    millis = dig(body, ("event", "created_timestamp"))
    if isinstance(millis, str):
        millis = whole_number(millis.strip(), 20)
    if isinstance(millis, int | float) and not isinstance(millis, bool):
        try:
            return datetime.fromtimestamp(millis / 1000, UTC)
        except (OverflowError, OSError, ValueError):  # 1e308, 2**63, Infinity, NaN: no moment at all
            raise TranslationError(f"event.created_timestamp {millis!r} is not a time") from None
    raw = first(shipment, TIME_PATHS)
    try:
        moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise TranslationError(f"no event time and no shipment status time: {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def customer(shipment: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(customer id, email); no id for a guest (`is_anonymous_user`), who never earns."""
    user = shipment.get("user")
    if not isinstance(user, Mapping) or user.get("is_anonymous_user") is True:
        return None, None
    found = first(user, [(key,) for key in CUSTOMER_ID_KEYS])
    email = user.get("email") if isinstance(user.get("email"), str) else None
    customer_id = str(found).strip() if found is not None else ""
    return customer_id or None, email or None


def currency(shipment: Mapping[str, Any], default: str) -> str:
    code = first(shipment, CURRENCY_PATHS)
    if isinstance(code, str) and len(code.strip()) == 3 and code.strip().isalpha():
        return code.strip().upper()
    return default


def codes(shipment: Mapping[str, Any]) -> frozenset[str]:
    found = [first(shipment, [path]) for path in SHIPMENT_CODE_PATHS]
    for bag in shipment.get("bags") or []:
        found += [first(bag, [path]) for path in BAG_CODE_PATHS]
    return frozenset(str(code) for code in found if isinstance(code, str) and code.strip())


def _id(value: Any, field: str) -> str:
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not 0 < len(text) <= MAX_ID_CHARS:
        raise TranslationError(f"{field} is missing or longer than {MAX_ID_CHARS} characters")
    return text


def shipment_snapshot(body: Mapping[str, Any], shop: str, shop_currency: str) -> OrderSnapshot:
    """One `application/shipment/*` delivery body as the snapshot of that shipment."""
    payload = body.get("payload")
    shipment = payload.get("shipment") if isinstance(payload, Mapping) else None
    if not isinstance(shipment, Mapping):
        raise TranslationError("not a shipment event: no payload.shipment")
    shipment_id = _id(first(payload, SHIPMENT_ID_PATHS), "shipment id")
    fynd_order = first(shipment, ORDER_ID_PATHS)
    said = meaning(first(shipment, STATUS_PATHS))
    total = amount_paid(shipment)
    customer_id, email = customer(shipment)
    refunds = frozenset({Refund(f"shipment:{shipment_id}", total)}) if said.refunded and total > 0 else frozenset()
    return OrderSnapshot(
        platform=PLATFORM,
        shop=shop,
        order_id=shipment_id,
        order_name=f"{fynd_order} shipment {shipment_id}"[:64] if fynd_order else "",
        updated_at=timestamp(body, shipment),
        total=total,
        currency=currency(shipment, shop_currency),
        customer_id=customer_id,
        customer_email=email,
        statuses=said.statuses,
        refunds=refunds,
        tags=said.tags,
        discount_codes=codes(shipment),
    )
