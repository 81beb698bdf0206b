"""Shopify: webhooks verified by HMAC, orders translated to snapshots, topics dispatched by table."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.config import Settings
from app.crypto import Vault
from app.db import Database
from app.domain.events import (
    AppUninstalled,
    CustomerDataRequested,
    CustomerRedacted,
    Event,
    Ignored,
    OrderAmended,
    OrderChanged,
    ShopRedacted,
)
from app.domain.snapshot import OrderSnapshot, Refund, Status
from app.models import Shop
from app.writebacks import Executor
from connectors import register
from connectors.base import Connector, Delivery, hmac_sha256_matches
from connectors.shopify import translate
from connectors.shopify.domain import shop_domain

log = logging.getLogger(__name__)


def _order(body: Any, shop: Shop) -> list[Event]:
    return [OrderChanged(translate.order_snapshot(body, shop.domain, shop.currency))]


def _shop_rate(body: Mapping[str, Any]) -> Decimal | None:
    """shop money per presentment unit, from the refund's own lines (items, shipping, adjustments)."""
    shop_total = presented = Decimal(0)
    nodes = [item.get("subtotal_set") for item in body.get("refund_line_items") or []]
    nodes += [line.get("subtotal_amount_set") for line in body.get("refund_shipping_lines") or []]
    nodes += [adjustment.get("amount_set") for adjustment in body.get("order_adjustments") or []]
    for node in nodes:
        if isinstance(node, Mapping) and "shop_money" in node and "presentment_money" in node:
            shop_total += abs(translate.money(node["shop_money"]["amount"], "shop_money.amount"))
            presented += abs(translate.money(node["presentment_money"]["amount"], "presentment_money.amount"))
    return shop_total / presented if presented else None


def _refund(body: Any, shop: Shop) -> list[Event]:
    refund_id, order_id = str(body["id"]), str(body["order_id"])
    # Transactions are presentment money; the refund's lines give the shop/presentment rate.
    rate = _shop_rate(body)
    if rate is None:
        currencies = {tx.get("currency") for tx in body.get("transactions") or []}
        if currencies != {shop.currency}:
            # No rate and no currency we can trust: the orders/updated that follows carries this
            # refund in shop money, so waiting for it is exact where guessing could be far off.
            return [Ignored("refund without lines in a currency we cannot confirm; orders/updated carries it")]
        rate = Decimal(1)
    refund = Refund(refund_id, translate.refund_amount(body, rate))
    at = translate.timestamp(body.get("processed_at") or body.get("created_at"), "created_at")
    return [OrderAmended(order_id, at, refund=refund)]


def _fulfillment_event(body: Any, shop: Shop) -> list[Event]:
    if str(body.get("status", "")).lower() not in translate.DELIVERED_SHIPMENT_STATUSES:
        return [Ignored(f"fulfillment event '{body.get('status')}' is not a delivery")]
    at = translate.timestamp(body.get("happened_at") or body.get("created_at"), "happened_at")
    return [OrderAmended(str(body["order_id"]), at, status=Status.DELIVERED)]


def _return_closed(body: Any, shop: Shop) -> list[Event]:
    order = body.get("order") or {}
    if str(body.get("status", "closed")).lower() != "closed" or order.get("id") is None:
        return [Ignored("the return is not closed")]
    at = translate.timestamp(body.get("updated_at") or body.get("created_at") or "1970-01-01T00:00:00+00:00", "at")
    return [OrderAmended(str(order["id"]), at, status=Status.RETURNED)]


def _ids(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values or [])


def _data_request(body: Any, shop: Shop) -> list[Event]:
    request = body.get("data_request") or {}
    return [CustomerDataRequested(str(body["customer"]["id"]), str(request.get("id", "")),
                                  _ids(body.get("orders_requested")))]  # fmt: skip


def _customer_redact(body: Any, shop: Shop) -> list[Event]:
    return [CustomerRedacted(str(body["customer"]["id"]), _ids(body.get("orders_to_redact")))]


def _orders_edited(body: Any, shop: Shop) -> list[Event]:
    # The edit envelope carries no totals; Shopify follows it with orders/updated, which does.
    return [Ignored("orders/edited carries no totals; the orders/updated that follows does")]


# topic → what the delivery means. Anything else is accepted, logged and ignored.
TOPICS: Mapping[str, Callable[[Any, Shop], list[Event]]] = {
    "orders/create": _order,
    "orders/paid": _order,
    "orders/updated": _order,
    "orders/cancelled": _order,
    "orders/fulfilled": _order,
    "orders/partially_fulfilled": _order,
    "orders/edited": _orders_edited,
    "refunds/create": _refund,
    "fulfillment_events/create": _fulfillment_event,
    "returns/close": _return_closed,
    "app/uninstalled": lambda body, shop: [AppUninstalled()],
    "customers/data_request": _data_request,
    "customers/redact": _customer_redact,
    "shop/redact": lambda body, shop: [ShopRedacted()],
}
# Compliance topics are answered 200 even for a shop we no longer know: there is nothing to erase.
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})


@register
class ShopifyConnector(Connector):
    name = "shopify"
    signature_header = "X-Shopify-Hmac-Sha256"
    topic_header = "X-Shopify-Topic"
    compliance_topics = COMPLIANCE_TOPICS
    topics = TOPICS

    def shop_hint(self, headers: Mapping[str, str]) -> str | None:
        return shop_domain(headers.get("X-Shopify-Shop-Domain"))

    def secrets(self, settings: Settings, credentials: Mapping[str, Any]) -> list[str]:
        # One app secret for every shop; the old one stays valid while it is being rotated.
        return [s for s in (settings.shopify_api_secret, settings.shopify_old_api_secret) if s]

    def writeback_executor(self, settings: Settings, vault: Vault) -> Executor | None:
        from connectors.shopify.writeback import executor  # the Admin client loads only when needed

        return executor(settings, vault)

    def orders_since(
        self, settings: Settings, vault: Vault, db: Database, shop: Shop, since: datetime
    ) -> Iterator[OrderSnapshot]:
        from app.shops import read_credentials, store_credentials
        from connectors.shopify.client import AdminClient

        def save(credentials: dict[str, Any]) -> None:
            with db.session() as session:
                fresh = session.get(Shop, shop.id)
                assert fresh is not None
                store_credentials(session, vault, fresh, credentials)

        client = AdminClient(settings, shop.domain, read_credentials(vault, shop), on_credentials=save)
        for node in client.orders_updated_since(since.astimezone(UTC).isoformat()):
            yield translate.order_snapshot(translate.rest_order_from_graphql(node), shop.domain, shop.currency)

    def verify(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> bool:
        """`X-Shopify-Hmac-Sha256`: base64 HMAC-SHA256 of the raw body with the app's client secret
        (https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-2-validate-the-origin-of-your-webhook-to-ensure-its-coming-from-shopify),
        new secret then old. Checked here rather than by shopifyapp's verify_webhook_req, which
        parses and re-serializes the whole body for its own log before comparing: about a fifth of
        the web process's CPU per webhook under load (bench/RESULTS.md), for the same comparison."""
        return hmac_sha256_matches(raw_body, headers.get(self.signature_header), secrets, encoding="base64")

    def identify(self, raw_body: bytes, headers: Mapping[str, str]) -> Delivery:
        domain = shop_domain(headers.get("X-Shopify-Shop-Domain"))
        webhook_id = (headers.get("X-Shopify-Webhook-Id") or "").strip()
        topic = (headers.get("X-Shopify-Topic") or "").strip()
        if domain is None:
            raise ValueError("X-Shopify-Shop-Domain is missing or not a myshopify.com domain")
        if not webhook_id or len(webhook_id) > 200:
            raise ValueError("X-Shopify-Webhook-Id is missing")
        if not topic or len(topic) > 100:
            raise ValueError("X-Shopify-Topic is missing")
        return Delivery(shop=domain, delivery_id=webhook_id, topic=topic)
