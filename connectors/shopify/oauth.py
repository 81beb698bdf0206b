"""Installing on Shopify: the authorization-code grant (ShopifyAPI) and, for embedded loads, the
session-token exchange for an expiring offline token and its refresh (Shopify's `shopifyapp`).

Nothing here is hand-rolled: ShopifyAPI computes and checks the query HMAC and builds the
authorize URL; `shopifyapp` verifies session tokens and talks to /admin/oauth/access_token. What we
add is what they leave to the app: the state nonce, the anchored shop check, a timestamp that is
neither stale nor from the future, and keeping the tokens (encrypted) with the shop.
"""

from __future__ import annotations

import threading
import time
import urllib.error
from collections.abc import Mapping
from typing import Any

import httpx
import shopify
from shopify_app import ShopifyApp
from shopify_app.types import RequestInput, TokenExchangeAccessToken

from app.config import Settings
from connectors.shopify.domain import API_VERSION, shop_domain

PATCH_ID_TOKEN_PATH = "/auth/shopify/patch-id-token"  # noqa: S105 - a URL path, the page renewing session tokens
MAX_FUTURE_SKEW_S = 300  # a timestamp from the future is a forgery or a broken clock
_SETUP_LOCK = threading.Lock()  # ShopifyAPI keeps the app's key and secret on the Session class


class OAuthError(ValueError):
    """The install or callback request is not one Shopify sent us; nothing was stored."""


class TokenError(RuntimeError):
    """Shopify would not give or renew a token (revoked, expired refresh token, bad client)."""


def _session(settings: Settings, shop: str) -> shopify.Session:
    if not settings.shopify_api_key or not settings.shopify_api_secret:
        raise OAuthError("SHOPIFY_API_KEY and SHOPIFY_API_SECRET are not configured")
    with _SETUP_LOCK:
        shopify.Session.setup(api_key=settings.shopify_api_key, secret=settings.shopify_api_secret)
    return shopify.Session(shop, API_VERSION)


def verify_query(settings: Settings, params: Mapping[str, str], now_s: float | None = None) -> str:
    """Check an install or callback query (HMAC, timestamp, shop); return the shop's domain."""
    shop = shop_domain(params.get("shop"))
    if shop is None:
        raise OAuthError("shop is missing or not a myshopify.com domain")
    if "hmac" not in params or "timestamp" not in params:
        raise OAuthError("hmac and timestamp are required")
    try:
        timestamp = int(params["timestamp"])
    except ValueError:
        raise OAuthError("timestamp is not a number") from None
    if timestamp > (now_s or time.time()) + MAX_FUTURE_SKEW_S:
        raise OAuthError("timestamp is in the future")
    _session(settings, shop)
    # ShopifyAPI: hex HMAC-SHA256 of the sorted query (without hmac), constant-time compare,
    # and a timestamp no older than a day.
    if not shopify.Session.validate_params(dict(params)):
        raise OAuthError("the request's HMAC is invalid or its timestamp is stale")
    return shop


def authorize_url(settings: Settings, shop: str, redirect_uri: str, state: str) -> str:
    scopes = [s.strip() for s in settings.shopify_scopes.split(",") if s.strip()]
    return str(_session(settings, shop).create_permission_url(scopes, redirect_uri, state))


def exchange_code(settings: Settings, shop: str, params: Mapping[str, str]) -> dict[str, Any]:
    """Trade the callback's code for an offline access token (a POST ShopifyAPI makes)."""
    session = _session(settings, shop)
    try:
        token = session.request_token(dict(params))
    except shopify.ValidationException as exc:
        raise OAuthError(str(exc)) from exc
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        raise TokenError(f"Shopify did not issue a token: {exc}") from exc
    return {"access_token": token, "scope": str(session.access_scopes or "")}


def _app(settings: Settings) -> ShopifyApp:
    return ShopifyApp(settings.shopify_api_key, settings.shopify_api_secret, settings.shopify_old_api_secret or None)


def _stored(token: TokenExchangeAccessToken) -> dict[str, Any]:
    return {
        "access_token": token.token,
        "scope": token.scope,
        "expires": token.expires,
        "refresh_token": token.refresh_token,
        "refresh_token_expires": token.refresh_token_expires,
    }


def verify_app_load(settings: Settings, method: str, url: str, headers: Mapping[str, str]) -> Any:
    """Verify an embedded load (document `?id_token=` or fetch `Authorization: Bearer`).

    Returns shopifyapp's result: `.ok`, `.shop` (short name), `.id_token`, and `.response` (a
    redirect to the id-token bounce page, or 401, to send back when not ok).
    """
    request: RequestInput = {"method": method, "headers": dict(headers), "url": url, "body": ""}
    return _app(settings).verify_app_home_req(request, app_home_patch_id_token_path=PATCH_ID_TOKEN_PATH)


def patch_id_token_page(settings: Settings, url: str, headers: Mapping[str, str]) -> Any:
    """The documented bounce page: App Bridge fetches a fresh session token and reloads."""
    request: RequestInput = {"method": "GET", "headers": dict(headers), "url": url, "body": ""}
    return _app(settings).app_home_patch_id_token(request)


def exchange_session_token(settings: Settings, verified: Any, http: httpx.Client | None = None) -> dict[str, Any]:
    """Managed install: trade a verified session token for an expiring offline access token."""
    result = _app(settings).exchange_using_token_exchange(
        "offline", id_token=verified.id_token, expiring=True, http_client=http
    )
    if not result.ok or result.access_token is None:
        raise TokenError(f"token exchange failed: {result.log.code}: {result.log.detail}")
    return _stored(result.access_token)


def fresh_credentials(
    settings: Settings, shop: str, credentials: Mapping[str, Any], http: httpx.Client | None = None
) -> dict[str, Any] | None:
    """New credentials when an expiring token is within a minute of expiry (shopifyapp decides),
    None when the stored ones are still good or never expire. TokenError when Shopify refuses."""
    if not credentials.get("expires") or not credentials.get("refresh_token"):
        return None  # a non-expiring token (authorization-code grant)
    current = TokenExchangeAccessToken(
        access_mode="offline",
        shop=shop.removesuffix(".myshopify.com"),
        token=str(credentials.get("access_token", "")),
        expires=credentials.get("expires"),
        scope=str(credentials.get("scope", "")),
        refresh_token=credentials.get("refresh_token"),
        refresh_token_expires=credentials.get("refresh_token_expires"),
        user=None,
    )
    result = _app(settings).refresh_token_exchanged_access_token(current, http_client=http)
    if not result.ok:
        raise TokenError(f"token refresh failed: {result.log.code}: {result.log.detail}")
    return None if result.access_token is None else _stored(result.access_token)
