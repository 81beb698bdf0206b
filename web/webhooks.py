"""POST /webhooks/<platform>: read the raw bytes, verify, store, answer. Processing follows.

The order is the security: nothing is parsed or written before the signature is verified, and
the 200 goes out only once the raw delivery is durable (so no accepted webhook can be lost; a
processing failure leaves the stored row to retry or replay).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, cast

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from sqlmodel import col, select
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

import connectors
from app.models import Shop
from app.shops import read_credentials
from web.bodies import read_body
from web.extensions import Services, services

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
from web.metrics import ACCEPTED, DUPLICATES, REJECTED, counted

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# Header names worth keeping with the delivery (never the signature: it proves nothing later).
_KEPT_HEADERS = ("Content-Type", "User-Agent")


_ANSWERS = {status: (json.dumps({"status": status}) + "\n").encode() for status in ("accepted", "duplicate")}
_JSON = [("Content-Type", "application/json")]
PREFIX = "/webhooks/"

Answer = tuple[int, dict[str, str] | str]  # a status and a JSON object, or one of _ANSWERS' keys


def too_large(max_body_bytes: int) -> str:
    """What a body over the limit is told (the route's 413 handler and the fast path)."""
    return f"the body is larger than {max_body_bytes} bytes"


def _refuse(status: int, message: str, platform: str = "") -> Answer:
    log.info("webhook refused: %s", message, extra={"platform": platform, "status": status})
    REJECTED.labels(platform=platform or "unknown", reason=str(status)).inc()
    return status, {"error": message}


@bp.post("/webhooks/<platform>")
def receive_view(platform: str) -> ResponseReturnValue:
    """The route, for what the WSGI fast path (`WebhookIntake`) hands on: a query string, a NUL."""
    status, payload = receive(services(), platform, request)
    if isinstance(payload, str):
        return Response(_ANSWERS[payload], status=status, mimetype="application/json")
    return jsonify(payload), status


def receive(svc: Services, platform: str, request: Request) -> Answer:
    """Verify, store and answer one delivery (Flask-free: the WSGI fast path calls it too)."""
    try:
        connector = connectors.get(platform)()
    except LookupError:
        return _refuse(404, f"no webhooks for platform '{platform}'")
    try:
        raw = read_body(request)
    except RequestEntityTooLarge:
        raise  # the route's 413 handler and the fast path answer it alike
    except Exception as exc:  # the client's stream is broken: nothing to verify, nothing stored
        return _refuse(400, f"the body could not be read ({type(exc).__name__}): check its transfer encoding")
    # werkzeug's Headers: a case-insensitive mapping, which is what connectors need.
    headers = cast(Mapping[str, str], request.headers)
    if connector.is_unsigned_ping(raw, headers):
        log.info("endpoint test answered", extra={"platform": platform})
        return 200, {"status": "ok"}
    domain = connector.shop_hint(headers)
    shop = None
    if domain is not None:
        shop = svc.deliveries.find_shop(platform, domain)  # read without a write lock
    if connector.shop_in_body and shop is None:
        secrets = _platform_secrets(svc, connector, platform)  # no header names the shop: any of ours may have signed
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
        return 200, {"status": "ok"}
    if connector.shop_in_body and shop is None:
        # The verified body names the shop; it must have been signed with that shop's own secret.
        shop = svc.deliveries.find_shop(platform, delivery.shop)
        own = connector.secrets(svc.settings, read_credentials(svc.vault, shop)) if shop is not None else []
        if shop is not None and not connector.verify(raw, headers, own):
            return _refuse(401, "signature missing or invalid", platform)
    if shop is None or shop.id is None:
        if delivery.topic in connector.compliance_topics:
            return 200, {"status": "nothing held for this shop"}
        return _refuse(404, f"shop {delivery.shop} is not installed", platform)
    context = {"shop": shop.domain, "platform": platform, "topic": delivery.topic, "delivery_id": delivery.delivery_id}
    kept = {k: v for k, v in request.headers.items() if k.startswith("X-") or k in _KEPT_HEADERS}
    kept.pop(connector.signature_header, None)
    # One INSERT in its own transaction, committed (durable) before we answer; the stored row is
    # the job: workers poll stored deliveries, so nothing else is written.
    stored = svc.deliveries.accept(shop_id=shop.id, platform=platform, topic=delivery.topic,
                                   delivery_id=delivery.delivery_id, body=raw, headers=kept)  # fmt: skip
    if stored.duplicate:
        # "Already have it" is a success. Not tried yet: a worker will poll it. Tried, and waiting
        # for a retry whose job a crash may have lost: enqueue it again now; processing is
        # idempotent, so it cannot double.
        if stored.status == "received" and stored.attempts > 0:
            _enqueue(svc, stored.id, platform)
        counted(DUPLICATES, platform).inc()
        # DEBUG: the access log has every answer, and the stored row says what arrived when.
        log.debug("duplicate delivery", extra=context | {"status": "duplicate"})
        return 200, "duplicate"
    counted(ACCEPTED, platform).inc()
    log.debug("delivery accepted", extra=context | {"status": "accepted"})
    return 200, "accepted"


def _platform_secrets(svc: Services, connector: connectors.Connector, platform: str) -> list[str]:
    """Every secret a shop of `platform` holds, each once (a few shops: one decryption each)."""
    with svc.db.session() as session:  # its own short read, ended before the delivery's INSERT
        shops = session.exec(select(Shop).where(Shop.platform == platform, col(Shop.credentials).is_not(None))).all()
    found: dict[str, None] = {}
    for shop in shops:
        found.update(dict.fromkeys(connector.secrets(svc.settings, read_credentials(svc.vault, shop))))
    return list(found)


class WebhookIntake:
    """WSGI middleware: a plain POST /webhooks/<platform> is answered here, before Flask.

    Flask's request context, URL matching and request hooks cost about as much as verifying and
    storing a delivery; none of them serve a webhook (no session, no route variables but the
    platform, no template). Anything less plain (a query string, a NUL or a further slash in the
    path, another method) goes on to Flask, whose route calls the same `receive`. Answers as the
    route would: the same statuses and JSON, 413 over the body limit, and for an unexpected
    error a logged 500 (the platform retries; nothing was acknowledged).
    """

    def __init__(self, wsgi_app: WSGIApplication, svc: Services, max_body_bytes: int) -> None:
        self.next, self.svc, self.max_body_bytes = wsgi_app, svc, max_body_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        platform = path[len(PREFIX) :]
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or not path.startswith(PREFIX)
            or not platform
            or "/" in platform
            or "\x00" in path
            or environ.get("QUERY_STRING")
        ):
            return self.next(environ, start_response)
        request = Request(environ)
        request.max_content_length = self.max_body_bytes
        try:
            status, payload = receive(self.svc, platform, request)
        except RequestEntityTooLarge:
            status, payload = 413, {"error": too_large(self.max_body_bytes)}
        except Exception:
            log.exception("webhook failed", extra={"platform": platform})
            status, payload = 500, {"error": "internal error: nothing was stored, try again"}
        body = _ANSWERS[payload] if isinstance(payload, str) else (json.dumps(payload) + "\n").encode()
        start_response(f"{status} {HTTP_STATUS_CODES[status]}", [*_JSON, ("Content-Length", str(len(body)))])
        return [body]


def _enqueue(svc: Services, pk: int, platform: str) -> None:
    try:
        svc.jobs.enqueue(pk, platform)
    except Exception:
        # Stored, so not lost: the sweeper re-enqueues deliveries left unprocessed.
        log.exception("could not enqueue delivery %s; the sweeper will pick it up", pk)
