"""Connecting a store: WooCommerce's key exchange, then webhooks registered through REST.

The flow (https://woocommerce.github.io/woocommerce-rest-api-docs/#rest-api-keys, and WC_Auth in
WooCommerce's source):

1. `start`: the merchant asks to connect a store URL. We mint a single-use, unguessable install
   token (only its SHA-256 is stored, with the store URL and an expiry) and send the merchant to
   `{store}/wc-auth/v1/authorize` with app_name, scope=read_write, user_id=<token>, return_url and
   an https callback_url.
2. The merchant approves; WooCommerce creates a key pair and POSTs it, unsigned, as JSON
   (`key_id, user_id, consumer_key, consumer_secret, key_permissions`) to the callback. It deletes
   the key again unless the answer is exactly 200. Nothing but the token proves the callback is
   genuine, so `accept` takes the keys only for a live token, for the store that token was minted
   for, checks them with one REST call, and consumes the token in the same transaction that stores
   the keys (encrypted). A replayed or forged callback gets 403 and changes nothing.
3. Registering the four order webhooks, each signed with a per-store random secret, is a
   write-back (`register_webhooks`): retried with backoff if the store is slow, never repeated
   for a topic already registered. The same write-back hands the companion WordPress plugin its
   launch secret through the plugin's own REST route (`wc-clawback/v1/launch-secret`, which
   WooCommerce authenticates with the same keys); a store without the plugin answers 404 and
   simply has no embedded page. `disconnect` deletes the webhooks again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import update
from sqlmodel import Session, col, select

from app import writebacks
from app.crypto import Vault
from app.errors import InvalidInput
from app.models import InstallToken, Shop, as_utc, utcnow
from app.shops import normalize_store_url, read_credentials, register_shop, store_credentials
from connectors.woocommerce.client import StoreClient

PLATFORM = "woocommerce"
TOKEN_TTL = timedelta(minutes=30)
APP_NAME = "Clawback"
WEBHOOK_TOPICS = ("order.created", "order.updated", "order.deleted", "order.restored")
KEY_FIELDS = ("key_id", "user_id", "consumer_key", "consumer_secret", "key_permissions")


class CallbackRefused(Exception):
    """The callback cannot be accepted; `status` is the HTTP answer (never 200)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, raw_store_url: str, app_url: str, now: datetime | None = None) -> str:
    """Mint an install token for the store; return the store's authorize URL to send the merchant to."""
    if not app_url.startswith("https://"):
        # WooCommerce refuses a callback_url that is not https (WC_Auth::auth_endpoint).
        raise InvalidInput("WooCommerce calls back only over https: set CLAWBACK_APP_URL to the app's https address",
                           field="app_url")  # fmt: skip
    store_url = normalize_store_url(raw_store_url)
    token = secrets.token_urlsafe(32)
    now = now or utcnow()
    session.add(InstallToken(platform=PLATFORM, token_hash=_hash(token), store_url=store_url, created_at=now,
                             expires_at=now + TOKEN_TTL))  # fmt: skip
    base = app_url.rstrip("/")
    query = urlencode({
        "app_name": APP_NAME, "scope": "read_write", "user_id": token,
        "return_url": f"{base}/auth/woocommerce/return?{urlencode({'store_url': store_url})}",
        "callback_url": f"{base}/auth/woocommerce/callback",
    })  # fmt: skip
    return f"{store_url}/wc-auth/v1/authorize?{query}"


@dataclass(frozen=True)
class Keys:
    key_id: int
    token: str
    consumer_key: str
    consumer_secret: str


def read_keys(body: Any) -> Keys:
    """The callback's JSON, checked field by field; CallbackRefused(400) when it is not the shape."""
    if not isinstance(body, dict) or any(name not in body for name in KEY_FIELDS):
        raise CallbackRefused(400, f"the callback must be a JSON object with {', '.join(KEY_FIELDS)}")
    key_id, token = body["key_id"], body["user_id"]
    consumer_key, consumer_secret = body["consumer_key"], body["consumer_secret"]
    if isinstance(key_id, bool) or not isinstance(key_id, int) or key_id <= 0:
        raise CallbackRefused(400, "key_id must be a positive integer")
    # Ours are `secrets.token_urlsafe`: ASCII letters, digits, '-' and '_', nothing else.
    if not isinstance(token, str) or not 20 <= len(token) <= 100 or not token.isascii() \
            or not token.replace("-", "").replace("_", "").isalnum():  # fmt: skip
        raise CallbackRefused(400, "user_id is not an install token")
    for name, value, prefix in (("consumer_key", consumer_key, "ck_"), ("consumer_secret", consumer_secret, "cs_")):
        if not isinstance(value, str) or not value.startswith(prefix) or not 10 <= len(value) <= 100 \
                or not value.isascii() or not value[3:].isalnum():  # fmt: skip
            raise CallbackRefused(400, f"{name} is not a WooCommerce {prefix}… key")
    if body["key_permissions"] != "read_write":
        raise CallbackRefused(400, "the key must be read_write (Clawback writes order notes and coupons)")
    return Keys(key_id, token, consumer_key, consumer_secret)


def live_token(session: Session, token: str, now: datetime | None = None) -> InstallToken | None:
    row = session.exec(select(InstallToken).where(InstallToken.token_hash == _hash(token))).first()
    if row is None or row.used_at is not None or as_utc(row.expires_at) <= (now or utcnow()):
        return None
    return row


def accept(session: Session, vault: Vault, keys: Keys, now: datetime | None = None) -> Shop:
    """Check the keys with the token's store, consume the token, store the keys and intend the
    webhooks.

    The store is called before anything is written, so no write transaction waits on it; the
    token is consumed by a conditional UPDATE, so of two racing callbacks only one succeeds.
    """
    now = now or utcnow()
    row = live_token(session, keys.token, now)
    if row is None:
        raise CallbackRefused(403, "the install token is unknown, used or expired; start the connection again")
    store_url = row.store_url
    session.rollback()  # end the read: the store is called with no transaction open
    client = StoreClient(store_url, keys.consumer_key, keys.consumer_secret)
    currency = client.current_currency()  # KeysRefused / Unavailable: the caller answers non-200
    consumed = session.execute(
        update(InstallToken)
        .where(col(InstallToken.token_hash) == _hash(keys.token), col(InstallToken.used_at).is_(None))
        .values(used_at=now)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise CallbackRefused(403, "the install token was used meanwhile")
    shop, _ = register_shop(session, vault, platform=PLATFORM, domain=store_url, currency=currency,
                            credentials={"consumer_key": keys.consumer_key, "consumer_secret": keys.consumer_secret,
                                         "key_id": str(keys.key_id)})  # fmt: skip
    credentials = read_credentials(vault, shop)
    if not credentials.get("webhook_secret"):
        # URL-safe characters only: WooCommerce signs with wp_specialchars_decode(secret).
        credentials["webhook_secret"] = secrets.token_urlsafe(32)
    # A fresh launch secret per connection: the companion plugin signs its iframe launches with it.
    credentials["launch_secret"] = secrets.token_urlsafe(32)
    credentials.pop("launch_secret_sent", None)
    store_credentials(session, vault, shop, credentials)
    assert shop.id is not None
    writebacks.intend(session, shop.id, "register_webhooks", f"webhooks:register:{keys.key_id}", {})
    session.flush()
    return shop


def register_webhooks(client: StoreClient, delivery_url: str, secret: str, registered: dict[str, int],
                      save: Any) -> dict[str, int]:  # fmt: skip
    """Create each order webhook not registered yet; `save(registered)` after each, so an attempt
    that fails halfway never creates the same webhook twice."""
    for topic in WEBHOOK_TOPICS:
        if topic in registered:
            continue
        registered[topic] = client.create_webhook(topic, delivery_url, secret)
        save(dict(registered))
    return registered


def disconnect(session: Session, vault: Vault, shop: Shop, client: StoreClient | None) -> list[int]:
    """Delete our webhooks from the store, forget the keys and mark the shop uninstalled. With no
    working client (keys revoked) the webhooks cannot be deleted; forgetting the secret makes every
    later delivery a 401, and WooCommerce disables a failing webhook by itself."""
    credentials = read_credentials(vault, shop)
    registered = {str(k): int(v) for k, v in dict(credentials.get("webhook_ids") or {}).items()}
    removed = []
    if client is not None:
        for topic, webhook_id in sorted(registered.items()):
            client.delete_webhook(webhook_id)
            removed.append(webhook_id)
            registered.pop(topic)
    store_credentials(session, vault, shop, {"webhook_ids": registered} if registered else {})
    shop.uninstalled_at = utcnow()
    session.add(shop)
    return removed
