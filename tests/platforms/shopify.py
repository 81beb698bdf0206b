"""Shopify's side of the tests: orders built from Shopify's one canned order, signed and delivered
as Shopify does (the documented header set of headers_example.txt, a base64 HMAC-SHA256 of the raw
bytes), install queries signed as Shopify signs them, and the books of the test shop read back
through the CLI."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.test import TestResponse

from tests.conftest import SHOPIFY_API_KEY, SHOPIFY_API_SECRET
from tests.helpers import clawback, post_webhook

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"
CANNED = json.loads((FIXTURES / "orders_cancelled.json").read_text())
CANNED_REFUND = json.loads((FIXTURES / "refunds_create.json").read_text())
SHOP = "clawback-test.myshopify.com"
CUSTOMER = str(CANNED["customer"]["id"])  # 115310627314723954: over 2^53, as Shopify's ids are
ORDER = CANNED["id"]
EMAIL = CANNED["customer"]["email"]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HMAC_HEADER = "X-Shopify-Hmac-Sha256"


# --- payloads -----------------------------------------------------------------------------------


def compact(payload: Any) -> bytes:
    """The JSON bytes Shopify sends: compact."""
    return json.dumps(payload, separators=(",", ":")).encode()


def moment(at: int) -> str:
    """The ISO time `at` minutes after T0."""
    return (T0 + timedelta(minutes=at)).isoformat()


def money(amount: Decimal | str) -> dict[str, Any]:
    """A money set: the same amount in shop and presentment money, in USD."""
    value = f"{Decimal(amount):.2f}"
    return {"shop_money": {"amount": value, "currency_code": "USD"},
            "presentment_money": {"amount": value, "currency_code": "USD"}}  # fmt: skip


def refund_payload(refund_id: int, amount: str, *, order_id: int = ORDER, at: int = 0) -> dict[str, Any]:
    """A refund as refunds/create delivers it (and as it sits in an order's refunds[])."""
    body = copy.deepcopy(CANNED_REFUND)
    tx = {**body["transactions"][0], "id": refund_id + 1, "amount": amount, "created_at": moment(at)}
    body.update(id=refund_id, order_id=order_id, transactions=[tx], created_at=moment(at), processed_at=moment(at))
    return body


def order_payload(
    order_id: int = ORDER,
    *,
    at: int = 0,
    financial_status: str = "paid",
    total: str = "200.00",
    customer: str | None = CUSTOMER,
    refunds: Sequence[tuple[int, str]] = (),
    cancelled: bool = False,
    tags: str = "",
    codes: Sequence[str] = (),
) -> dict[str, Any]:
    """The canned order as it stands `at` minutes into a sequence: money in shop money, current
    total after refunds (as Shopify reports it), refunds with their transactions."""
    body = copy.deepcopy(CANNED)
    current = Decimal(total) - sum((Decimal(amount) for _, amount in refunds), Decimal(0))
    body.update(
        id=order_id,
        name=f"#{order_id - ORDER + 1001}",
        financial_status=financial_status,
        cancelled_at=moment(at) if cancelled else None,
        cancel_reason="customer" if cancelled else None,
        tags=tags,
        discount_codes=[{"code": code, "amount": "0.50", "type": "fixed_amount"} for code in codes],
        total_price=f"{Decimal(total):.2f}",
        total_price_set=money(total),
        current_total_price=f"{current:.2f}",
        current_total_price_set=money(current),
        refunds=[refund_payload(rid, amount, order_id=order_id, at=at) for rid, amount in refunds],
        created_at=moment(0),
        updated_at=moment(at),
    )
    if customer is None:
        body["customer"] = None
    else:
        body["customer"]["id"] = int(customer)
    return body


# --- signing and delivering ---------------------------------------------------------------------


def sign(body: bytes, secret: str = SHOPIFY_API_SECRET) -> str:
    """X-Shopify-Hmac-Sha256: the base64 HMAC-SHA256 of the raw body under the app's secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def headers(body: bytes, topic: str, *, secret: str = SHOPIFY_API_SECRET, shop: str = SHOP) -> dict[str, str]:
    """The headers of one delivery of `body`, signed, with a new webhook id."""
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        HMAC_HEADER: sign(body, secret),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2026-07",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-11-01T12:00:00.000000Z",
        "X-Shopify-Event-Id": str(uuid.uuid4()),
    }


def deliver(
    client: FlaskClient,
    topic: str,
    payload: Any = None,
    *,
    body: bytes | None = None,
    secret: str = SHOPIFY_API_SECRET,
    shop: str = SHOP,
    changes: Mapping[str, str | None] | None = None,
    process: bool = True,
) -> TestResponse:
    """POST one delivery, then run the worker once (unless `process` is False). `body` replaces the
    compact JSON of `payload`; `changes` sets headers after signing (None removes one)."""
    raw = compact(payload) if body is None else body
    sent = headers(raw, topic, secret=secret, shop=shop)
    return post_webhook(client, "shopify", raw, sent, changes=changes, process=process)


def accepted(client: FlaskClient, topic: str, payload: Any = None, **kwargs: Any) -> TestResponse:
    """`deliver`, which must be answered 200."""
    response = deliver(client, topic, payload, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def query_hmac(params: Mapping[str, str], secret: str = SHOPIFY_API_SECRET) -> str:
    """Shopify's query signature (install, callback), computed by ShopifyAPI itself (the app's secret
    is set up the same)."""
    import shopify

    shopify.Session.setup(api_key=SHOPIFY_API_KEY, secret=secret)
    try:
        return str(shopify.Session.calculate_hmac(dict(params)))
    finally:
        shopify.Session.setup(api_key=SHOPIFY_API_KEY, secret=SHOPIFY_API_SECRET)


def claims_for(shop: str, **changes: Any) -> dict[str, Any]:
    """The claims of a session token App Bridge would hand over for `shop` now, with `changes`."""
    now = int(time.time())
    # fmt: off
    claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": SHOPIFY_API_KEY, "sub": "42",
              "exp": now + 60, "nbf": now - 5, "iat": now - 5, "jti": str(uuid.uuid4()), "sid": uuid.uuid4().hex}
    # fmt: on
    return claims | changes


def b64(data: bytes) -> str:
    """Unpadded base64url, as in a JWT."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hs256(claims: Mapping[str, Any], secret: str = SHOPIFY_API_SECRET) -> str:
    """An HS256 JWT built by hand: PyJWT's encode refuses some claim types Shopify never sends."""
    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


# --- our side: the test shop's books through the CLI --------------------------------------------


def install(runner: FlaskCliRunner, shop: str = SHOP, token: str | None = None) -> None:
    """`clawback shop add --platform shopify` (with an access token when one is given)."""
    clawback(runner, "shop", "add", "--platform", "shopify", "--domain", shop, *(("--token", token) if token else ()))


def configure(runner: FlaskCliRunner, *pairs: str, shop: str = SHOP) -> None:
    """`clawback settings set KEY=VALUE ...` for the shop."""
    clawback(runner, "settings", "set", "--shop", shop, *pairs)


def balances(runner: FlaskCliRunner, customer: str = CUSTOMER, shop: str = SHOP) -> dict[str, int]:
    """The customer's available, pending and shortfall coins."""
    return dict(json.loads(clawback(runner, "balance", "--shop", shop, "--customer", customer).stdout))


def balance(runner: FlaskCliRunner, customer: str = CUSTOMER, shop: str = SHOP) -> int:
    """The customer's available coins."""
    return int(balances(runner, customer, shop)["available"])


def ledger(runner: FlaskCliRunner, *filters: str, shop: str = SHOP) -> list[dict[str, Any]]:
    """The shop's ledger entries (`clawback ledger`, filtered)."""
    out = clawback(runner, "ledger", "--shop", shop, *filters).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def moves(runner: FlaskCliRunner, order_id: int | str = ORDER, shop: str = SHOP) -> list[tuple[str, int]]:
    """(kind, coins) of every ledger entry of one order."""
    return [(e["kind"], e["coins_delta"]) for e in ledger(runner, "--order", str(order_id), shop=shop)]


def books_balance(runner: FlaskCliRunner) -> None:
    """`clawback check` finds the books balanced."""
    assert clawback(runner, "check").stdout.startswith("ok:")
