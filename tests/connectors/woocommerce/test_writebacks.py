"""What Clawback tells a WooCommerce store (order notes, the customer flag, redemption coupons) and
what it pulls from it (reconciliation by `modified_after`), against the REST API's documented shapes."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import responses
from flask.testing import FlaskClient, FlaskCliRunner
from sqlmodel import select

from app.db import Database
from app.models import Writeback
from tests.helpers import clawback
from tests.platforms.woocommerce import CUSTOMER, SECRET, STORE, accepted, balance, balances, configure, moves, order

API = f"{STORE}/wp-json/wc/v3"
LATER = "2099-01-01T00:00:00+00:00"


@pytest.fixture(autouse=True)
def keys(store: None, runner: FlaskCliRunner) -> None:
    """The store of the webhook tests, with REST keys too (as the key exchange leaves it)."""
    clawback(
        runner,
        "shop",
        "add",
        "--platform",
        "woocommerce",
        "--url",
        STORE,
        "--webhook-secret",
        SECRET,
        "--key",
        "ck_" + "a" * 40,
        "--secret",
        "cs_" + "b" * 40,
    )


def run_writebacks(runner: FlaskCliRunner) -> None:
    clawback(runner, "writebacks", "run", "--now", LATER)


def writebacks(db: Database, kind: str) -> list[Writeback]:
    with db.session() as session:
        return list(session.exec(select(Writeback).where(Writeback.kind == kind).order_by(Writeback.id)))  # type: ignore[arg-type]


def sent(call: Any) -> Any:
    return json.loads(cast(bytes, call.request.body))


@responses.activate
def test_a_reversal_becomes_a_private_order_note_once(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    responses.get(f"{API}/orders/723/notes", json=[])
    responses.post(f"{API}/orders/723/notes", status=201, json={"id": 281, "note": "…", "customer_note": False})
    accepted(client, order(), "order.created")
    accepted(client, order(status="cancelled", minutes=1))
    run_writebacks(runner)
    run_writebacks(runner)
    posts = [c for c in responses.calls if c.request.method == "POST"]
    assert len(posts) == 1
    note = sent(posts[0])
    assert note["customer_note"] is False
    assert note["note"].startswith("Clawback: Order #723 was cancelled; 100 coins earned on it were reverted")
    assert [w.status for w in writebacks(db, "order_note")] == ["done"]


@responses.activate
def test_a_note_already_on_the_order_is_not_added_again(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    accepted(client, order(), "order.created")
    accepted(client, order(status="cancelled", minutes=1))
    (row,) = writebacks(db, "order_note")
    responses.get(f"{API}/orders/723/notes", json=[{"id": 281, "note": row.payload["note"], "customer_note": False}])
    run_writebacks(runner)
    assert [c.request.method for c in responses.calls] == ["GET"]
    assert writebacks(db, "order_note")[0].status == "done"


@responses.activate
def test_spent_coins_flag_the_customer_through_meta(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    responses.get(f"{API}/orders/723/notes", json=[])
    responses.post(f"{API}/orders/723/notes", status=201, json={"id": 281})
    responses.put(f"{API}/customers/{CUSTOMER}", json={"id": 26, "meta_data": []})
    configure(runner, "revert.shortfall=floor_and_flag", "revert.flag_tag=Fraud")
    accepted(client, order(), "order.created")
    clawback(runner, "redeem", "--shop", STORE, "--customer", CUSTOMER, "--coins", "80")
    accepted(client, order(status="refunded", refunds=((801, "-100.00"),), minutes=1))
    assert balances(runner)["shortfall"] == 80
    run_writebacks(runner)
    put = next(c for c in responses.calls if c.request.method == "PUT")
    meta = {m["key"]: m["value"] for m in sent(put)["meta_data"]}
    assert meta["clawback_flag"] == "Fraud"
    assert "spent" in meta["clawback_flag_reason"]
    assert [w.status for w in writebacks(db, "tag_customer")] == ["done"]


@responses.activate
def test_a_code_redemption_becomes_a_coupon_and_the_order_using_it_returns_the_coins(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    responses.post(f"{API}/coupons", status=201, json={"id": 719, "code": "clawback-50"})
    accepted(client, order(order_id=1, total="100.00"), "order.created")
    clawback(runner, "redeem", "--shop", STORE, "--customer", CUSTOMER, "--coins", "50", "--code", "CLAWBACK-50")
    run_writebacks(runner)
    coupon = sent(next(c for c in responses.calls if c.request.url == f"{API}/coupons"))
    assert coupon["code"] == "CLAWBACK-50" and coupon["discount_type"] == "fixed_cart"
    assert coupon["amount"] == "0.50" and coupon["usage_limit"] == 1
    assert coupon["email_restrictions"] == ["joao.silva@example.com"]
    # The order that used the code is linked to the redemption; cancelling it returns the coins.
    accepted(client, order(order_id=2, total="20.00", coupons=("clawback-50",)), "order.created")
    accepted(client, order(order_id=2, total="20.00", coupons=("clawback-50",), status="cancelled", minutes=1))
    assert ("redeem_refund", 50) in moves(runner, "2")
    assert balance(runner) == 100


@responses.activate
def test_a_coupon_created_by_a_lost_attempt_counts_as_done(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    responses.post(
        f"{API}/coupons",
        status=400,
        json={"code": "woocommerce_rest_coupon_code_already_exists", "message": "The coupon code already exists"},
    )
    accepted(client, order(), "order.created")
    clawback(runner, "redeem", "--shop", STORE, "--customer", CUSTOMER, "--coins", "10", "--code", "AGAIN-10")
    run_writebacks(runner)
    assert [w.status for w in writebacks(db, "discount_code")] == ["done"]


@pytest.mark.parametrize(("status", "outcome"), [(401, "pending"), (400, "failed"), (503, "pending")])
@responses.activate
def test_store_answers_become_retry_or_dead_letter(
    client: FlaskClient, runner: FlaskCliRunner, db: Database, status: int, outcome: str
) -> None:
    responses.get(f"{API}/orders/723/notes", status=status, json={"code": "x", "message": "no"})
    accepted(client, order(), "order.created")
    accepted(client, order(status="cancelled", minutes=1))
    run_writebacks(runner)
    (row,) = writebacks(db, "order_note")
    assert row.status == outcome
    assert row.attempts == 1 and row.last_error


# --- reconciliation -------------------------------------------------------------------------------


@responses.activate
def test_reconcile_pulls_orders_modified_after_the_last_sync(client: FlaskClient, runner: FlaskCliRunner) -> None:
    configure(runner, "revert.enabled=true")
    accepted(client, order(order_id=1), "order.created")
    # The cancellation's webhook never arrived; the store lists it, over two pages.
    first = [order(order_id=1, status="cancelled", minutes=5)] + [
        order(order_id=100 + i, customer_id=0) for i in range(99)
    ]
    second = [order(order_id=2, minutes=6)]
    for number, orders in ((1, first), (2, second)):
        query = {
            "modified_after": "2026-11-20T11:00:00",
            "dates_are_gmt": "true",
            "orderby": "id",
            "order": "asc",
            "per_page": "100",
            "page": str(number),
            "status": "any",
        }
        responses.get(f"{API}/orders", match=[responses.matchers.query_param_matcher(query)], json=orders)
    report = json.loads(clawback(runner, "reconcile", "--shop", STORE, "--since", "2026-11-20T11:00:00+00:00").stdout)
    assert report["orders_seen"] == 101
    assert report["orders_changed"] == 2
    assert moves(runner, "1") == [("earn", 100), ("revert", -100)]
    assert moves(runner, "2") == [("earn", 100)]
    again = json.loads(clawback(runner, "reconcile", "--shop", STORE, "--since", "2026-11-20T11:00:00+00:00").stdout)
    assert again["orders_changed"] == 0
