"""Fynd Platform: a sales channel's shipment webhooks, verified by HMAC, dispatched by table.

What Fynd documents, and where (shapes not found there are marked INFERRED in translate.py):

- Signature: `x-fp-signature` is the hex HMAC-SHA256 of the raw request body, keyed with the
  webhook secret (https://platform.fynd.com/help/docs/company-settings/webhook/webhook-testing).
  For an extension the secret is the extension's API secret: the FDK registers every subscriber
  with `auth_meta: {type: "hmac", secret: api_secret}` and checks `hmac.new(api_secret, body,
  sha256).hexdigest()` against `x-fp-signature` (gofynd/fdk-extension-python
  `fdk_extension/webhook.py`; fdk-extension-javascript `lib/webhook.js`). We do the same with the
  standard library, in constant time, against every secret of the shop (newest first).
- Envelope: `{event: {name, type, version, category, id, created_timestamp, trace_id}, company_id,
  application_id, contains, payload}`; `event.id` is unique per event and meant for deduplication
  (https://docs.fynd.com/partners/commerce/webhooks/latest/application/shipment). The FDK names an
  event `{category}/{name}/{type}/v{version}`, e.g. `application/shipment/update/v1`; that slug is
  our topic. The company webhook guide also sends the event id as an `x-fp-event-id` header, used
  here only when the body has none.
- Ping: the dashboard's "Test webhook" sends an event named `ping` (same guide; the FDK's
  `TEST_WEBHOOK_EVENT_NAME`). The FDK answers it before checking the signature; Clawback verifies
  first like every delivery, then answers 200 and stores nothing.
- Which shop: only the body names it (`company_id`, `application_id`); no documented header does.
  So `shop_hint` is None and `shop_in_body` asks the web layer to verify against the secrets of the
  platform's shops before anything is parsed, then once more against the named shop's own secrets.
  The shop's stored domain is `fynd:<company_id>:<application_id>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.config import Settings
from app.domain.events import Event, Ignored, OrderChanged
from app.domain.shop_settings import ShopSettings, apply_changes
from app.models import Shop
from connectors import register
from connectors.base import Connector, Delivery, hmac_sha256_matches
from connectors.fynd import translate

PING = "ping"
SHIPMENT_TOPICS = (
    "application/shipment/create/v1",
    "application/shipment/update/v1",
    "application/shipment/data_update/v1",
)
# A new Fynd shop starts from the seed's policy: spent coins come back when a shipment is cancelled
# (cancelled_fynd) or returned (return_accepted, return_bag_delivered), coins are earned on
# delivery, and coins earned on a shipment that is later returned are kept.
DEFAULT_SETTINGS: Mapping[str, str] = {
    "earn.trigger": "delivered",
    "revert.enabled": "true",
    "revert.keep_on_return": "true",
    "redeem.refund_statuses": "cancelled,returned",
}
COMPANY_ID = re.compile(r"\A[0-9]{1,19}\Z")
APPLICATION_ID = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
MAX_DELIVERY_ID_CHARS = 200


def default_settings() -> ShopSettings:
    return apply_changes(ShopSettings(), dict(DEFAULT_SETTINGS))


def shop_domain(company_id: Any, application_id: Any) -> str:
    """`fynd:<company_id>:<application_id>`, the stored domain of one sales channel; ValueError
    when either id is not one Fynd would send."""
    company = str(company_id).strip() if isinstance(company_id, int | str) and not isinstance(company_id, bool) else ""
    application = application_id.strip() if isinstance(application_id, str) else ""
    if not COMPANY_ID.match(company):
        raise ValueError(f"'{company_id}' is not a Fynd company id (digits)")
    if not APPLICATION_ID.match(application):
        raise ValueError(f"'{application_id}' is not a Fynd application (sales channel) id")
    return f"fynd:{int(company)}:{application.lower()}"


def _application_id(value: Any) -> Any:
    """`application_id` is documented as a string or an array; an array must name one channel."""
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError("application_id does not name exactly one sales channel")
        return value[0]
    return value


def _object(raw_body: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw_body)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to read") from None
    if not isinstance(body, dict):
        raise ValueError("the body is not a JSON object")
    return body


def event_topic(event: Mapping[str, Any]) -> str:
    """`{category}/{name}/{type}/v{version}` as the FDK builds it; `ping` for a test event."""
    name = str(event.get("name") or "").strip()
    if name == PING:
        return PING
    parts = [str(event.get(key) or "").strip() for key in ("category", "type", "version")]
    if not name or not all(parts):
        raise ValueError("event.category, name, type and version are required")
    category, kind, version = parts
    return f"{category}/{name}/{kind}/v{version.removeprefix('v')}"


def _shipment(body: Mapping[str, Any], shop: Shop) -> list[Event]:
    return [OrderChanged(translate.shipment_snapshot(body, shop.domain, shop.currency))]


# topic → what the delivery means. Anything else is accepted, stored and ignored.
TOPICS: Mapping[str, Callable[[Mapping[str, Any], Shop], list[Event]]] = {
    **dict.fromkeys(SHIPMENT_TOPICS, _shipment),
    PING: lambda body, shop: [Ignored("ping: Fynd testing the endpoint")],
}


@register
class FyndConnector(Connector):
    name = "fynd"
    # As werkzeug spells it in `request.headers.items()`, so the web layer never stores it.
    signature_header = "X-Fp-Signature"
    shop_in_body = True
    test_topics = frozenset({PING})
    topics = TOPICS

    def shop_hint(self, headers: Mapping[str, str]) -> str | None:
        return None  # Fynd names the company and sales channel in the body only

    def secrets(self, settings: Settings, credentials: Mapping[str, Any]) -> list[str]:
        # The extension's API secret, as registered with `clawback shop add --platform fynd`;
        # the previous one stays valid while it is being rotated.
        found = (credentials.get("api_secret"), credentials.get("old_api_secret"))
        return [secret for secret in found if isinstance(secret, str) and secret]

    def verify(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> bool:
        return hmac_sha256_matches(raw_body, headers.get(self.signature_header), secrets, encoding="hex")

    def identify(self, raw_body: bytes, headers: Mapping[str, str]) -> Delivery:
        body = _object(raw_body)
        event = body.get("event")
        if not isinstance(event, Mapping):
            raise ValueError("the body has no event object")
        topic = event_topic(event)
        delivery_id = str(event.get("id") or headers.get("x-fp-event-id") or "").strip()
        if topic == PING:
            try:
                shop = shop_domain(body.get("company_id"), _application_id(body.get("application_id")))
            except ValueError:
                shop = ""  # a test event need not name a sales channel
            return Delivery(shop=shop, delivery_id=delivery_id[:MAX_DELIVERY_ID_CHARS] or PING, topic=PING)
        if not delivery_id or len(delivery_id) > MAX_DELIVERY_ID_CHARS:
            raise ValueError("event.id is missing")
        shop = shop_domain(body.get("company_id"), _application_id(body.get("application_id")))
        return Delivery(shop=shop, delivery_id=delivery_id, topic=topic)
