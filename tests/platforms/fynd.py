"""Fynd's side of the tests: shipment events built from the canned one, signed and delivered as
Fynd does (a hex HMAC-SHA256 of the raw body in `x-fp-signature`, keyed with the sales channel's
extension API secret), and the test channel's books read back through the CLI."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.test import TestResponse

from app.shops import register_shop
from connectors.fynd import default_settings
from tests.helpers import clawback, post_webhook

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fynd"
CANNED = json.loads((FIXTURES / "shipment_update.json").read_text())
PING = json.loads((FIXTURES / "ping.json").read_text())
COMPANY = CANNED["company_id"]  # 12655
APPLICATION = CANNED["application_id"]
SHOP = f"fynd:{COMPANY}:{APPLICATION}"
CUSTOMER = CANNED["payload"]["shipment"]["user"]["user_oid"]
EMAIL = CANNED["payload"]["shipment"]["user"]["email"]
SECRET = "fynd-extension-api-secret"
SIGNATURE = "x-fp-signature"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
assert CANNED["event"]["created_timestamp"] == int(T0.timestamp() * 1000)


# --- payloads -------------------------------------------------------------------------------------


def compact(payload: Any) -> bytes:
    """The JSON bytes Fynd sends: compact."""
    return json.dumps(payload, separators=(",", ":")).encode()


def shipment_event(
    status: str = "delivery_done",
    *,
    shipment_id: str = "17061704638381968555",
    order_id: str = "FY65B2185E0EAE7612ED",
    amount: str = "500.00",
    at: int = 0,
    customer: str | None = CUSTOMER,
    codes: Sequence[str] = (),
    kind: str = "update",
    event_id: str | None = None,
    company: int = COMPANY,
    application: str = APPLICATION,
) -> dict[str, Any]:
    """The canned shipment event for one shipment, in `status`, `at` minutes into a sequence.
    `codes` are coupon codes on its bag (the shipment carries a redemption's code)."""
    body = copy.deepcopy(CANNED)
    moment = T0 + timedelta(minutes=at)
    iso = moment.isoformat().replace("+00:00", "Z")
    body["event"].update(type=kind, id=event_id or str(uuid.uuid4()), created_timestamp=int(moment.timestamp() * 1000))
    body.update(company_id=company, application_id=application)
    shipment = body["payload"]["shipment"]
    paid = float(Decimal(amount))
    shipment.update(shipment_id=shipment_id, order_id=order_id, status=status)
    shipment["shipment_status"].update(shipment_id=shipment_id, status=status, current_shipment_status=status,
                                       created_ts=iso, updated_ts=iso)  # fmt: skip
    shipment["prices"].update(price_marked=paid, price_effective=paid, amount_paid=paid)
    bag = shipment["bags"][0]
    bag["prices"].update(price_effective=paid, amount_paid=paid)
    bag["affiliate_bag_details"]["affiliate_meta"]["coupon_code"] = codes[0] if codes else ""
    shipment["order"].update(fynd_order_id=order_id)
    if customer is None:
        shipment["user"] = {"is_anonymous_user": True, "first_name": "Guest"}
    else:
        shipment["user"]["user_oid"] = customer
    return body


# --- signing and delivering -----------------------------------------------------------------------


def sign(body: bytes, secret: str = SECRET) -> str:
    """`x-fp-signature`: the hex HMAC-SHA256 of the raw body under the extension's API secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(body: bytes, *, secret: str = SECRET, event_id: str | None = None) -> dict[str, str]:
    """The headers of one delivery of `body`, signed; `x-fp-event-id` when an event id is given."""
    sent = {"Content-Type": "application/json", SIGNATURE: sign(body, secret)}
    if event_id:
        sent["x-fp-event-id"] = event_id
    return sent


def deliver(
    client: FlaskClient,
    payload: Any = None,
    *,
    body: bytes | None = None,
    secret: str = SECRET,
    changes: Mapping[str, str | None] | None = None,
    process: bool = True,
) -> TestResponse:
    """POST one delivery, then run the worker once (unless `process` is False). `body` replaces the
    compact JSON of `payload`; `changes` sets headers after signing (None removes one)."""
    raw = compact(payload) if body is None else body
    event_id = None
    if isinstance(payload, Mapping) and isinstance(payload.get("event"), Mapping) and payload["event"].get("id"):
        event_id = str(payload["event"]["id"])
    sent = headers(raw, secret=secret, event_id=event_id)
    return post_webhook(client, "fynd", raw, sent, changes=changes, process=process)


def accepted(client: FlaskClient, payload: Any = None, **kwargs: Any) -> TestResponse:
    """`deliver`, which must be answered 200."""
    response = deliver(client, payload, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


# --- our side: the test channel's books through the CLI -------------------------------------------


def install(app: Flask, domain: str = SHOP, secret: str = SECRET, **credentials: str) -> None:
    """A sales channel registered with the seed's defaults, as `clawback shop add --platform fynd` does."""
    svc = app.extensions["clawback"]
    with svc.db.session() as session:
        register_shop(session, svc.vault, platform="fynd", domain=domain, currency="INR",
                      credentials={"api_secret": secret, **credentials}, settings=default_settings())  # fmt: skip


def configure(runner: FlaskCliRunner, *pairs: str) -> None:
    """`clawback settings set KEY=VALUE ...` for the channel."""
    clawback(runner, "settings", "set", "--shop", SHOP, *pairs)


def balance(runner: FlaskCliRunner, customer: str = CUSTOMER) -> int:
    """The customer's available coins."""
    return int(json.loads(clawback(runner, "balance", "--shop", SHOP, "--customer", customer).stdout)["available"])


def redeem(runner: FlaskCliRunner, coins: int, code: str) -> None:
    """`clawback redeem` of the customer's coins under a code."""
    clawback(runner, "redeem", "--shop", SHOP, "--customer", CUSTOMER, "--coins", str(coins), "--code", code)


def ledger(runner: FlaskCliRunner, *filters: str) -> list[dict[str, Any]]:
    """The channel's ledger entries (`clawback ledger`, filtered)."""
    out = clawback(runner, "ledger", "--shop", SHOP, *filters).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def moves(runner: FlaskCliRunner, shipment: str) -> list[tuple[str, int]]:
    """(kind, coins) of every ledger entry of one shipment."""
    return [(e["kind"], e["coins_delta"]) for e in ledger(runner, "--order", shipment)]


def books_balance(runner: FlaskCliRunner) -> None:
    """`clawback check` finds the books balanced."""
    assert clawback(runner, "check").stdout.startswith("ok:")
