"""POST /webhooks/woocommerce end to end: signed exactly as WooCommerce signs, read back through the CLI.

Every refusal is checked to have stored nothing at all. Every scenario the issue names is here:
partial then full refund, cancel after a partial refund, coalesced refunds, a late order.created,
trash and restore, guest orders, and a custom status mapped by settings.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func
from sqlmodel import select

from app.db import Database
from app.models import Customer, WebhookDelivery, Writeback
from tests.helpers import deliveries, post_webhook, row_counts
from tests.platforms.woocommerce import accepted, balance, configure, deliver, encode, headers, moves, order

pytestmark = pytest.mark.usefixtures("store")


def counts(db: Database) -> dict[str, int]:
    return row_counts(db)


def stored(db: Database) -> list[WebhookDelivery]:
    return deliveries(db)


# --- refusals: nothing parsed, nothing stored -----------------------------------------------------


@pytest.mark.parametrize(
    ("case", "kwargs", "status"),
    [
        ("wrong secret", {"secret": "not-the-secret"}, 401),
        ("no signature", {"changes": {"X-WC-Webhook-Signature": None}}, 401),
        ("signature of another body", {"changes": {"X-WC-Webhook-Signature": "AAAA"}}, 401),
        ("non-ASCII signature", {"changes": {"X-WC-Webhook-Signature": "é"}}, 401),
        ("unknown store", {"store": "https://elsewhere.example.com"}, 401),
        ("no source", {"changes": {"X-WC-Webhook-Source": None}}, 401),
        ("no delivery id", {"changes": {"X-WC-Webhook-Delivery-ID": None}}, 400),
        ("no topic", {"changes": {"X-WC-Webhook-Topic": None}}, 400),
    ],
)
def test_refused_deliveries_store_nothing(
    client: FlaskClient, db: Database, case: str, kwargs: dict[str, Any], status: int
) -> None:
    before = counts(db)
    response = deliver(client, order(), **kwargs)
    assert response.status_code == status, case
    assert "error" in response.get_json()
    assert counts(db) == before


def test_a_tampered_body_is_refused(client: FlaskClient, db: Database) -> None:
    raw = encode(order())
    sent = headers(raw)
    before = counts(db)
    response = post_webhook(client, "woocommerce", raw.replace(b"100.00", b"900.00"), sent)
    assert response.status_code == 401
    assert counts(db) == before


def test_the_source_is_normalized(client: FlaskClient, db: Database) -> None:
    accepted(client, order(), changes={"X-WC-Webhook-Source": "HTTPS://Shop.Example.COM/"})
    assert len(stored(db)) == 1


def test_the_creation_ping_gets_200_and_changes_nothing(client: FlaskClient, db: Database) -> None:
    before = counts(db)
    response = post_webhook(
        client,
        "woocommerce",
        b"webhook_id=142",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "WooCommerce/9.0.0 Hookshot (WordPress/6.5)",
        },
    )
    assert response.status_code == 200
    assert counts(db) == before


@pytest.mark.parametrize(
    ("body", "extra"),
    [
        (b"webhook_id=142", {"X-WC-Webhook-Topic": "order.updated"}),  # looks like a ping, claims a topic
        (b"webhook_id=142&x=1", {}),
        (b'{"id": 723}', {}),
        (b"webhook_id=", {}),
    ],
)
def test_anything_else_unsigned_is_refused(
    client: FlaskClient, db: Database, body: bytes, extra: dict[str, str]
) -> None:
    before = counts(db)
    response = post_webhook(client, "woocommerce", body, extra)
    assert response.status_code == 401
    assert counts(db) == before


# --- deduplication --------------------------------------------------------------------------------


def test_the_same_delivery_twice_is_one(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    first = accepted(client, order(), delivery_id="abc")
    second = accepted(client, order(), delivery_id="abc")
    assert (first.get_json()["status"], second.get_json()["status"]) == ("accepted", "duplicate")
    assert len(stored(db)) == 1
    assert moves(runner) == [("earn", 100)]


def test_two_deliveries_in_one_second_share_an_id_and_both_count(
    client: FlaskClient, runner: FlaskCliRunner, db: Database
) -> None:
    # WooCommerce's delivery id is wp_hash(webhook id . current second): the same for both.
    accepted(client, order(), delivery_id="same-second")
    accepted(client, order(status="cancelled", minutes=1), delivery_id="same-second")
    assert [d.status for d in stored(db)] == ["processed", "processed"]
    assert moves(runner) == [("earn", 100), ("revert", -100)]


# --- the scenarios --------------------------------------------------------------------------------


def test_partial_then_full_refund_reverts_each_share_once(client: FlaskClient, runner: FlaskCliRunner) -> None:
    accepted(client, order(), "order.created")
    accepted(client, order(refunds=((801, "-20.00"),), minutes=1))
    assert moves(runner) == [("earn", 100), ("revert", -20)]
    full = order(status="refunded", refunds=((801, "-20.00"), (802, "-80.00")), minutes=2)
    accepted(client, full)
    accepted(client, full)  # WooCommerce sent it twice (two hooks in one request)
    assert moves(runner) == [("earn", 100), ("revert", -20), ("revert", -80)]
    assert balance(runner) == 0


def test_cancel_after_a_partial_refund_takes_back_only_what_is_left(
    client: FlaskClient, runner: FlaskCliRunner
) -> None:
    accepted(client, order(), "order.created")
    accepted(client, order(refunds=((801, "-30.00"),), minutes=1))
    accepted(client, order(status="cancelled", refunds=((801, "-30.00"),), minutes=2))
    assert moves(runner) == [("earn", 100), ("revert", -30), ("revert", -70)]


def test_coalesced_refunds_in_one_delivery(client: FlaskClient, runner: FlaskCliRunner) -> None:
    accepted(client, order(), "order.created")
    # Built at delivery time: one order.updated already carries both new refunds.
    accepted(client, order(refunds=((801, "-10.00"), (802, "-15.00")), minutes=2))
    # The delivery for the first refund, sent earlier but arriving later, changes nothing.
    accepted(client, order(refunds=((801, "-10.00"),), minutes=1))
    assert moves(runner) == [("earn", 100), ("revert", -25)]


def test_a_late_order_created_already_refunded(client: FlaskClient, runner: FlaskCliRunner) -> None:
    accepted(client, order(), "order.updated")
    accepted(client, order(status="refunded", refunds=((801, "-100.00"),), minutes=3), "order.created")
    assert moves(runner) == [("earn", 100), ("revert", -100)]


def test_an_order_first_seen_refunded_never_earns(client: FlaskClient, runner: FlaskCliRunner) -> None:
    accepted(client, order(status="refunded", refunds=((801, "-100.00"),)), "order.created")
    assert moves(runner) == []


def test_trash_reverts_and_restore_gives_back(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    accepted(client, order(), "order.created")
    accepted(client, {"id": 723}, "order.deleted")
    assert moves(runner) == [("earn", 100), ("revert", -100)]
    # Restoring is a newer fact than the trash: the coins come back, once.
    restored = order(minutes=60 * 24 * 365 * 5)
    accepted(client, restored, "order.restored")
    accepted(client, restored, "order.restored")
    assert moves(runner) == [("earn", 100), ("revert", -100), ("earn", 100)]
    assert [d.status for d in stored(db)] == ["processed"] * 4


def test_trash_mapped_to_nothing_keeps_the_coins(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    configure(runner, "woocommerce.status_map=trash=unknown")
    accepted(client, order(), "order.created")
    accepted(client, {"id": 723}, "order.deleted")
    assert moves(runner) == [("earn", 100)]
    assert stored(db)[-1].status == "ignored"


def test_a_trash_of_an_order_never_seen_waits_for_reconciliation(client: FlaskClient, db: Database) -> None:
    accepted(client, {"id": 999}, "order.deleted")
    assert stored(db)[-1].status == "ignored"


def test_guest_orders_earn_nothing(client: FlaskClient, runner: FlaskCliRunner, db: Database) -> None:
    accepted(client, order(customer_id=0), "order.created")
    accepted(client, order(customer_id=0, status="cancelled", minutes=1))
    assert moves(runner) == []
    with db.session() as session:
        assert session.exec(select(func.count()).select_from(Customer)).one() == 0


def test_a_custom_status_is_unknown_until_mapped(client: FlaskClient, runner: FlaskCliRunner) -> None:
    accepted(client, order(order_id=801, status="awaiting-shipment"), "order.created")
    assert moves(runner, "801") == []
    configure(runner, "woocommerce.status_map=awaiting-shipment=paid,fraud-review=cancelled")
    accepted(client, order(order_id=801, status="awaiting-shipment", minutes=1))
    accepted(client, order(order_id=801, status="fraud-review", minutes=2))
    assert moves(runner, "801") == [("earn", 100), ("revert", -100)]


def test_a_custom_status_is_a_tag_by_its_slug(client: FlaskClient, runner: FlaskCliRunner) -> None:
    configure(runner, "revert.tags=chargeback")
    accepted(client, order(), "order.created")
    accepted(client, order(status="chargeback", minutes=1))
    assert moves(runner) == [("earn", 100), ("revert", -100)]


def test_tags_from_meta_keys_and_coupons(client: FlaskClient, runner: FlaskCliRunner) -> None:
    configure(runner, "revert.tags=Fraud,STAFF50", "woocommerce.tag_meta_keys=_order_tags")
    accepted(client, order(order_id=1), "order.created")
    accepted(client, order(order_id=1, meta=(("_order_tags", "vip, fraud "),), minutes=1))
    assert moves(runner, "1") == [("earn", 100), ("revert", -100)]
    accepted(client, order(order_id=2, coupons=("staff50",)), "order.created")
    assert moves(runner, "2") == [("earn", 100)]  # coupon codes are tags only when the shop says so
    configure(runner, "woocommerce.coupon_tags=true")
    accepted(client, order(order_id=2, coupons=("staff50",), minutes=1))
    assert moves(runner, "2") == [("earn", 100), ("revert", -100)]


def test_every_reversal_intends_an_order_note(client: FlaskClient, db: Database) -> None:
    accepted(client, order(), "order.created")
    accepted(client, order(status="cancelled", minutes=1))
    with db.session() as session:
        notes = session.exec(select(Writeback).where(Writeback.kind == "order_note")).all()
    assert [n.payload["order_id"] for n in notes] == ["723"]
    assert "Order #723 was cancelled; 100 coins earned on it were reverted" in notes[0].payload["note"]


@pytest.mark.parametrize(
    "payload",
    [
        {"id": 723},  # order.updated with the body of a deletion
        order() | {"total": "-5.00"},
        order() | {"total": "lots"},
        order() | {"status": None},
        order() | {"customer_id": "guest"},
        order() | {"refunds": [{"total": "-1.00"}]},
        order() | {"date_modified_gmt": "yesterday"},
        [1, 2, 3],
    ],
)
def test_malformed_orders_are_accepted_and_failed_never_retried(
    client: FlaskClient, runner: FlaskCliRunner, db: Database, payload: Any
) -> None:
    # WooCommerce disables a webhook after repeated failed answers: a payload we cannot read is
    # still a 200, kept as a failed delivery for the operator.
    accepted(client, payload)
    assert [d.status for d in stored(db)] == ["failed"]
    assert moves(runner) == []
