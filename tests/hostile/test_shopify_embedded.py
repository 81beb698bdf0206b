"""Hostile input at the embedded app's doors: GET /auth/shopify/patch-id-token (hostile ?shop= and
reload paths: the page is framed only by the shop that was checked) and GET /app with forged, stale
and misdirected session tokens (a bounce to our own page or a 401, never a write)."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlsplit

import jwt
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import SHOPIFY_API_KEY, SHOPIFY_API_SECRET, TEST_ENCRYPTION_KEY
from tests.hostile.strategies import (
    HOSTILE_SHOPS,
    QUERY_KEYS,
    QUERY_VALUES,
    TEXT,
    as_header_value,
    first_values,
    sweep_settings,
)
from tests.hostile.world import (
    MARKS,
    OTHER,
    SHOP,
    STRANGER,
    TRIED,
    World,
    csp_sources,
    fingerprint,
    has_nul,
    shop_of,
)
from tests.platforms.shopify import b64, claims_for

pytestmark = MARKS


# --- GET /auth/shopify/patch-id-token ----------------------------------------------------------


def test_patch_id_token_queries(world: World) -> None:
    world.seed()
    shops = st.one_of(HOSTILE_SHOPS, QUERY_VALUES, st.sampled_from([SHOP, OTHER, "ab", "AB.MYSHOPIFY.COM"]))

    @sweep_settings(200)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        pairs = [("shop", data.draw(shops, label="shop"))]
        if data.draw(st.integers(0, 3)):
            pairs.append(
                (
                    "shopify-reload",
                    data.draw(
                        st.sampled_from(
                            ["/app", "/app?shop=" + SHOP, "https://evil.com", "javascript:alert(1)", "//evil.com", ""]
                        )
                        | QUERY_VALUES,
                        label="reload",
                    ),
                )
            )
        for _ in range(data.draw(st.integers(0, 2))):
            pair = (data.draw(QUERY_KEYS), data.draw(QUERY_VALUES))
            pairs = [*pairs, pair] if data.draw(st.booleans()) else [pair, *pairs]
        shop = first_values(pairs).get("shop")
        canonical = shop_of(shop)
        before = fingerprint(world.db)
        TRIED["GET /auth/shopify/patch-id-token"] += 1
        response = world.get("/auth/shopify/patch-id-token", pairs)
        world.check_answer(response, "patch-id-token")
        assert response.status_code in ((200, 400) if canonical else (400,)), response.get_data(as_text=True)
        if response.status_code == 200:  # framed only by the shop that was checked, however ?shop= was spelled
            assert csp_sources(response) == [f"https://{canonical}", "https://admin.shopify.com"]
        assert fingerprint(world.db) == before
        world.check_logs_and_network("patch-id-token")

    sweep()


# --- GET /app: session tokens ------------------------------------------------------------------


@st.composite
def session_tokens(draw: st.DrawFn) -> tuple[str, str, str | None]:
    """(kind, token, the shop a valid token is for)."""
    # fmt: off
    kind = draw(st.sampled_from(["random", "segments", "alg none", "HS512", "wrong key", "expired", "not yet valid",
                                 "wrong aud", "two shops", "hostile dest", "tampered", "empty", "RS256 header",
                                 "no signature", "valid", "valid", "valid other shop"]))
    # fmt: on
    now = int(time.time())
    if kind == "random":
        return kind, draw(QUERY_VALUES | st.text(st.sampled_from("abcXYZ0129-_.="), max_size=300)), None
    if kind == "segments":
        parts = draw(st.lists(st.binary(max_size=80).map(b64), min_size=2, max_size=5))
        return kind, ".".join(parts), None
    if kind == "alg none":
        header = b64(b'{"alg":"none","typ":"JWT"}')
        return kind, f"{header}.{b64(json.dumps(claims_for(SHOP)).encode())}.", None
    if kind == "HS512":
        return kind, jwt.encode(claims_for(SHOP), SHOPIFY_API_SECRET, algorithm="HS512"), None
    if kind == "wrong key":
        key = draw(st.sampled_from(["wrong", SHOPIFY_API_KEY, SHOPIFY_API_SECRET + "x", "x", TEST_ENCRYPTION_KEY]))
        return kind, jwt.encode(claims_for(SHOP), key, algorithm="HS256"), None
    if kind == "expired":
        return kind, jwt.encode(claims_for(SHOP, exp=now - 60), SHOPIFY_API_SECRET, algorithm="HS256"), None
    if kind == "not yet valid":
        return kind, jwt.encode(claims_for(SHOP, nbf=now + 600), SHOPIFY_API_SECRET, algorithm="HS256"), None
    if kind == "wrong aud":
        aud = draw(
            st.sampled_from(["", "other-app", SHOPIFY_API_KEY.upper()]) | TEXT.filter(lambda s: s != SHOPIFY_API_KEY)
        )
        return kind, jwt.encode(claims_for(SHOP, aud=aud), SHOPIFY_API_SECRET, algorithm="HS256"), None
    if kind == "two shops":
        claims = claims_for(SHOP, iss=f"https://{draw(st.sampled_from([OTHER, STRANGER]))}/admin")
        if draw(st.booleans()):
            claims["dest"], claims["iss"] = claims["iss"].removesuffix("/admin"), f"https://{SHOP}/admin"
        return kind, jwt.encode(claims, SHOPIFY_API_SECRET, algorithm="HS256"), None
    if kind == "hostile dest":  # signed, so only Shopify could send it; still never a 500 or a write
        # fmt: off
        dest = draw(st.sampled_from(["https://evil.com", "javascript:alert(1)", f"https://{SHOP}@evil.com",
                                     f"https://{SHOP}.evil.com", "https://x.myshopify.com.evil.com", "", "https://",
                                     f"https://{SHOP}/../../evil", "evil.com", f"https://{SHOP}\u202e"]))
        # fmt: on
        claims = claims_for(SHOP, dest=dest, iss=draw(st.sampled_from([dest, f"https://{SHOP}/admin"])))
        return kind, jwt.encode(claims, SHOPIFY_API_SECRET, algorithm="HS256"), None
    if kind == "tampered":
        header, _payload, signature = jwt.encode(claims_for(SHOP), SHOPIFY_API_SECRET, algorithm="HS256").split(".")
        forged = b64(json.dumps(claims_for(OTHER)).encode())
        return kind, f"{header}.{forged}.{signature}", None
    if kind == "empty":
        return kind, "", None
    if kind == "RS256 header":
        header = b64(b'{"alg":"RS256","typ":"JWT"}')
        return kind, f"{header}.{b64(json.dumps(claims_for(SHOP)).encode())}.{b64(b'x' * 256)}", None
    if kind == "no signature":
        token = jwt.encode(claims_for(SHOP), SHOPIFY_API_SECRET, algorithm="HS256")
        return kind, token.rsplit(".", 1)[0] + ".", None
    shop = SHOP if kind == "valid" else OTHER
    return kind, jwt.encode(claims_for(shop), SHOPIFY_API_SECRET, algorithm="HS256"), shop


def test_app_session_tokens(world: World) -> None:
    """GET /app with forged, stale and misdirected session tokens: a bounce (302 to our own
    patch-id-token page) or 401, never a write; valid tokens of installed shops get the page."""
    world.seed()

    @sweep_settings(200)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        kind, token, valid_for = data.draw(session_tokens(), label="token")
        where = data.draw(st.sampled_from(["query", "query", "bearer", "both", "bearer lowercase", "basic"]))
        shop_param = data.draw(st.sampled_from([None, SHOP, OTHER, STRANGER]) | HOSTILE_SHOPS, label="?shop")
        query: list[tuple[str, str]] = [("embedded", "1"), ("host", "YWRtaW4uc2hvcGlmeS5jb20")]
        headers: dict[str, str] = {}
        if shop_param is not None:
            query.append(("shop", shop_param))
        if where in ("query", "both"):
            query.append(("id_token", token))
        if where in ("bearer", "both"):
            headers["Authorization"] = f"Bearer {token}"
        elif where == "bearer lowercase":
            headers["Authorization"] = f"bearer {token}"
        elif where == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(f"x:{token}".encode("utf-8", "replace")).decode()
        for _ in range(data.draw(st.integers(0, 2))):
            query.insert(data.draw(st.integers(0, len(query))), (data.draw(QUERY_KEYS), data.draw(QUERY_VALUES)))
        headers = {k: as_header_value(v) for k, v in headers.items()}
        before = fingerprint(world.db)
        TRIED["GET /app"] += 1
        response = world.get("/app", query, headers)
        world.check_answer(response, f"/app ({kind}, {where})")
        status = response.status_code
        assert status in ((400,) if has_nul(query) else (200, 302, 401)), response.get_data(as_text=True)
        seen = first_values(query)
        if status == 200:
            assert valid_for is not None, f"{kind} token accepted"
            assert not seen.get("shop") or shop_of(seen["shop"]) == valid_for  # an empty ?shop= is no shop
        if status == 302:
            location = urlsplit(response.headers["Location"])
            ours = ("https", "clawback.example", "/auth/shopify/patch-id-token")  # never an open redirect
            assert (location.scheme, location.netloc, location.path) == ours
        assert fingerprint(world.db) == before
        world.check_logs_and_network(f"/app ({kind})")

    sweep()
