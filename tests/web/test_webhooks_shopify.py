"""POST /webhooks/shopify end to end: signed exactly like Shopify signs, checked through the CLI.

Every delivery is a compact JSON body with the documented header set (headers_example.txt) and a
base64 HMAC-SHA256 of the raw bytes. Orders are copies of Shopify's one canned order with the
fields a sequence needs changed. Every refusal is checked to have stored nothing at all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func
from sqlmodel import SQLModel, select
from werkzeug.test import TestResponse

from app.db import Database
from app.models import Award, Customer, DataExport, LedgerEntry, Order, Redemption, Shop, WebhookDelivery, Writeback
from app.privacy import REDACTED_BODY
from tests.conftest import SHOPIFY_API_SECRET
from tests.helpers import clawback, deliveries, row_counts
from tests.platforms.shopify import (
    CUSTOMER,
    EMAIL,
    FIXTURES,
    HMAC_HEADER,
    ORDER,
    SHOP,
    accepted,
    balance,
    books_balance,
    compact,
    configure,
    deliver,
    install,
    ledger,
    moment,
    moves,
    order_payload,
    refund_payload,
    sign,
)
from web.cli import cli

TABLES: tuple[type[SQLModel], ...] = (Shop, Customer, Order, Award, Redemption, LedgerEntry, WebhookDelivery, Writeback,
                                      DataExport)  # fmt: skip


def counts(db: Database) -> dict[str, int]:
    return row_counts(db, *(m.__tablename__ for m in TABLES))  # type: ignore[attr-defined]


def one(db: Database, model: type[SQLModel]) -> Any:
    with db.session() as session:
        return session.exec(select(model)).one()


@pytest.fixture(autouse=True)
def registered(runner: FlaskCliRunner) -> None:
    """The shop is installed (with an access token, so there are credentials to clear)."""
    install(runner, SHOP, token="shpat_test_token")


# --- refusals: nothing parsed, nothing stored ---------------------------------------------------

PAID = order_payload()
RAW = compact(PAID)
HEX = hmac.new(SHOPIFY_API_SECRET.encode(), RAW, hashlib.sha256).hexdigest()
REFUSALS: dict[str, tuple[dict[str, Any], int]] = {
    "tampered body": ({"body": RAW.replace(b'"200.00"', b'"900.00"'), "changes": {HMAC_HEADER: sign(RAW)}}, 401),
    "hex hmac": ({"changes": {HMAC_HEADER: HEX}}, 401),
    "wrong secret": ({"secret": "not-the-app-secret"}, 401),
    "missing hmac": ({"changes": {HMAC_HEADER: None}}, 401),
    "empty hmac": ({"changes": {HMAC_HEADER: ""}}, 401),
    "non-ascii hmac": ({"changes": {HMAC_HEADER: "é" * 44}}, 401),
    "missing shop domain": ({"changes": {"X-Shopify-Shop-Domain": None}}, 400),
    "other domain": ({"shop": "evil.com"}, 400),
    "suffix attack": ({"shop": "x.myshopify.com.evil.com"}, 400),
    "missing webhook id": ({"changes": {"X-Shopify-Webhook-Id": None}}, 400),
    "blank webhook id": ({"changes": {"X-Shopify-Webhook-Id": "  "}}, 400),
    "missing topic": ({"changes": {"X-Shopify-Topic": None}}, 400),
    "unknown shop": ({"shop": "someone-else.myshopify.com"}, 404),
    "unknown shop, wrong secret": ({"shop": "someone-else.myshopify.com", "secret": "nope"}, 401),
}


@pytest.mark.parametrize(("kwargs", "status"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refused_delivery_stores_nothing(
    client: FlaskClient, runner: FlaskCliRunner, db: Database, kwargs: dict[str, Any], status: int
) -> None:
    accepted(client, "orders/create", order_payload(financial_status="pending"))
    before = counts(db)
    response = deliver(client, "orders/paid", PAID, **kwargs)
    assert response.status_code == status
    assert "error" in response.get_json()
    assert counts(db) == before
    assert ledger(runner) == []


def test_the_same_delivery_signed_properly_is_accepted(client: FlaskClient, runner: FlaskCliRunner) -> None:
    assert accepted(client, "orders/paid", PAID).get_json() == {"status": "accepted"}
    assert balance(runner) == 200


def test_body_over_the_size_limit_is_refused(client: FlaskClient, app: Flask, db: Database) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 1_000_000
    big = compact({**PAID, "note": "x" * limit})
    before = counts(db)
    assert deliver(client, "orders/paid", body=big).status_code == 413
    assert counts(db) == before


# --- the WSGI fast path (web.webhooks.WebhookIntake) and the Flask route answer alike ------------


def _via(client: FlaskClient, query: str, topic: str, payload: Any = None, **kwargs: Any) -> TestResponse:
    """`deliver`, through the fast path (no query string) or through Flask's route (one)."""
    if not query:
        return deliver(client, topic, payload, **kwargs)
    original = client.post
    client.post = lambda url, **kw: original(url + query, **kw)  # type: ignore[method-assign]
    try:
        return deliver(client, topic, payload, **kwargs)
    finally:
        client.post = original  # type: ignore[method-assign]


@pytest.mark.parametrize(("kwargs", "status"), REFUSALS.values(), ids=REFUSALS.keys())
def test_the_fast_path_and_the_route_refuse_alike(client: FlaskClient, kwargs: dict[str, Any], status: int) -> None:
    fast, route = (_via(client, q, "orders/paid", PAID, **kwargs) for q in ("", "?via=route"))
    assert (fast.status_code, fast.get_json()) == (route.status_code, route.get_json())
    assert fast.status_code == status and fast.mimetype == "application/json"


def test_the_fast_path_and_the_route_accept_alike(
    client: FlaskClient, app: Flask, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    store = app.extensions["clawback"].deliveries
    real = store.find_shop

    def spy(*args: Any, **kwargs: Any) -> Any:
        from flask import has_request_context

        seen.append(has_request_context())
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "find_shop", spy)
    first = deliver(client, "orders/paid", PAID, changes={"X-Shopify-Webhook-Id": "first-id"})
    again = _via(client, "?via=route", "orders/paid", PAID, changes={"X-Shopify-Webhook-Id": "other-id"})
    same = deliver(client, "orders/paid", PAID, changes={"X-Shopify-Webhook-Id": "first-id"})  # a duplicate
    monkeypatch.undo()
    assert [r.get_json() for r in (first, again, same)] == [{"status": "accepted"}] * 2 + [{"status": "duplicate"}]
    assert seen == [False, True, False]  # no Flask request context on the fast path
    big = compact({**PAID, "note": "x" * app.config["MAX_CONTENT_LENGTH"]})
    fast, route = (_via(client, q, "orders/paid", body=big) for q in ("", "?via=route"))
    assert (fast.status_code, fast.get_json()) == (route.status_code, route.get_json())
    assert fast.status_code == 413 and "larger than" in fast.get_json()["error"]
    assert len(deliveries(db)) == 2


def test_an_unexpected_error_on_the_fast_path_is_a_500_and_stores_nothing(
    client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(client.application.extensions["clawback"].deliveries, "accept", broken)
    response = deliver(client, "orders/paid", PAID)
    assert response.status_code == 500 and "nothing was stored" in response.get_json()["error"]
    assert deliveries(db) == []
    assert "webhook failed" in caplog.text


def test_small_body_limit_from_settings(make_app: Any, db: Database) -> None:
    client = make_app(max_body_bytes=4096).test_client()
    before = counts(db)
    assert deliver(client, "orders/paid", PAID).status_code == 413  # the canned order is ~15 kB
    assert counts(db) == before


def test_old_secret_is_accepted_while_rotating(make_app: Any, db: Database) -> None:
    client = make_app(shopify_api_secret="new-secret", shopify_old_api_secret="old-secret").test_client()
    accepted(client, "orders/create", order_payload(financial_status="pending"), secret="old-secret")
    accepted(client, "orders/paid", PAID, secret="new-secret")
    before = counts(db)
    assert deliver(client, "orders/updated", PAID, secret="unrelated-secret").status_code == 401
    assert deliver(client, "orders/updated", PAID, secret=SHOPIFY_API_SECRET).status_code == 401
    assert counts(db) == before
    assert [d.topic for d in deliveries(db)] == ["orders/create", "orders/paid"]


# --- storing and processing ---------------------------------------------------------------------


def test_malformed_json_under_a_valid_signature_is_stored_as_failed(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    assert accepted(client, "orders/paid", body=b'{"id": 1, "financial_status": ').get_json()["status"] == "accepted"
    (stored,) = deliveries(db)
    assert stored.status == "failed"
    assert stored.last_error and "malformed" in stored.last_error
    assert ledger(runner) == []


@pytest.mark.parametrize("body", [b"[1, 2, 3]", compact({"name": "#1001"}), compact(order_payload() | {"id": None})])
def test_well_formed_json_that_is_not_an_order_fails(client: FlaskClient, db: Database, body: bytes) -> None:
    accepted(client, "orders/updated", body=body)
    (stored,) = deliveries(db)
    assert (stored.status, stored.order_ref) == ("failed", None)


def test_duplicate_delivery_is_stored_and_counted_once(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    same = {"X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"}
    assert accepted(client, "orders/paid", PAID, changes=same).get_json()["status"] == "accepted"
    before = ledger(runner)
    assert accepted(client, "orders/paid", PAID, changes=same).get_json()["status"] == "duplicate"
    assert len(deliveries(db)) == 1
    assert ledger(runner) == before
    assert balance(runner) == 200


def test_delivery_is_stored_with_its_headers_but_never_its_signature(client: FlaskClient, db: Database) -> None:
    accepted(client, "orders/paid", PAID)
    (stored,) = deliveries(db)
    assert stored.body == RAW
    assert (stored.topic, stored.status, stored.order_ref, stored.customer_ref) == (
        "orders/paid", "processed", str(ORDER), CUSTOMER
    )  # fmt: skip
    assert stored.headers["X-Shopify-Shop-Domain"] == SHOP
    assert HMAC_HEADER not in stored.headers and HMAC_HEADER.lower() not in {k.lower() for k in stored.headers}


def test_unknown_topic_is_stored_and_ignored(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    accepted(client, "products/update", {"id": 788032119674292922, "title": "Example T-Shirt"})
    (stored,) = deliveries(db)
    assert (stored.status, stored.body) == ("ignored", b'{"id":788032119674292922,"title":"Example T-Shirt"}')
    assert ledger(runner) == []


@pytest.mark.parametrize(
    ("topic", "payload", "why"),
    [("products/update", {"id": 788032119674292922}, "products/update"),
     ("refunds/create", refund_payload(5001, "20.00"), "not seen yet")],
    ids=["unknown topic", "refund of an unseen order"],
)  # fmt: skip
def test_ignored_delivery_keeps_the_reason(
    client: FlaskClient, db: Database, topic: str, payload: Any, why: str
) -> None:
    accepted(client, topic, payload)
    (stored,) = deliveries(db)
    assert stored.status == "ignored"
    assert why in (stored.last_error or "")


def test_orders_edited_is_ignored(client: FlaskClient, db: Database) -> None:
    accepted(client, "orders/edited", json.loads((FIXTURES / "orders_edited.json").read_text()))
    assert [d.status for d in deliveries(db)] == ["ignored"]


def test_refund_for_an_order_never_seen_changes_nothing(client: FlaskClient, db: Database) -> None:
    accepted(client, "refunds/create", refund_payload(5001, "20.00"))
    (stored,) = deliveries(db)
    assert (stored.status, stored.order_ref) == ("ignored", str(ORDER))
    assert counts(db)["ledger_entries"] == 0


# --- Nector: revert on cancel or tag, once ------------------------------------------------------


@pytest.mark.parametrize(
    "cancel",
    [order_payload(at=20, financial_status="voided", cancelled=True),
     order_payload(at=20, financial_status="refunded", cancelled=True, refunds=[(5001, "200.00")])],
    ids=["voided", "refunded"],
)  # fmt: skip
def test_nector_cancel_reverts_200_once(client: FlaskClient, runner: FlaskCliRunner, cancel: dict[str, Any]) -> None:
    configure(runner, "revert.enabled=true")
    accepted(client, "orders/create", order_payload(financial_status="pending"))
    assert ledger(runner) == []
    accepted(client, "orders/paid", order_payload(at=10))
    assert balance(runner) == 200
    accepted(client, "orders/cancelled", cancel)
    accepted(client, "orders/cancelled", cancel)  # Shopify re-sends it under a new webhook id
    accepted(client, "orders/updated", cancel)  # and the same state comes once more as an update
    assert balance(runner) == 0
    assert moves(runner) == [("earn", 200), ("revert", -200)]
    revert = ledger(runner)[-1]
    assert revert["reason"] == "order_cancelled"
    assert revert["explanation"].startswith("Order #1001 was cancelled; 200 coins earned on it were reverted")
    books_balance(runner)


def test_nector_tag_reverts_200_once(client: FlaskClient, runner: FlaskCliRunner) -> None:
    configure(runner, "revert.enabled=true", "revert.tags=cancelled order, refunded-order")
    accepted(client, "orders/paid", order_payload(tags="vip"))
    assert balance(runner) == 200
    tagged = order_payload(at=5, tags="vip, Cancelled Order")
    accepted(client, "orders/updated", tagged)
    accepted(client, "orders/updated", tagged)
    accepted(client, "orders/updated", order_payload(at=9, tags="vip,  cancelled order ,REFUNDED-ORDER"))
    assert balance(runner) == 0
    assert moves(runner) == [("earn", 200), ("revert", -200)]
    assert ledger(runner)[-1]["reason"] == "order_tagged"
    books_balance(runner)


# --- Rise: percent rate, partial refunds, never more than earned --------------------------------

RISE = (
    ("orders/paid", order_payload(total="100.00")),
    ("refunds/create", refund_payload(5001, "20.00", at=10)),
    ("orders/updated", order_payload(at=20, total="100.00", financial_status="partially_refunded",
                                     refunds=[(5001, "20.00"), (5002, "30.00")])),
    ("orders/updated", order_payload(at=30, total="100.00", financial_status="refunded",
                                     refunds=[(5001, "20.00"), (5002, "30.00"), (5003, "50.00")])),
)  # fmt: skip


def test_rise_partial_refunds_revert_proportionally(client: FlaskClient, runner: FlaskCliRunner) -> None:
    configure(runner, "earn.mode=percent", "earn.rate=10", "revert.enabled=true")
    seen = []
    for topic, payload in RISE:
        accepted(client, topic, payload)
        seen.append(balance(runner))
    assert seen == [1000, 800, 500, 0]
    entries = ledger(runner, "--order", str(ORDER))
    assert [e["coins_delta"] for e in entries] == [1000, -200, -300, -500]
    assert entries[1]["explanation"].startswith("Order #1001 was refunded 20.00 of 100.00 USD; 200 coins")
    books_balance(runner)


@pytest.mark.parametrize("steps", [3, 4])
def test_rise_out_of_order_ends_in_the_same_balance(client: FlaskClient, runner: FlaskCliRunner, steps: int) -> None:
    configure(runner, "earn.mode=percent", "earn.rate=10", "revert.enabled=true")
    for topic, payload in reversed(RISE[:steps]):
        accepted(client, topic, payload)
    for topic, payload in RISE[:steps]:  # and everything once more, in order, under new ids
        accepted(client, topic, payload)
    assert balance(runner) == {3: 500, 4: 0}[steps]
    deltas = [e["coins_delta"] for e in ledger(runner)]
    assert sum(d for d in deltas if d > 0) <= 1000
    assert -sum(d for d in deltas if d < 0) <= sum(d for d in deltas if d > 0)
    books_balance(runner)


def in_yen(payload: dict[str, Any], yen_per_dollar: int = 150) -> dict[str, Any]:
    """The same order presented to the buyer in JPY: shop money stays USD, transactions are in yen."""
    for key in ("total_price_set", "current_total_price_set"):
        dollars = Decimal(payload[key]["shop_money"]["amount"])
        payload[key]["presentment_money"] = {"amount": f"{dollars * yen_per_dollar:.0f}", "currency_code": "JPY"}
    for refund in payload["refunds"]:
        for tx in refund["transactions"]:
            tx.update(amount=f"{Decimal(tx['amount']) * yen_per_dollar:.0f}", currency="JPY")
    return payload | {"presentment_currency": "JPY"}


def test_shipping_refund_in_another_presentment_currency(client: FlaskClient, runner: FlaskCliRunner) -> None:
    configure(runner, "revert.enabled=true")
    accepted(client, "orders/paid", in_yen(order_payload(total="100.00")))
    assert balance(runner) == 100
    refund = refund_payload(5001, "1500", at=10)
    refund["transactions"][0]["currency"] = "JPY"
    shipping = {
        "id": 1,
        "subtotal_amount_set": {
            "shop_money": {"amount": "10.00", "currency_code": "USD"},
            "presentment_money": {"amount": "1500", "currency_code": "JPY"},
        },
    }
    accepted(client, "refunds/create", refund | {"refund_line_items": [], "refund_shipping_lines": [shipping]})
    refunded = order_payload(at=20, total="100.00", financial_status="partially_refunded", refunds=[(5001, "10.00")])
    accepted(client, "orders/updated", in_yen(refunded))
    assert balance(runner) == 90


# --- Fynd: coins spent through a code come back when the order is cancelled ---------------------


def test_fynd_redeemed_code_is_returned_on_cancel(client: FlaskClient, runner: FlaskCliRunner) -> None:
    accepted(client, "orders/paid", order_payload(total="500.00"))
    assert balance(runner) == 500
    clawback(runner, "redeem", "--shop", SHOP, "--customer", CUSTOMER, "--coins", "50", "--code", "SAVE-ABC")
    assert balance(runner) == 450
    spent_on = ORDER + 1
    accepted(client, "orders/create", order_payload(spent_on, total="10.00", financial_status="pending",
                                                    codes=["save-abc"]))  # fmt: skip
    assert balance(runner) == 450
    cancel = order_payload(spent_on, at=5, total="10.00", financial_status="voided", cancelled=True, codes=["save-abc"])
    accepted(client, "orders/cancelled", cancel)
    accepted(client, "orders/cancelled", cancel)
    assert balance(runner) == 500
    assert moves(runner, spent_on) == [("redeem_refund", 50)]
    books_balance(runner)


# --- guests, delivery-triggered earning ---------------------------------------------------------


def test_guest_order_is_accepted_and_earns_nothing(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    accepted(client, "orders/paid", order_payload(customer=None))
    (stored,) = deliveries(db)
    assert (stored.status, stored.customer_ref) == ("processed", None)
    assert counts(db)["customers"] == 0
    assert ledger(runner) == []


def fulfillment_event(status: str, order_id: int = ORDER, at: int = 30) -> dict[str, Any]:
    """A fulfillment_events/create body, as in Shopify's webhook reference."""
    return {"id": 944956395, "fulfillment_id": 123456, "status": status, "message": None, "happened_at": moment(at),
            "city": None, "province": None, "country": None, "zip": None, "address1": None, "latitude": None,
            "longitude": None, "shop_id": 548380009, "created_at": moment(at), "updated_at": moment(at),
            "estimated_delivery_at": None, "order_id": order_id,
            "admin_graphql_api_id": "gid://shopify/FulfillmentEvent/944956395"}  # fmt: skip


def test_delivered_trigger_earns_on_the_fulfillment_event(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    configure(runner, "earn.trigger=delivered")
    accepted(client, "orders/paid", order_payload())
    accepted(client, "fulfillment_events/create", fulfillment_event("in_transit"))
    assert balance(runner) == 0
    accepted(client, "fulfillment_events/create", fulfillment_event("delivered"))
    accepted(client, "fulfillment_events/create", fulfillment_event("delivered", at=31))
    assert balance(runner) == 200
    assert moves(runner) == [("earn", 200)]
    assert [d.status for d in deliveries(db)] == ["processed", "ignored", "processed", "processed"]


# --- compliance and uninstall -------------------------------------------------------------------


def compliance(name: str, **changes: Any) -> dict[str, Any]:
    body = json.loads((FIXTURES / f"{name}.json").read_text())
    body["shop_domain"] = SHOP
    if "customer" in body:
        body["customer"]["id"] = int(CUSTOMER)
    return body | changes


@pytest.fixture
def customer_with_history(client: FlaskClient, runner: FlaskCliRunner) -> None:
    """200 earned on one order, 50 of it spent, a refund on another order."""
    configure(runner, "revert.enabled=true")
    accepted(client, "orders/paid", order_payload())
    clawback(runner, "redeem", "--shop", SHOP, "--customer", CUSTOMER, "--coins", "50", "--code", "SAVE-ABC")
    accepted(client, "orders/paid", order_payload(ORDER + 1, total="100.00"))
    accepted(client, "refunds/create", refund_payload(5001, "40.00", order_id=ORDER + 1, at=5))
    assert balance(runner) == 200 + 100 - 50 - 40


def test_data_request_exports_the_customers_balance(
    client: FlaskClient, db: Database, customer_with_history: None
) -> None:
    accepted(client, "customers/data_request", compliance("customers_data_request", orders_requested=[ORDER]))
    export = one(db, DataExport)
    assert (export.customer_ref, export.request_id) == (CUSTOMER, "9999")
    assert export.payload["held"] is True
    assert export.payload["email"] == EMAIL
    assert export.payload["balances"] == {"available": 210, "pending": 0, "shortfall": 0}
    assert {e["order_id"] for e in export.payload["ledger"]} == {str(ORDER), str(ORDER + 1), None}
    assert export.payload["redemptions"][0]["code"] == "SAVE-ABC"


def test_data_request_for_a_customer_never_seen(client: FlaskClient, db: Database) -> None:
    accepted(client, "customers/data_request", compliance("customers_data_request"))
    assert one(db, DataExport).payload == {"shop": SHOP, "customer_id": CUSTOMER, "held": False}


def test_customer_redact_erases_the_person_and_keeps_the_sums(
    client: FlaskClient, runner: FlaskCliRunner, db: Database, customer_with_history: None
) -> None:
    accepted(client, "customers/data_request", compliance("customers_data_request"))
    before = ledger(runner)
    accepted(client, "customers/redact", compliance("customers_redact", orders_to_redact=[ORDER, ORDER + 1]))
    customer = one(db, Customer)
    assert customer.email is None and customer.tags == []
    assert customer.platform_customer_id == f"redacted-{customer.id}"
    assert balance(runner, customer.platform_customer_id) == 210
    assert runner.invoke(cli, ["balance", "--shop", SHOP, "--customer", CUSTOMER]).exit_code == 2
    of_orders = [d for d in deliveries(db) if d.order_ref in (str(ORDER), str(ORDER + 1))]
    assert len(of_orders) == 3
    assert {d.body for d in of_orders} == {REDACTED_BODY}
    assert json.loads(REDACTED_BODY) == {"redacted": True}
    assert all(d.headers == {} for d in of_orders)
    with db.session() as session:
        snapshots = [o.snapshot for o in session.exec(select(Order))]
        assert session.exec(select(func.count()).select_from(DataExport)).one() == 0
    assert {s["customer_id"] for s in snapshots} == {customer.platform_customer_id}
    assert {s["customer_email"] for s in snapshots} == {None}
    after = ledger(runner)
    assert [(e["kind"], e["coins_delta"]) for e in after] == [(e["kind"], e["coins_delta"]) for e in before]
    books_balance(runner)


def test_customer_redact_leaves_no_stored_body_naming_the_customer(
    client: FlaskClient, db: Database, customer_with_history: None
) -> None:
    accepted(client, "customers/data_request", compliance("customers_data_request"))
    accepted(client, "customers/redact", compliance("customers_redact", orders_to_redact=[ORDER, ORDER + 1]))
    naming = [d.topic for d in deliveries(db) if EMAIL.encode() in d.body or CUSTOMER.encode() in d.body]
    assert naming == []


def test_shop_redact_erases_the_shop_and_everything_in_it(
    client: FlaskClient, runner: FlaskCliRunner, db: Database, customer_with_history: None
) -> None:
    accepted(client, "customers/data_request", compliance("customers_data_request"))
    assert accepted(client, "shop/redact", compliance("shop_redact")).get_json()["status"] == "accepted"
    assert counts(db) == dict.fromkeys(counts(db), 0)
    books_balance(runner)
    # Gone means unknown: a later compliance delivery is answered 200, anything else is refused.
    assert (
        accepted(client, "shop/redact", compliance("shop_redact")).get_json()["status"] == "nothing held for this shop"
    )
    assert deliver(client, "orders/paid", PAID).status_code == 404


@pytest.mark.parametrize("topic", ["customers/data_request", "customers/redact", "shop/redact"])
def test_compliance_for_an_unknown_shop_is_answered_200(client: FlaskClient, db: Database, topic: str) -> None:
    before = counts(db)
    name = topic.replace("/", "_")
    response = accepted(client, topic, compliance(name) | {"shop_domain": "gone.myshopify.com"},
                        shop="gone.myshopify.com")  # fmt: skip
    assert response.get_json() == {"status": "nothing held for this shop"}
    assert counts(db) == before


def test_compliance_for_an_unknown_shop_still_needs_a_signature(client: FlaskClient, db: Database) -> None:
    before = counts(db)
    response = deliver(client, "shop/redact", compliance("shop_redact"), shop="gone.myshopify.com", secret="x")
    assert response.status_code == 401
    assert counts(db) == before


def test_app_uninstalled_clears_credentials_and_keeps_data(
    client: FlaskClient, runner: FlaskCliRunner, db: Database, customer_with_history: None
) -> None:
    assert one(db, Shop).credentials is not None
    before = counts(db)
    accepted(client, "app/uninstalled", json.loads((FIXTURES / "app_uninstalled.json").read_text()))
    shop = one(db, Shop)
    assert shop.uninstalled_at is not None
    assert shop.credentials is None
    assert counts(db) == before | {"webhook_deliveries": before["webhook_deliveries"] + 1}
    assert balance(runner) == 210
    books_balance(runner)
