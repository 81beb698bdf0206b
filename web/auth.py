"""Install routes: Shopify's authorization-code grant, and the session-token bounce page.

GET /auth/shopify/install   HMAC-checked query → 302 to the shop's authorize page, with a state
                            nonce kept in this browser's signed session cookie
GET /auth/shopify/callback  HMAC, state and shop checked → code exchanged → offline token stored
                            (encrypted) → 302 into the app inside the shop's admin
GET /auth/shopify/patch-id-token   App Bridge fetches a fresh session token, then reloads
"""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, redirect, request, session
from flask.typing import ResponseReturnValue

from app.shops import register_shop
from connectors.shopify import oauth, shop_domain
from web.extensions import get_session, services

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__, url_prefix="/auth")
_STATE_KEY = "shopify_oauth"


def _refuse(status: int, message: str) -> ResponseReturnValue:
    log.info("install refused: %s", message)
    return jsonify(error=message), status


@bp.get("/shopify/install")
def shopify_install() -> ResponseReturnValue:
    settings = services().settings
    try:
        shop = oauth.verify_query(settings, request.args.to_dict())
    except oauth.OAuthError as exc:
        return _refuse(400, str(exc))
    state = secrets.token_urlsafe(32)
    session[_STATE_KEY] = {"state": state, "shop": shop}
    callback = settings.app_url.rstrip("/") + "/auth/shopify/callback"
    return redirect(oauth.authorize_url(settings, shop, callback, state), code=302)


@bp.get("/shopify/callback")
def shopify_callback() -> ResponseReturnValue:
    svc = services()
    params = request.args.to_dict()
    try:
        shop = oauth.verify_query(svc.settings, params)
    except oauth.OAuthError as exc:
        return _refuse(400, str(exc))
    expected = session.pop(_STATE_KEY, None) or {}
    # The nonce binds the callback to the browser that started the install (no login CSRF).
    presented, wanted = params.get("state", "").encode(), str(expected.get("state", "")).encode()
    if not expected or not hmac.compare_digest(wanted, presented):
        return _refuse(403, "state does not match this browser's install")
    if expected.get("shop") != shop:
        return _refuse(403, "the callback is for another shop than the install")
    if not params.get("code"):
        return _refuse(400, "code is missing")
    try:
        credentials = oauth.exchange_code(svc.settings, shop, params)
    except oauth.OAuthError as exc:
        return _refuse(400, str(exc))
    except oauth.TokenError as exc:
        return _refuse(502, str(exc))
    db_session = get_session()
    register_shop(db_session, svc.vault, platform="shopify", domain=shop, credentials=credentials)
    db_session.commit()
    log.info("installed on %s", shop)
    return redirect(f"https://{shop}/admin/apps/{svc.settings.shopify_api_key}", code=302)


@bp.get("/shopify/patch-id-token")
def shopify_patch_id_token() -> ResponseReturnValue:
    # shopifyapp copies ?shop= into the page's CSP frame-ancestors: only a Shopify shop may frame it.
    shop = shop_domain(request.args.get("shop"))
    reload_to = request.args.get("shopify-reload", "")
    if shop is None:
        return _refuse(400, "shop is missing or not a myshopify.com domain")
    if not reload_to.startswith("/") or reload_to.startswith("//") or any(c in reload_to for c in "\r\n\\"):
        return _refuse(400, "shopify-reload must be a path of this app")
    # shopifyapp copies ?shop= into the CSP header: give it the checked domain, never the raw value.
    url = f"{request.base_url}?{urlencode({'shop': shop, 'shopify-reload': reload_to})}"
    result = oauth.patch_id_token_page(services().settings, url, request.headers)  # type: ignore[arg-type]
    return Response(result.response.body, result.response.status, result.response.headers)
