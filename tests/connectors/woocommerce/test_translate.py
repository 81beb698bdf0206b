"""The WooCommerce order → snapshot translation: one case per row of the status table, the shop's
own mapping, and the documentation's example orders as they are."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.domain.shop_settings import ShopSettings, apply_changes
from app.domain.snapshot import Refund, Status
from connectors.woocommerce import store_from_source, translate
from tests.platforms.woocommerce import STORE, fixture, order

PLAIN = ShopSettings().woocommerce


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", {Status.PENDING}),
        ("checkout-draft", {Status.PENDING}),
        ("on-hold", {Status.PENDING}),
        ("processing", {Status.PAID}),
        ("completed", {Status.PAID, Status.FULFILLED, Status.DELIVERED}),
        ("cancelled", {Status.CANCELLED}),
        ("refunded", {Status.REFUNDED, Status.PAID}),
        ("failed", {Status.VOIDED}),
        ("trash", {Status.CANCELLED}),
        ("wc-processing", {Status.PAID}),
        ("awaiting-shipment", {Status.UNKNOWN}),
    ],
)
def test_every_status_has_one_meaning(status: str, expected: set[Status]) -> None:
    snap = translate.order_snapshot(order(status=status), STORE, "USD", PLAIN)
    assert snap.statuses == frozenset(expected)


def test_the_table_covers_every_documented_status() -> None:
    documented = {"pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash",
                  "checkout-draft"}  # fmt: skip
    assert set(translate.STATUS) == documented


def test_the_shop_mapping_comes_first_and_names_custom_statuses() -> None:
    mapped = apply_changes(ShopSettings(), {"woocommerce.status_map": "wc-awaiting-shipment=paid,trash=unknown"})
    assert translate.status_meaning("awaiting-shipment", mapped.woocommerce) == {Status.PAID}
    assert translate.status_meaning("trash", mapped.woocommerce) == {Status.UNKNOWN}
    snap = translate.order_snapshot(order(status="awaiting-shipment"), STORE, "USD", mapped.woocommerce)
    assert "awaiting-shipment" in snap.tags  # a custom status is also a tag


def test_the_documented_order_with_two_partial_refunds() -> None:
    snap = translate.order_snapshot(fixture("wc_v3_order_723_completed_partial_refunds.json"), STORE, "USD", PLAIN)
    assert (snap.order_id, snap.label, snap.customer_id) == ("723", "#723", "26")
    assert snap.total == Decimal("39.00") and snap.net == Decimal("20.00")
    assert snap.refunds == {Refund("726", Decimal("10.00")), Refund("724", Decimal("9.00"))}
    assert snap.customer_email == "joao.silva@example.com"
    assert snap.updated_at.isoformat() == "2017-03-21T19:54:51+00:00"  # date_modified_gmt, in UTC


def test_the_documented_guest_order() -> None:
    snap = translate.order_snapshot(fixture("wc_v3_order_retrieve_727_processing.json"), STORE, "USD", PLAIN)
    assert snap.customer_id is None and snap.statuses == {Status.PAID}


def test_every_order_of_the_documented_list_translates() -> None:
    snaps = [translate.order_snapshot(o, STORE, "USD", PLAIN) for o in fixture("wc_v3_orders_list_727_723.json")]
    assert [s.order_id for s in snaps] == ["727", "723"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://shop.example.com/", "https://shop.example.com"),
        ("HTTPS://SHOP.example.COM", "https://shop.example.com"),
        ("https://example.com/shop/", "https://example.com/shop"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://shop.example.com:443/", "https://shop.example.com"),
        ("not a url", None),
        ("", None),
        (None, None),
        ("https://é.example.com/", None),
    ],
)
def test_the_source_header_names_one_store(raw: str | None, expected: str | None) -> None:
    assert store_from_source(raw) == expected
