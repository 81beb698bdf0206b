"""WooCommerce: webhooks verified by HMAC, orders translated to snapshots, topics dispatched by table.

What WooCommerce sends (WC_Webhook::deliver and ::deliver_ping in WooCommerce's source):

- Every delivery is a JSON POST with `X-WC-Webhook-Source` (the store's `home_url('/')`),
  `-Topic` (`order.updated`), `-Resource`, `-Event`, `-ID` (the webhook), `-Delivery-ID` and
  `-Signature`: base64 of the HMAC-SHA256 of the raw body, keyed with the webhook's secret.
- The body is the REST API's order resource, built when the delivery is sent; for
  `order.deleted` it is only `{"id": N}` (trashed or deleted for good).
- Creating a webhook sends one unsigned, form-encoded `webhook_id=N` POST with no X-WC headers,
  which must be answered exactly 200 (`is_unsigned_ping`).
- WooCommerce never retries; a webhook is disabled after more than five failed deliveries in a
  row. So the web layer answers 200 as soon as a verified delivery is stored, and a delivery that
  cannot be processed becomes a failed row for the operator, never a failed answer.
- `X-WC-Webhook-Delivery-ID` is `wp_hash(webhook id . current second)`: two deliveries of one
  webhook in the same second share it, yet carry different bodies. The stored delivery id is
  therefore that header plus a digest of the body: a delivery repeated byte for byte is a
  duplicate, a second delivery in the same second is not lost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from app.config import Settings
from app.crypto import Vault
from app.db import Database
from app.domain.events import Event, Ignored, OrderAmended, OrderChanged
from app.domain.shop_settings import ShopSettings
from app.domain.snapshot import OrderSnapshot, Status
from app.errors import InvalidInput
from app.models import Shop
from app.shops import normalize_store_url, read_credentials
from app.writebacks import Executor
from connectors import register
from connectors.base import Connector, Delivery, hmac_sha256_matches
from connectors.woocommerce import translate
from connectors.woocommerce.client import StoreClient

PING = re.compile(rb"\Awebhook_id=[0-9]{1,20}\Z")
MAX_DELIVERY_ID_CHARS = 100


def store_from_source(raw: str | None) -> str | None:
    """`X-WC-Webhook-Source` as `shops.domain` stores a WooCommerce store (trailing slash, case of
    the scheme and host); None when it is not a store URL."""
    if not raw or len(raw) > 255 or not raw.isascii():
        return None
    try:
        return normalize_store_url(raw)
    except InvalidInput:
        return None


def _settings(shop: Shop) -> ShopSettings:
    return ShopSettings.cached(shop.settings)  # parsed once per stored value; read-only


def _order(body: Mapping[str, Any], shop: Shop) -> list[Event]:
    snap = translate.order_snapshot(body, shop.domain, shop.currency, _settings(shop).woocommerce)
    return [OrderChanged(snap)]


def _deleted(body: Mapping[str, Any], shop: Shop) -> list[Event]:
    """Only the id travels: the order was trashed (or deleted for good) when the delivery was sent.
    What a trashed order means is the shop's `trash` mapping (cancelled unless changed)."""
    meaning = translate.status_meaning("trash", _settings(shop).woocommerce)
    order_id = translate.order_id(body)
    if Status.UNKNOWN in meaning or not meaning:
        return [Ignored(f"order {order_id} was trashed; trash is mapped to nothing in this shop")]
    return [OrderAmended(order_id, at=None, status=min(meaning))]


# topic → what the delivery means. Anything else (a topic we never registered) is stored and ignored.
TOPICS: Mapping[str, Callable[[Mapping[str, Any], Shop], list[Event]]] = {
    "order.created": _order,
    "order.updated": _order,
    "order.restored": _order,
    "order.deleted": _deleted,
}


@register
class WooCommerceConnector(Connector):
    name = "woocommerce"
    # As werkzeug spells it in `request.headers.items()`, so the web layer never stores it.
    signature_header = "X-Wc-Webhook-Signature"
    topic_header = "X-WC-Webhook-Topic"
    topics = TOPICS

    def is_unsigned_ping(self, raw_body: bytes, headers: Mapping[str, str]) -> bool:
        # Exactly the shape deliver_ping() sends: no X-WC header at all and `webhook_id=<digits>`.
        names = [str(pair[0]) if isinstance(pair, tuple) else str(pair) for pair in headers]  # werkzeug: pairs
        if any(name.lower().startswith("x-wc-") for name in names):
            return False
        return bool(PING.match(raw_body.strip()))

    def shop_hint(self, headers: Mapping[str, str]) -> str | None:
        return store_from_source(headers.get("X-WC-Webhook-Source"))

    def secrets(self, settings: Settings, credentials: Mapping[str, Any]) -> list[str]:
        # The store's webhook secret; the previous one stays valid while it is being rotated.
        found = (credentials.get("webhook_secret"), credentials.get("old_webhook_secret"))
        return [secret for secret in found if isinstance(secret, str) and secret]

    def verify(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> bool:
        return hmac_sha256_matches(raw_body, headers.get(self.signature_header), secrets, encoding="base64")

    def identify(self, raw_body: bytes, headers: Mapping[str, str]) -> Delivery:
        shop = self.shop_hint(headers)
        topic = (headers.get("X-WC-Webhook-Topic") or "").strip().lower()
        delivery = (headers.get("X-WC-Webhook-Delivery-ID") or "").strip()
        if shop is None:
            raise ValueError("X-WC-Webhook-Source is missing or not a store URL")
        if not topic or len(topic) > 100 or not topic.isascii():
            raise ValueError("X-WC-Webhook-Topic is missing")
        if not delivery or len(delivery) > MAX_DELIVERY_ID_CHARS or not delivery.isascii():
            raise ValueError("X-WC-Webhook-Delivery-ID is missing")
        digest = hashlib.sha256(raw_body).hexdigest()[:16]
        return Delivery(shop=shop, delivery_id=f"{delivery}:{digest}", topic=topic)

    def writeback_executor(self, settings: Settings, vault: Vault) -> Executor | None:
        from connectors.woocommerce.writeback import executor

        return executor(settings, vault)

    def orders_since(
        self, settings: Settings, vault: Vault, db: Database, shop: Shop, since: datetime
    ) -> Iterator[OrderSnapshot]:
        """Orders modified after `since`, from `GET orders?modified_after=…` (UTC), as snapshots."""
        client = StoreClient.from_credentials(shop.domain, read_credentials(vault, shop))
        options = _settings(shop).woocommerce
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        after = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")  # with dates_are_gmt=true
        for order in client.orders_modified_after(after):
            yield translate.order_snapshot(order, shop.domain, shop.currency, options)


def delivery_headers(body: bytes, secret: str, store_url: str, topic: str, delivery_id: str) -> dict[str, str]:
    """The headers WooCommerce would send with `body` (tests, the benchmark, local tooling)."""
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    resource, _, event = topic.partition(".")
    return {
        "Content-Type": "application/json", "User-Agent": "WooCommerce/9.0.0 Hookshot (WordPress/6.5)",
        "X-WC-Webhook-Source": store_url.rstrip("/") + "/", "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event, "X-WC-Webhook-Signature": signature,
        "X-WC-Webhook-ID": "142", "X-WC-Webhook-Delivery-ID": delivery_id,
    }  # fmt: skip


__all__ = ["TOPICS", "WooCommerceConnector", "delivery_headers", "store_from_source"]
