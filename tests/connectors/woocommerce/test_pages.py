"""The WooCommerce card on the merchant's pages: shown to WooCommerce shops only; saved all or
nothing; in effect for the next delivery."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner

from app.db import Database
from tests.factories import Books
from tests.platforms.woocommerce import accepted, moves, order
from tests.web.test_admin import follow, link_to, settings_of, submit, text
from tests.web.test_admin import sign as sign

ACTION = "/admin/features/woocommerce"
pytestmark = pytest.mark.usefixtures("store")


def woo_shop_id(books: Books) -> int:
    return books.open("https://shop.example.com", platform="woocommerce").shop_id


def open_card(client: FlaskClient, token: str) -> str:
    page = text(client.get("/admin/features", query_string={"t": token}))
    assert "WooCommerce" in page and "Order Statuses and Tags" in page
    response = client.get(link_to(page, ACTION))
    assert response.status_code == 200
    return text(response)


def test_only_woocommerce_shops_see_the_card(client: FlaskClient, books: Books, sign: Any) -> None:
    shopify = books.open("test.myshopify.com").shop_id
    page = text(client.get("/admin/features", query_string={"t": sign(shopify)}))
    assert "Order Statuses and Tags" not in page
    assert client.get(ACTION, query_string={"t": sign(shopify)}).status_code == 404


def test_a_mapping_saved_on_the_page_applies_to_the_next_delivery(
    client: FlaskClient, runner: FlaskCliRunner, db: Database, books: Books, sign: Any
) -> None:
    shop_id = woo_shop_id(books)
    token = sign(shop_id, "wordpress")
    page = open_card(client, token)
    saved = follow(
        client,
        submit(
            client,
            page,
            ACTION,
            {
                "status_map": "awaiting-shipment = paid\nwc-fraud-review = cancelled",
                "tag_meta_keys": "_order_tags",
                "coupon_tags": "1",
            },
        ),
    )
    assert saved.status_code == 200
    woo = settings_of(db, shop_id).woocommerce
    assert woo.status_map == {"awaiting-shipment": "paid", "fraud-review": "cancelled"}
    assert (woo.tag_meta_keys, woo.coupon_tags) == (["_order_tags"], True)
    accepted(client, order(status="awaiting-shipment"), "order.created")
    accepted(client, order(status="fraud-review", minutes=1))
    assert moves(runner) == [("earn", 100), ("revert", -100)]


def test_an_invalid_mapping_is_refused_beside_its_field_and_nothing_saved(
    client: FlaskClient, db: Database, books: Books, sign: Any
) -> None:
    shop_id = woo_shop_id(books)
    before = settings_of(db, shop_id)
    page = open_card(client, sign(shop_id, "wordpress"))
    response = submit(client, page, ACTION, {"status_map": "awaiting-shipment = shipped", "tag_meta_keys": "a b"})
    assert response.status_code == 400
    body = text(response)
    assert "awaiting-shipment = shipped" in body  # the merchant's input is kept
    assert "'pending', 'paid'" in body
    assert settings_of(db, shop_id) == before
