"""Shopify's side as the hostile-input sweep writes it: compact payloads with every field the
translation reads, JSON text json.dumps cannot produce, and the paths a mutation can reach.

The regression tests of the bugs the sweep found build their bodies from these too.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.platforms.shopify import SHOP

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shopify"


class Raw(str):
    """JSON text written as is: literals json.dumps cannot produce (1e400, 50-digit numbers, -0)."""


def to_json(value: Any, ascii_only: bool = True) -> str:
    """Compact JSON; surrogates and NULs travel as \\u escapes, NaN/Infinity as Python writes them."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k), ascii_only)}:{to_json(v, ascii_only)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v, ascii_only) for v in value) + "]"
    if isinstance(value, str) and not ascii_only and not re.search(r"[\ud800-\udfff]", value):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def money(amount: str) -> dict[str, Any]:
    return {
        "shop_money": {"amount": amount, "currency_code": "USD"},
        "presentment_money": {"amount": amount, "currency_code": "USD"},
    }


T = "2026-11-01T12:00:00+00:00"
ORDER_POOL = [1001, 1002, 1003, "1004", 115310627314723954]
CUSTOMER_POOL = [501, 502, "503", 207119551]


# fmt: off
def order_body(order_id: Any = 1001, customer_id: Any = 501, status: str = "paid", at: str = T) -> dict[str, Any]:
    """A compact orders/* payload with every field the translation reads, in Shopify's shapes."""
    return {
        "id": order_id, "name": f"#{order_id}", "email": "buyer@example.com", "currency": "USD",
        "financial_status": status, "fulfillment_status": None, "cancelled_at": None, "created_at": T, "updated_at": at,
        "tags": "vip, spring", "total_price": "120.00", "current_total_price": "100.00",
        "total_price_set": money("120.00"), "current_total_price_set": money("100.00"),
        "discount_codes": [{"code": "HOSTILE10", "amount": "10.00", "type": "fixed_amount"}],
        "customer": {"id": customer_id, "email": "c@example.com", "tags": "loyal"},
        "refunds": [{"id": 9001, "order_id": order_id, "created_at": T, "processed_at": T,
                     "transactions": [{"id": 1, "kind": "refund", "status": "success", "amount": "20.00",
                                       "currency": "USD"}],
                     "refund_line_items": [{"subtotal_set": money("20.00")}]}],
        "fulfillments": [{"shipment_status": "in_transit"}], "returns": [{"status": "requested"}],
    }


def refund_body(order_id: Any = 1001, refund_id: Any = 9002) -> dict[str, Any]:
    return {
        "id": refund_id, "order_id": order_id, "created_at": T, "processed_at": T,
        "transactions": [{"id": 2, "kind": "refund", "status": "success", "amount": "5.00", "currency": "USD"}],
        "refund_line_items": [{"subtotal_set": money("5.00")}], "refund_shipping_lines": [], "order_adjustments": [],
    }


def _fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


CANNED_ORDER = _fixture("orders_cancelled")
# The other topics' payloads, given an order id and a customer id from the pools.
BASES: dict[str, Callable[[Any, Any], dict[str, Any]]] = {
    "refunds/create": lambda order, customer: refund_body(order),
    "fulfillment_events/create": lambda order, customer: {"id": 1, "order_id": order, "status": "delivered",
                                                          "happened_at": T, "created_at": T},
    "returns/close": lambda order, customer: {"id": 1, "status": "closed", "order": {"id": order}, "updated_at": T},
    "app/uninstalled": lambda order, customer: _fixture("app_uninstalled"),
    "customers/data_request": lambda order, customer: {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": customer, "email": "c@example.com"},
        "orders_requested": [order], "data_request": {"id": 9999}},
    "customers/redact": lambda order, customer: {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": customer}, "orders_to_redact": [order]},
    "shop/redact": lambda order, customer: {"shop_id": 1, "shop_domain": SHOP},
    "orders/edited": lambda order, customer: _fixture("orders_edited"),
}
# Where the content matters (paths of keys and list indexes); three mutations in four land here.
FOCUS: dict[str, list[tuple[Any, ...]]] = {
    "order": [
        ("id",), ("name",), ("email",), ("currency",), ("financial_status",), ("fulfillment_status",),
        ("cancelled_at",), ("updated_at",), ("created_at",), ("tags",), ("total_price",), ("current_total_price",),
        ("current_total_price_set",), ("current_total_price_set", "shop_money"),
        ("current_total_price_set", "shop_money", "amount"), ("total_price_set",),
        ("total_price_set", "shop_money", "amount"), ("total_price_set", "presentment_money", "amount"),
        ("discount_codes",), ("discount_codes", 0), ("discount_codes", 0, "code"), ("customer",), ("customer", "id"),
        ("customer", "email"), ("customer", "tags"), ("refunds",), ("refunds", 0), ("refunds", 0, "id"),
        ("refunds", 0, "transactions"), ("refunds", 0, "transactions", 0, "amount"),
        ("refunds", 0, "transactions", 0, "kind"), ("refunds", 0, "transactions", 0, "status"), ("fulfillments",),
        ("fulfillments", 0), ("fulfillments", 0, "shipment_status"), ("returns",), ("returns", 0, "status"),
    ],
    "refunds/create": [
        ("id",), ("order_id",), ("processed_at",), ("created_at",), ("transactions",), ("transactions", 0),
        ("transactions", 0, "amount"), ("transactions", 0, "currency"), ("refund_line_items",),
        ("refund_line_items", 0, "subtotal_set"), ("refund_line_items", 0, "subtotal_set", "shop_money", "amount"),
        ("refund_line_items", 0, "subtotal_set", "presentment_money", "amount"), ("refund_shipping_lines",),
        ("order_adjustments",),
    ],
    "fulfillment_events/create": [("order_id",), ("status",), ("happened_at",), ("created_at",)],
    "returns/close": [("order",), ("order", "id"), ("status",), ("updated_at",)],
    "customers/data_request": [("customer",), ("customer", "id"), ("data_request",), ("data_request", "id"),
                               ("orders_requested",)],
    "customers/redact": [("customer",), ("customer", "id"), ("orders_to_redact",), ("orders_to_redact", 0)],
    "shop/redact": [("shop_domain",), ("shop_id",)],
    "app/uninstalled": [("id",), ("domain",), ("myshopify_domain",)],
    "orders/edited": [("order_edit",), ("order_edit", "order_id")],
}
# fmt: on


def paths_of(node: Any, prefix: tuple[Any, ...] = (), depth: int = 0) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if depth > 5:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths_of(value, (*prefix, key), depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node[:3]):
            yield from paths_of(value, (*prefix, index), depth + 1)


def has_path(body: Any, path: tuple[Any, ...]) -> bool:
    for key in path:
        in_dict = isinstance(body, dict) and isinstance(key, str) and key in body
        if not (in_dict or (isinstance(body, list) and isinstance(key, int) and key < len(body))):
            return False
        body = body[key]
    return True


def mutate(body: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    """A copy of `body` with the node at `path` replaced, deleted or wrapped in a list."""
    if not path:
        return value if op == "set" else [body]
    body = copy.deepcopy(body)
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "wrap":
        parent[last] = [parent[last]]
    else:
        parent[last] = value
    return body
