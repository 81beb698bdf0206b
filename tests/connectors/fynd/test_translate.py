"""Fynd's shipment events → the canonical snapshot, and the connector's own checks: one test per row
of translate.py's status table, the amount and identity paths, the signature, the envelope.

Every event is a copy of the canned one (`tests/fixtures/fynd/shipment_update.json`) with the few
fields a case needs changed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

import connectors
from app.config import Settings
from app.domain.events import Ignored, OrderChanged
from app.domain.snapshot import OrderSnapshot, Refund, Status
from app.errors import MalformedDelivery
from app.models import Shop
from connectors.fynd import DEFAULT_SETTINGS, FyndConnector, default_settings, event_topic, shop_domain, translate
from tests.platforms.fynd import (
    APPLICATION,
    CANNED,
    COMPANY,
    CUSTOMER,
    EMAIL,
    PING,
    SECRET,
    SHOP,
    T0,
    compact,
    shipment_event,
    sign,
)

FYND = FyndConnector()
UPDATE = "application/shipment/update/v1"


def snapshot(body: dict[str, Any], currency: str = "INR") -> OrderSnapshot:
    return translate.shipment_snapshot(body, SHOP, currency)


def shop() -> Shop:
    return Shop(platform="fynd", domain=SHOP, currency="INR")


# --- the status table, row by row ---------------------------------------------------------------

ROWS: dict[str, tuple[set[Status], bool]] = {
    "placed": (set(), False),
    "bag_confirmed": (set(), False),
    "dp_assigned": (set(), False),
    "bag_picked": ({Status.FULFILLED}, False),
    "out_for_delivery": ({Status.FULFILLED}, False),
    "delivery_done": ({Status.PAID, Status.DELIVERED, Status.FULFILLED}, False),
    "handed_over_to_customer": ({Status.PAID, Status.DELIVERED, Status.FULFILLED}, False),
    "cancelled_fynd": ({Status.CANCELLED}, True),
    "cancelled_customer": ({Status.CANCELLED}, True),
    "bag_not_confirmed": ({Status.CANCELLED}, True),
    "return_initiated": (set(), False),
    "return_accepted": ({Status.RETURNED, Status.DELIVERED, Status.FULFILLED}, True),
    "return_bag_in_transit": ({Status.RETURNED, Status.DELIVERED, Status.FULFILLED}, True),
    "return_bag_delivered": ({Status.RETURNED, Status.DELIVERED, Status.FULFILLED}, True),
    "refund_initiated": ({Status.REFUNDED, Status.PAID}, True),
    "refund_approved": ({Status.REFUNDED, Status.PAID}, True),
    "rto_initiated": ({Status.CANCELLED}, True),
    "rto_bag_delivered": ({Status.CANCELLED}, True),
    "rto_bag_accepted": ({Status.CANCELLED}, True),
    "some_new_status": ({Status.UNKNOWN}, False),
    "": ({Status.UNKNOWN}, False),
}


@pytest.mark.parametrize(("status", "expected"), ROWS.items(), ids=[k or "empty" for k in ROWS])
def test_status_table(status: str, expected: tuple[set[Status], bool]) -> None:
    statuses, refunded = expected
    snap = snapshot(shipment_event(status, amount="420.50"))
    assert snap.statuses == frozenset(statuses)
    assert snap.refunds == (frozenset({Refund("shipment:17061704638381968555", Decimal("420.50"))}) if refunded
                            else frozenset())  # fmt: skip
    assert snap.total == Decimal("420.50")


def test_the_issue_mapping_is_the_table() -> None:
    expected = {
        "delivery_done": Status.DELIVERED,
        "cancelled_fynd": Status.CANCELLED,
        "cancelled_customer": Status.CANCELLED,
        "bag_not_confirmed": Status.CANCELLED,
        "return_accepted": Status.RETURNED,
        "return_bag_in_transit": Status.RETURNED,
        "return_bag_delivered": Status.RETURNED,
        "refund_initiated": Status.REFUNDED,
        "refund_approved": Status.REFUNDED,
    }
    for slug, status in expected.items():
        assert status in translate.SHIPMENT_STATUS[slug].statuses, slug


def test_status_is_read_case_insensitively_and_current_status_first() -> None:
    body = shipment_event("bag_confirmed")
    body["payload"]["shipment"]["shipment_status"]["current_shipment_status"] = " Delivery_Done "
    assert snapshot(body).has(Status.DELIVERED)


def test_status_falls_back_to_the_shipment_status_field() -> None:
    body = shipment_event("delivery_done")
    del body["payload"]["shipment"]["shipment_status"]
    assert snapshot(body).has(Status.DELIVERED)


def test_rto_is_a_cancellation_tagged_rto() -> None:
    snap = snapshot(shipment_event("rto_bag_delivered"))
    assert snap.tags == frozenset({"rto"})
    assert not snap.has(Status.DELIVERED)  # never "returned": that would say it was delivered


# --- one shipment, one snapshot -----------------------------------------------------------------


def test_the_canned_event() -> None:
    snap = snapshot(json.loads(json.dumps(CANNED)))
    assert snap == OrderSnapshot(
        platform="fynd",
        shop=SHOP,
        order_id="17061704638381968555",
        order_name="FY65B2185E0EAE7612ED shipment 17061704638381968555",
        updated_at=T0,
        total=Decimal("500.0"),
        currency="INR",
        customer_id=CUSTOMER,
        customer_email=EMAIL,
        statuses=frozenset({Status.PAID, Status.DELIVERED}),
    )
    assert snap.label == "FY65B2185E0EAE7612ED shipment 17061704638381968555"


def test_updated_at_is_the_event_time_in_milliseconds() -> None:
    body = shipment_event(at=0)
    body["event"]["created_timestamp"] += 1234
    assert snapshot(body).updated_at == T0 + timedelta(milliseconds=1234)


def test_updated_at_falls_back_to_the_shipment_status_time() -> None:
    body = shipment_event(at=7)
    del body["event"]["created_timestamp"]
    assert snapshot(body).updated_at == T0 + timedelta(minutes=7)


def test_amount_falls_back_to_the_bags() -> None:
    body = shipment_event(amount="300.00")
    del body["payload"]["shipment"]["prices"]
    second = json.loads(json.dumps(body["payload"]["shipment"]["bags"][0]))
    second["prices"]["amount_paid"] = "199.99"
    body["payload"]["shipment"]["bags"].append(second)
    assert snapshot(body).total == Decimal("499.99")


@pytest.mark.parametrize("amount", [None, "", "abc", "-5", True, "NaN"])
def test_a_shipment_without_a_usable_amount_is_malformed(amount: Any) -> None:
    body = shipment_event()
    body["payload"]["shipment"]["prices"]["amount_paid"] = amount
    body["payload"]["shipment"]["bags"][0]["prices"]["amount_paid"] = amount
    with pytest.raises(translate.TranslationError):
        snapshot(body)


def test_guest_shipment_has_no_customer() -> None:
    snap = snapshot(shipment_event(customer=None))
    assert (snap.customer_id, snap.customer_email) == (None, None)


def test_customer_id_falls_back_through_the_user_keys() -> None:
    body = shipment_event()
    body["payload"]["shipment"]["user"] = {"uid": 4242, "email": "x@example.com"}
    assert snapshot(body).customer_id == "4242"


def test_currency_comes_from_the_payload_else_the_shop() -> None:
    assert snapshot(shipment_event(), currency="USD").currency == "INR"
    body = shipment_event()
    del body["payload"]["shipment"]["currency"]
    assert snapshot(body, currency="AED").currency == "AED"
    body["payload"]["shipment"]["currency"] = "sar"
    assert snapshot(body).currency == "SAR"


def test_coupon_codes_of_the_bags_are_the_discount_codes() -> None:
    assert snapshot(shipment_event(codes=["claw-50"])).discount_codes == frozenset({"CLAW-50"})
    assert snapshot(shipment_event()).discount_codes == frozenset()


def test_company_webhook_shape_shipment_id_at_payload_root() -> None:
    """The company-level reference puts `shipment_id` beside `shipment` and names the order
    `fynd_order_id`."""
    body = shipment_event()
    shipment = body["payload"]["shipment"]
    del shipment["shipment_id"], shipment["order_id"]
    shipment["fynd_order_id"] = "FY1"
    body["payload"]["shipment_id"] = "99"
    snap = snapshot(body)
    assert (snap.order_id, snap.label) == ("99", "FY1 shipment 99")


def test_shipment_id_wins_over_an_internal_id() -> None:
    body = shipment_event(shipment_id="123")
    body["payload"]["shipment"]["id"] = 7
    assert snapshot(body).order_id == "123"
    del body["payload"]["shipment"]["shipment_id"]
    assert snapshot(body).order_id == "7"


@pytest.mark.parametrize("change", ["no payload", "no shipment", "no shipment id", "long shipment id"])
def test_not_a_shipment_is_malformed(change: str) -> None:
    body = shipment_event()
    if change == "no payload":
        del body["payload"]
    elif change == "no shipment":
        body["payload"] = {"order": {}}
    elif change == "no shipment id":
        del body["payload"]["shipment"]["shipment_id"]
    else:
        body["payload"]["shipment"]["shipment_id"] = "9" * 65
    with pytest.raises(translate.TranslationError):
        snapshot(body)


# --- the connector: secrets, signature, envelope, topics ----------------------------------------


def test_registered_by_name() -> None:
    assert connectors.get("fynd") is FyndConnector
    assert FYND.shop_in_body and FYND.test_topics == frozenset({"ping"})


def test_secrets_are_the_shops_own_newest_first() -> None:
    settings = Settings(env="test")
    assert FYND.secrets(settings, {"api_secret": "new", "old_api_secret": "old"}) == ["new", "old"]
    assert FYND.secrets(settings, {"api_secret": "new", "old_api_secret": ""}) == ["new"]
    assert FYND.secrets(settings, {}) == []


def test_shop_hint_is_none_whatever_the_headers() -> None:
    assert FYND.shop_hint({"x-fp-signature": "ab", "x-company-id": "1", "X-Application-Id": "a"}) is None


RAW = compact(shipment_event())


@pytest.mark.parametrize(
    ("signature", "secrets", "ok"),
    [
        (sign(RAW), [SECRET], True),
        (sign(RAW).upper(), [SECRET], True),
        (f" {sign(RAW)} ", [SECRET], True),
        (sign(RAW), ["newer", SECRET], True),
        (sign(RAW), ["other"], False),
        (sign(RAW), [], False),
        (sign(RAW), [""], False),
        (sign(RAW + b" "), [SECRET], False),
        ("", [SECRET], False),
        ("é" * 64, [SECRET], False),
        (sign(RAW)[:-1], [SECRET], False),
    ],
    ids=["exact", "upper", "spaces", "second secret", "wrong secret", "no secret", "empty secret", "other body",
         "empty", "non-ascii", "truncated"],
)  # fmt: skip
def test_verify(signature: str, secrets: list[str], ok: bool) -> None:
    assert FYND.verify(RAW, {"X-Fp-Signature": signature}, secrets) is ok


def test_verify_without_the_header() -> None:
    assert FYND.verify(RAW, {}, [SECRET]) is False


def test_identify_reads_the_envelope() -> None:
    body = shipment_event(event_id="evt-1")
    delivery = FYND.identify(compact(body), {})
    assert (delivery.shop, delivery.delivery_id, delivery.topic) == (SHOP, "evt-1", UPDATE)


def test_identify_takes_the_header_event_id_when_the_body_has_none() -> None:
    body = shipment_event()
    del body["event"]["id"]
    assert FYND.identify(compact(body), {"x-fp-event-id": "hdr-1"}).delivery_id == "hdr-1"


@pytest.mark.parametrize(
    ("event", "topic"),
    [
        ({"category": "application", "name": "shipment", "type": "update", "version": "1"}, UPDATE),
        ({"category": "application", "name": "shipment", "type": "data_update", "version": 1},
         "application/shipment/data_update/v1"),
        ({"category": "application", "name": "shipment", "type": "create", "version": "v1"},
         "application/shipment/create/v1"),
        ({"name": "ping"}, "ping"),
    ],
)  # fmt: skip
def test_event_topic(event: dict[str, Any], topic: str) -> None:
    assert event_topic(event) == topic


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.pop("event"), "no event"),
        (lambda b: b["event"].pop("id"), "event.id"),
        (lambda b: b["event"].pop("version"), "version"),
        (lambda b: b.pop("company_id"), "company id"),
        (lambda b: b.update(company_id="12a"), "company id"),
        (lambda b: b.update(company_id=True), "company id"),
        (lambda b: b.pop("application_id"), "application"),
        (lambda b: b.update(application_id="a/b"), "application"),
        (lambda b: b.update(application_id=["a", "b"]), "exactly one"),
    ],
    ids=["no event", "no id", "no version", "no company", "company not digits", "company bool", "no application",
         "application path", "two applications"],
)  # fmt: skip
def test_identify_refuses_an_envelope_without_its_parts(change: Any, message: str) -> None:
    body = shipment_event()
    change(body)
    with pytest.raises(ValueError, match=message):
        FYND.identify(compact(body), {})


@pytest.mark.parametrize("raw", [b"", b"[1]", b'{"event": ', b"\xff"])
def test_identify_refuses_what_is_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(ValueError):
        FYND.identify(raw, {})


def test_identify_accepts_application_id_as_a_one_item_array_and_normalizes_it() -> None:
    body = shipment_event(application=APPLICATION.upper())
    body["application_id"] = [APPLICATION.upper()]
    assert FYND.identify(compact(body), {}).shop == SHOP


def test_identify_a_ping_with_or_without_a_sales_channel() -> None:
    assert FYND.identify(compact(PING), {}).topic == "ping"
    assert FYND.identify(compact(PING), {}).shop == SHOP
    bare = {"event": {"name": "ping"}}
    delivery = FYND.identify(compact(bare), {})
    assert (delivery.shop, delivery.delivery_id, delivery.topic) == ("", "ping", "ping")


def test_shop_domain() -> None:
    assert shop_domain(COMPANY, APPLICATION) == SHOP
    assert shop_domain(" 007 ", "ABC_def-1") == "fynd:7:abc_def-1"
    for company, application in [("", "a"), ("1", ""), ("x", "a"), (1, "a b"), (None, "a"), (1, None), (1, "é")]:
        with pytest.raises(ValueError):
            shop_domain(company, application)


# --- parse ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["application/shipment/create/v1", UPDATE, "application/shipment/data_update/v1"])
def test_shipment_topics_mean_the_shipment_changed(topic: str) -> None:
    (event,) = FYND.parse(topic, compact(shipment_event()), shop())
    assert isinstance(event, OrderChanged)
    assert event.snapshot.order_id == "17061704638381968555"


@pytest.mark.parametrize("topic", ["ping", "application/order/placed/v1", "company/article/update/v1"])
def test_other_topics_are_ignored(topic: str) -> None:
    (event,) = FYND.parse(topic, compact(shipment_event()), shop())
    assert isinstance(event, Ignored)


UNREADABLE = [b"{", b"[]", b"\xff", compact({"event": {}}), compact(shipment_event() | {"payload": 1})]


@pytest.mark.parametrize("raw", UNREADABLE)
def test_unreadable_shipment_event_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedDelivery):
        FYND.parse(UPDATE, raw, shop())


def test_default_settings_follow_the_seed() -> None:
    flat = default_settings().flat()
    assert {key: flat[key] for key in DEFAULT_SETTINGS} == {
        "earn.trigger": "delivered",
        "revert.enabled": True,
        "revert.keep_on_return": True,
        "redeem.refund_statuses": ["cancelled", "returned"],
    }
    # The seed's three statuses are among those that return spent coins; a plain delivery is not.
    for slug in ("return_accepted", "cancelled_fynd", "return_bag_delivered"):
        assert translate.SHIPMENT_STATUS[slug].statuses & {Status(s) for s in flat["redeem.refund_statuses"]}
    assert not translate.SHIPMENT_STATUS["delivery_done"].statuses & {Status.CANCELLED, Status.RETURNED}
