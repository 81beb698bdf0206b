"""Reconciliation against recorded Admin GraphQL pages: a webhook that never arrived still ends in
the right balance, and the report says what was corrected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import Result
from flask.testing import FlaskCliRunner

from web.cli import cli

SHOP = "reconcile-test.myshopify.com"


def order_node(
    order_id: str,
    *,
    status: str = "PAID",
    cancelled: bool = False,
    total: str = "120.00",
    refunds: tuple[tuple[str, str], ...] = (),
    updated: str = "2026-11-20T10:00:00Z",
) -> dict[str, Any]:
    """An order node as the `orders` query returns it (fields as in connectors/shopify/client.py)."""
    return {
        "legacyResourceId": order_id,
        "name": f"#{order_id}",
        "updatedAt": updated,
        "createdAt": updated,
        "cancelledAt": updated if cancelled else None,
        "displayFinancialStatus": status,
        "displayFulfillmentStatus": "UNFULFILLED",
        "tags": [],
        "discountCodes": [],
        "currencyCode": "USD",
        "currentTotalPriceSet": {"shopMoney": {"amount": total, "currencyCode": "USD"}},
        "customer": {"legacyResourceId": "501", "email": "r@example.com", "tags": []},
        "refunds": [
            {
                "legacyResourceId": rid,
                "createdAt": updated,
                "totalRefundedSet": {"shopMoney": {"amount": amount, "currencyCode": "USD"}},
            }
            for rid, amount in refunds
        ],
        "fulfillments": [],
        "returns": {"nodes": []},
    }


def page(nodes: list[dict[str, Any]], cursor: str | None) -> dict[str, Any]:
    return {
        "data": {"orders": {"pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor}, "nodes": nodes}},
        "extensions": {
            "cost": {
                "requestedQueryCost": 52,
                "actualQueryCost": 20,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1980, "restoreRate": 100.0},
            }
        },
    }


class AdminAPI:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages, self.requests = pages, []  # type: ignore[var-annotated]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.path == "/admin/api/2026-07/graphql.json"
        assert request.headers["X-Shopify-Access-Token"] == "shpat_reconcile"
        return httpx.Response(200, json=self.pages[len(self.requests) - 1])


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> Iterator[AdminAPI]:
    from shopify_app.utils import http_client

    api = AdminAPI([])
    original = http_client.HTTPClientContext.__init__

    def init(self: Any, injected_client: Any = None, timeout: float = 30.0) -> None:
        original(self, injected_client or httpx.Client(transport=httpx.MockTransport(api.handle)), timeout)

    monkeypatch.setattr(http_client.HTTPClientContext, "__init__", init)
    yield api


def run(runner: FlaskCliRunner, *args: str) -> Result:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_reconcile_corrects_what_lost_webhooks_left_behind(runner: FlaskCliRunner, admin: AdminAPI) -> None:
    run(runner, "shop", "add", "--platform", "shopify", "--domain", SHOP, "--token", "shpat_reconcile")
    run(runner, "settings", "set", "--shop", SHOP, "revert.enabled=true")
    # Webhooks told us order 1 was paid; its cancellation and order 2 never arrived.
    from tests.platforms.shopify import deliver, order_payload  # the same signed path as Shopify

    paid = order_payload(1, financial_status="paid", total="120.00", customer="501")
    assert deliver(runner.app.test_client(), "orders/paid", paid, shop=SHOP).status_code == 200
    assert json.loads(run(runner, "balance", "--shop", SHOP, "--customer", "501").output)["available"] == 120
    admin.pages = [
        page([order_node("1", status="VOIDED", cancelled=True, updated="2026-11-20T11:00:00Z")], "c1"),
        page(
            [
                order_node(
                    "2",
                    total="80.00",
                    refunds=(("r9", "30.00"),),
                    status="PARTIALLY_REFUNDED",
                    updated="2026-11-20T12:00:00Z",
                )
            ],
            None,
        ),
    ]
    report = json.loads(run(runner, "reconcile", "--shop", SHOP, "--since", "2026-11-20T00:00:00Z").output)
    assert report["orders_seen"] == 2 and report["orders_changed"] == 2
    assert [c["order_id"] for c in report["corrected"]] == ["1", "2"]
    assert "was cancelled; 120 coins earned on it were reverted" in report["corrected"][0]["entries"][0]
    # Order 2: 110 total before the 30 refund; earned on what stands (80) with revert on partial refunds.
    assert json.loads(run(runner, "balance", "--shop", SHOP, "--customer", "501").output)["available"] == 80
    queries = [json.loads(r.content) for r in admin.requests]
    assert queries[0]["variables"] == {"query": "updated_at:>'2026-11-20T00:00:00+00:00'", "after": None}
    assert queries[1]["variables"]["after"] == "c1"
    # A second run over the same pages corrects nothing: the books already agree.
    admin.requests.clear()
    again = json.loads(run(runner, "reconcile", "--shop", SHOP, "--since", "2026-11-20T00:00:00Z").output)
    assert again["orders_seen"] == 2 and again["orders_changed"] == 0
    assert run(runner, "check").exit_code == 0


def test_reconcile_refuses_a_shop_whose_platform_cannot_list_orders(runner: FlaskCliRunner) -> None:
    run(runner, "demo")
    result = runner.invoke(cli, ["reconcile", "--shop", "demo.clawback.test"])
    assert result.exit_code == 2 and "cannot be reconciled" in result.output
