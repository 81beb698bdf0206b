"""WooCommerce's side of the tests: orders in the documented shape, delivered as WooCommerce does.

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

from connectors.woocommerce import delivery_headers

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "woocommerce"
STORE = "https://shop.example.com"
SECRET = "wc-webhook-secret-of-the-store"
CUSTOMER = "26"
BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def fixture(name: str) -> Any:
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


def headers(body: bytes, topic: str = "order.updated", *, delivery_id: str = "d1", secret: str = SECRET,
            store: str = STORE) -> dict[str, str]:  # fmt: skip
    return delivery_headers(body, secret, store, topic, delivery_id)
