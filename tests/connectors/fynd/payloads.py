"""Fynd's side of the tests: shipment events built from the canned one, signed as Fynd signs them."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fynd"
CANNED = json.loads((FIXTURES / "shipment_update.json").read_text())
PING = json.loads((FIXTURES / "ping.json").read_text())
COMPANY = CANNED["company_id"]  # 12655
APPLICATION = CANNED["application_id"]
SHOP = f"fynd:{COMPANY}:{APPLICATION}"
CUSTOMER = CANNED["payload"]["shipment"]["user"]["user_oid"]
EMAIL = CANNED["payload"]["shipment"]["user"]["email"]
SECRET = "fynd-extension-api-secret"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
assert CANNED["event"]["created_timestamp"] == int(T0.timestamp() * 1000)


def compact(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    """`x-fp-signature`: the hex HMAC-SHA256 of the raw body under the extension's API secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
