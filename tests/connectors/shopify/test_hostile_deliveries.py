"""Signed Shopify deliveries with content no database can store, or nested deeper than a parser
can follow: each is answered 200, stored, and ends 'processed', 'ignored' or 'failed', never left
'received' (or a forged one is refused before anything is parsed); the books stay balanced.

These are the regression tests of the bugs the hostile-input sweep (tests/hostile) found in the
Shopify connector's verification and translation and in storing what they produce; each docstring
names the bug's letter. `installed` is the sweep's harness (tests/conftest.py) with its two shops.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from app.models import WebhookDelivery
from tests.hostile.payloads import T, mutate, order_body, refund_body, to_json
from tests.hostile.world import SHOP, World, fingerprint

AMENDMENT_TOPICS = ("refunds/create", "fulfillment_events/create", "returns/close")
DEEP_BODY = b'{"id": 1, "note": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # bug F


def settles(world: World, topic: str, body: bytes) -> WebhookDelivery:
    """Deliver `body` to SHOP: answered 200, stored, and settled (processed, ignored, or failed with
    last_error), with the books still balanced. The stored row."""
    webhook_id = str(uuid.uuid4())
    response = world.deliver(topic, body, webhook_id=webhook_id)
    assert response.status_code == 200, response.get_data(as_text=True)
    row = world.delivery(world.shop_ids[SHOP], webhook_id)
    assert row is not None
    assert row.status in ("processed", "ignored", "failed"), f"left {row.status}: {row.last_error}"
    if row.status == "failed":
        assert row.last_error
    assert world.violations() == []
    return row


def order_with(**changes: Any) -> bytes:
    """The compact order 4242 (never seen before) with fields set: `a__b__0=value` sets body[a][b][0]."""
    body = order_body(4242, 601, at="2026-11-02T12:00:00+00:00")  # an order never seen before
    for dotted, value in changes.items():
        path = tuple(int(p) if p.isdigit() else p for p in dotted.split("__"))
        body = mutate(body, path, "set", value)
    return to_json(body).encode()


DATA_REQUEST_SURROGATE = to_json({"customer": {"id": "\ud800"}, "data_request": {"id": 1}}).encode()
REDACT_SURROGATE = to_json({"customer": {"id": "\ud800"}, "orders_to_redact": ["\udfff"]}).encode()


def amended(topic: str, order_id: str) -> bytes:
    """An amendment (refund, delivery, return) of order `order_id`, otherwise well formed."""
    body = {
        "refunds/create": refund_body(order_id),
        "fulfillment_events/create": {"status": "delivered", "order_id": order_id, "happened_at": T},
        "returns/close": {"status": "closed", "order": {"id": order_id}, "updated_at": T},
    }[topic]
    return to_json(body).encode()


REFUND_1E30 = refund_body() | {
    "refund_line_items": [],
    "transactions": [{"kind": "refund", "status": "success", "amount": "1e30", "currency": "USD"}],
}


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        pytest.param("orders/paid", order_with(current_total_price_set=None, current_total_price="1" + "0" * 49),
                     id="50-digit total"),
        pytest.param("orders/paid", order_with(current_total_price_set=None, current_total_price="1e400"),
                     id="total '1e400'"),
        pytest.param("orders/paid", order_with(current_total_price_set=None, current_total_price=10**20),
                     id="total 10^20"),
        pytest.param("refunds/create", to_json(REFUND_1E30).encode(), id="refund 1e30"),
        pytest.param("orders/paid", order_with(total_price_set__shop_money__amount="1e30",
                                                total_price_set__presentment_money__amount="1e-30"),
                     id="presentment rate 1e60"),
    ],
)  # fmt: skip
def test_huge_amounts_fail_the_delivery(installed: World, topic: str, body: bytes) -> None:
    """Bug A of the hostile-input sweep (tests/hostile).

    Amounts beyond Decimal's precision or BIGINT (in totals, refunds, or through a presentment
    rate) raised InvalidOperation/OverflowError while processing; the delivery stayed 'received' and
    was retried. It must end 'failed'."""
    installed.seed()
    settles(installed, topic, body)


@pytest.mark.parametrize("email", [{"a": 1}, ["x@example.com"], 12345], ids=["object", "list", "number"])
def test_a_non_string_customer_email_is_never_stored(installed: World, email: Any) -> None:
    """Bug B of the hostile-input sweep (tests/hostile).

    An email that was an object or list reached the INSERT (sqlite3 cannot bind it; psycopg
    stored a list as '{x@example.com}')."""
    row = settles(installed, "orders/paid", order_with(customer__email=email, customer__id=777))
    with installed.db.session() as session:
        emails = session.exec(text("SELECT email FROM customers WHERE email IS NOT NULL")).all()  # type: ignore[call-overload]
    assert all(isinstance(e, str) and "@" in e and not e.startswith(("{", "[")) for (e,) in emails), (row, emails)


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        pytest.param("orders/paid", order_with(id="\ud800"), id="order id"),
        pytest.param("orders/paid", order_with(customer__id="\udfff"), id="customer id"),
        pytest.param("orders/paid", order_with(name="#\ud800"), id="order name"),
        pytest.param("orders/paid", order_with(customer__email="\ud800@example.com", customer__id=778), id="email"),
        pytest.param("customers/data_request", DATA_REQUEST_SURROGATE, id="data_request customer"),
        pytest.param("customers/redact", REDACT_SURROGATE, id="redact customer and order"),
    ],
)  # fmt: skip
def test_lone_surrogates_in_a_delivery_settle(installed: World, topic: str, body: bytes) -> None:
    """Bug C of the hostile-input sweep (tests/hostile).

    A lone surrogate escaped in JSON cannot be encoded for the database (UnicodeEncodeError)."""
    settles(installed, topic, body)


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        pytest.param("orders/paid", order_with(name="N" * 100), id="order name 100"),
        pytest.param("orders/paid", order_with(customer__email="e" * 400 + "@example.com", customer__id=779),
                     id="email 400"),
        pytest.param("orders/paid", order_with(id="1001\x00"), id="NUL in order id"),
        *[pytest.param(topic, amended(topic, order_id), id=f"{topic} order id {label}")
          for topic in AMENDMENT_TOPICS
          for order_id, label in (("x" * 100, "100 chars"), ("1001\x00", "NUL"), ("\ud800", "lone surrogate"))],
        pytest.param("customers/data_request",
                     to_json({"customer": {"id": "c" * 100}, "data_request": {"id": 1}}).encode(),
                     id="data_request customer 100"),
    ],
)  # fmt: skip
def test_long_or_nul_strings_in_a_delivery_settle(installed: World, topic: str, body: bytes) -> None:
    """Bug D of the hostile-input sweep (tests/hostile).

    NULs, lone surrogates and ids, names, emails longer than their VARCHAR columns reached the
    database (PostgreSQL refuses NUL and over-long values; neither driver can encode a lone surrogate)."""
    installed.seed()  # order 1001 exists, so amendments are looked up and applied
    settles(installed, topic, body)


@pytest.mark.parametrize("signed", [False, True], ids=["forged", "signed"])
def test_deeply_nested_json_is_refused_or_failed_never_a_500(installed: World, signed: bool) -> None:
    """Bug F of the hostile-input sweep (tests/hostile).

    shopifyapp json-parsed the body for its log before checking the HMAC; deep nesting raised
    RecursionError (a 500), signed or not. The HMAC is now checked on the bytes alone: a forged deep
    body is a 401 with nothing stored, a signed one is stored and fails as malformed (never a 500)."""
    before = fingerprint(installed.db)
    webhook_id = str(uuid.uuid4())
    response = installed.deliver("orders/paid", DEEP_BODY, signature=None if signed else "forged",
                                 webhook_id=webhook_id)  # fmt: skip
    installed.check_answer(response, "deep JSON")
    if not signed:
        assert response.status_code == 401
        assert fingerprint(installed.db) == before
        return
    assert response.status_code == 200
    row = installed.delivery(installed.shop_ids[SHOP], webhook_id)
    assert row is not None and row.status == "failed" and row.last_error


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("fulfillment_events/create", {"order_id": 1001, "status": "in_\ud800transit\x00"}),
        ("returns/close", {"order": {"id": 1001}, "status": "open\ud800"}),
    ],
)
def test_an_ignored_reason_quoting_a_lone_surrogate_settles(installed: World, topic: str, payload: Any) -> None:
    """Bug Q of the hostile-input sweep (tests/hostile).

    An ignored delivery's reason quoted the payload's status, lone surrogate included, into
    last_error; the commit could not encode it and the delivery stayed 'received' (found once D was
    closed)."""
    installed.seed()
    row = settles(installed, topic, to_json(payload).encode())
    assert row.status == "ignored" and row.last_error


@pytest.mark.parametrize(
    "code",
    [pytest.param("C<SCRIPT>\u202eEVIL\ufeff\x00", id="NUL"), pytest.param("SAVE\ud800", id="lone surrogate"),
     pytest.param("S" * 65, id="65 characters")],
)  # fmt: skip
def test_a_discount_code_no_redemption_can_have_is_processed(installed: World, code: str) -> None:
    """Bug S of the hostile-input sweep (tests/hostile).

    An order's discount codes went unchecked into the query that links redemptions by code:
    PostgreSQL refused the NUL, neither driver could encode the lone surrogate, and the delivery
    stayed 'received' (found by the sweep on PostgreSQL)."""
    installed.seed()
    row = settles(installed, "orders/updated", order_with(discount_codes=[{"code": code, "amount": "1.00"}]))
    assert row.status == "processed"


@pytest.mark.parametrize(
    "currency", [pytest.param("\ud800" * 40, id="lone surrogates"), pytest.param("US\x00D", id="NUL"),
                 pytest.param("U" * 300, id="300 characters")],
)  # fmt: skip
def test_an_order_currency_no_database_can_store_fails_the_delivery(installed: World, currency: str) -> None:
    """Bug T of the hostile-input sweep (tests/hostile).

    An order's currency was not checked; the earn rule quoted it into the ledger entry's
    explanation, whose INSERT could not encode it, and the delivery stayed 'received' (found by
    the sweep in CI, on SQLite)."""
    installed.seed()
    row = settles(installed, "orders/paid", order_with(currency=currency))
    assert row.status == "failed" and row.last_error and row.last_error.startswith("malformed:")
