"""GET /auth/shopify/install and /auth/shopify/callback: the authorization-code grant end to end.

Queries are signed the way Shopify signs them (hex HMAC-SHA256 of the sorted `k=v` pairs, `hmac`
left out, keyed with the app secret). The browser is the Flask test client on the app's own https
origin, so the Secure session cookie carrying the state nonce round-trips. Shopify's token
endpoint is ShopifyAPI's `urlopen`, mocked: nothing leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any
from unittest import mock

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
from app.shops import read_credentials
from tests.conftest import SHOPIFY_API_KEY, SHOPIFY_API_SECRET
from tests.helpers import post_webhook
from tests.hostile.strategies import as_header_value
from tests.hostile.world import STRANGER, World, fingerprint
from tests.platforms.shopify import HMAC_HEADER, query_hmac

BASE_URL = "https://clawback.example"
SHOP = "clawback-test.myshopify.com"
OTHER_SHOP = "someone-else.myshopify.com"
HOST = base64.urlsafe_b64encode(b"admin.shopify.com/store/clawback-test").decode().rstrip("=")
CODE = "0907a61c0c8d55e99db179b68161bc00"
TOKEN = "shpat_0123456789abcdef0123456789abcdef"
CALLBACK = f"{BASE_URL}/auth/shopify/callback"
DAY_S = 24 * 3600


# --- Shopify's side ------------------------------------------------------------------------------


def signature(params: Mapping[str, str], secret: str = SHOPIFY_API_SECRET) -> str:
    message = "&".join(sorted(f"{k}={v}" for k, v in params.items() if k != "hmac"))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed(params: Mapping[str, str], secret: str = SHOPIFY_API_SECRET) -> dict[str, str]:
    return {**params, "hmac": signature(params, secret)}


def now_s() -> str:
    return str(int(time.time()))


def install_query(shop: str = SHOP, **changes: str) -> dict[str, str]:
    return signed({"shop": shop, "timestamp": now_s(), "host": HOST, **changes})


def callback_query(state: str, shop: str = SHOP, **changes: str) -> dict[str, str]:
    return signed({"code": CODE, "host": HOST, "shop": shop, "state": state, "timestamp": now_s(), **changes})


class TokenEndpoint:
    """Shopify's POST /admin/oauth/access_token, as ShopifyAPI's urlopen reaches it."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.refuse = False

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.requests.append(request)
        if self.refuse:
            body = io.BytesIO(b'{"error":"invalid_request","error_description":"The authorization code was not found"}')
            raise urllib.error.HTTPError(request.full_url, 400, "Bad Request", None, body)  # type: ignore[arg-type]
        answer = mock.Mock(code=200)
        answer.read.return_value = json.dumps({"access_token": TOKEN, "scope": "read_orders"}).encode()
        return answer


@pytest.fixture
def shopify_token() -> Iterator[TokenEndpoint]:
    """Mock urlopen where ShopifyAPI looks it up (six caches it on first use) and in urllib itself,
    so no test here can reach the network."""
    endpoint = TokenEndpoint()
    with mock.patch("urllib.request.urlopen", endpoint), mock.patch("shopify.session.urllib.request.urlopen", endpoint):
        yield endpoint


# --- our side ------------------------------------------------------------------------------------


def get(client: FlaskClient, path: str, query: Mapping[str, str]) -> TestResponse:
    return client.get(path, query_string=dict(query), base_url=BASE_URL)


def install(client: FlaskClient, shop: str = SHOP) -> str:
    """Start an install in this browser; the state nonce from Shopify's authorize URL."""
    response = get(client, "/auth/shopify/install", install_query(shop))
    assert response.status_code == 302, response.get_data(as_text=True)
    (state,) = urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["Location"]).query)["state"]
    return state


def shops(db: Database) -> list[Shop]:
    with db.session() as session:
        return list(session.exec(select(Shop)))


def assert_refused(response: TestResponse, status: int) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert "error" in response.get_json()


@pytest.fixture
def vault(app: Flask) -> Vault:
    return app.extensions["clawback"].vault


# --- install -------------------------------------------------------------------------------------


def test_install_redirects_to_the_shops_authorize_page(client: FlaskClient, settings: Settings) -> None:
    response = get(client, "/auth/shopify/install", install_query())
    assert response.status_code == 302
    location = response.headers["Location"]
    parts = urllib.parse.urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", SHOP, "/admin/oauth/authorize")
    query = urllib.parse.parse_qs(parts.query)
    state = query["state"][0]
    assert query == {"client_id": [SHOPIFY_API_KEY], "scope": [settings.shopify_scopes], "redirect_uri": [CALLBACK],
                     "state": [state]}  # fmt: skip
    assert len(state) >= 32
    scope = urllib.parse.quote(settings.shopify_scopes, safe="")
    assert location == (
        f"https://{SHOP}/admin/oauth/authorize?client_id={SHOPIFY_API_KEY}&scope={scope}"
        f"&redirect_uri=https%3A%2F%2Fclawback.example%2Fauth%2Fshopify%2Fcallback&state={state}"
    )


def test_install_keeps_the_state_in_a_secure_http_only_cookie(client: FlaskClient) -> None:
    response = get(client, "/auth/shopify/install", install_query())
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite=lax"} <= attributes


def test_every_install_gets_a_new_state(client: FlaskClient) -> None:
    assert len({install(client) for _ in range(3)}) == 3


def test_install_accepts_a_timestamp_a_little_ahead(client: FlaskClient) -> None:
    ahead = str(int(time.time()) + 60)  # clocks differ a little
    assert get(client, "/auth/shopify/install", install_query(timestamp=ahead)).status_code == 302


def test_install_without_host_is_still_shopifys(client: FlaskClient) -> None:
    query = signed({"shop": SHOP, "timestamp": now_s()})
    assert get(client, "/auth/shopify/install", query).status_code == 302


INSTALL_REFUSALS: dict[str, Any] = {
    "bad hmac": lambda: {**install_query(), "hmac": "0" * 64},
    "hmac by another secret": lambda: signed({"shop": SHOP, "timestamp": now_s(), "host": HOST}, "not-the-secret"),
    "hmac missing": lambda: {"shop": SHOP, "timestamp": now_s(), "host": HOST},
    "hmac empty": lambda: {**install_query(), "hmac": ""},
    "tampered host": lambda: {**install_query(), "host": "ZXZpbC5jb20"},
    "stale timestamp": lambda: install_query(timestamp=str(int(time.time()) - DAY_S - 60)),
    "future timestamp": lambda: install_query(timestamp=str(int(time.time()) + 600)),
    "timestamp missing": lambda: signed({"shop": SHOP, "host": HOST}),
    "non-numeric timestamp": lambda: install_query(timestamp="yesterday"),
    "shop evil.com": lambda: install_query("evil.com"),
    "shop suffix attack": lambda: install_query("x.myshopify.com.evil.com"),
    "shop a": lambda: install_query("a"),
    "shop empty": lambda: install_query(""),
    "shop missing": lambda: signed({"timestamp": now_s(), "host": HOST}),
    "shop with a path": lambda: install_query("evil.com/x.myshopify.com"),
}


@pytest.mark.parametrize("query", INSTALL_REFUSALS.values(), ids=INSTALL_REFUSALS.keys())
def test_install_refusals_redirect_nowhere(client: FlaskClient, query: Any) -> None:
    response = get(client, "/auth/shopify/install", query())
    assert_refused(response, 400)
    assert "Set-Cookie" not in response.headers  # no state handed out


# --- callback ------------------------------------------------------------------------------------


def test_callback_exchanges_the_code_and_stores_the_token_encrypted(
    client: FlaskClient, db: Database, vault: Vault, shopify_token: TokenEndpoint
) -> None:
    state = install(client)
    response = get(client, "/auth/shopify/callback", callback_query(state))
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == f"https://{SHOP}/admin/apps/{SHOPIFY_API_KEY}"

    (request,) = shopify_token.requests
    assert request.get_method() == "POST"
    assert request.full_url.rstrip("?") == f"https://{SHOP}/admin/oauth/access_token"
    assert urllib.parse.parse_qs(request.data.decode()) == {
        "client_id": [SHOPIFY_API_KEY], "client_secret": [SHOPIFY_API_SECRET], "code": [CODE]
    }  # fmt: skip

    (shop,) = shops(db)
    assert (shop.platform, shop.domain, shop.uninstalled_at) == ("shopify", SHOP, None)
    assert read_credentials(vault, shop) == {"access_token": TOKEN, "scope": "read_orders"}
    with db.engine.connect() as conn:
        raw = conn.execute(text("SELECT credentials FROM shops")).scalar_one()
    assert TOKEN not in raw and "read_orders" not in raw


def test_replayed_callback_is_refused(client: FlaskClient, db: Database, shopify_token: TokenEndpoint) -> None:
    query = callback_query(install(client))
    assert get(client, "/auth/shopify/callback", query).status_code == 302
    assert_refused(get(client, "/auth/shopify/callback", query), 403)
    assert len(shopify_token.requests) == 1  # the code was traded once
    assert len(shops(db)) == 1


def test_callback_in_another_browser_is_refused(
    app: Flask, client: FlaskClient, db: Database, shopify_token: TokenEndpoint
) -> None:
    state = install(client)
    other_browser = app.test_client()
    assert_refused(get(other_browser, "/auth/shopify/callback", callback_query(state)), 403)
    assert shopify_token.requests == []
    assert shops(db) == []


def test_callback_with_a_tampered_state_is_refused(
    client: FlaskClient, db: Database, shopify_token: TokenEndpoint
) -> None:
    state = install(client)
    forged = state[:-1] + ("A" if state[-1] != "A" else "B")
    assert_refused(get(client, "/auth/shopify/callback", callback_query(forged)), 403)
    assert shopify_token.requests == []
    assert shops(db) == []


def test_a_refused_state_cannot_be_tried_again(client: FlaskClient, db: Database, shopify_token: TokenEndpoint) -> None:
    state = install(client)
    assert_refused(get(client, "/auth/shopify/callback", callback_query(state + "x")), 403)
    assert_refused(get(client, "/auth/shopify/callback", callback_query(state)), 403)  # the nonce is spent
    assert shopify_token.requests == []


def test_callback_for_another_shop_than_the_install_is_refused(
    client: FlaskClient, db: Database, shopify_token: TokenEndpoint
) -> None:
    state = install(client, SHOP)
    assert_refused(get(client, "/auth/shopify/callback", callback_query(state, shop=OTHER_SHOP)), 403)
    assert shopify_token.requests == []
    assert shops(db) == []


CALLBACK_REFUSALS: dict[str, Any] = {
    "bad hmac": lambda state: {**callback_query(state), "hmac": "f" * 64},
    "code swapped after signing": lambda state: {**callback_query(state), "code": "another-code"},
    "hmac missing": lambda state: {k: v for k, v in callback_query(state).items() if k != "hmac"},
    "stale timestamp": lambda state: callback_query(state, timestamp=str(int(time.time()) - DAY_S - 60)),
    "future timestamp": lambda state: callback_query(state, timestamp=str(int(time.time()) + 600)),
    "code missing": lambda state: signed({"host": HOST, "shop": SHOP, "state": state, "timestamp": now_s()}),
}


@pytest.mark.parametrize("query", CALLBACK_REFUSALS.values(), ids=CALLBACK_REFUSALS.keys())
def test_callback_refusals_store_nothing(
    client: FlaskClient, db: Database, shopify_token: TokenEndpoint, query: Any
) -> None:
    state = install(client)
    assert_refused(get(client, "/auth/shopify/callback", query(state)), 400)
    assert shopify_token.requests == []
    assert shops(db) == []


def test_a_callback_refused_for_its_hmac_leaves_the_install_usable(
    client: FlaskClient, db: Database, shopify_token: TokenEndpoint
) -> None:
    state = install(client)
    assert_refused(get(client, "/auth/shopify/callback", {**callback_query(state), "hmac": "0" * 64}), 400)
    assert get(client, "/auth/shopify/callback", callback_query(state)).status_code == 302
    assert len(shops(db)) == 1


def test_shopify_refusing_the_code_is_a_502_and_stores_nothing(
    client: FlaskClient, db: Database, shopify_token: TokenEndpoint
) -> None:
    shopify_token.refuse = True
    state = install(client)
    response = get(client, "/auth/shopify/callback", callback_query(state))
    assert_refused(response, 502)
    assert len(shopify_token.requests) == 1
    assert shops(db) == []


def test_reinstall_replaces_the_token_of_a_known_shop(
    client: FlaskClient, db: Database, vault: Vault, shopify_token: TokenEndpoint
) -> None:
    assert get(client, "/auth/shopify/callback", callback_query(install(client))).status_code == 302
    (first,) = shops(db)
    assert get(client, "/auth/shopify/callback", callback_query(install(client))).status_code == 302
    (again,) = shops(db)
    assert again.id == first.id
    assert read_credentials(vault, again)["access_token"] == TOKEN
    assert again.credentials != first.credentials  # re-encrypted (Fernet is randomized)


# --- what the hostile-input sweep found (tests/hostile) --------------------------------------------


def test_install_for_a_shop_label_over_63_characters_is_refused(installed: World) -> None:
    """Bug J of the hostile-input sweep (tests/hostile).

    Needs a genuine signature: shop_domain() accepted a 64-character label; the redirect to it
    could not be IDNA-encoded (UnicodeError, a 500)."""
    params = {"shop": "x" * 64 + ".myshopify.com", "timestamp": str(int(time.time()))}
    params["hmac"] = query_hmac(params)
    response = installed.get("/auth/shopify/install", params)
    installed.check_answer(response, "install, 64-character label")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("endpoint", "shop"),
    [("webhook", "["), ("webhook", "x.myshopify.com]")]  # a header: latin-1, so no NFKC look-alikes
    + [(e, shop) for e in ("install", "callback", "patch-id-token") for shop in ("[", "x.myshopify.com]", "a\uff0fb")],
)
def test_shop_domains_with_brackets_and_look_alikes_are_refused(installed: World, endpoint: str, shop: str) -> None:
    """Bug K of the hostile-input sweep (tests/hostile).

    shop_domain let urllib's ValueError out ('Invalid IPv6 URL', NFKC look-alikes): a 500 on
    the webhook before the signature was checked, and on install, callback and patch-id-token."""
    before = fingerprint(installed.db)
    if endpoint == "webhook":
        headers = {"X-Shopify-Shop-Domain": as_header_value(shop), HMAC_HEADER: "forged", "X-Shopify-Topic": "x"}
        response = post_webhook(installed.client, "shopify", b"{}", headers)
        expected = 401
    else:
        response = installed.get(f"/auth/shopify/{endpoint}", {"shop": shop, "hmac": "0", "timestamp": "1"})
        expected = 400
    installed.check_answer(response, endpoint)
    assert response.status_code == expected
    assert fingerprint(installed.db) == before


def test_a_callback_with_a_non_ascii_state_is_refused(installed: World) -> None:
    """Bug L of the hostile-input sweep (tests/hostile).

    Needs a genuine signature: hmac.compare_digest on str raised TypeError for a non-ASCII state."""
    browser = installed.app.test_client()
    install = {"shop": STRANGER, "timestamp": str(int(time.time()))}
    install["hmac"] = query_hmac(install)
    assert installed.get("/auth/shopify/install", install, client=browser).status_code == 302
    params = {"code": "abc", "shop": STRANGER, "state": "é", "timestamp": str(int(time.time()))}
    params["hmac"] = query_hmac(params)
    response = installed.get("/auth/shopify/callback", params, client=browser)
    installed.check_answer(response, "callback, non-ASCII state")
    assert response.status_code == 403
