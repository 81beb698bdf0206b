"""The JSON API (/api/v1, web/api.py) and `clawback api-key`, over a real database.

Two shops hold a customer with the same platform id and different books: every test that reads or
spends checks it reaches its own shop's customer only. Every refusal is checked to answer 4xx with
`{"error": …}` and to leave every table exactly as it was, row for row.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import inspect, text
from sqlmodel import select
from werkzeug.test import TestResponse

from app import api_keys
from app.db import Database
from app.models import ApiKey, ApiRequest, LedgerEntry, Redemption, Shop, Writeback, utcnow
from tests.factories import Books, snap
from web.cli import cli
from web.session import mint

A, B = "a-shop.myshopify.com", "b-shop.myshopify.com"
CUSTOMER = "501"  # in both shops, with different balances


# --- fixtures and helpers -------------------------------------------------------------------------


@dataclass
class Shops:
    a: Books
    b: Books
    key_a: str  # scope redeem
    key_b: str  # scope redeem
    read_a: str  # scope read
    admin_a: str  # an admin token (the pages' `t`)


def make_key(db: Database, shop_id: int, scope: str = "redeem", name: str = "") -> str:
    with db.session() as session:
        shop = session.get(Shop, shop_id)
        assert shop is not None
        return api_keys.create(session, shop, name=name, scope=scope).key


@pytest.fixture
def shops(app: Flask, books: Books, db: Database) -> Shops:
    a = books.open(A, revert__enabled="true")
    b = books.open(B)
    a.apply(snap("1001", total="200.00", customer=CUSTOMER, shop=A))
    a.apply(snap("1002", total="100.00", customer=CUSTOMER, shop=A, at=5))
    a.apply(snap("1002", total="100.00", customer=CUSTOMER, shop=A, at=10, statuses=("paid", "cancelled")))
    b.apply(snap("2001", total="50.00", customer=CUSTOMER, shop=B))
    b.apply(snap("2002", total="70.00", customer="only-in-b", shop=B))
    with app.app_context():
        admin_a = mint(a.shop_id, "dev")
    return Shops(a, b, make_key(db, a.shop_id), make_key(db, b.shop_id), make_key(db, a.shop_id, "read"), admin_a)


def call(client: FlaskClient, method: str, path: str, token: str | None, body: Any = None,
         headers: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:  # fmt: skip
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if body is not None:
        kwargs["json"] = body
    return client.open(f"/api/v1{path}", method=method, headers=sent, **kwargs)


def ok(response: TestResponse, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def refused(response: TestResponse, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json", response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert isinstance(error, str) and error.strip()
    for fragment in fragments:
        assert fragment in error, error
    return str(error)


def redeem(client: FlaskClient, token: str, body: dict[str, Any], customer: str = CUSTOMER, **kw: Any) -> TestResponse:
    return call(client, "POST", f"/customers/{customer}/redeem", token, body, **kw)


def rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with db.engine.connect() as conn:
        names = sorted(inspect(conn).get_table_names())
        return {t: [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY 1'))] for t in names}


def rows_of_shop(db: Database, shop_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """One shop's rows of every table that has a shop_id, and the shop's own row."""
    with db.engine.connect() as conn:
        names = [
            t for t in inspect(conn).get_table_names() if "shop_id" in {c["name"] for c in inspect(conn).get_columns(t)}
        ]
        found = {
            t: [
                tuple(r)
                for r in conn.execute(text(f'SELECT * FROM "{t}" WHERE shop_id = :s ORDER BY 1'), {"s": shop_id})
            ]
            for t in names
        }
        found["shops"] = [tuple(r) for r in conn.execute(text("SELECT * FROM shops WHERE id = :s"), {"s": shop_id})]
    return found


# --- GET /shop -----------------------------------------------------------------------------------


def test_shop_is_the_authenticated_shop_with_its_settings(client: FlaskClient, shops: Shops) -> None:
    body = ok(call(client, "GET", "/shop", shops.key_a))
    assert body["shop"] == {"platform": "shopify", "domain": A, "name": A, "currency": "USD"}
    assert body["settings"]["revert.enabled"] is True
    assert body["settings"]["earn.rate"] == "1" and body["settings"]["revert.statuses"] == [
        "refunded", "cancelled", "partially_refunded"]  # fmt: skip
    assert body["auth"] == {"via": "api_key", "scope": "redeem"}
    assert ok(call(client, "GET", "/shop", shops.read_a))["auth"] == {"via": "api_key", "scope": "read"}
    via_admin = ok(call(client, "GET", "/shop", shops.admin_a))
    assert via_admin["shop"]["domain"] == A and via_admin["auth"] == {"via": "admin", "scope": "admin"}
    other = ok(call(client, "GET", "/shop", shops.key_b))
    assert other["shop"]["domain"] == B and other["settings"]["revert.enabled"] is False
    assert "credentials" not in json.dumps(body)


# --- balance and history -------------------------------------------------------------------------


def test_balance_is_the_customers_in_the_callers_shop(client: FlaskClient, shops: Shops) -> None:
    expected_a = {"customer_id": CUSTOMER, "available": 200, "pending": 0, "shortfall": 0}
    assert ok(call(client, "GET", f"/customers/{CUSTOMER}/balance", shops.key_a)) == expected_a
    assert ok(call(client, "GET", f"/customers/{CUSTOMER}/balance", shops.read_a)) == expected_a
    assert ok(call(client, "GET", f"/customers/{CUSTOMER}/balance", shops.admin_a)) == expected_a
    assert ok(call(client, "GET", f"/customers/{CUSTOMER}/balance", shops.key_b))["available"] == 50


def test_history_is_newest_first_with_explanations(client: FlaskClient, shops: Shops) -> None:
    body = ok(call(client, "GET", f"/customers/{CUSTOMER}/history", shops.key_a))
    assert body["customer_id"] == CUSTOMER and body["next_before"] is None
    entries = body["entries"]
    assert [(e["kind"], e["coins_delta"], e["order_id"]) for e in entries] == [
        ("revert", -100, "1002"), ("earn", 100, "1002"), ("earn", 200, "1001")]  # fmt: skip
    revert = entries[0]
    assert revert["explanation"].startswith("Order #1002 was cancelled; 100 coins earned on it were reverted")
    assert revert["order_name"] == "#1002" and revert["reason"] == "order_cancelled"
    assert set(revert) == {"id", "kind", "coins_delta", "pending_delta", "shortfall_delta", "order_id", "order_name",
                           "reason", "explanation", "created_at"}  # fmt: skip
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$", revert["created_at"])
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    other = ok(call(client, "GET", f"/customers/{CUSTOMER}/history", shops.key_b))["entries"]
    assert [(e["kind"], e["order_id"]) for e in other] == [("earn", "2001")]


def test_history_pages_by_keyset(client: FlaskClient, shops: Shops) -> None:
    everything = ok(call(client, "GET", f"/customers/{CUSTOMER}/history", shops.key_a))["entries"]
    seen: list[dict[str, Any]] = []
    before: int | None = None
    for _ in range(10):
        query = {"limit": "1", **({"before": str(before)} if before else {})}
        page = ok(call(client, "GET", f"/customers/{CUSTOMER}/history", shops.key_a, query_string=query))
        seen += page["entries"]
        before = page["next_before"]
        if before is None:
            break
    assert seen == everything
    two = ok(call(client, "GET", f"/customers/{CUSTOMER}/history", shops.key_a, query_string={"limit": "2"}))
    assert two["entries"] == everything[:2] and two["next_before"] == everything[1]["id"]
    rest = ok(call(client, "GET", f"/customers/{CUSTOMER}/history", shops.key_a,
                   query_string={"before": str(two["next_before"])}))  # fmt: skip
    assert rest["entries"] == everything[2:] and rest["next_before"] is None
    huge = ok(call(client, "GET", f"/customers/{CUSTOMER}/history", shops.key_a,
                   query_string={"before": "999999999999999999"}))  # fmt: skip
    assert huge["entries"] == everything


@pytest.mark.parametrize(
    "query",
    [{"limit": "0"}, {"limit": "201"}, {"limit": "-1"}, {"limit": "ten"}, {"limit": "1.5"}, {"limit": "٣"},
     {"before": "0"}, {"before": "x"}, {"before": "1" * 19}, {"before": "-5"}],
)  # fmt: skip
def test_history_refuses_bad_paging(client: FlaskClient, shops: Shops, query: dict[str, str]) -> None:
    name = next(iter(query))
    response = call(client, "GET", f"/customers/{CUSTOMER}/history", shops.key_a, query_string=query)
    refused(response, 400, f"'{name}' must be a whole number")


def test_unknown_or_malformed_customers(client: FlaskClient, shops: Shops) -> None:
    for path in ("/customers/nobody/balance", "/customers/nobody/history", "/customers/only-in-b/balance"):
        refused(call(client, "GET", path, shops.key_a), 404, "no customer")
    refused(call(client, "GET", f"/customers/{'x' * 65}/balance", shops.key_a), 400, "1 to 64 printable")
    refused(call(client, "GET", "/customers/%E2%80%A8x/balance", shops.key_a), 400, "printable")
    refused(call(client, "GET", "/customers/%00/balance", shops.key_a), 400, "NUL")


# --- POST redeem ---------------------------------------------------------------------------------


def test_redeem_spends_through_the_wallet_like_the_cli(
    client: FlaskClient, db: Database, runner: FlaskCliRunner, shops: Shops
) -> None:
    body = ok(redeem(client, shops.key_a, {"coins": 50, "order_id": "1003", "idempotency_key": "k-1"}), 201)
    assert body == {"redemption": body["redemption"], "customer_id": CUSTOMER, "coins": 50, "order_id": "1003",
                    "code": None, "explanation": "50 coins were spent on order #1003",
                    "balance": {"available": 150, "pending": 0, "shortfall": 0}, "idempotency_key": "k-1"}  # fmt: skip
    assert shops.a.balance(CUSTOMER)["available"] == 150
    assert shops.b.balance(CUSTOMER)["available"] == 50
    out = runner.invoke(cli, ["ledger", "--shop", A, "--customer", CUSTOMER, "--order", "1003"])
    (line,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert (line["kind"], line["coins_delta"], line["explanation"]) == ("redeem", -50, body["explanation"])
    with db.session() as session:
        key_id = session.exec(select(ApiKey.id).where(ApiKey.shop_id == shops.a.shop_id)).first()
    assert line["source"] == f"api:key:{key_id}"
    assert runner.invoke(cli, ["check"]).exit_code == 0
    # the same redemption through the CLI, for comparison: the same entry but for its source
    cli_out = runner.invoke(cli, ["redeem", "--shop", A, "--customer", CUSTOMER, "--coins", "50", "--order", "1004"])
    assert json.loads(cli_out.stdout)["explanation"] == "50 coins were spent on order #1004"


def test_an_admin_token_may_redeem_and_is_named_as_the_source(client: FlaskClient, db: Database, shops: Shops) -> None:
    ok(redeem(client, shops.admin_a, {"coins": 5, "idempotency_key": "admin-1"}), 201)
    with db.session() as session:
        entry = session.exec(select(LedgerEntry).where(LedgerEntry.kind == "redeem")).one()
    assert entry.source == "api:admin:dev" and entry.shop_id == shops.a.shop_id


def test_redeem_with_a_code_records_the_discount_code_write_back(
    client: FlaskClient, db: Database, shops: Shops
) -> None:
    chosen = ok(redeem(client, shops.key_a, {"coins": 20, "code": "spring-20", "idempotency_key": "c-1"}), 201)
    assert chosen["code"] == "SPRING-20" and chosen["explanation"] == "20 coins were spent on code SPRING-20"
    made = ok(redeem(client, shops.key_a, {"coins": 30, "code": True, "idempotency_key": "c-2"}), 201)
    assert re.fullmatch(r"CB-[0-9A-F]{10}", made["code"])
    with db.session() as session:
        intents = session.exec(select(Writeback).order_by(Writeback.id)).all()  # type: ignore[arg-type]
    assert [(w.kind, w.shop_id, w.payload["code"], w.payload["amount"], w.payload["customer_id"]) for w in intents] == [
        ("discount_code", shops.a.shop_id, "SPRING-20", "0.20", CUSTOMER),
        ("discount_code", shops.a.shop_id, made["code"], "0.30", CUSTOMER),
    ]
    # no code: none recorded
    ok(redeem(client, shops.key_a, {"coins": 1, "code": False, "idempotency_key": "c-3"}), 201)
    ok(redeem(client, shops.key_a, {"coins": 1, "code": None, "idempotency_key": "c-4"}), 201)
    with db.session() as session:
        assert len(session.exec(select(Writeback)).all()) == 2
    # a code is one shop's: taken in A, still free in B
    refused(redeem(client, shops.key_a, {"coins": 1, "code": "SPRING-20", "idempotency_key": "c-5"}), 400, "in use")
    ok(redeem(client, shops.key_b, {"coins": 1, "code": "SPRING-20", "idempotency_key": "c-5"}), 201)


def test_a_retry_with_the_same_key_returns_the_same_answer_and_spends_once(
    client: FlaskClient, db: Database, shops: Shops
) -> None:
    ask = {"coins": 40, "code": True, "idempotency_key": "retry-me"}
    first = redeem(client, shops.key_a, ask)
    body = ok(first, 201)
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(3):
        again = redeem(client, shops.key_a, ask)
        assert ok(again, 200) == body
        assert again.headers["Idempotent-Replayed"] == "true"
    # the key may travel in the Idempotency-Key header instead (or as well, when they agree)
    by_header = redeem(client, shops.key_a, {"coins": 40, "code": True}, headers={"Idempotency-Key": "retry-me"})
    assert ok(by_header, 200) == body
    both = redeem(client, shops.key_a, ask, headers={"Idempotency-Key": "retry-me"})
    assert ok(both, 200) == body
    # an admin token of the same shop retrying the same key gets the same answer too
    assert ok(redeem(client, shops.admin_a, ask), 200) == body
    assert shops.a.balance(CUSTOMER)["available"] == 160
    with db.session() as session:
        assert len(session.exec(select(Redemption)).all()) == 1
        assert len(session.exec(select(Writeback)).all()) == 1
        (stored,) = session.exec(select(ApiRequest)).all()
    assert stored.redemption_id == body["redemption"] and CUSTOMER not in json.dumps(stored.response)
    # keys are per shop: the same key in B is B's own, first, redemption
    other = ok(redeem(client, shops.key_b, ask), 201)
    assert other["redemption"] != body["redemption"] and shops.b.balance(CUSTOMER)["available"] == 10


def test_the_same_key_for_a_different_request_is_refused(client: FlaskClient, db: Database, shops: Shops) -> None:
    ok(redeem(client, shops.key_a, {"coins": 10, "order_id": "1003", "idempotency_key": "once"}), 201)
    before = rows(db)
    for changed in ({"coins": 11, "order_id": "1003"}, {"coins": 10, "order_id": "1004"}, {"coins": 10},
                    {"coins": 10, "order_id": "1003", "code": True}):  # fmt: skip
        refused(redeem(client, shops.key_a, {**changed, "idempotency_key": "once"}), 422, "already used")
    refused(redeem(client, shops.key_a, {"coins": 10, "order_id": "1003", "idempotency_key": "once"},
                   customer="other-customer"), 422, "already used")  # fmt: skip
    assert rows(db) == before


def test_a_refused_redemption_is_not_remembered(client: FlaskClient, db: Database, shops: Shops) -> None:
    before = rows(db)
    refused(redeem(client, shops.key_a, {"coins": 201, "idempotency_key": "k"}), 409, "has 200 coins available")
    refused(redeem(client, shops.key_a, {"coins": 5, "idempotency_key": "k"}, customer="nobody"), 404, "no customer")
    assert rows(db) == before
    ok(redeem(client, shops.key_a, {"coins": 200, "idempotency_key": "k"}), 201)
    assert shops.a.balance(CUSTOMER)["available"] == 0


def test_concurrent_retries_spend_once(app: Flask, db: Database, shops: Shops) -> None:
    ask = {"coins": 7, "order_id": "1009", "idempotency_key": "race"}
    answers: list[tuple[int, Any]] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        client = app.test_client()
        barrier.wait()
        response = redeem(client, shops.key_a, ask)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(status for status, _ in answers) == [200, 200, 200, 201]
    assert len({json.dumps(body, sort_keys=True) for _, body in answers}) == 1
    assert shops.a.balance(CUSTOMER)["available"] == 193
    with db.session() as session:
        assert len(session.exec(select(Redemption)).all()) == 1


# --- bad input: a clear 4xx, nothing written ------------------------------------------------------

BIG_INT = "1" + "0" * 5000
BAD_BODIES = [
    pytest.param(b"not json", "application/json", 400, "not valid JSON", id="not-json"),
    pytest.param(b'{"coins": 5', "application/json", 400, "not valid JSON", id="truncated"),
    pytest.param(b"[5]", "application/json", 400, "must be a JSON object, not an array", id="array"),
    pytest.param(b"null", "application/json", 400, "not null", id="null"),
    pytest.param(b'{"coins": 5, "idempotency_key": "k"}', "text/plain", 415, "Content-Type", id="text-plain"),
    pytest.param(b"coins=5&idempotency_key=k", "application/x-www-form-urlencoded", 415, "JSON", id="form"),
    pytest.param(b'{"coins": 5, "idempotency_key": "k"}', None, 415, "JSON", id="no-content-type"),
    pytest.param(b'{"coins": NaN, "idempotency_key": "k"}', "application/json", 400, "NaN", id="nan"),
    pytest.param(b'{"coins": 1e400, "idempotency_key": "k"}', "application/json", 400, "whole number", id="1e400"),
    pytest.param(f'{{"coins": {BIG_INT}, "idempotency_key": "k"}}'.encode(), "application/json", 400, "not valid JSON",
                 id="5000-digit-int"),
    pytest.param(b'{"coins": 5, "coins": 6, "idempotency_key": "k"}', "application/json", 400, "appears twice",
                 id="duplicate-key"),
    pytest.param(b'{"coins": 5, "idempotency_key": "\xff"}', "application/json", 400, "UTF-8", id="not-utf8"),
    pytest.param(b"[" * 100_00 + b"]" * 100_00, "application/json", 413, "larger than", id="deep-and-large"),
    pytest.param(b"[" * 5000 + b"]" * 5000, "application/json", 400, "", id="deep"),
    pytest.param(b'{"coins": 5, "idempotency_key": "k", "pad": "' + b"x" * 20_000 + b'"}', "application/json", 413,
                 "larger than 16384 bytes", id="huge-body"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "content_type", "status", "fragment"), BAD_BODIES)
def test_bad_bodies_are_refused_and_write_nothing(
    client: FlaskClient, db: Database, shops: Shops, raw: bytes, content_type: str | None, status: int, fragment: str
) -> None:
    before = rows(db)
    headers = {"Authorization": f"Bearer {shops.key_a}"}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(f"/api/v1/customers/{CUSTOMER}/redeem", data=raw, headers=headers)
    refused(response, status, fragment)
    assert rows(db) == before


BAD_FIELDS = [
    pytest.param({"idempotency_key": "k"}, "coins is required", id="no-coins"),
    pytest.param({"coins": "5", "idempotency_key": "k"}, "coins must be a whole number, not a string", id="string"),
    pytest.param({"coins": 5.0, "idempotency_key": "k"}, "whole number, not a number", id="float"),
    pytest.param({"coins": 2.5, "idempotency_key": "k"}, "whole number", id="fraction"),
    pytest.param({"coins": True, "idempotency_key": "k"}, "not a boolean", id="bool"),
    pytest.param({"coins": None, "idempotency_key": "k"}, "not null", id="null"),
    pytest.param({"coins": [5], "idempotency_key": "k"}, "not an array", id="array"),
    pytest.param({"coins": 0, "idempotency_key": "k"}, "between 1 and", id="zero"),
    pytest.param({"coins": -5, "idempotency_key": "k"}, "between 1 and", id="negative"),
    pytest.param({"coins": 10**12 + 1, "idempotency_key": "k"}, "between 1 and 1000000000000", id="absurd"),
    pytest.param({"coins": 10**40, "idempotency_key": "k"}, "between 1 and", id="beyond-bigint"),
    pytest.param({"coins": 5}, "idempotency_key is required", id="no-key"),
    pytest.param({"coins": 5, "idempotency_key": ""}, "idempotency_key must be 1 to 200", id="empty-key"),
    pytest.param({"coins": 5, "idempotency_key": "   "}, "idempotency_key must be 1 to 200", id="blank-key"),
    pytest.param({"coins": 5, "idempotency_key": "k" * 201}, "1 to 200", id="long-key"),
    pytest.param({"coins": 5, "idempotency_key": 42}, "idempotency_key must be a string", id="numeric-key"),
    pytest.param({"coins": 5, "idempotency_key": "a\x00b"}, "printable", id="nul-key"),
    pytest.param({"coins": 5, "idempotency_key": "\ud800"}, "printable", id="surrogate-key"),
    pytest.param({"coins": 5, "order_id": "", "idempotency_key": "k"}, "order_id must be 1 to 64", id="empty-order"),
    pytest.param({"coins": 5, "order_id": "x" * 65, "idempotency_key": "k"}, "1 to 64", id="long-order"),
    pytest.param({"coins": 5, "order_id": "10\x0003", "idempotency_key": "k"}, "printable", id="nul-order"),
    pytest.param({"coins": 5, "order_id": {"id": 1}, "idempotency_key": "k"}, "not an object", id="object-order"),
    pytest.param({"coins": 5, "order_id": -3, "idempotency_key": "k"}, "order_id must be a string", id="neg-order"),
    pytest.param({"coins": 5, "code": "a b", "idempotency_key": "k"}, "a code is 3-64 letters", id="code-space"),
    pytest.param({"coins": 5, "code": "ab", "idempotency_key": "k"}, "a code is 3-64", id="code-short"),
    pytest.param({"coins": 5, "code": 7, "idempotency_key": "k"}, "code must be a string", id="code-number"),
    pytest.param({"coins": 5, "code": "C" * 65, "idempotency_key": "k"}, "1 to 64", id="code-long"),
    pytest.param({"coins": 5, "idempotency_key": "k", "customer_id": "only-in-b"}, "unknown field 'customer_id'",
                 id="unknown-field"),
    pytest.param({"coins": 5, "idempotency_key": "k", "shop": B}, "unknown field 'shop'", id="shop-field"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "fragment"), BAD_FIELDS)
def test_bad_fields_are_refused_and_write_nothing(
    client: FlaskClient, db: Database, shops: Shops, body: dict[str, Any], fragment: str
) -> None:
    before = rows(db)
    response = client.post(
        f"/api/v1/customers/{CUSTOMER}/redeem",
        data=json.dumps(body),  # ensure_ascii: lone surrogates and NULs travel as \u escapes
        headers={"Authorization": f"Bearer {shops.key_a}", "Content-Type": "application/json"},
    )
    refused(response, 400, fragment)
    assert rows(db) == before


def test_keys_that_differ_between_body_and_header_are_refused(client: FlaskClient, db: Database, shops: Shops) -> None:
    before = rows(db)
    response = redeem(client, shops.key_a, {"coins": 5, "idempotency_key": "a"}, headers={"Idempotency-Key": "b"})
    refused(response, 400, "differ")
    assert rows(db) == before


def test_unknown_paths_and_methods_under_the_api_answer_json(client: FlaskClient, shops: Shops) -> None:
    refused(call(client, "GET", "/nothing-here", shops.key_a), 404, "no such endpoint")
    refused(client.get("/api/v2/shop"), 404, "no such endpoint")
    response = call(client, "GET", f"/customers/{CUSTOMER}/redeem", shops.key_a)
    refused(response, 405, "GET is not allowed")
    assert "POST" in response.headers["Allow"]
    refused(call(client, "DELETE", "/shop", shops.key_a), 405)
    outside = client.get("/no-such-page")  # elsewhere the default page stands
    assert outside.status_code == 404 and outside.mimetype == "text/html"


# --- who may ask ---------------------------------------------------------------------------------

ROUTES = [("GET", "/shop"), ("GET", f"/customers/{CUSTOMER}/balance"), ("GET", f"/customers/{CUSTOMER}/history"),
          ("POST", f"/customers/{CUSTOMER}/redeem")]  # fmt: skip


def test_without_a_valid_token_every_route_is_401_and_writes_nothing(
    app: Flask, client: FlaskClient, db: Database, shops: Shops, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged = URLSafeTimedSerializer("another-secret", salt="clawback-admin").dumps({"shop_id": shops.a.shop_id})
    with monkeypatch.context() as m, app.app_context():
        m.setattr(time, "time", lambda: 1_000_000_000.0)
        expired = mint(shops.a.shop_id, "dev")
    with app.app_context():
        other_salt = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="other").dumps({"shop_id": shops.a.shop_id})
    revoked = make_key(db, shops.a.shop_id)
    with db.session() as session:
        shop = session.get(Shop, shops.a.shop_id)
        assert shop is not None
        api_keys.revoke(session, shop, api_keys.find(session, revoked).id)  # type: ignore[union-attr]
    headers: list[dict[str, str]] = [
        {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer   "},
        {"Authorization": f"Basic {shops.key_a}"}, {"Authorization": shops.key_a},
        {"Authorization": "Bearer cbk_" + "x" * 43}, {"Authorization": f"Bearer {shops.key_a}x"},
        {"Authorization": f"Bearer {shops.key_a[:-1]}"}, {"Authorization": "Bearer cbk_"},
        {"Authorization": "Bearer " + "cbk_" + "a" * 5000}, {"Authorization": f"Bearer {revoked}"},
        {"Authorization": f"Bearer {forged}"}, {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {other_salt}"}, {"Authorization": f"Bearer {shops.admin_a[:-2]}xx"},
        {"Authorization": "Bearer é\xff"}, {"Authorization": "Bearer garbage"},
        {"X-Api-Key": shops.key_a}, {"Cookie": f"t={shops.admin_a}"},
    ]  # fmt: skip
    before = rows(db)
    for method, path in ROUTES:
        for header in headers:
            body = {"coins": 5, "idempotency_key": "x"}
            # the pages' `t` in the query is not read: the API takes the header only
            response = client.open(f"/api/v1{path}", method=method, headers=header, json=body,
                                   query_string={"t": shops.admin_a})  # fmt: skip
            refused(response, 401)
            assert response.headers["WWW-Authenticate"].startswith('Bearer realm="clawback"'), header
    assert rows(db) == before


def test_the_scheme_is_case_insensitive(client: FlaskClient, shops: Shops) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        assert ok(client.get("/api/v1/shop", headers={"Authorization": f"{scheme} {shops.key_a}"}))


def test_a_read_key_may_not_redeem(client: FlaskClient, db: Database, shops: Shops) -> None:
    before = rows(db)
    refused(redeem(client, shops.read_a, {"coins": 5, "idempotency_key": "r"}), 403, "may only read", "--scope redeem")
    assert rows(db) == before


def test_an_uninstalled_shop_is_refused(client: FlaskClient, db: Database, shops: Shops) -> None:
    with db.session() as session:
        shop = session.get(Shop, shops.a.shop_id)
        assert shop is not None
        shop.uninstalled_at = utcnow()
        session.add(shop)
    for token in (shops.key_a, shops.admin_a):
        refused(call(client, "GET", "/shop", token), 401, "uninstalled")
    assert ok(call(client, "GET", "/shop", shops.key_b))


def test_one_shop_never_reads_or_spends_another_shops_coins(client: FlaskClient, db: Database, shops: Shops) -> None:
    before_b = rows_of_shop(db, shops.b.shop_id)
    for token in (shops.key_a, shops.admin_a, shops.read_a):
        refused(call(client, "GET", "/customers/only-in-b/balance", token), 404, "no customer 'only-in-b'")
        refused(call(client, "GET", "/customers/only-in-b/history", token), 404)
        history = ok(call(client, "GET", f"/customers/{CUSTOMER}/history", token))["entries"]
        assert {e["order_id"] for e in history} == {"1001", "1002"}
    refused(redeem(client, shops.key_a, {"coins": 5, "idempotency_key": "steal"}, customer="only-in-b"), 404)
    # nothing in a request can point at the other shop: not the query, not a header, not the body
    tricks = {"query_string": {"shop": B, "shop_id": str(shops.b.shop_id)},
              "headers": {"X-Shopify-Shop-Domain": B}}  # fmt: skip
    assert ok(call(client, "GET", f"/customers/{CUSTOMER}/balance", shops.key_a, **tricks))["available"] == 200
    ok(redeem(client, shops.key_a, {"coins": 5, "idempotency_key": "mine"}, **tricks), 201)
    assert shops.a.balance(CUSTOMER)["available"] == 195
    assert shops.b.balance(CUSTOMER)["available"] == 50 and shops.b.balance("only-in-b")["available"] == 70
    assert rows_of_shop(db, shops.b.shop_id) == before_b
    # and B's key reaches B's customer
    assert ok(call(client, "GET", "/customers/only-in-b/balance", shops.key_b))["available"] == 70


# --- clawback api-key ----------------------------------------------------------------------------


def run(runner: FlaskCliRunner, *args: str) -> Any:
    return runner.invoke(cli, list(args))


def test_api_key_create_list_revoke(client: FlaskClient, db: Database, runner: FlaskCliRunner, books: Books) -> None:
    shop = books.open(A)
    shop.apply(snap("1001", customer=CUSTOMER, shop=A))
    made = run(runner, "api-key", "create", "--shop", A, "--name", "storefront widget", "--scope", "redeem")
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    key = created.pop("key")
    assert re.fullmatch(r"cbk_[A-Za-z0-9_-]{43}", key)
    assert created == {"id": created["id"], "shop": A, "name": "storefront widget", "scope": "redeem",
                       "prefix": key[:12], "created_at": created["created_at"], "revoked_at": None}  # fmt: skip
    read = json.loads(run(runner, "api-key", "create", "--shop", A).stdout)
    assert read["scope"] == "read" and read["name"] == ""
    # only a hash is stored: the key is nowhere in the database
    with db.session() as session:
        row = session.get(ApiKey, created["id"])
        assert row is not None and row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(rows(db), default=str) and key[12:] not in json.dumps(rows(db), default=str)
    listed = [json.loads(line) for line in run(runner, "api-key", "list", "--shop", A).stdout.splitlines()]
    assert [k["id"] for k in listed] == [created["id"], read["id"]]
    assert all("key" not in k and "key_hash" not in k for k in listed) and listed[0] == created

    assert ok(call(client, "GET", "/shop", key))["shop"]["domain"] == A
    ok(redeem(client, key, {"coins": 1, "idempotency_key": "cli"}), 201)
    revoked = run(runner, "api-key", "revoke", "--shop", A, "--id", str(created["id"]))
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    refused(call(client, "GET", "/shop", key), 401, "revoked")
    again = run(runner, "api-key", "revoke", "--shop", A, "--id", str(created["id"]))  # changes nothing
    assert json.loads(again.stdout)["revoked_at"] == json.loads(revoked.stdout)["revoked_at"]
    assert ok(call(client, "GET", "/shop", read["key"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--shop", "nobody.myshopify.com"], "no shop 'nobody.myshopify.com'"),
        (["create", "--shop", A, "--scope", "admin"], "'admin' is not one of"),
        (["create", "--shop", A, "--name", "x" * 101], "at most 100 printable characters"),
        (["create", "--shop", A, "--name", "tab\x07bell"], "printable"),
        (["list", "--shop", "nobody.myshopify.com"], "no shop"),
        (["revoke", "--shop", A, "--id", "999"], "has no API key 999"),
        (["revoke", "--shop", A, "--id", "0"], "--id"),
        (["revoke", "--shop", A, "--id", "99999999999"], "--id"),
        (["revoke", "--shop", B, "--id", "{a_key}"], "has no API key"),
        (["revoke", "--shop", A], "Missing option '--id'"),
        (["create"], "Missing option '--shop'"),
    ],
    ids=["unknown-shop", "bad-scope", "long-name", "control-char", "list-unknown-shop", "unknown-id", "id-zero",
         "id-huge", "another-shops-key", "no-id", "no-shop"],
)  # fmt: skip
def test_api_key_refusals_exit_2_and_write_nothing(
    db: Database, runner: FlaskCliRunner, books: Books, args: list[str], message: str
) -> None:
    a = books.open(A)
    books.open(B)
    a_key = make_key(db, a.shop_id)
    with db.session() as session:
        a_key_id = api_keys.find(session, a_key).id  # type: ignore[union-attr]
    args = [arg.replace("{a_key}", str(a_key_id)) for arg in args]
    before = rows(db)
    result = run(runner, "api-key", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert rows(db) == before


def test_an_uninstalled_shop_gets_no_new_key(db: Database, runner: FlaskCliRunner, books: Books) -> None:
    a = books.open(A)
    with db.session() as session:
        shop = session.get(Shop, a.shop_id)
        assert shop is not None
        shop.uninstalled_at = utcnow()
        session.add(shop)
    result = run(runner, "api-key", "create", "--shop", A)
    assert result.exit_code == 2 and "uninstalled" in result.output


def test_help_lists_api_key(runner: FlaskCliRunner) -> None:
    assert "api-key" in run(runner, "--help").stdout
    out = run(runner, "api-key", "--help").stdout
    assert all(name in out for name in ("create", "list", "revoke"))
