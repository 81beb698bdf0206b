"""Who is asking, on the merchant's pages: a short-lived token naming one shop.

The pages are embedded in a store admin, where third-party cookies are unreliable, so no cookie
is used: every link and form carries `t`, a token signed with CLAWBACK_SECRET_KEY (itsdangerous)
naming the shop and how it signed in. It is minted only after a real proof — a verified Shopify
session token on `/app`, the development login when it is explicitly enabled, or (WordPress) the
companion plugin's signed launch — and it expires after TOKEN_MAX_AGE_S. Because it travels in
the form body and no cookie authenticates a request, a forged cross-site form cannot carry it:
it is also the forms' CSRF token. Fetch requests may send it as `Authorization: Bearer`.

One shop never sees another's data: every admin route loads data through `current_shop()` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Response, abort, current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.models import Shop
from web.extensions import get_session

TOKEN_MAX_AGE_S = 3600
F = TypeVar("F")


@dataclass(frozen=True)
class Signed:
    shop_id: int
    via: str  # shopify | dev | wordpress


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="clawback-admin")


def mint(shop_id: int, via: str) -> str:
    return str(_serializer().dumps({"shop_id": shop_id, "via": via}))


def read(token: str) -> Signed | None:
    try:
        data = _serializer().loads(token, max_age=TOKEN_MAX_AGE_S)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("shop_id"), int):
        return None
    return Signed(int(data["shop_id"]), str(data.get("via", "")))


def _presented() -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return str(request.form.get("t") or request.args.get("t") or "")


def current_shop() -> Shop:
    shop = g.get("shop")
    if shop is None:
        abort(401)
    return cast(Shop, shop)


def token() -> str:
    """A fresh token for the current shop, for the links and forms of the page being rendered."""
    signed: Signed = g.signed
    return mint(signed.shop_id, signed.via)


def frame_ancestors(shop: Shop) -> str:
    """Who may frame this shop's pages: its own admin only."""
    if shop.platform == "shopify":
        return f"frame-ancestors https://{shop.domain} https://admin.shopify.com"
    if shop.platform == "woocommerce":
        # The store's origin: a source with a path (WordPress in a subdirectory) would have to match
        # wp-admin's path exactly (CSP source matching), which it never does.
        parts = urlsplit(shop.domain)
        return f"frame-ancestors {parts.scheme}://{parts.netloc}"
    return "frame-ancestors 'self'"


def signed_in(view: F) -> F:
    """Route decorator: 401 without a valid token; otherwise `current_shop()` is the token's shop
    and the response may be framed by that shop's admin only."""

    @wraps(view)  # type: ignore[arg-type]
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        signed = read(_presented())
        shop = get_session().get(Shop, signed.shop_id) if signed else None
        if signed is None or shop is None or shop.uninstalled_at is not None:
            return Response("Your session has expired or is not valid; open Clawback from your store admin again.",
                            401, {"Content-Type": "text/plain; charset=utf-8"})  # fmt: skip
        g.signed, g.shop = signed, shop
        response = current_app.make_response(view(*args, **kwargs))  # type: ignore[operator]
        response.headers["Content-Security-Policy"] = frame_ancestors(shop)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
        return response

    return cast(F, wrapper)
