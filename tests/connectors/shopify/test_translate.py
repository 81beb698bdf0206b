"""Shopify's order JSON → the canonical snapshot: one test per row of translate.py's tables, money
in shop money (never presentment), refunds from their transactions, ids kept exact.

Every order is a copy of Shopify's one canned order (`orders_cancelled.json`) with a few fields
changed, so the rest of the payload stays exactly what Shopify sends.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.domain.events import OrderAmended, OrderChanged
from app.domain.snapshot import OrderSnapshot, Status
from app.errors import MalformedDelivery
from app.models import Shop
from connectors.shopify import ShopifyConnector, translate

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "shopify"
CANNED_TEXT = (FIXTURES / "orders_cancelled.json").read_text()
CANNED = json.loads(CANNED_TEXT)
REFUND_TEXT = (FIXTURES / "refunds_create.json").read_text()
SHOP = "clawback-test.myshopify.com"
MAX_SAFE_JS_INT = 2**53


def order(**changes: Any) -> dict[str, Any]:
    """The canned order, neither cancelled nor fulfilled, with `changes` applied."""
    body = copy.deepcopy(CANNED)
    body.update(cancelled_at=None, financial_status="paid", fulfillment_status=None)
    body.update(changes)
    return body


def snapshot(**changes: Any) -> OrderSnapshot:
    return translate.order_snapshot(order(**changes), SHOP, "USD")


def money_set(shop: str, presentment: str | None = None, presentment_currency: str = "USD") -> dict[str, Any]:
    return {
        "shop_money": {"amount": shop, "currency_code": "USD"},
        "presentment_money": {"amount": presentment or shop, "currency_code": presentment_currency},
    }


def transaction(amount: str, kind: str = "refund", status: str = "success") -> dict[str, Any]:
    return {"id": 245135271310201194, "kind": kind, "status": status, "amount": amount, "gateway": "bogus"}


def refund(refund_id: int, *transactions: dict[str, Any]) -> dict[str, Any]:
    return {"id": refund_id, "order_id": CANNED["id"], "transactions": list(transactions), "refund_line_items": []}


# --- the declarative tables, row by row ---------------------------------------------------------

FINANCIAL_ROWS = {
    "pending": {Status.PENDING},
    "authorized": {Status.PENDING},
    "partially_paid": {Status.PENDING},
    "paid": {Status.PAID},
    "partially_refunded": {Status.PAID, Status.PARTIALLY_REFUNDED},
    "refunded": {Status.PAID, Status.REFUNDED},
    "voided": {Status.VOIDED},
    "expired": {Status.VOIDED},
    None: set(),
}
FULFILLMENT_ROWS = {
    None: set(),
    "unfulfilled": set(),
    "partial": set(),
    "fulfilled": {Status.FULFILLED},
    "restocked": {Status.RETURNED},
}


def test_every_table_row_has_a_test() -> None:
    assert set(FINANCIAL_ROWS) == set(translate.FINANCIAL_STATUS)
    assert set(FULFILLMENT_ROWS) == set(translate.FULFILLMENT_STATUS)
    assert {"delivered"} == translate.DELIVERED_SHIPMENT_STATUSES
    assert {"closed", "open"} == translate.RETURNED_STATUSES


@pytest.mark.parametrize(("financial_status", "expected"), FINANCIAL_ROWS.items(), ids=[str(k) for k in FINANCIAL_ROWS])
def test_financial_status_row(financial_status: str | None, expected: set[Status]) -> None:
    assert translate.statuses(order(financial_status=financial_status)) == expected


@pytest.mark.parametrize("financial_status", ["chargeback_pending", "PAID", ""])
def test_unknown_financial_status_is_unknown(financial_status: str) -> None:
    assert translate.statuses(order(financial_status=financial_status)) == {Status.UNKNOWN}
    assert not snapshot(financial_status=financial_status).has(Status.PAID)


@pytest.mark.parametrize(
    ("fulfillment_status", "expected"), FULFILLMENT_ROWS.items(), ids=[str(k) for k in FULFILLMENT_ROWS]
)
def test_fulfillment_status_row(fulfillment_status: str | None, expected: set[Status]) -> None:
    raw = translate.statuses(order(financial_status=None, fulfillment_status=fulfillment_status))
    assert raw == expected


def test_unknown_fulfillment_status_is_unknown() -> None:
    assert translate.statuses(order(fulfillment_status="on_hold")) == {Status.PAID, Status.UNKNOWN}


def test_restocked_snapshot_implies_delivery_and_fulfilment() -> None:
    assert snapshot(fulfillment_status="restocked").statuses >= {Status.RETURNED, Status.DELIVERED, Status.FULFILLED}


@pytest.mark.parametrize(
    ("cancelled_at", "cancelled"),
    [("2021-12-31T19:00:00-05:00", True), (None, False), ("", False)],
)
def test_cancelled_at(cancelled_at: str | None, cancelled: bool) -> None:
    assert (Status.CANCELLED in translate.statuses(order(cancelled_at=cancelled_at))) is cancelled


@pytest.mark.parametrize(
    ("shipment_status", "delivered"),
    [("delivered", True), ("in_transit", False), ("out_for_delivery", False), ("failure", False), (None, False)],
)
def test_fulfillment_shipment_status(shipment_status: str | None, delivered: bool) -> None:
    fulfillments = [{"id": 1, "status": "success", "shipment_status": shipment_status}]
    found = translate.statuses(order(fulfillment_status="fulfilled", fulfillments=fulfillments))
    assert (Status.DELIVERED in found) is delivered
    assert Status.FULFILLED in found


@pytest.mark.parametrize(
    ("return_status", "returned"),
    [("closed", True), ("open", True), ("CLOSED", True), ("requested", False), ("declined", False),
     ("canceled", False)],
)  # fmt: skip
def test_return_status(return_status: str, returned: bool) -> None:
    found = translate.statuses(order(returns=[{"id": 1, "status": return_status}]))
    assert (Status.RETURNED in found) is returned


# --- money --------------------------------------------------------------------------------------


def test_shop_money_is_used_never_presentment_money() -> None:
    body = order(
        presentment_currency="EUR",
        current_total_price_set=money_set("414.95", "380.10", "EUR"),
        total_price_set=money_set("404.95", "371.00", "EUR"),
        current_subtotal_price_set=money_set("414.95", "380.10", "EUR"),
    )
    snap = translate.order_snapshot(body, SHOP, "USD")
    assert snap.total == Decimal("414.95")
    assert snap.currency == "USD"


def test_total_is_current_total_plus_refunds() -> None:
    snap = snapshot(
        financial_status="partially_refunded",
        current_total_price_set=money_set("150.00"),
        total_price_set=money_set("200.00"),
        refunds=[refund(1, transaction("30.00")), refund(2, transaction("20.00"))],
    )
    assert snap.total == Decimal("200.00")
    assert snap.refunded == Decimal("50.00")
    assert snap.net == Decimal("150.00")
    assert {(r.refund_id, r.amount) for r in snap.refunds} == {("1", Decimal("30.00")), ("2", Decimal("20.00"))}


def test_current_total_falls_back_to_the_plain_field() -> None:
    body = order(current_total_price="99.50")
    del body["current_total_price_set"]
    assert translate.order_snapshot(body, SHOP, "USD").total == Decimal("99.50")


@pytest.mark.parametrize(
    ("kind", "status", "counted"),
    [("refund", "success", True), ("refund", "failure", False), ("refund", "pending", False),
     ("refund", "error", False), ("sale", "success", False), ("capture", "success", False),
     ("void", "success", False)],
)  # fmt: skip
def test_refund_amount_counts_successful_refund_transactions_only(kind: str, status: str, counted: bool) -> None:
    found = translate.refund_amount(refund(7, transaction("12.00"), transaction("5.00", kind, status)))
    assert found == (Decimal("17.00") if counted else Decimal("12.00"))


def test_refund_transactions_are_converted_at_the_orders_rate() -> None:
    # Shop money USD, presentment EUR at 2 USD per EUR: a EUR 10.00 refund is USD 20.00.
    snap = snapshot(
        presentment_currency="EUR",
        financial_status="partially_refunded",
        total_price_set=money_set("200.00", "100.00", "EUR"),
        current_total_price_set=money_set("180.00", "90.00", "EUR"),
        refunds=[refund(11, transaction("10.00"))],
    )
    assert [r.amount for r in snap.refunds] == [Decimal("20.00")]
    assert snap.total == Decimal("200.00")


def test_canned_refund_is_read_from_its_transactions() -> None:
    events = ShopifyConnector().parse("refunds/create", REFUND_TEXT.encode(), Shop(id=1, domain=SHOP))
    assert len(events) == 1 and isinstance(events[0], OrderAmended)
    assert events[0].order_id == "820982911946154508"
    assert events[0].refund is not None
    assert (events[0].refund.refund_id, events[0].refund.amount) == ("890088186047892319", Decimal("85.00"))


def _refund_create(line_items: list[dict[str, Any]], shipping: list[dict[str, Any]], amount: str) -> bytes:
    body = json.loads(REFUND_TEXT)
    body.update(refund_line_items=line_items, refund_shipping_lines=shipping)
    body["transactions"] = [{**body["transactions"][0], "amount": amount, "currency": "JPY"}]
    return json.dumps(body).encode()


def test_refunds_create_converts_presentment_at_the_line_items_rate() -> None:
    item = {"id": 1, "quantity": 1, "subtotal_set": money_set("10.00", "1500", "JPY")}
    raw = _refund_create([item], [], "1500")
    (event,) = ShopifyConnector().parse("refunds/create", raw, Shop(id=1, domain=SHOP))
    assert isinstance(event, OrderAmended) and event.refund is not None
    assert event.refund.amount == Decimal("10.00")


def test_refunds_create_without_line_items_is_not_read_one_to_one() -> None:
    shipping = [{"id": 1, "subtotal_amount_set": money_set("10.00", "1500", "JPY")}]
    raw = _refund_create([], shipping, "1500")
    (event,) = ShopifyConnector().parse("refunds/create", raw, Shop(id=1, domain=SHOP))
    assert isinstance(event, OrderAmended) and event.refund is not None
    assert event.refund.amount == Decimal("10.00")


# --- identity, tags, codes ----------------------------------------------------------------------


def test_tags_are_comma_separated_trimmed_and_case_insensitive() -> None:
    assert snapshot(tags="vip,  Cancelled Order ,FRAUD,, ").tags == {"vip", "cancelled order", "fraud"}
    assert snapshot(tags="").tags == frozenset()
    assert snapshot(tags=None).tags == frozenset()


def test_customer_tags_are_read_too() -> None:
    customer = {**CANNED["customer"], "tags": "Wholesale, VIP"}
    assert snapshot(customer=customer).customer_tags == {"wholesale", "vip"}


def test_customer_null_is_a_guest_order() -> None:
    snap = snapshot(customer=None)
    assert snap.customer_id is None
    assert snap.customer_email == "jon@example.com"  # the order's own email, kept for the explanation only


def test_ids_over_2_pow_53_stay_exact_strings() -> None:
    assert CANNED["id"] > MAX_SAFE_JS_INT and CANNED["customer"]["id"] > MAX_SAFE_JS_INT
    raw = json.dumps(order(refunds=[refund(890088186047892319, transaction("1.00"))])).encode()
    (event,) = ShopifyConnector().parse("orders/updated", raw, Shop(id=1, domain=SHOP, currency="USD"))
    assert isinstance(event, OrderChanged)
    assert event.snapshot.order_id == "820982911946154508"
    assert event.snapshot.customer_id == "115310627314723954"
    assert [r.refund_id for r in event.snapshot.refunds] == ["890088186047892319"]
    assert OrderSnapshot.from_json(event.snapshot.to_json()).order_id == "820982911946154508"


def test_discount_codes_are_upper_cased() -> None:
    codes = [{"code": "save-abc", "amount": "5.00", "type": "fixed_amount"}, {"code": " Summer10 "}, {"code": ""}]
    assert snapshot(discount_codes=codes).discount_codes == {"SAVE-ABC", "SUMMER10"}


def test_name_currency_and_timestamp_come_from_the_order() -> None:
    snap = snapshot(name="#1001", updated_at="2026-11-01T12:00:00Z")
    assert (snap.order_name, snap.label, snap.currency) == ("#1001", "#1001", "USD")
    assert snap.updated_at.isoformat() == "2026-11-01T12:00:00+00:00"


# --- malformed payloads -------------------------------------------------------------------------


def test_missing_id_is_a_translation_error() -> None:
    body = order()
    del body["id"]
    with pytest.raises(translate.TranslationError, match="no id"):
        translate.order_snapshot(body, SHOP, "USD")
    with pytest.raises(translate.TranslationError):
        translate.order_snapshot([], SHOP, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", ["abc", "", None, "NaN", "Infinity", "1,00"])
def test_garbage_amount_is_a_translation_error(amount: Any) -> None:
    with pytest.raises(translate.TranslationError):
        snapshot(current_total_price_set=money_set("0", "0") | {"shop_money": {"amount": amount}})


def test_garbage_refund_amount_is_a_translation_error() -> None:
    with pytest.raises(translate.TranslationError):
        snapshot(refunds=[refund(1, transaction("ten dollars"))])


def test_garbage_timestamp_is_a_translation_error() -> None:
    with pytest.raises(translate.TranslationError):
        snapshot(updated_at="yesterday")


@pytest.mark.parametrize(
    ("topic", "raw"),
    [("orders/paid", b"{not json"), ("orders/paid", b"[1, 2]"), ("orders/paid", b'{"name": "#1"}'),
     ("refunds/create", b'{"id": 1}'), ("orders/paid", json.dumps(order(updated_at="soon")).encode())],
)  # fmt: skip
def test_connector_turns_translation_errors_into_malformed_deliveries(topic: str, raw: bytes) -> None:
    with pytest.raises(MalformedDelivery):
        ShopifyConnector().parse(topic, raw, Shop(id=1, domain=SHOP))
