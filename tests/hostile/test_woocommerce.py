"""Hostile input at WooCommerce's doors: POST /webhooks/woocommerce (signed and forged, hostile
headers and bodies), the key exchange (/auth/woocommerce/connect, /callback, /return) and the
plugin's /wordpress/launch."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import select

from app.models import InstallToken
from app.shops import register_shop
from connectors.woocommerce import store_from_source
from tests.helpers import post_webhook
from tests.hostile.payloads import to_json
from tests.hostile.strategies import (
    CHARS,
    QUERY_KEYS,
    QUERY_VALUES,
    RAW_BODIES,
    TEXT,
    VALUE,
    as_header_value,
    latin1_text,
    mutated,
    sweep_settings,
)
from tests.hostile.world import MARKS, OUTCOMES, TRIED, World, fingerprint
from tests.platforms.woocommerce import fixture

pytestmark = MARKS

WOO_STORE = "https://hostile-store.example.com"
WOO_SECRET = "wc-hostile-webhook-secret"
WOO_LAUNCH_SECRET = "wc-hostile-launch-secret-0123456789abcdef"
WOO_TOPICS = st.sampled_from(
    [
        "order.created",
        "order.updated",
        "order.deleted",
        "order.restored",
        "order.updated",
        "coupon.created",
        "",
        " ",
        "ORDER.UPDATED",
        "order.é",
    ]
)
WOO_ORDER = fixture("wc_v3_order_723_completed_partial_refunds.json")
WOO_HEADERS = ("X-WC-Webhook-Source", "X-WC-Webhook-Topic", "X-WC-Webhook-Delivery-ID", "X-WC-Webhook-Signature")


def woo_shop(world: World) -> int:
    with world.db.session() as session:
        shop, _ = register_shop(
            session,
            world.vault,
            platform="woocommerce",
            domain=WOO_STORE,
            credentials={"webhook_secret": WOO_SECRET, "launch_secret": WOO_LAUNCH_SECRET},
        )
        assert shop.id is not None
        return shop.id


@st.composite
def woo_bodies(draw: st.DrawFn) -> bytes:
    """The documented order with 1-4 hostile mutations, a deletion's `{"id": …}`, or raw garbage."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(RAW_BODIES)
    if kind == 1:
        return to_json({"id": draw(VALUE | st.integers(-(10**20), 10**20))}).encode()
    body: Any = copy.deepcopy(WOO_ORDER) | {
        "id": draw(st.sampled_from([723, 724, 725])),
        "status": draw(st.sampled_from(["processing", "completed", "cancelled", "refunded", "trash", "x-custom"])),
    }
    return mutated(draw, body)


def test_woocommerce_webhooks(world: World) -> None:
    """Signed or not, well addressed or not, any body: never a 500; a refusal writes nothing; a
    verified delivery is answered 200 and settles (processed, ignored or failed), never 'received'."""
    from connectors.woocommerce import delivery_headers

    world.secrets["the WooCommerce webhook secret"] = WOO_SECRET
    shop_id = woo_shop(world)

    @sweep_settings(250)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        body = data.draw(woo_bodies(), label="body")
        topic = data.draw(WOO_TOPICS, label="topic")
        delivery = data.draw(st.uuids().map(str) | latin1_text(120), label="delivery id")
        secret = data.draw(st.sampled_from([WOO_SECRET, WOO_SECRET, "not-the-secret", ""]), label="secret")
        headers = delivery_headers(body, secret, WOO_STORE, "order.updated", "x")
        headers["X-WC-Webhook-Topic"], headers["X-WC-Webhook-Delivery-ID"] = topic, delivery
        for name in data.draw(st.lists(st.sampled_from(WOO_HEADERS), max_size=2, unique=True), label="changed"):
            if data.draw(st.booleans()):
                headers.pop(name)
            else:
                headers[name] = as_header_value(
                    data.draw(
                        latin1_text(80)
                        | st.sampled_from([WOO_STORE.upper() + "/", WOO_STORE + "//", "https://other.example.com/"]),
                        label=name,
                    )
                )
        headers = {k: as_header_value(v) for k, v in headers.items()}
        before = fingerprint(world.db)
        TRIED["POST /webhooks/woocommerce"] += 1
        response = post_webhook(world.client, "woocommerce", body, headers)
        world.check_answer(response, "POST /webhooks/woocommerce")
        world.check_logs_and_network("POST /webhooks/woocommerce")
        signed = (
            headers.get("X-WC-Webhook-Signature")
            == delivery_headers(body, WOO_SECRET, WOO_STORE, "x", "x")["X-WC-Webhook-Signature"]
            and store_from_source(headers.get("X-WC-Webhook-Source")) == WOO_STORE
        )
        if response.status_code != 200:
            assert response.status_code in (400, 401, 413), response.status_code
            assert fingerprint(world.db) == before
            return
        assert signed or body == b"", "an unverified delivery was accepted"
        if response.get_json().get("status") == "ok":
            assert fingerprint(world.db) == before  # a ping
            return
        sent_id = headers.get("X-WC-Webhook-Delivery-ID", "").strip()
        stored = world.delivery(shop_id, f"{sent_id}:{hashlib.sha256(body).hexdigest()[:16]}")
        assert stored is not None and stored.status in ("processed", "ignored", "failed"), stored
        OUTCOMES[stored.status] += 1
        assert world.violations() == []

    sweep()


def test_woocommerce_connect_callback_and_launch(world: World) -> None:
    """The key exchange's three doors and the plugin's launch, with hostile queries and bodies:
    never a 500, nothing written and nothing sent anywhere unless a live install token is presented
    (none is, here), and a launch opens the pages only with a good signature."""
    world.secrets["the launch secret"] = WOO_LAUNCH_SECRET
    woo_shop(world)

    @sweep_settings(150)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        door = data.draw(st.sampled_from(["connect", "callback", "launch", "return"]), label="door")
        before = fingerprint(world.db)
        with world.db.session() as session:
            tokens = session.exec(select(func.count()).select_from(InstallToken)).one()
        TRIED[f"WooCommerce {door}"] += 1
        if door == "callback":
            body = data.draw(
                RAW_BODIES
                | st.fixed_dictionaries(
                    {
                        "key_id": VALUE,
                        # a token's length with any character in it, lone surrogates too (issue #18)
                        "user_id": VALUE | TEXT | st.text(CHARS, min_size=20, max_size=100),
                        "consumer_key": TEXT | VALUE,
                        "consumer_secret": TEXT | VALUE,
                        "key_permissions": st.sampled_from(["read_write", "read"]) | VALUE,
                    },
                ).map(lambda d: to_json(d).encode()),
                label="body",
            )
            response = world.client.post(
                "/auth/woocommerce/callback", data=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code in (400, 403), response.status_code
        else:
            path = {
                "connect": "/auth/woocommerce/connect",
                "launch": "/wordpress/launch",
                "return": "/auth/woocommerce/return",
            }[door]
            keys = st.sampled_from(["store_url", "store", "user", "ts", "sig", "success"]) | QUERY_KEYS
            query = data.draw(
                st.lists(st.tuples(keys, QUERY_VALUES | st.sampled_from([WOO_STORE, WOO_STORE + "/"])), max_size=5),
                label="query",
            )
            response = world.get(path, query)
            if door == "launch":
                assert response.status_code in (400, 401), response.status_code
        world.check_answer(response, f"WooCommerce {door}")
        world.check_logs_and_network(f"WooCommerce {door}")
        if door != "connect" or response.status_code != 302:
            assert fingerprint(world.db) == before
            with world.db.session() as session:
                assert session.exec(select(func.count()).select_from(InstallToken)).one() == tokens

    sweep()
