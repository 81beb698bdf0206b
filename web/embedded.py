"""GET /app: the app's entry inside Shopify admin (the App URL in shopify.app.toml); it opens on
the Features page (web/admin/features.py), signed in with a fresh page token for the verified shop.

The first document load carries a session token (`id_token`). It is verified (HS256 with the app
secret, `aud` = our API key, and — beyond what shopifyapp checks — `iss` and `dest` naming the same
shop); a stale or missing one bounces through App Bridge for a fresh token, the documented way.
On a shop's first load (Shopify-managed install) or when its token is gone, the session token is
exchanged for an expiring offline access token, stored encrypted.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, g, make_response, request
from flask.typing import ResponseReturnValue
from sqlmodel import select

from app.config import Settings
from app.models import Shop
from app.shops import read_credentials, register_shop
from connectors.shopify import oauth, shop_domain
from web import admin
from web.extensions import get_session, services
from web.session import Signed

log = logging.getLogger(__name__)
bp = Blueprint("embedded", __name__)


def _usable(settings: Settings, domain: str, credentials: dict[str, object]) -> bool:
    """Whether the stored token works or can still be renewed; if not, this load replaces it."""
    if not credentials.get("access_token"):
        return False
    try:
        oauth.fresh_credentials(settings, domain, credentials)
    except oauth.TokenError:
        return False  # expired beyond its refresh token (90 days): exchange the session token again
    return True


@bp.get("/app")
def app_home() -> ResponseReturnValue:
    svc = services()
    try:
        verified = oauth.verify_app_load(svc.settings, request.method, request.url, request.headers)  # type: ignore[arg-type]
    except Exception:  # claims of the wrong types inside a correctly signed token: PyJWT raises
        return Response("session token is not valid", 401)
    if not verified.ok:
        return Response(verified.response.body, verified.response.status, verified.response.headers)
    domain = f"{verified.shop}.myshopify.com"
    claims = verified.id_token.claims
    # Exactly as Shopify issues them: dest is the shop, iss its admin (no paths, no look-alikes).
    if claims.get("dest") != f"https://{domain}" or claims.get("iss") != f"https://{domain}/admin":
        return Response("session token names two different shops", 401)
    if request.args.get("shop") and shop_domain(request.args["shop"]) != domain:
        return Response("session token is for another shop", 401)
    session = get_session()
    shop = session.exec(select(Shop).where(Shop.platform == "shopify", Shop.domain == domain)).first()
    if (
        shop is None
        or shop.uninstalled_at is not None
        or not _usable(svc.settings, domain, read_credentials(svc.vault, shop))
    ):
        try:
            credentials = oauth.exchange_session_token(svc.settings, verified)
        except oauth.TokenError as exc:
            log.warning("token exchange for %s failed: %s", domain, exc)
            return Response("Shopify did not give us access to this shop; try again", 502)
        shop, _ = register_shop(session, svc.vault, platform="shopify", domain=domain, credentials=credentials)
        session.commit()
        log.info("managed install on %s", domain)
    assert shop.id is not None
    # Served here rather than redirected: the document load keeps App Bridge's `host` and `shop`,
    # and every link on the page carries a token minted for this verified shop.
    g.signed, g.shop = Signed(shop.id, "shopify"), shop
    page = make_response(admin.features_page())
    for name, value in verified.response.headers.items():  # the shop's CSP frame-ancestors, App Bridge links
        page.headers[name] = value
    page.headers["Cache-Control"] = "no-store"
    page.headers["Referrer-Policy"] = "no-referrer"  # the page's links carry the token
    return page
