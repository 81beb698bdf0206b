"""Shopify's order JSON → the canonical snapshot, through declarative tables with an explicit UNKNOWN.

Money is read in shop money (`*_set.shop_money`), never presentment money, so a rate means the
same for every order. Refund amounts in a refund's transactions are presentment money; they are
converted at the order's own shop/presentment ratio when the two currencies differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.domain.snapshot import MAX_AMOUNT, OrderSnapshot, Refund, Status, normalize_tags
from app.errors import TranslationError

# financial_status → canonical. Anything not listed is UNKNOWN (and earns nothing on its own).
FINANCIAL_STATUS: Mapping[str | None, frozenset[Status]] = {
    "pending": frozenset({Status.PENDING}),
    "authorized": frozenset({Status.PENDING}),
    "partially_paid": frozenset({Status.PENDING}),
    "paid": frozenset({Status.PAID}),
    "partially_refunded": frozenset({Status.PAID, Status.PARTIALLY_REFUNDED}),
    "refunded": frozenset({Status.PAID, Status.REFUNDED}),
    "voided": frozenset({Status.VOIDED}),
    "expired": frozenset({Status.VOIDED}),
    None: frozenset(),
}
# fulfillment_status → canonical. 'partial' is deliberately nothing: not yet fulfilled.
FULFILLMENT_STATUS: Mapping[str | None, frozenset[Status]] = {
    None: frozenset(),
    "unfulfilled": frozenset(),
    "partial": frozenset(),
    "fulfilled": frozenset({Status.FULFILLED}),
    "restocked": frozenset({Status.RETURNED}),
}
# A fulfillment's shipment_status (and fulfillment events' status) that means the parcel arrived.
DELIVERED_SHIPMENT_STATUSES = frozenset({"delivered"})
# An order's returns[].status that means goods came back (or are agreed to come back).
RETURNED_STATUSES = frozenset({"closed", "open"})


def money(value: Any, field: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError):
        raise TranslationError(f"{field} is not an amount: {value!r}") from None
    if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
        raise TranslationError(f"{field} is not a possible amount")
    return amount


def shop_money(obj: Mapping[str, Any], key: str) -> Decimal | None:
    """`obj[key].shop_money.amount` when present."""
    node = obj.get(key)
    if isinstance(node, Mapping) and isinstance(node.get("shop_money"), Mapping):
        return money(node["shop_money"].get("amount"), f"{key}.shop_money.amount")
    return None


def statuses(order: Mapping[str, Any]) -> frozenset[Status]:
    found = set(FINANCIAL_STATUS.get(order.get("financial_status"), frozenset({Status.UNKNOWN})))
    found |= FULFILLMENT_STATUS.get(order.get("fulfillment_status"), frozenset({Status.UNKNOWN}))
    if order.get("cancelled_at"):
        found.add(Status.CANCELLED)
    for fulfillment in order.get("fulfillments") or []:
        shipment = str(fulfillment.get("shipment_status") or "").lower() if isinstance(fulfillment, Mapping) else ""
        if shipment in DELIVERED_SHIPMENT_STATUSES:
            found.add(Status.DELIVERED)
    for ret in order.get("returns") or []:
        if isinstance(ret, Mapping) and str(ret.get("status", "")).lower() in RETURNED_STATUSES:
            found.add(Status.RETURNED)
    return frozenset(found)


def _rate(order: Mapping[str, Any]) -> Decimal:
    """shop money per unit of presentment money, from the order's own totals."""
    node = order.get("total_price_set") or {}
    try:
        shop = money(node["shop_money"]["amount"], "total_price_set.shop_money")
        presented = money(node["presentment_money"]["amount"], "total_price_set.presentment_money")
    except (KeyError, TypeError):
        return Decimal(1)
    return shop / presented if presented else Decimal(1)


def refund_amount(refund: Mapping[str, Any], rate: Decimal = Decimal(1)) -> Decimal:
    """Money a refund returned, in shop money: its successful refund transactions."""
    total = Decimal(0)
    for tx in refund.get("transactions") or []:
        if isinstance(tx, Mapping) and tx.get("kind") == "refund" and tx.get("status") == "success":
            total += money(tx.get("amount"), "refund transaction amount")
    try:
        return (total * rate).quantize(Decimal("0.01"))
    except InvalidOperation:  # beyond Decimal's precision: no real refund is
        raise TranslationError("refund amount is not a possible amount") from None


def refunds(order: Mapping[str, Any]) -> frozenset[Refund]:
    rate = _rate(order)
    found = set()
    for refund in order.get("refunds") or []:
        if isinstance(refund, Mapping) and refund.get("id") is not None:
            found.add(Refund(str(refund["id"]), refund_amount(refund, rate)))
    return frozenset(found)


def timestamp(value: Any, field: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise TranslationError(f"{field} is not a timestamp: {value!r}") from None


def order_snapshot(order: Mapping[str, Any], shop: str, currency: str) -> OrderSnapshot:
    """One Shopify order resource (orders/* webhooks, Admin API) as a snapshot."""
    if not isinstance(order, Mapping) or order.get("id") is None:
        raise TranslationError("not an order: no id")
    found = refunds(order)
    refunded = sum((r.amount for r in found), Decimal(0))
    current = shop_money(order, "current_total_price_set")
    if current is None:
        current = money(order.get("current_total_price", order.get("total_price")), "current_total_price")
    customer = order.get("customer") if isinstance(order.get("customer"), Mapping) else None
    codes = [str(d.get("code", "")) for d in order.get("discount_codes") or [] if isinstance(d, Mapping)]
    raw_tags = order.get("tags") or ""
    return OrderSnapshot(
        platform="shopify",
        shop=shop,
        order_id=str(order["id"]),
        order_name=str(order.get("name") or ""),
        updated_at=timestamp(order.get("updated_at") or order.get("created_at"), "updated_at"),
        # current_total_price is after refunds and edits; the snapshot's total is before refunds.
        total=max(current, Decimal(0)) + refunded,
        currency=str(order.get("currency") or currency).upper(),
        customer_id=str(customer["id"]) if customer and customer.get("id") is not None else None,
        customer_email=(customer or {}).get("email") or order.get("email") or None,
        statuses=statuses(order),
        refunds=found,
        tags=normalize_tags(raw_tags if isinstance(raw_tags, str) else ""),
        customer_tags=normalize_tags(str((customer or {}).get("tags") or "")),
        discount_codes=frozenset(c for c in codes if c),
    )


# GraphQL's displayFulfillmentStatus → the REST value the table above reads.
_GRAPHQL_FULFILLMENT = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "RESTOCKED": "restocked"}


def rest_order_from_graphql(node: Mapping[str, Any]) -> dict[str, Any]:
    """An Admin GraphQL order node (reconciliation) in the shape of the REST order the webhooks
    send, so one set of tables translates both. Refunds arrive in shop money already."""
    customer = node.get("customer") or None
    return {
        "id": node.get("legacyResourceId"),
        "name": node.get("name"),
        "updated_at": node.get("updatedAt") or node.get("createdAt"),
        "cancelled_at": node.get("cancelledAt"),
        "financial_status": str(node.get("displayFinancialStatus") or "").lower() or None,
        "fulfillment_status": _GRAPHQL_FULFILLMENT.get(str(node.get("displayFulfillmentStatus") or "")),
        "tags": ", ".join(node.get("tags") or []),
        "discount_codes": [{"code": code} for code in node.get("discountCodes") or []],
        "currency": node.get("currencyCode"),
        "current_total_price_set": {"shop_money": (node.get("currentTotalPriceSet") or {}).get("shopMoney") or {}},
        "customer": None if customer is None else {
            "id": customer.get("legacyResourceId"), "email": customer.get("email"),
            "tags": ", ".join(customer.get("tags") or []),
        },
        "refunds": [{
            "id": refund.get("legacyResourceId"),
            "transactions": [{"kind": "refund", "status": "success",
                              "amount": ((refund.get("totalRefundedSet") or {}).get("shopMoney") or {}).get("amount")}],
        } for refund in node.get("refunds") or []],
        "fulfillments": [{"shipment_status": "delivered"} for f in node.get("fulfillments") or []
                         if str(f.get("displayStatus")) == "DELIVERED"],
        "returns": [{"status": str(r.get("status", "")).lower()} for r in _nodes(node.get("returns"))],
    }  # fmt: skip


def _nodes(connection: Any) -> list[Mapping[str, Any]]:
    return list((connection or {}).get("nodes") or [])
