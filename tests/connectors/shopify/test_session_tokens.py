"""Embedded loads (GET /app with a session token), the managed-install token exchange, and refresh.

Session tokens are HS256 JWTs signed with the app secret, as App Bridge hands them over. Shopify's
token endpoint is an `httpx.MockTransport`: `shopifyapp` opens its own httpx client when given
none, so its client factory is pointed at the mock and every request is recorded.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlmodel import select
from werkzeug.test import TestResponse

from app.config import Settings
from app.crypto import Vault
from app.db import Database
from app.models import Shop
from app.shops import read_credentials, register_shop
from connectors.shopify import oauth
from tests.conftest import SHOPIFY_API_KEY, SHOPIFY_API_SECRET
from tests.hostile.world import World, csp_sources, fingerprint
from tests.platforms.shopify import claims_for, hs256

BASE_URL = "https://clawback.example"
SHOP = "clawback-test.myshopify.com"
OTHER_SHOP = "someone-else.myshopify.com"
HOST = base64.urlsafe_b64encode(b"admin.shopify.com/store/clawback-test").decode().rstrip("=")
TOKEN_ENDPOINT = f"https://{SHOP}/admin/oauth/access_token"
EXCHANGED = {"access_token": "shpat_x", "scope": "read_orders,write_customers", "expires_in": 3600,
             "refresh_token": "shprt_y", "refresh_token_expires_in": 7776000}  # fmt: skip
REFRESHED = {"access_token": "shpat_new", "scope": "read_orders,write_customers", "expires_in": 3600,
             "refresh_token": "shprt_new", "refresh_token_expires_in": 7776000}  # fmt: skip
CSP = f"frame-ancestors https://{SHOP} https://admin.shopify.com;"
# The test secrets are short on purpose (readable); PyJWT warns about that on every encode/decode.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


# --- Shopify's side ------------------------------------------------------------------------------


def session_token(
    shop: str = SHOP,
    *,
    secret: str = SHOPIFY_API_SECRET,
    aud: str = SHOPIFY_API_KEY,
    exp_in: int = 60,
    dest: str | None = None,
    iss: str | None = None,
) -> str:
    now = int(time.time())
    claims = {
        "iss": iss or f"https://{shop}/admin",
        "dest": dest or f"https://{shop}",
        "aud": aud,
        "sub": "42",
        "exp": now + exp_in,
        "nbf": now - 5,
        "iat": now - 5,
        "jti": str(uuid.uuid4()),
        "sid": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def tampered(token: str) -> str:
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "1"  # another staff member, same signature
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{sig}"


@dataclass
class TokenServer:
    """Shopify's /admin/oauth/access_token: answers by grant type, records every request."""

    requests: list[httpx.Request] = field(default_factory=list)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.answers.setdefault("urn:ietf:params:oauth:grant-type:token-exchange", (200, EXCHANGED))
        self.answers.setdefault("refresh_token", (200, REFRESHED))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method != "POST" or request.url.path != "/admin/oauth/access_token":
            return httpx.Response(404, json={"errors": "Not Found"})
        status, body = self.answers.get(json.loads(request.content).get("grant_type"), (400, {"error": "?"}))
        return httpx.Response(status, json=body)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))


@pytest.fixture
def shopify(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenServer]:
    """Every httpx client `shopifyapp` opens by itself talks to the mock token server."""
    from shopify_app.utils import http_client

    server = TokenServer()
    mock_client = server.client()
    original = http_client.HTTPClientContext.__init__

    def init(self: Any, injected_client: httpx.Client | None = None, timeout: float = 30.0) -> None:
        original(self, injected_client if injected_client is not None else mock_client, timeout)

    monkeypatch.setattr(http_client.HTTPClientContext, "__init__", init)
    yield server
    mock_client.close()


# --- our side ------------------------------------------------------------------------------------


def load(
    client: FlaskClient, token: str | None = None, *, shop: str | None = SHOP, bearer: bool = False
) -> TestResponse:
    """Open the app as Shopify admin does: a document load with `?id_token=`, or a fetch with a
    bearer token."""
    query = {"embedded": "1", "host": HOST}
    if shop is not None:
        query["shop"] = shop
    headers = {}
    if token is not None and bearer:
        headers["Authorization"] = f"Bearer {token}"
    elif token is not None:
        query["id_token"] = token
    return client.get("/app", query_string=query, headers=headers, base_url=BASE_URL)


def shops(db: Database) -> list[Shop]:
    with db.session() as session:
        return list(session.exec(select(Shop)))


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def vault(app: Flask) -> Vault:
    return app.extensions["clawback"].vault


# --- the first load: verified, exchanged, stored -------------------------------------------------


def test_first_load_exchanges_the_session_token_for_an_expiring_offline_token(
    client: FlaskClient, db: Database, vault: Vault, shopify: TokenServer
) -> None:
    token = session_token()
    before = datetime.now(UTC)
    response = load(client, token)
    assert response.status_code == 200, response.get_data(as_text=True)

    (request,) = shopify.requests
    assert (request.method, str(request.url)) == ("POST", TOKEN_ENDPOINT)
    assert shopify.bodies() == [{
        "client_id": SHOPIFY_API_KEY,
        "client_secret": SHOPIFY_API_SECRET,
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
        "expiring": 1,
    }]  # fmt: skip

    (shop,) = shops(db)
    assert (shop.platform, shop.domain) == ("shopify", SHOP)
    stored = read_credentials(vault, shop)
    assert (stored["access_token"], stored["refresh_token"], stored["scope"]) == (
        "shpat_x", "shprt_y", "read_orders,write_customers"
    )  # fmt: skip
    expected_expiry = before + timedelta(seconds=3600)
    assert abs(parse_iso(stored["expires"]) - expected_expiry) < timedelta(seconds=5)
    expected_refresh_expiry = before + timedelta(seconds=7776000)
    assert abs(parse_iso(stored["refresh_token_expires"]) - expected_refresh_expiry) < timedelta(seconds=5)
    with db.engine.connect() as conn:
        raw = conn.execute(text("SELECT credentials FROM shops")).scalar_one()
    assert "shpat_x" not in raw and "shprt_y" not in raw


def test_the_page_may_be_framed_by_that_shop_only(client: FlaskClient, shopify: TokenServer) -> None:
    response = load(client, session_token())
    assert response.headers["Content-Security-Policy"] == CSP
    assert OTHER_SHOP not in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    assert f'<meta name="shopify-api-key" content="{SHOPIFY_API_KEY}">' in page
    assert '<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js"></script>' in page
    assert f"installed on {SHOP}" in page


def test_each_shop_gets_its_own_frame_ancestors(client: FlaskClient, shopify: TokenServer) -> None:
    other = load(client, session_token(OTHER_SHOP), shop=OTHER_SHOP)
    assert other.status_code == 200
    assert (
        other.headers["Content-Security-Policy"] == f"frame-ancestors https://{OTHER_SHOP} https://admin.shopify.com;"
    )
    assert SHOP not in other.headers["Content-Security-Policy"].replace(OTHER_SHOP, "")


def test_a_second_load_does_not_exchange_again(client: FlaskClient, db: Database, shopify: TokenServer) -> None:
    assert load(client, session_token()).status_code == 200
    assert load(client, session_token()).status_code == 200
    assert load(client, session_token(), bearer=True).status_code == 200
    assert len(shopify.requests) == 1
    assert len(shops(db)) == 1


def test_a_shop_installed_by_code_grant_is_not_exchanged(
    client: FlaskClient, db: Database, vault: Vault, shopify: TokenServer
) -> None:
    with db.session() as session:
        register_shop(session, vault, platform="shopify", domain=SHOP, credentials={"access_token": "shpat_grant"})
    assert load(client, session_token()).status_code == 200
    assert shopify.requests == []
    (shop,) = shops(db)
    assert read_credentials(vault, shop) == {"access_token": "shpat_grant"}


def test_an_uninstalled_shop_is_exchanged_again_on_reinstall(
    client: FlaskClient, db: Database, vault: Vault, shopify: TokenServer
) -> None:
    with db.session() as session:
        shop, _ = register_shop(session, vault, platform="shopify", domain=SHOP, credentials={"access_token": "old"})
        shop.uninstalled_at = datetime.now(UTC)
        session.add(shop)
    assert load(client, session_token()).status_code == 200
    assert len(shopify.requests) == 1
    (shop,) = shops(db)
    assert shop.uninstalled_at is None
    assert read_credentials(vault, shop)["access_token"] == "shpat_x"


def test_shopify_refusing_the_exchange_is_a_502_and_stores_nothing(
    client: FlaskClient, db: Database, shopify: TokenServer
) -> None:
    shopify.answers["urn:ietf:params:oauth:grant-type:token-exchange"] = (400, {"error": "invalid_subject_token"})
    response = load(client, session_token())
    assert response.status_code == 502
    assert len(shopify.requests) == 1
    assert shops(db) == []


def test_a_load_replaces_credentials_that_can_no_longer_be_refreshed(
    client: FlaskClient, db: Database, vault: Vault, shopify: TokenServer
) -> None:
    now = datetime.now(UTC)
    dead = {"access_token": "shpat_dead", "scope": "read_orders", "expires": iso(now - timedelta(days=91)),
            "refresh_token": "shprt_dead", "refresh_token_expires": iso(now - timedelta(days=1))}  # fmt: skip
    with db.session() as session:
        register_shop(session, vault, platform="shopify", domain=SHOP, credentials=dead)
    assert load(client, session_token()).status_code == 200
    assert len(shopify.requests) == 1
    (shop,) = shops(db)
    assert read_credentials(vault, shop)["access_token"] == "shpat_x"


# --- refused loads: nothing exchanged, nothing stored ---------------------------------------------


REJECTED: dict[str, Callable[[], str]] = {
    "tampered token": lambda: tampered(session_token()),
    "expired": lambda: session_token(exp_in=-60),
    "signed with another secret": lambda: session_token(secret="not-the-app-secret"),
}


@pytest.mark.parametrize("make", REJECTED.values(), ids=REJECTED.keys())
def test_an_unverifiable_token_is_refused_on_a_fetch(
    client: FlaskClient, db: Database, shopify: TokenServer, make: Callable[[], str]
) -> None:
    response = load(client, make(), bearer=True)
    assert response.status_code == 401
    assert response.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert "Content-Security-Policy" not in response.headers
    assert shopify.requests == []
    assert shops(db) == []


@pytest.mark.parametrize("make", REJECTED.values(), ids=REJECTED.keys())
def test_an_unverifiable_token_on_a_document_load_bounces_for_a_fresh_one(
    client: FlaskClient, db: Database, shopify: TokenServer, make: Callable[[], str]
) -> None:
    """Shopify's documented answer to a stale document token: the bounce page, never the app."""
    response = load(client, make())
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.netloc, location.path) == ("clawback.example", oauth.PATCH_ID_TOKEN_PATH)
    assert "id_token" not in parse_qs(location.query)
    assert shopify.requests == []
    assert shops(db) == []


CLAIMS_REJECTED: dict[str, Callable[[], str]] = {
    "wrong aud": lambda: session_token(aud="another-app"),
    "dest names another shop than iss": lambda: session_token(dest=f"https://{OTHER_SHOP}"),
    "iss names another shop than dest": lambda: session_token(iss=f"https://{OTHER_SHOP}/admin"),
    "dest is not a shop": lambda: session_token(dest="https://evil.com", iss="https://evil.com/admin"),
}


@pytest.mark.parametrize("bearer", [False, True], ids=["document", "fetch"])
@pytest.mark.parametrize("make", CLAIMS_REJECTED.values(), ids=CLAIMS_REJECTED.keys())
def test_a_token_with_the_wrong_claims_is_refused(
    client: FlaskClient, db: Database, shopify: TokenServer, make: Callable[[], str], bearer: bool
) -> None:
    response = load(client, make(), bearer=bearer)
    assert response.status_code == 401
    assert "Content-Security-Policy" not in response.headers
    assert shopify.requests == []
    assert shops(db) == []


def test_a_shop_parameter_naming_another_shop_is_refused(
    client: FlaskClient, db: Database, shopify: TokenServer
) -> None:
    response = load(client, session_token(SHOP), shop=OTHER_SHOP)
    assert response.status_code == 401
    assert shopify.requests == []
    assert shops(db) == []


def test_a_document_load_without_a_token_bounces_through_app_bridge(
    client: FlaskClient, db: Database, shopify: TokenServer
) -> None:
    response = load(client, None)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "clawback.example", oauth.PATCH_ID_TOKEN_PATH)
    query = parse_qs(location.query)
    assert query["shop"] == [SHOP] and query["host"] == [HOST]
    (reload_to,) = query["shopify-reload"]
    reloaded = urlsplit(unquote(reload_to))
    assert reloaded.path == "/app"
    assert parse_qs(reloaded.query) == {"embedded": ["1"], "host": [HOST], "shop": [SHOP]}
    assert shopify.requests == []
    assert shops(db) == []


def test_the_bounce_page_loads_app_bridge(client: FlaskClient) -> None:
    response = client.get(oauth.PATCH_ID_TOKEN_PATH, query_string={"shop": SHOP, "shopify-reload": "/app"},
                          base_url=BASE_URL)  # fmt: skip
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "https://cdn.shopify.com/shopifycloud/app-bridge.js" in page
    assert f'data-api-key="{SHOPIFY_API_KEY}"' in page
    assert response.headers["Content-Security-Policy"] == CSP


@pytest.mark.parametrize("query", [{"shop": SHOP}, {"shopify-reload": "/app"}], ids=["no reload", "no shop"])
def test_the_bounce_page_needs_a_shop_and_a_reload_path(client: FlaskClient, query: dict[str, str]) -> None:
    assert client.get(oauth.PATCH_ID_TOKEN_PATH, query_string=query, base_url=BASE_URL).status_code == 400


@pytest.mark.parametrize("shop", ["evil.com", "*", f"{SHOP} https://evil.com"])
def test_the_bounce_page_frames_only_for_a_shopify_shop(client: FlaskClient, shop: str) -> None:
    """shopifyapp copies ?shop= into frame-ancestors: anything but a shop would let any site frame it."""
    response = client.get(oauth.PATCH_ID_TOKEN_PATH, query_string={"shop": shop, "shopify-reload": "/app"},
                          base_url=BASE_URL)  # fmt: skip
    assert response.status_code == 400
    assert "evil.com" not in response.headers.get("Content-Security-Policy", "")
    assert "*" not in response.headers.get("Content-Security-Policy", "")


# --- secret rotation -----------------------------------------------------------------------------


def test_a_token_signed_with_the_old_secret_is_accepted_while_rotating(
    make_app: Callable[..., Flask], db: Database, vault: Vault, shopify: TokenServer
) -> None:
    rotating = make_app(shopify_old_api_secret="old").test_client()
    response = load(rotating, session_token(secret="old"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == CSP
    (shop,) = shops(db)
    assert read_credentials(vault, shop)["access_token"] == "shpat_x"
    # the exchange itself authenticates with the current secret
    assert shopify.bodies()[0]["client_secret"] == SHOPIFY_API_SECRET


def test_the_old_secret_is_refused_when_not_configured(client: FlaskClient, db: Database, shopify: TokenServer) -> None:
    assert load(client, session_token(secret="old"), bearer=True).status_code == 401
    assert load(client, session_token(secret="old")).status_code == 302  # bounced, never served
    assert shopify.requests == []
    assert shops(db) == []


# --- refreshing an expiring offline token ---------------------------------------------------------


def credentials(expires: datetime | None, refresh_expires: datetime | None = None) -> dict[str, Any]:
    creds: dict[str, Any] = {"access_token": "shpat_old", "scope": "read_orders"}
    if expires is not None:
        creds |= {"expires": iso(expires), "refresh_token": "shprt_old",
                  "refresh_token_expires": iso(refresh_expires or datetime.now(UTC) + timedelta(days=80))}  # fmt: skip
    return creds


@pytest.fixture
def token_server() -> TokenServer:
    return TokenServer()


def test_an_expired_token_is_refreshed(settings: Settings, token_server: TokenServer) -> None:
    with token_server.client() as http:
        before = datetime.now(UTC)
        renewed = oauth.fresh_credentials(settings, SHOP, credentials(datetime.now(UTC) - timedelta(minutes=5)),
                                          http=http)  # fmt: skip
    (request,) = token_server.requests
    assert (request.method, str(request.url)) == ("POST", TOKEN_ENDPOINT)
    assert token_server.bodies() == [{"client_id": SHOPIFY_API_KEY, "client_secret": SHOPIFY_API_SECRET,
                                      "grant_type": "refresh_token", "refresh_token": "shprt_old"}]  # fmt: skip
    assert renewed is not None
    assert (renewed["access_token"], renewed["refresh_token"], renewed["scope"]) == (
        "shpat_new", "shprt_new", "read_orders,write_customers"
    )  # fmt: skip
    assert abs(parse_iso(renewed["expires"]) - (before + timedelta(hours=1))) < timedelta(seconds=5)


def test_a_token_about_to_expire_is_refreshed(settings: Settings, token_server: TokenServer) -> None:
    with token_server.client() as http:
        creds = credentials(datetime.now(UTC) + timedelta(seconds=30))
        assert oauth.fresh_credentials(settings, SHOP, creds, http=http) is not None
    assert len(token_server.requests) == 1


def test_a_token_far_from_expiry_is_kept(settings: Settings, token_server: TokenServer) -> None:
    with token_server.client() as http:
        creds = credentials(datetime.now(UTC) + timedelta(minutes=50))
        assert oauth.fresh_credentials(settings, SHOP, creds, http=http) is None
    assert token_server.requests == []


def test_a_non_expiring_token_is_never_refreshed(settings: Settings, token_server: TokenServer) -> None:
    with token_server.client() as http:
        assert oauth.fresh_credentials(settings, SHOP, credentials(None), http=http) is None
        assert oauth.fresh_credentials(settings, SHOP, {"access_token": "shpat"}, http=http) is None
    assert token_server.requests == []


def test_a_refused_refresh_raises_token_error(settings: Settings, token_server: TokenServer) -> None:
    token_server.answers["refresh_token"] = (400, {"error": "invalid_grant"})
    with token_server.client() as http, pytest.raises(oauth.TokenError):
        oauth.fresh_credentials(settings, SHOP, credentials(datetime.now(UTC) - timedelta(minutes=5)), http=http)
    assert len(token_server.requests) == 1


def test_an_expired_refresh_token_is_not_even_tried(settings: Settings, token_server: TokenServer) -> None:
    creds = credentials(datetime.now(UTC) - timedelta(days=91), datetime.now(UTC) - timedelta(days=1))
    with token_server.client() as http, pytest.raises(oauth.TokenError):
        oauth.fresh_credentials(settings, SHOP, creds, http=http)
    assert token_server.requests == []


# --- what the hostile-input sweep found (tests/hostile) --------------------------------------------


@pytest.mark.parametrize(
    "raw_shop",
    ["ab.myshopify.com%0A", "ab.myshopify.com%E2%80%A8", "ab.myshopify.com%0B", "ab", "AB.MYSHOPIFY.COM"],
    ids=["newline: was a 500", "U+2028: not latin-1", "vertical tab", "short name: was https://ab", "upper case"],
)
def test_patch_id_token_frames_only_the_checked_shop(installed: World, raw_shop: str) -> None:
    """Bug G of the hostile-input sweep (tests/hostile).

    The page checked the sanitized ?shop= but shopifyapp copied the raw value into its CSP."""
    response = installed.get(f"/auth/shopify/patch-id-token?shop={raw_shop}&shopify-reload=/app")
    installed.check_answer(response, "patch-id-token")
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert csp_sources(response) == ["https://ab.myshopify.com", "https://admin.shopify.com"]


@pytest.mark.parametrize(
    "claims", [{"dest": 123}, {"dest": None}, {"iss": ["x"]}, {"exp": "soon"}], ids=["dest 123", "dest null",
                                                                                      "iss list", "exp text"]
)  # fmt: skip
def test_a_signed_session_token_with_non_string_claims_is_refused(installed: World, claims: dict[str, Any]) -> None:
    """Bug I of the hostile-input sweep (tests/hostile).

    Needs the app secret: non-string dest/iss made shopifyapp/PyJWT raise inside GET /app."""
    before = fingerprint(installed.db)
    response = installed.get("/app", {"id_token": hs256(claims_for(SHOP) | claims), "shop": SHOP})
    installed.check_answer(response, "/app with non-string claims")
    assert response.status_code in (302, 401)
    assert fingerprint(installed.db) == before
