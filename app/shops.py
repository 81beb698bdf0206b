"""Shops: how they are named, registered, found, and how their settings change."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlmodel import Session, select

from app.crypto import Vault
from app.domain.shop_settings import ShopSettings, apply_changes
from app.errors import InvalidInput, NotFound
from app.models import PLATFORMS, Shop

# Anchored: the whole string, a single DNS label, then .myshopify.com. Nothing else is a shop.
SHOPIFY_DOMAIN = re.compile(r"\A[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com\Z")
CURRENCY = re.compile(r"\A[A-Z]{3}\Z")
MAX_DOMAIN_CHARS = 255


def normalize_shopify_domain(raw: str) -> str:
    domain = raw.strip().lower()
    if not SHOPIFY_DOMAIN.match(domain):
        raise InvalidInput(f"'{raw}' is not a Shopify shop domain (expected name.myshopify.com)", field="domain")
    return domain


def normalize_store_url(raw: str) -> str:
    """A WooCommerce store's URL as one canonical string: lower-case scheme and host, no default
    port, no trailing slash, no query. `http://127.0.0.1:8080/` and `http://127.0.0.1:8080` are one."""
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput(f"'{raw}' is not a store URL", field="url") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"'{raw}' is not a store URL (expected http:// or https://host)", field="url")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidInput(f"'{raw}' must be the store's base URL, without credentials or query", field="url")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), "", ""))


def shop_key(raw: str) -> str:
    """The stored `domain` that a user-supplied SHOP argument names."""
    value = raw.strip()
    if "://" in value:
        return normalize_store_url(value)
    return value.lower()


def find_shop(session: Session, raw: str) -> Shop:
    key = shop_key(raw)
    shops = session.exec(select(Shop).where(Shop.domain == key)).all()
    if not shops:
        raise NotFound(f"no shop '{raw}' is registered (see `clawback shop add`)")
    if len(shops) > 1:
        raise InvalidInput(f"'{raw}' names shops on several platforms", field="shop")
    return shops[0]


def register_shop(
    session: Session,
    vault: Vault,
    *,
    platform: str,
    domain: str,
    credentials: dict[str, str] | None = None,
    currency: str | None = None,
    name: str = "",
    settings: ShopSettings | None = None,
) -> tuple[Shop, bool]:
    """Add a shop, or update the credentials of one already there. Returns (shop, created)."""
    if platform not in PLATFORMS:
        raise InvalidInput(f"unknown platform '{platform}'; known: {', '.join(PLATFORMS)}", field="platform")
    if currency is not None:
        currency = currency.strip().upper()
        if not CURRENCY.match(currency):
            raise InvalidInput(f"'{currency}' is not an ISO 4217 currency code", field="currency")
    if len(domain) > MAX_DOMAIN_CHARS or len(name) > MAX_DOMAIN_CHARS:
        raise InvalidInput(f"a shop's address and name are at most {MAX_DOMAIN_CHARS} characters", field="domain")
    shop = session.exec(select(Shop).where(Shop.platform == platform, Shop.domain == domain)).first()
    created = shop is None
    if shop is None:
        shop = Shop(platform=platform, domain=domain, settings=(settings or ShopSettings()).to_stored())
    # Re-registering updates what was given explicitly and keeps the rest.
    shop.name = name or shop.name or domain
    shop.currency = currency or shop.currency or "USD"
    if credentials:
        merged = {**read_credentials(vault, shop), **credentials}
        shop.credentials = vault.encrypt(json.dumps(merged, sort_keys=True))
    shop.uninstalled_at = None
    session.add(shop)
    session.flush()
    return shop, created


def read_credentials(vault: Vault, shop: Shop) -> dict[str, Any]:
    return json.loads(vault.decrypt(shop.credentials)) if shop.credentials else {}


def shop_settings(shop: Shop) -> ShopSettings:
    return ShopSettings.from_stored(shop.settings)


def change_settings(session: Session, shop: Shop, changes: dict[str, Any]) -> ShopSettings:
    """Validate and save; all or nothing. In effect for the next event processed."""
    updated = apply_changes(shop_settings(shop), changes)
    shop.settings = updated.to_stored()
    session.add(shop)
    session.flush()
    return updated


def store_credentials(session: Session, vault: Vault, shop: Shop, credentials: dict[str, Any]) -> None:
    """Replace the shop's credentials (renewed tokens), encrypted."""
    shop.credentials = vault.encrypt(json.dumps(credentials, sort_keys=True))
    session.add(shop)
