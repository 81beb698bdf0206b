"""Reconciliation throughput: recorded pages of Admin GraphQL orders, served by an in-process
mock transport, fed through `clawback reconcile`'s path into a fresh database."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from app import migrate, reconcile
from app.config import Settings
from app.crypto import Vault
from app.db import Database
from app.shops import register_shop
from app.storage.open import open_deliveries
from connectors.shopify import ShopifyConnector

ORDERS = 2000
PAGE = 50


def node(n: int) -> dict[str, Any]:
    status = ["PAID", "PARTIALLY_REFUNDED", "REFUNDED", "PAID"][n % 4]
    refunds = (
        []
        if status == "PAID"
        else [
            {
                "legacyResourceId": str(n * 10),
                "createdAt": "2026-11-20T10:00:00Z",
                "totalRefundedSet": {
                    "shopMoney": {"amount": "20.00" if status != "REFUNDED" else "100.00", "currencyCode": "USD"}
                },
            }
        ]
    )
    current = {"PAID": "100.00", "PARTIALLY_REFUNDED": "80.00", "REFUNDED": "0.00"}[status]
    return {
        "legacyResourceId": str(50_000 + n),
        "name": f"#{50_000 + n}",
        "updatedAt": "2026-11-20T10:00:00Z",
        "createdAt": "2026-11-20T09:00:00Z",
        "cancelledAt": None,
        "displayFinancialStatus": status,
        "displayFulfillmentStatus": "UNFULFILLED",
        "tags": [],
        "discountCodes": [],
        "currencyCode": "USD",
        "currentTotalPriceSet": {"shopMoney": {"amount": current, "currencyCode": "USD"}},
        "customer": {"legacyResourceId": str(800 + n % 300), "email": None, "tags": []},
        "refunds": refunds,
        "fulfillments": [],
        "returns": {"nodes": []},
    }


def run(workdir: Path) -> dict[str, Any]:
    from shopify_app.utils import http_client

    # One INFO line per recorded page (the client logs each request) would bury the table.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    pages = [[node(n) for n in range(i, min(ORDERS, i + PAGE))] for i in range(0, ORDERS, PAGE)]

    def handle(request: httpx.Request) -> httpx.Response:
        after = json.loads(request.content)["variables"].get("after")
        index = int(after) if after else 0
        more = index + 1 < len(pages)
        return httpx.Response(
            200,
            json={
                "data": {
                    "orders": {
                        "pageInfo": {"hasNextPage": more, "endCursor": str(index + 1) if more else None},
                        "nodes": pages[index],
                    }
                }
            },
        )

    original = http_client.HTTPClientContext.__init__
    http_client.HTTPClientContext.__init__ = lambda self, injected_client=None, timeout=30.0: original(  # type: ignore[method-assign]
        self, injected_client or httpx.Client(transport=httpx.MockTransport(handle)), timeout
    )
    try:
        url = f"sqlite:///{workdir / 'reconcile.db'}"
        migrate.upgrade(url)
        settings = Settings(env="development", database_url=url, shopify_api_key="k", shopify_api_secret="s")
        db, vault = Database(url), Vault(settings.encryption_key)
        with db.session() as session:
            shop, _ = register_shop(
                session,
                vault,
                platform="shopify",
                domain="bench-reconcile.myshopify.com",
                credentials={"access_token": "shpat_bench"},
            )
        from datetime import UTC, datetime

        since = datetime(2026, 11, 1, tzinfo=UTC)
        began = time.perf_counter()
        assert shop.id is not None
        deliveries = open_deliveries(db)
        report = reconcile.reconcile(
            db, deliveries, shop.id, ShopifyConnector().orders_since(settings, vault, db, shop, since), since=since
        )
        deliveries.close()
        took = time.perf_counter() - began
        db.dispose()
    finally:
        http_client.HTTPClientContext.__init__ = original  # type: ignore[method-assign]
    return {
        "orders": report.orders_seen,
        "orders_changed": report.orders_changed,
        "seconds": round(took, 2),
        "orders_per_s": round(report.orders_seen / took, 1),
    }
