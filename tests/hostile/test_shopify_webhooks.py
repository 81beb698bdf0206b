"""Hostile input at POST /webhooks/shopify (and /webhooks/<unknown>): forged signatures, signed
deliveries with hostile headers, and validly signed hostile bodies for every topic, which must be
stored and settle (processed, ignored or failed) without touching the other shop."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from connectors.shopify import COMPLIANCE_TOPICS, TOPICS
from tests.helpers import post_webhook
from tests.hostile.payloads import CUSTOMER_POOL, ORDER_POOL, order_body, to_json
from tests.hostile.strategies import (
    ANY_BODY,
    HOSTILE_SHOPS,
    forged_signatures,
    latin1_text,
    signed_body,
    sweep_settings,
)
from tests.hostile.world import MARKS, OTHER, SHOP, STRANGER, TRIED, World, fingerprint, has_nul, is_platform, shop_of

pytestmark = MARKS


# --- POST /webhooks/<platform> -----------------------------------------------------------------


def expected_for_signed(body: bytes, limit: int) -> int | None:
    """What a validly signed body gets before any header is looked at: 413 over the size limit, or
    None (go on). The signature is checked on the raw bytes alone, whatever they hold."""
    if len(body) > limit:
        return 413
    return None


def test_forged_webhooks_are_refused_and_store_nothing(world: World) -> None:
    world.seed()
    limit = world.app.config["MAX_CONTENT_LENGTH"]

    @sweep_settings(220)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        body = data.draw(ANY_BODY, label="body")
        signature = data.draw(st.none() | forged_signatures(body), label="signature")  # None: header left out
        shop = data.draw(
            st.sampled_from([SHOP, OTHER, STRANGER, None]) | HOSTILE_SHOPS.filter(lambda s: "\x00" not in s)
        )
        topic = data.draw(st.sampled_from([*TOPICS, None, "", "x" * 500]), label="topic")
        webhook_id = data.draw(st.sampled_from(["replay-1", "replay-2", "", " "]) | st.uuids().map(str))
        before = fingerprint(world.db)
        if signature is None:  # no signature header at all
            headers = [
                ("X-Shopify-Topic", topic or ""),
                ("X-Shopify-Shop-Domain", shop or ""),
                ("X-Shopify-Webhook-Id", webhook_id),
                ("Content-Type", "application/json"),
            ]
            response = post_webhook(world.client, "shopify", body, headers)
        else:
            response = world.deliver(topic, body, shop=shop, webhook_id=webhook_id, signature=signature)
        TRIED["POST /webhooks/shopify (forged)"] += 1
        world.check_answer(response, "forged webhook")
        assert response.status_code == (413 if len(body) > limit else 401), response.get_data(as_text=True)
        assert fingerprint(world.db) == before
        world.check_logs_and_network("forged webhook")

    sweep()
    assert world.violations() == []


def test_unknown_platforms_and_methods_are_refused(world: World) -> None:
    world.seed()
    segment = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/?#%"), min_size=1, max_size=40)

    @sweep_settings(100)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        platforms = ["SHOPIFY", "Shopify", "shopify ", "woocommerce", "fynd", "demo", "..", "shopify%00", "%2e%2e"]
        platform = data.draw(st.sampled_from(platforms) | segment, label="platform")
        assume(not is_platform(platform))  # connectors are being added (fynd): ask the registry
        body = data.draw(ANY_BODY, label="body")
        before = fingerprint(world.db)
        TRIED["POST /webhooks/<unknown>"] += 1
        response = world.deliver("orders/paid", body, platform=platform)
        world.check_answer(response, f"/webhooks/{platform}")
        assert response.status_code == (400 if has_nul(unquote(platform)) else 404), response.get_data(as_text=True)
        method = data.draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]), label="method")
        TRIED["POST /webhooks/<unknown>"] += 1
        other = world.client.open("/webhooks/shopify", method=method, data=body)
        world.check_answer(other, f"{method} /webhooks/shopify")
        assert other.status_code == 405
        assert fingerprint(world.db) == before
        world.check_logs_and_network("unknown platform")

    sweep()


def test_signed_webhooks_with_hostile_headers(world: World) -> None:
    """Valid signatures, hostile headers: another shop's domain (installed or not), bad or replayed
    webhook ids, odd topics, non-ASCII extra headers. The oracle follows the documented order:
    identify (400) → shop installed? (404, or 200 for compliance topics) → stored (200)."""
    world.seed()
    limit = world.app.config["MAX_CONTENT_LENGTH"]
    topics = st.one_of(
        st.sampled_from(
            [*TOPICS, " orders/paid ", "ORDERS/PAID", "orders/paid\t", "orders/*", "x" * 100, "x" * 101, "", "   "]
        ),
        latin1_text(120),
    )
    webhook_ids = st.one_of(
        st.sampled_from(["replay-1", "replay-2", "", "   ", "x" * 200, "x" * 201, " padded "]),
        st.uuids().map(str),
        latin1_text(220),
    )
    shops = (
        st.sampled_from([SHOP, SHOP, OTHER, STRANGER, "CLAWBACK-TEST.MYSHOPIFY.COM", " " + SHOP, None]) | HOSTILE_SHOPS
    ).filter(lambda s: s is None or "\x00" not in s)
    names = ["X-Shopify-Event-Id", "X-Evil", "User-Agent", "X-Forwarded-For", "Content-Type", "X-Shopify-API-Version"]
    extra_headers = st.lists(st.tuples(st.sampled_from(names), latin1_text(200)), max_size=4)

    @sweep_settings(200)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        world.ensure_shops()
        topic = data.draw(st.none() | topics, label="topic")
        webhook_id = data.draw(webhook_ids, label="webhook id")
        shop = data.draw(shops, label="shop")
        extra = data.draw(extra_headers, label="extra headers")
        body = to_json(
            order_body(
                data.draw(st.sampled_from(ORDER_POOL)),
                data.draw(st.sampled_from(CUSTOMER_POOL)),
                at=f"2026-11-01T12:{data.draw(st.integers(0, 59)):02d}:00+00:00",
            )
        ).encode()
        domain = shop_of(shop)
        shop_id = world.shop_ids.get(domain or "")
        webhook_id = world.fresh_if_stuck(shop_id, webhook_id)
        installed_other = {d: fingerprint(world.db, i) for d, i in world.shop_ids.items() if i != shop_id}
        before = fingerprint(world.db)
        stripped_id, stripped_topic = webhook_id.strip(), (topic or "").strip()
        if (
            domain is None
            or not stripped_id
            or len(stripped_id) > 200
            or not stripped_topic
            or len(stripped_topic) > 100
        ):
            expected = 400
        elif shop_id is None:
            expected = 200 if stripped_topic in COMPLIANCE_TOPICS else 404
        else:
            expected = 200
        if len(body) > limit:
            expected = 413
        TRIED["POST /webhooks/shopify (signed, hostile headers)"] += 1
        response = world.deliver(topic, body, shop=shop, webhook_id=webhook_id, extra=extra)
        world.check_answer(response, "signed webhook, hostile headers")
        assert response.status_code == expected, response.get_data(as_text=True)
        if expected == 200 and shop_id is not None:
            duplicate = (shop_id, stripped_id) in world.used_ids
            assert response.get_json()["status"] == ("duplicate" if duplicate else "accepted")
            if duplicate:
                assert fingerprint(world.db)["webhook_deliveries"][0] == before["webhook_deliveries"][0]
            world.used_ids.add((shop_id, stripped_id))
            world.check_settled(shop_id, stripped_id, stripped_topic, "signed webhook, hostile headers")
            for other_domain, other_before in installed_other.items():
                assert fingerprint(world.db, world.shop_ids[other_domain]) == other_before, (
                    f"a delivery for {domain} changed {other_domain}'s rows"
                )
        else:
            assert fingerprint(world.db) == before
        assert world.violations() == []
        world.check_logs_and_network("signed webhook, hostile headers")

    sweep()


@pytest.mark.parametrize("topic", [*sorted(TOPICS), "unknown/topic"])
def test_signed_hostile_bodies_settle_for_every_topic(world: World, topic: str) -> None:
    """The crucial sweep: bodies signed with the app secret, so they are stored, with hostile content.
    Each ends processed/ignored/failed, the other shop is untouched, the books balance."""
    world.seed()
    limit = world.app.config["MAX_CONTENT_LENGTH"]

    bodies = signed_body(topic)

    @sweep_settings(50)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        world.ensure_shops()
        body = data.draw(bodies, label="body")
        target = data.draw(st.sampled_from([SHOP, SHOP, SHOP, OTHER]), label="shop")
        webhook_id = data.draw(st.sampled_from(["replay-1", "replay-2"]) | st.uuids().map(str), label="webhook id")
        shop_id = world.shop_ids[target]
        webhook_id = world.fresh_if_stuck(shop_id, webhook_id)
        others = {d: fingerprint(world.db, i) for d, i in world.shop_ids.items() if d != target}
        before = fingerprint(world.db)
        expected = expected_for_signed(body, limit) or 200
        TRIED[f"POST /webhooks/shopify (signed body, {topic})"] += 1
        response = world.deliver(topic, body, shop=target, webhook_id=webhook_id)
        world.check_answer(response, f"signed {topic}")
        assert response.status_code == expected, response.get_data(as_text=True)
        if expected != 200:
            assert fingerprint(world.db) == before
        else:
            duplicate = (shop_id, webhook_id) in world.used_ids
            assert response.get_json()["status"] == ("duplicate" if duplicate else "accepted")
            world.used_ids.add((shop_id, webhook_id))
            if duplicate:
                assert fingerprint(world.db)["webhook_deliveries"][0] == before["webhook_deliveries"][0]
            world.check_settled(shop_id, webhook_id, topic, f"signed {topic}")
            for domain, other_before in others.items():
                assert fingerprint(world.db, world.shop_ids[domain]) == other_before, (
                    f"a {topic} delivery for {target} changed {domain}'s rows"
                )
        assert world.violations() == []
        world.check_logs_and_network(f"signed {topic}")

    sweep()
