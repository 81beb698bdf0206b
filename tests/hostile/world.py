"""The hostile-input harness: one app and database for a whole hypothesis run (`World`), and what
every generated input is checked against.

For every input:
  * the answer is < 500, and a refusal (4xx) says what is wrong in a non-empty JSON or text body;
  * a refusal writes nothing: aggregates over every table (row counts, balances, attempts, ...) and
    the shops' rows are compared before and after (`fingerprint`);
  * no secret (the app secret, the encryption key and the Fernet key derived from it, the Flask
    secret key, a shop's access token) appears in a response or in any log record;
  * nothing reaches the network;
  * a validly signed delivery is stored and settles: its row ends 'processed', 'ignored' or 'failed'
    (with last_error) — never left 'received' by an unhandled error — the other shop's rows are
    untouched, and the ledger audit (`app.audit.violations`) stays empty.

The sweeps live in tests/hostile/; the regression tests of the bugs they found live next to the code
each guards, and use this harness through the `world` and `installed` fixtures of tests/conftest.py.
An open bug is pinned by a strict xfail (`open_bug`) and listed in KNOWN_BUGS with its exact
signature, so the sweeps can count its hits and go on; anything else fails. When an open bug is
fixed its xfail turns into a failure (XPASS strict): remove the mark and its entry in KNOWN_BUGS.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import note
from sqlalchemy import text
from sqlmodel import select
from werkzeug.test import TestResponse

import connectors
from app import audit, wallet
from app.crypto import Vault
from app.db import Database
from app.models import Shop, WebhookDelivery
from app.shops import register_shop
from connectors.shopify import shop_domain
from tests.conftest import SHOPIFY_API_SECRET, TEST_ENCRYPTION_KEY
from tests.helpers import post_webhook
from tests.hostile.payloads import order_body, to_json
from tests.platforms.shopify import HMAC_HEADER, SHOP, sign

BASE_URL = "https://clawback.example"
OTHER = "other-shop.myshopify.com"  # registered too: deliveries for it must never touch SHOP's rows
STRANGER = "not-installed.myshopify.com"  # a real-looking shop that never installed the app
ACCESS_TOKEN = "shpat_hostile_sweep_0123456789abcdef"
FERNET_KEY = base64.urlsafe_b64encode(hashlib.sha256(TEST_ENCRYPTION_KEY.encode()).digest()).decode()
# Every sweep module's pytestmark: the sweeps sign session tokens with the short test secret, and
# each test's count of inputs is shown in the summary (tests/hostile/conftest.py).
MARKS = [
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
    pytest.mark.filterwarnings("always:hostile inputs tried:UserWarning"),
]


# --- how many inputs were tried (reported by tests/hostile/conftest.py) --------------------------

TRIED: Counter[str] = Counter()
KNOWN: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()  # how stored deliveries ended: processed, ignored, failed, received


# --- bugs still open, recognised by their exact signature -----------------------------------------

# Letters follow the report. A-T were found by this sweep and are fixed; their regression tests sit
# next to the code each guards (their docstrings name the letter). None is open now. An open bug is
# pinned by a strict xfail (`open_bug`) and listed here with its exact signature, so the sweeps can
# count it and go on; anything else fails.
KNOWN_BUGS: dict[str, str] = {}


def stuck_signature(last_error: str | None, topic: str) -> str | None:
    """The open bug that explains a delivery left 'received', or None (a new bug). D, the last one
    (amendments with unchecked order ids), is fixed."""
    return None


def known(bug: str) -> None:
    """Count a hit of the open bug `bug` (a sweep goes on)."""
    assert bug in KNOWN_BUGS
    KNOWN[bug] += 1
    note(f"known bug {bug}: {KNOWN_BUGS[bug]}")


def open_bug(bug: str, condition: bool = True) -> pytest.MarkDecorator:
    """The strict xfail that pins the regression test of an open bug."""
    return pytest.mark.xfail(condition, strict=True, reason=f"BUG {bug}: {KNOWN_BUGS[bug]}")


# --- our side ----------------------------------------------------------------------------------

TABLES = ("customers", "orders", "awards", "redemptions", "ledger_entries", "webhook_deliveries", "writebacks",
          "data_exports", "api_keys", "api_requests")  # fmt: skip
_AGGREGATES = {
    "customers": "count(*), sum(available_coins), sum(pending_coins), sum(shortfall_coins), count(email), "
    "count(flagged_at), max(id)",
    "orders": "count(*), count(customer_id), 0, 0, 0, 0, max(id)",
    "awards": "count(*), sum(coins_earned), sum(coins_reverted), count(hold_until), sum(moves), 0, max(id)",
    "redemptions": "count(*), sum(coins_redeemed), sum(coins_returned), count(order_ref), 0, 0, max(id)",
    "ledger_entries": "count(*), sum(coins_delta), sum(pending_delta), sum(shortfall_delta), 0, 0, max(id)",
    "webhook_deliveries": "count(*), sum(attempts), count(processed_at), count(last_error), count(customer_ref), "
    "count(order_ref), max(id)",
    "writebacks": "count(*), sum(attempts), count(done_at), 0, 0, 0, max(id)",
    "data_exports": "count(*), 0, 0, 0, 0, 0, max(id)",
    "api_keys": "count(*), count(revoked_at), 0, 0, 0, 0, max(id)",
    "api_requests": "count(*), count(redemption_id), 0, 0, 0, 0, max(id)",
}


def fingerprint(db: Database, shop_id: int | None = None) -> dict[str, Any]:
    """Row counts and sums over every table (one shop's rows, or all), and the shops themselves.
    A refusal must leave this exactly as it was."""
    where = "" if shop_id is None else f" WHERE shop_id = {int(shop_id)}"
    query = " UNION ALL ".join(f"SELECT '{table}', {_AGGREGATES[table]} FROM {table}{where}" for table in TABLES)
    shops_where = "" if shop_id is None else f" WHERE id = {int(shop_id)}"
    with db.engine.connect() as conn:
        found: dict[str, Any] = {row[0]: tuple(int(v or 0) for v in row[1:]) for row in conn.execute(text(query))}
        found["shops"] = [
            tuple(str(v) for v in row)
            for row in conn.execute(
                text(
                    f"SELECT id, platform, domain, name, currency, credentials, settings, uninstalled_at "
                    f"FROM shops{shops_where} ORDER BY id"
                )
            )
        ]
    return found


def _record_text(record: logging.LogRecord) -> str:
    formatted = logging.Formatter("%(message)s").format(record)
    return f"{formatted}\n{record.__dict__!r}"


@dataclass
class World:
    """One app and database for a whole hypothesis run (a test function), with its checks."""

    app: Flask
    client: FlaskClient
    db: Database
    vault: Vault
    caplog: pytest.LogCaptureFixture
    secrets: dict[str, str]
    network: list[str]
    shop_ids: dict[str, int] = field(default_factory=dict)
    used_ids: set[tuple[int, str]] = field(default_factory=set)
    # Deliveries a known bug left 'received'. Not replayed: the duplicate path re-enqueues them while
    # the request's SQLite transaction (BEGIN IMMEDIATE, for a SELECT) holds the write lock, and the
    # inline test queue then waits out busy_timeout twice (60 s): KNOWN_BUGS['M-...'].
    stuck: set[tuple[int, str]] = field(default_factory=set)
    seen_logs: int = 0

    # -- shops --

    def ensure_shops(self) -> None:
        """SHOP and OTHER installed (a shop/redact delivery may have erased one)."""
        with self.db.session() as session:
            for domain in (SHOP, OTHER):
                found = session.exec(select(Shop).where(Shop.platform == "shopify", Shop.domain == domain)).first()
                if found is None:
                    found, _ = register_shop(
                        session,
                        self.vault,
                        platform="shopify",
                        domain=domain,
                        credentials={"access_token": ACCESS_TOKEN},
                    )
                    # SQLite may hand an erased shop's id to the new one: its deliveries are gone.
                    self.used_ids = {used for used in self.used_ids if used[0] != found.id}
                    self.stuck = {used for used in self.stuck if used[0] != found.id}
                assert found.id is not None
                self.shop_ids[domain] = found.id

    def seed(self) -> None:
        """Both shops hold a paid order with coins for customer 501; SHOP has redemptions too."""
        self.ensure_shops()
        for domain in (SHOP, OTHER):
            response = self.deliver("orders/paid", to_json(order_body(1001, 501)).encode(), shop=domain)
            assert response.status_code == 200, response.get_data(as_text=True)
        with self.db.session() as session:
            shop = session.get(Shop, self.shop_ids[SHOP])
            assert shop is not None
            wallet.redeem(session, shop, "501", 10, source="test", code="HOSTILE10")
            wallet.redeem(session, shop, "501", 5, source="test", order_ref="1002")
        assert self.violations() == []

    # -- requests --

    def deliver(
        self,
        topic: str | None,
        body: bytes,
        *,
        shop: str | None = SHOP,
        webhook_id: str | None = None,
        signature: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
        platform: str = "shopify",
    ) -> TestResponse:
        """POST one Shopify delivery, signed unless `signature` is given, with `extra` headers set
        over the usual ones; then run the worker once (`tests.helpers.post_webhook`)."""
        headers = [
            ("Content-Type", "application/json"),
            (HMAC_HEADER, sign(body) if signature is None else signature),
            ("X-Shopify-API-Version", "2026-07"),
            ("X-Shopify-Triggered-At", "2026-11-01T12:00:00.000Z"),
            ("X-Shopify-Webhook-Id", str(uuid.uuid4()) if webhook_id is None else webhook_id),
        ]
        if topic is not None:
            headers.append(("X-Shopify-Topic", topic))
        if shop is not None:
            headers.append(("X-Shopify-Shop-Domain", shop))
        names = {name.lower() for name, _ in extra}
        headers = [(name, value) for name, value in headers if name.lower() not in names] + list(extra)
        return post_webhook(self.client, platform, body, headers)

    def get(self, path: str, query: Any = None, headers: Any = None, client: FlaskClient | None = None) -> TestResponse:
        return (client or self.client).get(path, query_string=query, headers=headers or {}, base_url=BASE_URL)

    # -- checks --

    def violations(self) -> list[str]:
        with self.db.session() as session:
            return audit.violations(session)

    def check_answer(self, response: TestResponse, where: str) -> None:
        status, body = response.status_code, response.get_data()
        assert status < 500, f"{where}: answered {status}: {body[:300]!r}"
        for name, secret in self.secrets.items():
            assert secret.encode() not in body, f"{where}: the response body carries {name}"
        for header, value in response.headers.items():
            assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value), (
                f"{where}: control character in {header}: {value!r}"
            )
            value.encode("latin-1")  # a WSGI server can only send latin-1 header values
            for name, secret in self.secrets.items():
                assert secret not in value, f"{where}: header {header} carries {name}"
        if 400 <= status < 500 and response.request.method != "HEAD":  # HEAD answers carry no body
            assert body.strip(), f"{where}: refused with {status} and an empty body"
            mimetype = response.mimetype or ""
            assert mimetype == "application/json" or mimetype.startswith("text/"), f"{where}: {mimetype} refusal"
            if mimetype == "application/json":
                error = response.get_json().get("error")
                assert isinstance(error, str) and error.strip(), f"{where}: refusal without an error message"

    def check_logs_and_network(self, where: str) -> None:
        records = self.caplog.records[self.seen_logs :]
        self.seen_logs = len(self.caplog.records)
        for record in records:
            logged = _record_text(record)
            for name, secret in self.secrets.items():
                assert secret not in logged, f"{where}: {name} logged by {record.name}: {record.getMessage()[:200]}"
        assert not self.network, f"{where}: a hostile input reached the network: {self.network}"

    def delivery(self, shop_id: int, webhook_id: str) -> WebhookDelivery | None:
        with self.db.session() as session:
            return session.exec(
                select(WebhookDelivery).where(
                    WebhookDelivery.shop_id == shop_id, WebhookDelivery.delivery_id == webhook_id.strip()[:200]
                )
            ).first()

    def latest_delivery(self, shop_id: int) -> WebhookDelivery | None:
        """The shop's newest stored delivery."""
        with self.db.session() as session:
            query = select(WebhookDelivery).where(WebhookDelivery.shop_id == shop_id)
            return session.exec(query.order_by(WebhookDelivery.id.desc())).first()  # type: ignore[union-attr]

    def check_settled(self, shop_id: int, webhook_id: str, topic: str, where: str) -> None:
        """The stored delivery ended processed/ignored/failed, or is explained by a known bug."""
        row = self.delivery(shop_id, webhook_id)
        if row is None:
            assert topic.strip() == "shop/redact", f"{where}: accepted but not stored"
            return
        note(f"stored delivery: status={row.status} last_error={(row.last_error or '')[:300]!r}")
        OUTCOMES[row.status] += 1
        if row.status == "failed":
            assert row.last_error and row.last_error.strip(), f"{where}: failed without last_error"
            return
        if row.status in ("processed", "ignored"):
            return
        assert row.status == "received", f"{where}: unexpected status {row.status}"
        bug = stuck_signature(row.last_error, topic)
        assert bug is not None, f"{where}: processing raised an unhandled error: {row.last_error}"
        known(bug)
        self.stuck.add((shop_id, webhook_id.strip()[:200]))

    def fresh_if_stuck(self, shop_id: int | None, webhook_id: str) -> str:
        return str(uuid.uuid4()) if (shop_id, webhook_id.strip()) in self.stuck else webhook_id


@contextmanager
def watching(app: Flask, client: FlaskClient, db: Database, caplog: pytest.LogCaptureFixture) -> Iterator[World]:
    """A World over the test's app: every log record captured, and urllib and the httpx clients
    shopifyapp opens answered here, each attempt recorded as network use (the `world` fixture)."""
    caplog.set_level(logging.DEBUG)
    network: list[str] = []
    svc = app.extensions["clawback"]
    secrets = {
        "SHOPIFY_API_SECRET": SHOPIFY_API_SECRET,
        "CLAWBACK_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "the Fernet key": FERNET_KEY,
        "SECRET_KEY": app.config["SECRET_KEY"],
        "the access token": ACCESS_TOKEN,
    }
    assert svc.settings.shopify_api_secret == SHOPIFY_API_SECRET and svc.settings.encryption_key == TEST_ENCRYPTION_KEY

    def urlopen(request: Any, *args: Any, **kwargs: Any) -> Any:
        network.append(f"urlopen {getattr(request, 'full_url', request)}")
        raise AssertionError("a hostile input reached Shopify's token endpoint")

    def refuse(request: httpx.Request) -> httpx.Response:
        network.append(f"httpx {request.method} {request.url}")
        return httpx.Response(400, json={"error": "invalid_subject_token"})

    from shopify_app.utils import http_client

    original = http_client.HTTPClientContext.__init__
    mock_client = httpx.Client(transport=httpx.MockTransport(refuse))

    def init(self: Any, injected_client: httpx.Client | None = None, timeout: float = 30.0) -> None:
        original(self, injected_client if injected_client is not None else mock_client, timeout)

    with (
        mock.patch("urllib.request.urlopen", urlopen),
        mock.patch.object(http_client.HTTPClientContext, "__init__", init),
    ):
        yield World(app, client, db, svc.vault, caplog, secrets, network)
    mock_client.close()


def shop_of(raw: str | None) -> str | None:
    """The oracle's shop_domain: the app's own function, with bug K's ValueError read as 'not a shop'."""
    try:
        return shop_domain(raw)
    except ValueError:
        return None


def has_nul(*parts: Any) -> bool:
    """A NUL in a path or a query (keys or values): the app refuses those with 400 before routing."""
    for part in parts:
        if isinstance(part, str) and "\x00" in part:
            return True
        if isinstance(part, Mapping) and has_nul(*part.keys(), *part.values()):
            return True
        if isinstance(part, list | tuple) and has_nul(*part):
            return True
    return False


def is_platform(name: str) -> bool:
    try:
        connectors.get(name)
    except LookupError:
        return False
    return True


def csp_sources(response: TestResponse) -> list[str]:
    """The sources of the answer's CSP, which must be one frame-ancestors directive."""
    policy = response.headers.get("Content-Security-Policy", "")
    directive, _, rest = policy.strip().rstrip(";").partition(" ")
    assert directive == "frame-ancestors" and ";" not in rest, f"CSP is not one frame-ancestors directive: {policy!r}"
    return rest.split()
