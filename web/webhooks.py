"""POST /webhooks/<platform>: read the raw bytes, verify, store, answer. Processing follows.

The order is the security: nothing is parsed or written before the signature is verified, and
the 200 goes out only once the raw delivery is durable (so no accepted webhook can be lost; a
processing failure leaves the stored row to retry or replay).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import cast

from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlmodel import col, select

import connectors
from app.intake import accept, find_shop
from app.models import Shop
from app.shops import read_credentials
from web.extensions import get_session, services
from web.metrics import ACCEPTED, DUPLICATES, REJECTED, counted

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# Header names worth keeping with the delivery (never the signature: it proves nothing later).
_KEPT_HEADERS = ("Content-Type", "User-Agent")


_ANSWERS = {status: json.dumps({"status": status}) + "\n" for status in ("accepted", "duplicate")}


def _answer(status: str) -> Response:
    """The 200 a stored delivery gets, prebuilt (jsonify per webhook cost more than the rest)."""
    return Response(_ANSWERS[status], mimetype="application/json")


def _refuse(status: int, message: str, platform: str = "") -> ResponseReturnValue:
    log.info("webhook refused: %s", message, extra={"platform": platform, "status": status})
    REJECTED.labels(platform=platform or "unknown", reason=str(status)).inc()
    return jsonify(error=message), status


@bp.post("/webhooks/<platform>")
def receive(platform: str) -> ResponseReturnValue:
    try:
        connector = connectors.get(platform)()
    except LookupError:
        return _refuse(404, f"no webhooks for platform '{platform}'")
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: werkzeug answers 413 here
    # werkzeug's Headers: a case-insensitive mapping, which is what connectors need.
    headers = cast(Mapping[str, str], request.headers)
    if connector.is_unsigned_ping(raw, headers):
        log.info("endpoint test answered", extra={"platform": platform})
        return jsonify(status="ok"), 200
    svc = services()
    domain = connector.shop_hint(headers)
    shop = None
    if domain is not None:
        shop = find_shop(svc.db, platform, domain)  # read without a write lock
    if connector.shop_in_body and shop is None:
        secrets = _platform_secrets(connector, platform)  # no header names the shop: any of ours may have signed
    else:
        secrets = connector.secrets(svc.settings, read_credentials(svc.vault, shop) if shop is not None else {})
    if not connector.verify(raw, headers, secrets):
        return _refuse(401, "signature missing or invalid", platform)
    try:
        delivery = connector.identify(raw, headers)
    except ValueError as exc:
        return _refuse(400, str(exc), platform)
    if delivery.topic in connector.test_topics:
        log.info("test delivery answered", extra={"platform": platform, "topic": delivery.topic})
        return jsonify(status="ok"), 200
    if connector.shop_in_body and shop is None:
        # The verified body names the shop; it must have been signed with that shop's own secret.
        shop = find_shop(svc.db, platform, delivery.shop)
        own = connector.secrets(svc.settings, read_credentials(svc.vault, shop)) if shop is not None else []
        if shop is not None and not connector.verify(raw, headers, own):
            return _refuse(401, "signature missing or invalid", platform)
    if shop is None or shop.id is None:
        if delivery.topic in connector.compliance_topics:
            return jsonify(status="nothing held for this shop"), 200
        return _refuse(404, f"shop {delivery.shop} is not installed", platform)
    context = {"shop": shop.domain, "platform": platform, "topic": delivery.topic, "delivery_id": delivery.delivery_id}
    kept = {k: v for k, v in request.headers.items() if k.startswith("X-") or k in _KEPT_HEADERS}
    kept.pop(connector.signature_header, None)
    if (session := g.get("db_session")) is not None:  # the request's session, if anything opened it:
        session.commit()  # end its read first: on SQLite it would hold the write lock the INSERT needs
    # One INSERT in its own transaction, committed (durable) before we answer; the stored row is
    # the job: workers poll stored deliveries, so nothing else is written.
    stored = accept(svc.db, shop_id=shop.id, platform=platform, topic=delivery.topic,
                    delivery_id=delivery.delivery_id, body=raw, headers=kept, spool=svc.inbox)  # fmt: skip
    if stored.duplicate:
        # "Already have it" is a success. Not tried yet: a worker will poll it. Tried, and waiting
        # for a retry whose job a crash may have lost: enqueue it again now; processing is
        # idempotent, so it cannot double.
        if stored.status == "received":
            _enqueue(stored.id, platform, again=stored.attempts > 0)
        counted(DUPLICATES, platform).inc()
        # DEBUG: the access log has every answer, and the stored row says what arrived when.
        log.debug("duplicate delivery", extra=context | {"status": "duplicate"})
        return _answer("duplicate")
    if stored.status != "spooled":  # a spooled delivery reaches the worker through the inbox
        _enqueue(stored.id, platform, again=False)
    counted(ACCEPTED, platform).inc()
    log.debug("delivery accepted", extra=context | {"status": "accepted"})
    return _answer("accepted")


def _platform_secrets(connector: connectors.Connector, platform: str) -> list[str]:
    """Every secret a shop of `platform` holds, each once (a few shops: one decryption each)."""
    svc = services()
    shops = get_session().exec(select(Shop).where(Shop.platform == platform, col(Shop.credentials).is_not(None)))
    found: dict[str, None] = {}
    for shop in shops:
        found.update(dict.fromkeys(connector.secrets(svc.settings, read_credentials(svc.vault, shop))))
    return list(found)


def _enqueue(pk: int, platform: str, *, again: bool) -> None:
    try:
        jobs = services().jobs
        jobs.enqueue(pk, platform) if again else jobs.delivery_stored(pk, platform)
    except Exception:
        # Stored, so not lost: the sweeper re-enqueues deliveries left unprocessed.
        log.exception("could not enqueue delivery %s; the sweeper will pick it up", pk)
