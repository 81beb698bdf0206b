"""Hostile input at GET /auth/shopify/install and /auth/shopify/callback: hostile, repeated and
mis-signed queries, and callbacks each lacking something only Shopify and this browser's install can
supply. Nothing is written, nothing reaches Shopify, and no redirect goes anywhere but the shop."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from tests.hostile.strategies import HOSTILE_SHOPS, QUERY_KEYS, QUERY_VALUES, first_values, sweep_settings
from tests.hostile.world import (
    BASE_URL,
    MARKS,
    OTHER,
    SHOP,
    STRANGER,
    TRIED,
    World,
    fingerprint,
    has_nul,
    shop_of,
)
from tests.platforms.shopify import query_hmac

pytestmark = MARKS


@st.composite
def install_queries(draw: st.DrawFn) -> tuple[list[tuple[str, str]], bool]:
    """An install query and whether it carries a genuine signature over what the app will read."""
    now = str(int(time.time()))
    params = {
        "shop": draw(st.sampled_from([SHOP, STRANGER]) | HOSTILE_SHOPS | QUERY_VALUES),
        "timestamp": now,
        "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvY2xhd2JhY2stdGVzdA",
    }
    for key in draw(st.lists(QUERY_KEYS, max_size=3)):
        params[key] = draw(QUERY_VALUES)
    if draw(st.booleans()):
        params["timestamp"] = draw(
            st.sampled_from(
                [now, "0", str(int(time.time()) + 3600), "", "1e9", "9" * 5000, " " + now, now + ".0", "-" + now]
            )
        )
    params.pop("hmac", None)
    genuine = draw(st.booleans())
    params["hmac"] = (
        query_hmac(params)
        if genuine
        else draw(
            st.sampled_from(["", "0" * 64])
            | QUERY_VALUES
            | st.binary(min_size=32, max_size=32).map(bytes.hex)
            | st.just(query_hmac(params, "wrong-secret"))
        )
    )
    pairs = list(params.items())
    if draw(st.booleans()):  # repeated keys, after (ignored by to_dict) or before (read instead)
        for _ in range(draw(st.integers(1, 3))):
            pair = (draw(QUERY_KEYS), draw(QUERY_VALUES))
            pairs = [*pairs, pair] if draw(st.booleans()) else [pair, *pairs]
    return pairs, genuine and first_values(pairs) == params


def test_install_queries(world: World) -> None:
    world.seed()

    @sweep_settings(200)
    @given(query=install_queries())
    def sweep(query: tuple[list[tuple[str, str]], bool]) -> None:
        pairs, genuine = query
        seen = first_values(pairs)
        before = fingerprint(world.db)
        TRIED["GET /auth/shopify/install"] += 1
        shop = shop_of(seen.get("shop"))
        response = world.get("/auth/shopify/install", pairs, client=world.app.test_client())
        world.check_answer(response, "install")
        assert response.status_code in (302, 400), response.get_data(as_text=True)
        if response.status_code == 302:
            assert genuine and shop is not None, "an install query without a genuine signature was accepted"
            location = urlsplit(response.headers["Location"])
            assert (location.scheme, location.hostname, location.path) == ("https", shop, "/admin/oauth/authorize")
            assert parse_qs(location.query)["redirect_uri"] == [f"{BASE_URL}/auth/shopify/callback"]
        elif shop is None and not has_nul(pairs):
            assert "shop" in response.get_json()["error"]
        assert fingerprint(world.db) == before
        world.check_logs_and_network("install")

    sweep()


CALLBACK_BREAKAGES = (
    "forged hmac",
    "wrong state",
    "no install in this browser",
    "other shop",
    "no code",
    "stale timestamp",
    "future timestamp",
    "replayed in another browser",
    "state for another shop",
)


@st.composite
def callbacks(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    breakage = draw(st.sampled_from(CALLBACK_BREAKAGES))
    shop = draw(st.sampled_from([STRANGER, "fresh-install.myshopify.com"]))
    params = {
        "code": draw(st.sampled_from(["0907a61c0c8d55e99db179b68161bc00"]) | QUERY_VALUES.filter(bool)),
        "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvY2xhd2JhY2stdGVzdA",
        "shop": shop,
        "state": "{state}",
        "timestamp": str(int(time.time())),
    }
    for key in draw(
        st.lists(st.sampled_from(["embedded", "locale", "session", "redirect_uri", "id_token"]), max_size=2)
    ):
        params[key] = draw(QUERY_VALUES)
    if breakage == "other shop":
        params["shop"] = draw(st.sampled_from([OTHER, SHOP, "x.myshopify.com"]))
    elif breakage == "no code":
        params["code"] = draw(st.sampled_from(["", None]))  # type: ignore[arg-type]
        if params["code"] is None:
            del params["code"]
    elif breakage == "stale timestamp":
        params["timestamp"] = str(int(time.time()) - 2 * 86400)
    elif breakage == "future timestamp":
        params["timestamp"] = str(int(time.time()) + 3600)
    elif breakage == "wrong state":
        params["state"] = draw(QUERY_VALUES)
    pairs = list(params.items())
    if draw(st.booleans()):  # a repeated key, appended: to_dict() keeps the first value
        pairs.append((draw(st.sampled_from(sorted(params))), draw(QUERY_VALUES)))
    return breakage, pairs


def test_callback_queries(world: World) -> None:
    """Every callback here lacks something only Shopify and this browser's install can supply."""
    world.seed()

    @sweep_settings(150)
    @given(case=callbacks())
    def sweep(case: tuple[str, list[tuple[str, str]]]) -> None:
        breakage, pairs = case
        browser = world.app.test_client()
        state = ""
        if breakage not in ("no install in this browser", "replayed in another browser"):
            install = {
                "shop": STRANGER if breakage == "other shop" else first_values(pairs)["shop"],
                "timestamp": str(int(time.time())),
            }
            if breakage == "state for another shop":
                install["shop"] = "someone-else.myshopify.com"
            install["hmac"] = query_hmac(install)
            started = world.get("/auth/shopify/install", install, client=browser)
            assert started.status_code == 302, started.get_data(as_text=True)
            state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
        params = [(k, state if v == "{state}" else v) for k, v in pairs if k != "hmac"]
        params.append(("hmac", "0" * 64 if breakage == "forged hmac" else query_hmac(first_values(params))))
        before = fingerprint(world.db)
        TRIED["GET /auth/shopify/callback"] += 1
        response = world.get("/auth/shopify/callback", params, client=browser)
        world.check_answer(response, f"callback ({breakage})")
        assert 400 <= response.status_code < 500, f"{breakage}: {response.status_code} {response.get_data()[:200]!r}"
        assert "Location" not in response.headers
        if breakage == "replayed in another browser":  # the same query once more, in yet another browser
            TRIED["GET /auth/shopify/callback"] += 1
            again = world.get("/auth/shopify/callback", params, client=world.app.test_client())
            world.check_answer(again, "callback replay")
            assert again.status_code == (400 if has_nul(params) else 403)
        assert fingerprint(world.db) == before
        world.check_logs_and_network(f"callback ({breakage})")

    sweep()
