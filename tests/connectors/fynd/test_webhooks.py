"""POST /webhooks/fynd end to end: signed exactly like Fynd signs, checked through the CLI.

Every delivery is a compact JSON body with a hex HMAC-SHA256 of the raw bytes in `x-fp-signature`,
keyed with the sales channel's extension API secret. The body alone names the shop, so the
signature is checked against the Fynd shops' secrets before anything is read, then against the
named shop's own. Every refusal is checked to have stored nothing at all.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlmodel import SQLModel, select

from app.db import Database
from app.models import Award, Customer, LedgerEntry, Order, Redemption, Shop, WebhookDelivery
from tests.helpers import deliveries, row_counts
from tests.platforms.fynd import (
    APPLICATION,
    COMPANY,
    CUSTOMER,
    PING,
    SECRET,
    SHOP,
    SIGNATURE,
    accepted,
    balance,
    books_balance,
    compact,
    configure,
    deliver,
    install,
    ledger,
    moves,
    redeem,
    shipment_event,
    sign,
)

UPDATE = "application/shipment/update/v1"
TABLES: tuple[type[SQLModel], ...] = (Shop, Customer, Order, Award, Redemption, LedgerEntry, WebhookDelivery)
OTHER_APPLICATION = "65b2185e0eae7612ed0c9999"
OTHER_SHOP = f"fynd:{COMPANY}:{OTHER_APPLICATION}"
OTHER_SECRET = "another-extension-secret"


def counts(db: Database) -> dict[str, int]:
    return row_counts(db, *(m.__tablename__ for m in TABLES))  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def registered(app: Flask) -> None:
    """The sales channel is registered with the seed's defaults (as `clawback shop add --platform
    fynd` does), and so is a second channel of the same company under another secret."""
    install(app, SHOP, SECRET)
    install(app, OTHER_SHOP, OTHER_SECRET)


# --- refusals: nothing parsed, nothing stored -----------------------------------------------------

EVENT = shipment_event("delivery_done", event_id="evt-delivered")
RAW = compact(EVENT)
ELSEWHERE = shipment_event("delivery_done", company=99999)
REFUSALS: dict[str, tuple[dict[str, Any], int]] = {
    "tampered body": ({"body": RAW.replace(b"500.0", b"900.0"), "changes": {SIGNATURE: sign(RAW)}}, 401),
    "wrong secret": ({"secret": "not-the-api-secret"}, 401),
    "missing signature": ({"changes": {SIGNATURE: None}}, 401),
    "empty signature": ({"changes": {SIGNATURE: ""}}, 401),
    "non-ascii signature": ({"changes": {SIGNATURE: "é" * 64}}, 401),
    "base64 signature": ({"changes": {SIGNATURE: "Zm9vYmFy"}}, 401),
    "another channel's secret": ({"secret": OTHER_SECRET}, 401),
    "malformed json": ({"body": b'{"event": {"id": "x", '}, 400),
    "no event id": ({"body": RAW.replace(b'"id":"evt-delivered",', b""), "changes": {"x-fp-event-id": None}}, 400),
    "two channels": ({"body": RAW.replace(f'"{APPLICATION}"'.encode(), f'["{APPLICATION}","x"]'.encode())}, 400),
    "unknown company": ({"body": compact(ELSEWHERE)}, 404),
    "unknown company, wrong secret": ({"body": compact(ELSEWHERE), "secret": "nope"}, 401),
}


@pytest.mark.parametrize(("kwargs", "status"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refused_delivery_stores_nothing(
    client: FlaskClient, runner: FlaskCliRunner, db: Database, kwargs: dict[str, Any], status: int
) -> None:
    accepted(client, shipment_event("bag_confirmed", at=-10))
    before = counts(db)
    response = deliver(client, EVENT, **kwargs)
    assert response.status_code == status
    assert "error" in response.get_json()
    assert counts(db) == before
    assert ledger(runner) == []


def test_the_same_delivery_signed_properly_is_accepted(client: FlaskClient, runner: FlaskCliRunner) -> None:
    assert accepted(client, EVENT).get_json() == {"status": "accepted"}
    assert balance(runner) == 500


def test_the_other_channel_is_a_shop_of_its_own(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    accepted(client, shipment_event(application=OTHER_APPLICATION), secret=OTHER_SECRET)
    with db.session() as session:
        (shop_id,) = {d.shop_id for d in session.exec(select(WebhookDelivery))}
        assert session.get(Shop, shop_id).domain == OTHER_SHOP  # type: ignore[union-attr]
    assert ledger(runner) == []  # nothing in the first channel's books


def test_old_secret_is_accepted_while_rotating(app: Flask, client: FlaskClient, runner: FlaskCliRunner) -> None:
    install(app, SHOP, "rotated-secret", old_api_secret=SECRET)
    accepted(client, shipment_event("bag_confirmed"), secret=SECRET)
    accepted(client, shipment_event("delivery_done", at=5), secret="rotated-secret")
    assert balance(runner) == 500


def test_body_over_the_size_limit_is_refused(client: FlaskClient, app: Flask, db: Database) -> None:
    big = compact({**EVENT, "note": "x" * app.config["MAX_CONTENT_LENGTH"]})
    before = counts(db)
    assert deliver(client, body=big).status_code == 413
    assert counts(db) == before


# --- ping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ping", [PING, {"event": {"name": "ping"}}], ids=["with channel", "bare"])
def test_ping_is_answered_and_changes_nothing(client: FlaskClient, db: Database, ping: dict[str, Any]) -> None:
    before = counts(db)
    assert accepted(client, ping).get_json() == {"status": "ok"}
    assert accepted(client, ping).get_json() == {"status": "ok"}
    assert counts(db) == before


def test_ping_still_needs_a_signature(client: FlaskClient, db: Database) -> None:
    before = counts(db)
    assert deliver(client, PING, secret="x").status_code == 401
    assert deliver(client, PING, changes={SIGNATURE: None}).status_code == 401
    assert counts(db) == before


# --- storing and processing ---------------------------------------------------------------------


def test_duplicate_event_id_is_stored_and_counted_once(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    assert accepted(client, EVENT).get_json()["status"] == "accepted"
    before = ledger(runner)
    assert accepted(client, EVENT).get_json()["status"] == "duplicate"
    assert len(deliveries(db)) == 1
    assert ledger(runner) == before
    assert balance(runner) == 500


def test_the_same_fact_under_a_new_event_id_changes_nothing(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    accepted(client, shipment_event("delivery_done", event_id="a"))
    accepted(client, shipment_event("delivery_done", event_id="b"))
    assert len(deliveries(db)) == 2
    assert moves(runner, "17061704638381968555") == [("earn", 500)]


def test_delivery_is_stored_with_its_headers_but_never_its_signature(client: FlaskClient, db: Database) -> None:
    accepted(client, EVENT)
    (stored,) = deliveries(db)
    assert stored.body == RAW
    assert (stored.topic, stored.delivery_id, stored.status, stored.order_ref, stored.customer_ref) == (
        UPDATE, "evt-delivered", "processed", "17061704638381968555", CUSTOMER
    )  # fmt: skip
    assert SIGNATURE not in {k.lower() for k in stored.headers}
    assert stored.headers.get("X-Fp-Event-Id") == "evt-delivered"


@pytest.mark.parametrize("kind", ["create", "update", "data_update"])
def test_every_shipment_event_is_processed(
    client: FlaskClient, runner: FlaskCliRunner, db: Database, kind: str
) -> None:
    accepted(client, shipment_event("delivery_done", kind=kind))
    (stored,) = deliveries(db)
    assert (stored.topic, stored.status) == (f"application/shipment/{kind}/v1", "processed")
    assert balance(runner) == 500


def test_other_events_are_stored_and_ignored(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    event = shipment_event()
    event["event"].update(name="order", type="placed")
    accepted(client, event)
    (stored,) = deliveries(db)
    assert (stored.topic, stored.status) == ("application/order/placed/v1", "ignored")
    assert "application/order/placed/v1" in (stored.last_error or "")
    assert ledger(runner) == []


def test_a_shipment_without_an_amount_is_stored_as_failed(client: FlaskClient, db: Database) -> None:
    event = shipment_event()
    del event["payload"]["shipment"]["prices"], event["payload"]["shipment"]["bags"]
    accepted(client, event)
    (stored,) = deliveries(db)
    assert stored.status == "failed"
    assert stored.last_error and "malformed" in stored.last_error


def test_guest_shipment_earns_nothing(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    accepted(client, shipment_event(customer=None))
    (stored,) = deliveries(db)
    assert (stored.status, stored.customer_ref) == ("processed", None)
    assert counts(db)["customers"] == 0


def test_coins_are_earned_on_delivery_not_before(client: FlaskClient, runner: FlaskCliRunner) -> None:
    for at, status in enumerate(["placed", "bag_confirmed", "dp_assigned", "bag_picked", "out_for_delivery"]):
        accepted(client, shipment_event(status, at=at))
    assert ledger(runner) == []
    accepted(client, shipment_event("delivery_done", at=10))
    assert balance(runner) == 500


# --- the seed, as Fynd deliveries ---------------------------------------------------------------

EARLIER = "17061704638381960001"  # the shipment the customer's first 500 points came from


def test_seed_1_redeemed_points_return_on_cancel(client: FlaskClient, runner: FlaskCliRunner) -> None:
    """500 points, 50 redeemed on an order, the order is cancelled (cancelled_fynd): back to 500."""
    configure(runner, "redeem.coin_value=1")
    accepted(client, shipment_event("delivery_done", shipment_id=EARLIER, order_id="FY0001", amount="500.00"))
    assert balance(runner) == 500
    redeem(runner, 50, "FYND-50")
    assert balance(runner) == 450
    spent_on = "17061704638381960002"
    accepted(client, shipment_event("bag_confirmed", shipment_id=spent_on, order_id="FY0002", amount="450.00", at=10,
                                    codes=["fynd-50"]))  # fmt: skip
    assert balance(runner) == 450
    cancelled = shipment_event("cancelled_fynd", shipment_id=spent_on, order_id="FY0002", amount="450.00", at=20,
                               codes=["fynd-50"], event_id="evt-cancel")  # fmt: skip
    accepted(client, cancelled)
    accepted(client, cancelled)
    accepted(client, shipment_event("refund_initiated", shipment_id=spent_on, order_id="FY0002", amount="450.00",
                                    at=30, codes=["fynd-50"]))  # fmt: skip
    assert balance(runner) == 500
    assert moves(runner, spent_on) == [("redeem_refund", 50)]
    assert "FY0002 shipment" in ledger(runner, "--order", spent_on)[0]["explanation"]
    books_balance(runner)


def test_seed_2_earned_kept_on_return_redeemed_returned(client: FlaskClient, runner: FlaskCliRunner) -> None:
    """500 points; 25 earned on delivery; 50 redeemed; returned: 50 come back, 25 are kept."""
    configure(runner, "earn.mode=fixed", "earn.rate=500", "redeem.coin_value=1")
    accepted(client, shipment_event("delivery_done", shipment_id=EARLIER, order_id="FY0001", amount="1000.00"))
    configure(runner, "earn.rate=25")
    assert balance(runner) == 500
    redeem(runner, 50, "FYND-50")
    spent_on = "17061704638381960003"

    def step(status: str, at: int) -> None:
        accepted(client, shipment_event(status, shipment_id=spent_on, order_id="FY0003", amount="500.00", at=at,
                                        codes=["FYND-50"]))  # fmt: skip

    step("bag_confirmed", 10)
    assert balance(runner) == 450  # confirmed, not yet delivered: nothing earned
    step("delivery_done", 20)
    assert balance(runner) == 475
    step("return_bag_in_transit", 30)
    step("return_bag_delivered", 31)
    step("return_accepted", 32)
    step("refund_initiated", 40)
    assert balance(runner) == 525
    assert moves(runner, spent_on) == [("earn", 25), ("redeem_refund", 50)]
    assert [(e["kind"], e["coins_delta"]) for e in ledger(runner) if e["kind"] == "redeem"] == [("redeem", -50)]
    books_balance(runner)


# --- an order in several shipments --------------------------------------------------------------

S1, S2 = "17061704638381968001", "17061704638381968002"


@pytest.mark.parametrize("keep_on_return", [True, False], ids=["kept (Fynd default)", "reverted"])
def test_one_shipment_of_two_returned(client: FlaskClient, runner: FlaskCliRunner, keep_on_return: bool) -> None:
    """FY7 ships in two parts: S1 (300) and S2 (200, carrying the item bought with 50 coins). S2 comes
    back: its 50 coins return, its own earned coins follow the policy, S1 is untouched."""
    configure(runner, "redeem.coin_value=1", f"revert.keep_on_return={str(keep_on_return).lower()}")
    accepted(client, shipment_event("delivery_done", shipment_id=EARLIER, order_id="FY0001", amount="100.00"))
    redeem(runner, 50, "FYND-50")
    assert balance(runner) == 50

    def ship(shipment: str, status: str, at: int) -> None:
        amount, codes = ("300.00", []) if shipment == S1 else ("200.00", ["FYND-50"])
        accepted(client, shipment_event(status, shipment_id=shipment, order_id="FY7", amount=amount, at=at,
                                        codes=codes))  # fmt: skip

    ship(S1, "bag_confirmed", 10)
    ship(S2, "bag_confirmed", 10)
    ship(S1, "delivery_done", 20)
    ship(S2, "delivery_done", 21)
    assert balance(runner) == 50 + 300 + 200
    ship(S2, "return_accepted", 30)
    ship(S2, "refund_initiated", 40)
    ship(S1, "delivery_done", 41)  # a late repeat about the other shipment changes nothing
    assert moves(runner, S1) == [("earn", 300)]
    if keep_on_return:
        assert moves(runner, S2) == [("earn", 200), ("redeem_refund", 50)]
        assert balance(runner) == 50 + 300 + 200 + 50
    else:
        assert moves(runner, S2) == [("earn", 200), ("revert", -200), ("redeem_refund", 50)]
        assert balance(runner) == 50 + 300 + 50
    books_balance(runner)


def test_one_shipment_of_two_cancelled_before_delivery(client: FlaskClient, runner: FlaskCliRunner) -> None:
    accepted(client, shipment_event("bag_confirmed", shipment_id=S1, order_id="FY7", amount="300.00"))
    accepted(client, shipment_event("bag_confirmed", shipment_id=S2, order_id="FY7", amount="200.00"))
    accepted(client, shipment_event("cancelled_customer", shipment_id=S2, order_id="FY7", amount="200.00", at=5))
    accepted(client, shipment_event("delivery_done", shipment_id=S1, order_id="FY7", amount="300.00", at=9))
    assert balance(runner) == 300
    assert moves(runner, S2) == []


def test_reordered_deliveries_end_in_the_same_books(client: FlaskClient, runner: FlaskCliRunner) -> None:
    """The return arrives before the delivery it follows: the merge converges all the same."""
    configure(runner, "revert.keep_on_return=false")
    accepted(client, shipment_event("return_accepted", shipment_id=S2, amount="200.00", at=30))
    accepted(client, shipment_event("delivery_done", shipment_id=S2, amount="200.00", at=20))
    accepted(client, shipment_event("bag_confirmed", shipment_id=S2, amount="200.00", at=10))
    assert balance(runner) == 0
    assert moves(runner, S2) == []
    books_balance(runner)


def test_rto_counts_as_a_cancellation_and_can_be_singled_out(client: FlaskClient, runner: FlaskCliRunner) -> None:
    configure(runner, "earn.trigger=paid", "redeem.coin_value=1")
    accepted(client, shipment_event("delivery_done", shipment_id=EARLIER, amount="100.00"))
    redeem(runner, 50, "FYND-50")
    accepted(client, shipment_event("rto_bag_delivered", shipment_id=S1, amount="300.00", codes=["FYND-50"]))
    assert balance(runner) == 100  # the 50 came back: a cancellation, by the shop's redeem settings
    assert moves(runner, S1) == [("redeem_refund", 50)]


def test_a_signed_body_nested_too_deeply_is_refused_not_a_500(client: FlaskClient, db: Database) -> None:
    before = counts(db)
    response = deliver(client, body=b'{"event": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert response.status_code == 400
    assert counts(db) == before


@pytest.mark.parametrize("field", ["id", "name", "type", "version", "category"])
@pytest.mark.parametrize("text", ["\ud800", "a\x00b"])
def test_event_text_no_database_can_store_is_refused_at_the_door(
    client: FlaskClient, db: Database, field: str, text: str
) -> None:
    """Issue #18, class 2: a lone surrogate (either database) or a NUL (PostgreSQL) in the event's
    id, name, type, version or category was accepted by `identify` and failed at the INSERT: a 500,
    retried by Fynd for ever. Refused as a 400, nothing stored."""
    event = shipment_event()
    event["event"][field] = (str(event["event"].get(field) or "x")) + text
    body = json.dumps(event).encode()  # json.dumps escapes the surrogate as \ud800, as a sender may
    response = deliver(client, body=body, changes={"x-fp-event-id": None})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert counts(db)["webhook_deliveries"] == 0


@pytest.mark.parametrize("stamp", [1e308, 2**63, "Infinity", -1e20])
def test_an_impossible_event_time_fails_the_delivery_at_once(client: FlaskClient, db: Database, stamp: Any) -> None:
    """Issue #18, class 6: `event.created_timestamp` of 1e308, 2**63 or Infinity raised OverflowError
    in the translation, and the delivery was retried seven times over two minutes. Now malformed:
    failed on its first attempt, for the operator."""
    event = shipment_event()
    event["event"]["created_timestamp"] = stamp
    body = json.dumps(event).replace('"Infinity"', "Infinity").encode()
    accepted(client, body=body)
    (stored,) = deliveries(db)
    assert (stored.status, stored.attempts) == ("failed", 1), stored.last_error
    assert stored.last_error and stored.last_error.startswith("malformed:")
