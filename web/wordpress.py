"""WooCommerce routes: the key exchange, and the companion WordPress plugin's signed launch.

GET  /auth/woocommerce/connect?store_url=…   install token minted → 302 to the store's authorize page
POST /auth/woocommerce/callback              WooCommerce's unsigned key payload: 200 only for a live
                                             install token and keys the store accepts
GET  /auth/woocommerce/return                where the merchant lands after approving or declining
GET  /wordpress/launch?store=&user=&ts=&sig= the plugin's iframe: a signature made with the store's
                                             launch secret, at most LAUNCH_MAX_AGE_S old → the
                                             settings pages, framable by that store only
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import select

from app import jsoncodec
from app.domain.text import whole_number
from app.errors import InvalidInput
from app.models import Shop, Writeback
from app.shops import read_credentials
from connectors.base import hmac_sha256_matches
from connectors.woocommerce import connect, store_from_source
from connectors.woocommerce.client import KeysRefused, WooCommerceError
from web.bodies import read_body
from web.extensions import get_session, services
from web.session import frame_ancestors, mint

log = logging.getLogger(__name__)
bp = Blueprint("wordpress", __name__)
LAUNCH_MAX_AGE_S = 300


def _refuse(status: int, message: str) -> ResponseReturnValue:
    log.info("woocommerce refused: %s", message, extra={"platform": "woocommerce", "status": status})
    return jsonify(error=message), status


@bp.get("/auth/woocommerce/connect")
def connect_start() -> ResponseReturnValue:
    raw = request.args.get("store_url", "")
    if not raw:
        return _refuse(400, "store_url is required: the address of your WordPress site")
    session = get_session()
    try:
        location = connect.start(session, raw, services().settings.app_url)
    except InvalidInput as exc:
        return _refuse(400, str(exc))
    session.commit()
    return redirect(location, code=302)


@bp.post("/auth/woocommerce/callback")
def connect_callback() -> ResponseReturnValue:
    # WooCommerce deletes the key unless this answers exactly 200; every refusal is a 4xx/5xx.
    svc = services()
    session = get_session()
    try:
        keys = connect.read_keys(_json_body())  # whatever the Content-Type says
        shop = connect.accept(session, svc.vault, keys)
    except connect.CallbackRefused as exc:
        session.rollback()
        return _refuse(exc.status, str(exc))
    except KeysRefused as exc:
        session.rollback()
        return _refuse(400, f"the store refused the keys it sent: {exc}")
    except WooCommerceError as exc:
        session.rollback()
        return _refuse(502, f"the store could not be reached to check the keys: {exc}")
    session.commit()
    log.info("connected %s", shop.domain, extra={"platform": "woocommerce", "shop": shop.domain})
    _register_webhooks_now(shop, keys.key_id)
    return jsonify(status="connected", shop=shop.domain), 200


def _json_body() -> Any:
    """The request's body as JSON, or None when it is not JSON. Not `get_json(silent=True)`: that
    lets a RecursionError through (a body nested deeper than the parser recurses), a 500."""
    try:
        return jsoncodec.loads(read_body(request))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def _register_webhooks_now(shop: Shop, key_id: int) -> None:
    """Queue the webhook registration now rather than at the next scheduled run (which would
    also pick it up: the intent is already stored)."""
    wanted = f"webhooks:register:{key_id}"
    row = (
        get_session()
        .exec(select(Writeback.id).where(Writeback.shop_id == shop.id, Writeback.idempotency_key == wanted))
        .first()
    )
    get_session().commit()  # end the read before a job (inline in tests) needs the database
    try:
        if row is not None:
            services().jobs.writeback(row)
    except Exception:
        log.exception("could not queue the webhook registration; the scheduled run will do it")


@bp.get("/auth/woocommerce/return")
def connect_return() -> ResponseReturnValue:
    approved = request.args.get("success") == "1"
    store = store_from_source(request.args.get("store_url"))
    return render_template("wordpress/return.html", approved=approved, store=store)


def _launch_message(store: str, user: str, ts: str) -> bytes:
    """What the plugin signs (hex HMAC-SHA256 with the store's launch secret): `store|user|ts`,
    `store` exactly as sent (the plugin's `home_url('/')`), so neither side has to normalize it."""
    return f"{store}|{user}|{ts}".encode()


@bp.get("/wordpress/launch")
def launch() -> ResponseReturnValue:
    raw_store = request.args.get("store", "")
    store = store_from_source(raw_store)
    user, ts, sig = (request.args.get(k, "") for k in ("user", "ts", "sig"))
    if store is None:
        return _refuse(400, "store is missing or not a store URL")
    moment = whole_number(ts, 12)
    if whole_number(user, 20) is None or moment is None:
        return _refuse(400, "user and ts must be numbers")
    if abs(time.time() - moment) > LAUNCH_MAX_AGE_S:
        return _refuse(401, "the launch link has expired; reload the page in WordPress")
    shop = get_session().exec(select(Shop).where(Shop.platform == "woocommerce", Shop.domain == store)).first()
    secret = str(read_credentials(services().vault, shop).get("launch_secret") or "") if shop else ""
    if shop is None or shop.id is None or shop.uninstalled_at is not None or not secret:
        return _refuse(401, "this store is not connected to Clawback")
    if not hmac_sha256_matches(_launch_message(raw_store, user, ts), sig, [secret], encoding="hex"):
        return _refuse(401, "the launch signature is not valid")
    location = url_for("admin.features", t=mint(shop.id, "wordpress"))
    response = Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
    response.headers["Content-Security-Policy"] = frame_ancestors(shop)
    return response
