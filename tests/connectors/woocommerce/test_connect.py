"""Connecting a store: the key exchange (good, replayed and forged callbacks), webhook registration
through REST, the plugin's launch secret and signed launches, and disconnecting.

The store's REST API is `responses`, answering in the documented shapes (the webhook fixture is the
REST documentation's own example); WooCommerce's callback is the JSON WC_Auth::post_consumer_data
sends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func
from sqlmodel import SQLModel, select
from werkzeug.test import TestResponse

from app.db import Database
from app.models import InstallToken, Shop, Writeback
from app.shops import read_credentials
from tests.helpers import row_counts, work
from tests.platforms.woocommerce import STORE, fixture
from web.cli import cli

API = f"{STORE}/wp-json/wc/v3"
PLUGIN = f"{STORE}/wp-json/wc-clawback/v1/launch-secret"
CK, CS = "ck_" + "a1" * 20, "cs_" + "b2" * 20
TABLES: tuple[type[SQLModel], ...] = (Shop, Writeback)


def counts(db: Database) -> dict[str, int]:
    return row_counts(db, "shops", "writebacks")


def callback(client: FlaskClient, body: Any) -> TestResponse:
    """WooCommerce posting the keys to our callback (WC_Auth::post_consumer_data sends JSON), then
    the worker run once (`work`): a good callback queues the webhook registration."""
    response = client.post("/auth/woocommerce/callback", json=body)
    work(client.application)
    return response


def start(client: FlaskClient, store_url: str = STORE + "/") -> dict[str, str]:
    response = client.get("/auth/woocommerce/connect", query_string={"store_url": store_url})
    assert response.status_code == 302, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{STORE}/wc-auth/v1/authorize"
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def keys(token: str, **changes: Any) -> dict[str, Any]:
    body = {"key_id": 7, "user_id": token, "consumer_key": CK, "consumer_secret": CS, "key_permissions": "read_write"}
    return body | changes


def store_api(rsps: responses.RequestsMock, *, plugin: bool = True, fail_webhook_after: int | None = None) -> list[Any]:
    """The store: its currency, webhook creation (ids 142, 143, …) and the plugin's route."""
    created: list[Any] = []
    rsps.get(f"{API}/data/currencies/current", json={"code": "EUR", "name": "Euro", "symbol": "&euro;"})

    def create(request: Any) -> tuple[int, dict[str, str], str]:
        if fail_webhook_after is not None and len(created) >= fail_webhook_after:
            return 500, {}, json.dumps({"code": "internal_error", "message": "busy"})
        sent = json.loads(request.body)
        created.append(sent)
        answer = fixture("wc_v3_webhook_create_response_142.json") | {
            "id": 141 + len(created),
            "topic": sent["topic"],
            "delivery_url": sent["delivery_url"],
        }
        return 201, {}, json.dumps(answer)

    rsps.add_callback(responses.POST, f"{API}/webhooks", callback=create, content_type="application/json")
    if plugin:
        rsps.post(PLUGIN, json={"ok": True})
    else:
        rsps.post(PLUGIN, status=404, json={"code": "rest_no_route", "message": "No route was found"})
    return created


def connected(client: FlaskClient) -> list[Any]:
    """A store connected through the whole exchange; the webhooks it was asked to create."""
    created = store_api(responses.mock)
    token = start(client)["user_id"]
    assert callback(client, keys(token)).status_code == 200
    return created


def shop_row(db: Database) -> Shop:
    with db.session() as session:
        return session.exec(select(Shop).where(Shop.domain == STORE)).one()


def credentials(app: Flask, db: Database) -> dict[str, Any]:
    return read_credentials(app.extensions["clawback"].vault, shop_row(db))


# --- connect ------------------------------------------------------------------------------------


def test_connect_sends_the_merchant_to_the_store_with_a_single_use_token(client: FlaskClient, db: Database) -> None:
    params = start(client, "HTTPS://Shop.Example.com/")
    assert params["app_name"] == "Clawback" and params["scope"] == "read_write"
    assert params["callback_url"] == "https://clawback.example/auth/woocommerce/callback"
    assert params["return_url"].startswith("https://clawback.example/auth/woocommerce/return?")
    assert len(params["user_id"]) >= 40
    with db.session() as session:
        (row,) = session.exec(select(InstallToken)).all()
    assert row.store_url == STORE and row.used_at is None
    assert row.token_hash == hashlib.sha256(params["user_id"].encode()).hexdigest()  # the token itself is not kept
    assert start(client)["user_id"] != params["user_id"]


@pytest.mark.parametrize(
    "store_url",
    ["", "ftp://shop.example.com", "https://", "https://u:p@shop.example.com", "https://shop.example.com/?x=1"],
)
def test_connect_refuses_what_is_not_a_store(client: FlaskClient, db: Database, store_url: str) -> None:
    response = client.get("/auth/woocommerce/connect", query_string={"store_url": store_url})
    assert response.status_code == 400 and response.get_json()["error"]
    with db.session() as session:
        assert session.exec(select(func.count()).select_from(InstallToken)).one() == 0


def test_connect_needs_an_https_app(app: Flask, client: FlaskClient) -> None:
    app.extensions["clawback"].settings.app_url = "http://127.0.0.1:8000"
    response = client.get("/auth/woocommerce/connect", query_string={"store_url": STORE})
    assert response.status_code == 400
    assert "https" in response.get_json()["error"]


@responses.activate
def test_a_good_callback_stores_the_keys_and_registers_the_webhooks(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    created = store_api(responses.mock)
    token = start(client)["user_id"]
    response = callback(client, keys(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    shop = shop_row(db)
    assert (shop.platform, shop.currency, shop.uninstalled_at) == ("woocommerce", "EUR", None)
    assert CS not in (shop.credentials or "")  # encrypted at rest
    stored = credentials(app, db)
    assert (stored["consumer_key"], stored["consumer_secret"]) == (CK, CS)
    assert [w["topic"] for w in created] == ["order.created", "order.updated", "order.deleted", "order.restored"]
    assert {w["delivery_url"] for w in created} == {"https://clawback.example/webhooks/woocommerce"}
    assert {w["secret"] for w in created} == {stored["webhook_secret"]}
    assert stored["webhook_ids"] == {
        "order.created": 142,
        "order.updated": 143,
        "order.deleted": 144,
        "order.restored": 145,
    }
    plugin_call = next(c for c in responses.calls if c.request.url == PLUGIN)
    assert json.loads(cast(bytes, plugin_call.request.body)) == {"secret": stored["launch_secret"]}
    assert stored["launch_secret_sent"] is True
    key_check = responses.calls[0].request
    assert str(key_check.headers["Authorization"]).startswith("Basic ")  # https: HTTP Basic with the new keys
    with db.session() as session:
        (row,) = session.exec(select(Writeback).where(Writeback.kind == "register_webhooks")).all()
        assert row.status == "done"
        assert session.exec(select(InstallToken)).one().used_at is not None


@responses.activate
def test_a_replayed_callback_is_refused_and_changes_nothing(app: Flask, client: FlaskClient, db: Database) -> None:
    store_api(responses.mock)
    token = start(client)["user_id"]
    assert callback(client, keys(token)).status_code == 200
    before, calls, stored = counts(db), len(responses.calls), credentials(app, db)
    replay = callback(client, keys(token, consumer_key="ck_" + "c3" * 20))
    assert replay.status_code == 403
    assert counts(db) == before and len(responses.calls) == calls and credentials(app, db) == stored


@responses.activate
def test_a_forged_callback_is_refused_without_calling_anyone(client: FlaskClient, db: Database) -> None:
    store_api(responses.mock)
    start(client)
    response = callback(client, keys("forged-token-" + "x" * 30))
    assert response.status_code == 403
    assert len(responses.calls) == 0
    assert counts(db) == {"shops": 0, "writebacks": 0}


@responses.activate
def test_an_expired_token_is_refused(client: FlaskClient, db: Database) -> None:
    store_api(responses.mock)
    token = start(client)["user_id"]
    with db.session() as session:
        row = session.exec(select(InstallToken)).one()
        row.expires_at = row.created_at
        session.add(row)
    assert callback(client, keys(token)).status_code == 403
    assert counts(db)["shops"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"key_id": "7"},
        {"key_id": -1},
        {"consumer_key": "not-a-key"},
        {"consumer_secret": "ck_" + "b2" * 20},
        {"consumer_secret": "cs_" + "é" * 20},
        {"key_permissions": "read"},
        {"user_id": 12},
        {"user_id": None},
    ],
)
@responses.activate
def test_a_callback_not_in_the_documented_shape_is_400(
    client: FlaskClient, db: Database, change: dict[str, Any]
) -> None:
    store_api(responses.mock)
    token = start(client)["user_id"]
    response = callback(client, keys(token) | change)
    assert response.status_code == 400
    assert len(responses.calls) == 0 and counts(db)["shops"] == 0


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"key_id": 7}'])
def test_a_callback_without_the_json_keys_is_400(client: FlaskClient, body: bytes) -> None:
    response = client.post("/auth/woocommerce/callback", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize(("status", "answer"), [(401, 400), (403, 400), (500, 502)])
@responses.activate
def test_keys_the_store_does_not_accept_are_not_kept(
    client: FlaskClient, db: Database, status: int, answer: int
) -> None:
    responses.get(
        f"{API}/data/currencies/current",
        status=status,
        json={"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources."},
    )
    token = start(client)["user_id"]
    assert callback(client, keys(token)).status_code == answer
    assert counts(db)["shops"] == 0
    with db.session() as session:
        assert session.exec(select(InstallToken)).one().used_at is None  # the merchant may try again


@responses.activate
def test_a_registration_that_fails_halfway_resumes_without_duplicates(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    created = store_api(responses.mock, fail_webhook_after=2)
    token = start(client)["user_id"]
    assert callback(client, keys(token)).status_code == 200
    assert credentials(app, db)["webhook_ids"] == {"order.created": 142, "order.updated": 143}
    with db.session() as session:
        row = session.exec(select(Writeback).where(Writeback.kind == "register_webhooks")).one()
        assert row.status == "pending" and "500" in (row.last_error or "")
    responses.mock.reset()
    created = store_api(responses.mock)
    later = "2099-01-01T00:00:00+00:00"
    assert runner.invoke(cli, ["writebacks", "run", "--now", later]).exit_code == 0
    assert [w["topic"] for w in created] == ["order.deleted", "order.restored"]
    assert sorted(credentials(app, db)["webhook_ids"]) == [
        "order.created",
        "order.deleted",
        "order.restored",
        "order.updated",
    ]


@responses.activate
def test_without_the_companion_plugin_the_store_connects_all_the_same(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    store_api(responses.mock, plugin=False)
    token = start(client)["user_id"]
    assert callback(client, keys(token)).status_code == 200
    assert credentials(app, db)["launch_secret_sent"] is False
    with db.session() as session:
        assert session.exec(select(Writeback)).one().status == "done"


def test_the_return_page_says_what_happened(client: FlaskClient) -> None:
    ok = client.get("/auth/woocommerce/return", query_string={"store_url": STORE, "success": "1", "user_id": "x"})
    declined = client.get("/auth/woocommerce/return", query_string={"store_url": STORE, "success": "0"})
    assert "Clawback is connected" in ok.get_data(as_text=True)
    assert "was not connected" in declined.get_data(as_text=True)


# --- disconnect ---------------------------------------------------------------------------------


@responses.activate
def test_disconnect_deletes_the_webhooks_and_forgets_the_keys(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    connected(client)
    for webhook_id in (142, 143, 144):
        responses.delete(f"{API}/webhooks/{webhook_id}", json={"id": webhook_id})
    responses.delete(f"{API}/webhooks/145", status=404, json={"code": "woocommerce_rest_webhook_invalid_id"})
    result = runner.invoke(cli, ["shop", "disconnect", "--shop", STORE])
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["webhooks_deleted"]) == [142, 143, 144, 145]
    deletes = [c.request for c in responses.calls if c.request.method == "DELETE"]
    assert all("force=true" in (r.url or "") for r in deletes)
    assert shop_row(db).uninstalled_at is not None
    assert credentials(app, db) == {}


@responses.activate
def test_disconnect_changes_nothing_when_the_store_refuses(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    connected(client)
    responses.delete(f"{API}/webhooks/142", status=503)
    before = credentials(app, db)
    result = runner.invoke(cli, ["shop", "disconnect", "--shop", STORE])
    assert result.exit_code == 2 and "--keep-webhooks" in result.output
    assert shop_row(db).uninstalled_at is None and credentials(app, db) == before


# --- the plugin's launch ------------------------------------------------------------------------


def launch_query(secret: str, *, store: str = STORE + "/", user: str = "1", ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    sig = hmac.new(secret.encode(), f"{store}|{user}|{stamp}".encode(), hashlib.sha256).hexdigest()
    return {"store": store, "user": user, "ts": stamp, "sig": sig}


@responses.activate
def test_a_signed_launch_opens_the_pages_framable_by_that_store_only(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    connected(client)
    secret = credentials(app, db)["launch_secret"]
    response = client.get("/wordpress/launch", query_string=launch_query(secret))
    assert response.status_code == 302
    assert response.headers["Content-Security-Policy"] == f"frame-ancestors {STORE}"
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == f"frame-ancestors {STORE}"
    assert "Revert Earned Coins" in page.get_data(as_text=True)


@responses.activate
@pytest.mark.parametrize(
    ("case", "status"),
    [("wrong secret", 401), ("expired", 401), ("other store", 401), ("tampered user", 401), ("no numbers", 400)],
)
def test_a_launch_that_is_not_signed_by_the_store_is_refused(
    app: Flask, client: FlaskClient, db: Database, case: str, status: int
) -> None:
    connected(client)
    secret = credentials(app, db)["launch_secret"]
    query = {
        "wrong secret": launch_query("not-the-secret"),
        "expired": launch_query(secret, ts=int(time.time()) - 3600),
        "other store": launch_query(secret, store="https://other.example.com/"),
        "tampered user": launch_query(secret) | {"user": "2"},
        "no numbers": launch_query(secret) | {"ts": "soon"},
    }[case]
    response = client.get("/wordpress/launch", query_string=query)
    assert response.status_code == status, case
    assert "Location" not in response.headers


@responses.activate
def test_the_callback_is_read_as_json_whatever_its_content_type(client: FlaskClient, db: Database) -> None:
    store_api(responses.mock)
    token = start(client)["user_id"]
    response = client.post("/auth/woocommerce/callback", data=json.dumps(keys(token)),
                           headers={"Content-Type": "text/plain;charset=UTF-8"})  # fmt: skip
    assert response.status_code == 200
    assert counts(db)["shops"] == 1


def test_a_store_in_a_subdirectory_may_frame_the_pages_from_its_origin(app: Flask, client: FlaskClient) -> None:
    from app.shops import register_shop
    from connectors.woocommerce.connect import PLATFORM

    svc = app.extensions["clawback"]
    secret = "launch-secret-" + "y" * 30
    with svc.db.session() as session:
        register_shop(session, svc.vault, platform=PLATFORM, domain="https://example.com/shop",
                      credentials={"webhook_secret": "w", "launch_secret": secret})  # fmt: skip
    response = client.get("/wordpress/launch", query_string=launch_query(secret, store="https://example.com/shop/"))
    assert response.status_code == 302
    assert response.headers["Content-Security-Policy"] == "frame-ancestors https://example.com"


@pytest.mark.parametrize("user_id", ["\ud800" * 24, "é" * 24, "a\x00" * 12])
def test_a_callback_whose_token_is_not_ascii_is_400_and_changes_nothing(
    client: FlaskClient, db: Database, user_id: str
) -> None:
    """Issue #18, class 2: the callback hashed a `user_id` holding a lone surrogate: a 500. An install
    token is ASCII; anything else is refused before it is hashed or looked up."""
    body = json.dumps(keys("x") | {"user_id": user_id}).encode()
    response = client.post("/auth/woocommerce/callback", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert counts(db) == {"shops": 0, "writebacks": 0}


def test_a_callback_nested_deeper_than_any_parser_is_400(client: FlaskClient, db: Database) -> None:
    """Issue #18, class 3: `get_json(silent=True)` lets RecursionError through: a deeply nested body
    on the callback was a 500."""
    response = client.post(
        "/auth/woocommerce/callback", data=b"[" * 100_000 + b"]" * 100_000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert counts(db) == {"shops": 0, "writebacks": 0}


@responses.activate
@pytest.mark.parametrize("field", ["ts", "user"])
@pytest.mark.parametrize("digits", ["²", "¹²³", "١٢", "+1", "1_0"])
def test_a_launch_with_digits_that_are_not_ascii_is_400(
    app: Flask, client: FlaskClient, db: Database, field: str, digits: str
) -> None:
    """Issue #18, class 1: `str.isdigit()` is true for '²', then `int()` raised: a 500 without any
    authentication."""
    connected(client)
    query = launch_query(credentials(app, db)["launch_secret"]) | {field: digits}
    assert client.get("/wordpress/launch", query_string=query).status_code == 400
