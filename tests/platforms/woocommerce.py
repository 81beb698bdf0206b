"""WooCommerce's side of the tests: orders in the documented shape, delivered as WooCommerce does,
and the test store's books read back through the CLI.

Orders start from the REST documentation's own example (`wc_v3_order_723_completed_partial_refunds
.json`: customer 26, total 39.00, two refunds with negative totals) and are changed field by field,
so every payload keeps the documented shape. Deliveries carry exactly the headers WC_Webhook::deliver
sends, with the body's base64 HMAC-SHA256 in X-WC-Webhook-Signature.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.test import TestResponse

from connectors.woocommerce import delivery_headers
from tests.helpers import clawback, post_webhook

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "woocommerce"
STORE = "https://shop.example.com"
SECRET = "wc-webhook-secret-of-the-store"
CUSTOMER = "26"
BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_serial = iter(range(1, 1_000_000))


# --- payloads -------------------------------------------------------------------------------------


def fixture(name: str) -> Any:
    """One of the REST documentation's examples in tests/fixtures/woocommerce."""
    return json.loads((FIXTURES / name).read_text())


def order(
    order_id: int = 723,
    status: str = "processing",
    *,
    total: str = "100.00",
    refunds: tuple[tuple[int, str], ...] = (),
    customer_id: int = 26,
    minutes: int = 0,
    coupons: tuple[str, ...] = (),
    meta: tuple[tuple[str, Any], ...] = (),
) -> dict[str, Any]:
    """The documented order 723 with these facts; `minutes` after BASE is its date_modified_gmt."""
    body = copy.deepcopy(fixture("wc_v3_order_723_completed_partial_refunds.json"))
    modified = (BASE + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S")
    body.update(
        id=order_id, number=str(order_id), status=status, total=total, customer_id=customer_id,
        date_modified_gmt=modified, date_modified=modified,
        refunds=[{"id": rid, "reason": "", "total": amount} for rid, amount in refunds],
        coupon_lines=[{"id": 900 + i, "code": code, "discount": "5.00", "discount_tax": "0.00", "meta_data": []}
                      for i, code in enumerate(coupons)],
        meta_data=[{"id": 13000 + i, "key": key, "value": value} for i, (key, value) in enumerate(meta)],
    )  # fmt: skip
    return body


def encode(payload: Any) -> bytes:
    """As WooCommerce encodes it: `trim(wp_json_encode($payload))`, compact, slashes escaped."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


# --- signing and delivering -----------------------------------------------------------------------


def headers(body: bytes, topic: str = "order.updated", *, delivery_id: str = "d1", secret: str = SECRET,
            store: str = STORE) -> dict[str, str]:  # fmt: skip
    """The headers WC_Webhook::deliver sends with `body`, signed (the app's own builder of them)."""
    return delivery_headers(body, secret, store, topic, delivery_id)


def deliver(
    client: FlaskClient,
    payload: Any,
    topic: str = "order.updated",
    *,
    delivery_id: str | None = None,
    secret: str = SECRET,
    store: str = STORE,
    body: bytes | None = None,
    changes: dict[str, str | None] | None = None,
    process: bool = True,
) -> TestResponse:
    """POST one delivery, then run the worker once (unless `process` is False). `body` replaces the
    encoded `payload`; `changes` sets headers after signing (None removes one); every delivery gets
    a new delivery id unless one is given."""
    raw = encode(payload) if body is None else body
    sent = headers(raw, topic, delivery_id=delivery_id or f"hash-{next(_serial)}", secret=secret, store=store)
    return post_webhook(client, "woocommerce", raw, sent, changes=changes, process=process)


def accepted(client: FlaskClient, payload: Any, topic: str = "order.updated", **kwargs: Any) -> TestResponse:
    """`deliver`, which must be answered 200."""
    response = deliver(client, payload, topic, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


# --- our side: the test store's books through the CLI ---------------------------------------------


def install(runner: FlaskCliRunner) -> None:
    """The store registered by hand (`clawback shop add`), reverting on every status it offers."""
    clawback(
        runner,
        "shop",
        "add",
        "--platform",
        "woocommerce",
        "--url",
        STORE + "/",
        "--webhook-secret",
        SECRET,
        "--currency",
        "USD",
    )
    configure(runner, "revert.enabled=true", "revert.statuses=refunded,cancelled,partially_refunded,returned")


def configure(runner: FlaskCliRunner, *pairs: str) -> None:
    """`clawback settings set KEY=VALUE ...` for the store."""
    clawback(runner, "settings", "set", "--shop", STORE, *pairs)


def balances(runner: FlaskCliRunner, customer: str = CUSTOMER) -> dict[str, int]:
    """The customer's available, pending and shortfall coins."""
    return dict(json.loads(clawback(runner, "balance", "--shop", STORE, "--customer", customer).stdout))


def balance(runner: FlaskCliRunner, customer: str = CUSTOMER) -> int:
    """The customer's available coins."""
    return int(balances(runner, customer)["available"])


def moves(runner: FlaskCliRunner, order_id: str = "723") -> list[tuple[str, int]]:
    """(kind, coins) of every ledger entry of one order."""
    out = clawback(runner, "ledger", "--shop", STORE, "--order", order_id).stdout
    return [(e["kind"], e["coins_delta"]) for e in (json.loads(line) for line in out.splitlines() if line.strip())]
