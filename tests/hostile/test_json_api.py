"""Hostile input at the JSON API (/api/v1): every kind of token (none, garbage, forged, expired,
revoked, read-only, another shop's, admin) with hostile paths, queries and bodies."""

from __future__ import annotations

from typing import Any
from unittest import mock
from urllib.parse import quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from app.models import Shop
from tests.hostile.payloads import CUSTOMER_POOL, ORDER_POOL, to_json
from tests.hostile.strategies import (
    IDS,
    QUERY_KEYS,
    QUERY_VALUES,
    RAW_BODIES,
    RAW_NUMBERS,
    TEXT,
    VALUE,
    as_header_value,
    latin1_text,
    sweep_settings,
)
from tests.hostile.world import BASE_URL, MARKS, OTHER, SHOP, TRIED, World, fingerprint, has_nul

pytestmark = MARKS

API_CUSTOMERS = st.one_of(
    st.just("501"),  # holds coins in both shops (World.seed)
    st.sampled_from([str(c) for c in CUSTOMER_POOL] + ["nobody", "0", "-1", "x" * 64, "x" * 65, "..", "%2F"]),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/"), min_size=1, max_size=80),
)
API_QUERY_VALUES = st.one_of(QUERY_VALUES, st.integers(-(10**20), 10**20).map(str))
API_FIELDS = st.sampled_from(["coins", "order_id", "code", "idempotency_key", "customer_id", "shop", "coins "])
API_CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "", "application/JSON"]
)


@st.composite
def redeem_bodies(draw: st.DrawFn) -> bytes:
    """A redemption with hostile fields, or any JSON value, or garbage."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(RAW_BODIES)
    if choice == 1:
        return to_json(draw(VALUE)).encode()
    if choice <= 5:  # well formed: spends, replays, or runs out of coins
        fair: dict[str, Any] = {
            "coins": draw(st.integers(1, 40)),
            "idempotency_key": draw(st.sampled_from(["k1", "k2", "k3"]) | st.uuids().map(str)),
        }
        if draw(st.booleans()):
            fair["order_id"] = str(draw(st.sampled_from(ORDER_POOL)))
        if draw(st.booleans()):
            fair["code"] = draw(st.booleans() | st.sampled_from(["HOSTILE10", "SPRING-1", "SPRING-2"]))
        return to_json(fair).encode()
    body: dict[str, Any] = {
        "coins": draw(st.one_of(st.integers(1, 30), st.integers(-(10**30), 10**30), VALUE, RAW_NUMBERS)),
        "idempotency_key": draw(st.sampled_from(["k1", "k2", "k3"]) | TEXT | st.uuids().map(str) | VALUE),
    }
    if draw(st.booleans()):
        body["order_id"] = draw(IDS | VALUE)
    if draw(st.booleans()):
        body["code"] = draw(st.booleans() | TEXT | st.sampled_from(["HOSTILE10", "SPRING-1", "ab"]) | VALUE)
    for _ in range(draw(st.integers(0, 2))):
        body[draw(API_FIELDS | TEXT)] = draw(VALUE)
    for name in draw(st.lists(st.sampled_from(sorted(body)), max_size=2, unique=True)):
        del body[name]
    return to_json(body, ascii_only=draw(st.booleans())).encode("utf-8", "surrogatepass")


def test_json_api(world: World) -> None:
    """/api/v1 with every kind of token (none, garbage, forged, expired, revoked, read-only, another
    shop's, admin) and hostile paths, queries and bodies: never a 500, a refusal writes nothing, a
    success moves only the token's own shop, and nothing reaches another shop's rows."""
    from itsdangerous import URLSafeTimedSerializer

    from app import api_keys
    from web.session import mint

    world.seed()
    with world.db.session() as session:
        shops = {d: session.get(Shop, i) for d, i in world.shop_ids.items()}
        keys = {
            "redeem": api_keys.create(session, shops[SHOP], scope="redeem").key,  # type: ignore[arg-type]
            "read": api_keys.create(session, shops[SHOP], scope="read").key,  # type: ignore[arg-type]
            "other shop": api_keys.create(session, shops[OTHER], scope="redeem").key,  # type: ignore[arg-type]
        }
        revoked = api_keys.create(session, shops[SHOP], scope="redeem")  # type: ignore[arg-type]
        api_keys.revoke(session, shops[SHOP], revoked.row.id)  # type: ignore[arg-type]
    with world.app.app_context():
        admin = mint(world.shop_ids[SHOP], "dev")
        with mock.patch("time.time", lambda: 1_000_000_000.0):
            expired = mint(world.shop_ids[SHOP], "dev")
    tokens = {**keys, "revoked": revoked.key, "admin": admin, "expired": expired,
              "forged": URLSafeTimedSerializer("x", salt="clawback-admin").dumps({"shop_id": world.shop_ids[SHOP]}),
              "unknown key": "cbk_" + "A" * 43}  # fmt: skip
    world.secrets |= {f"the {name} token": token for name, token in tokens.items()}
    owner = {"redeem": SHOP, "read": SHOP, "admin": SHOP, "other shop": OTHER}
    routes = st.sampled_from(["shop", "balance", "history", "redeem", "unknown"])

    @sweep_settings(250)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        # Half the requests are plausible (a real token, the right method and content type) so
        # that hostility in one part reaches deep; the other half are hostile everywhere.
        plausible = data.draw(st.booleans(), label="plausible")
        route = data.draw(st.sampled_from(["redeem", "redeem", "balance", "history"]) if plausible else routes)
        who = data.draw(st.sampled_from(list(owner)) if plausible else st.sampled_from([*tokens, None, "garbage"]))
        scheme = "Bearer" if plausible else data.draw(st.sampled_from(["Bearer", "bearer", "Basic", "Token", ""]))
        customer = data.draw(st.sampled_from(["501", "501", "502", "nobody"]) if plausible else API_CUSTOMERS)
        segment = quote(customer, safe="")
        path = {"shop": "/api/v1/shop", "balance": f"/api/v1/customers/{segment}/balance",
                "history": f"/api/v1/customers/{segment}/history", "redeem": f"/api/v1/customers/{segment}/redeem",
                "unknown": f"/api/v1/{segment}"}[route]  # fmt: skip
        method = "POST" if route == "redeem" else "GET"
        if not plausible and data.draw(st.integers(0, 4)) == 0:
            method = data.draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
        headers: list[tuple[str, str]] = []
        token = tokens.get(who or "", "garbage") if who else None
        if token is not None:
            headers.append(("Authorization", as_header_value(f"{scheme} {token}".strip())))
        content_type = "application/json" if plausible else data.draw(API_CONTENT_TYPES, label="content type")
        if content_type:
            headers.append(("Content-Type", content_type))
        if data.draw(st.integers(0, 4)) == 0:
            headers.append(("Idempotency-Key", data.draw(latin1_text(220), label="Idempotency-Key")))
        query = data.draw(st.lists(st.tuples(st.sampled_from(["limit", "before", "shop", "t"]) | QUERY_KEYS,
                                             API_QUERY_VALUES), max_size=3), label="query")  # fmt: skip
        body = data.draw(redeem_bodies(), label="body") if method in ("POST", "PUT", "PATCH") else b""
        before = fingerprint(world.db)
        others = {d: fingerprint(world.db, i) for d, i in world.shop_ids.items()}
        TRIED[f"{method} /api/v1 ({route})"] += 1
        response = world.client.open(path, method=method, query_string=query, headers=headers, data=body,
                                     base_url=BASE_URL)  # fmt: skip
        world.check_answer(response, f"{method} {path}")
        status = response.status_code
        valid = who in owner and scheme.lower() == "bearer"
        wrong_method = method not in (("POST",) if route == "redeem" else ("GET", "HEAD"))
        if has_nul(unquote(path), query):  # /api/v1/shop carries no customer segment
            assert status == 400
        elif method == "OPTIONS" or (route == "unknown" and customer in ("shop", "customers")):
            pass  # Flask answers OPTIONS itself; /api/v1/shop is a route
        elif route == "unknown":
            assert status in (404, 405), status
        elif wrong_method:
            assert status == 405, status
        elif not valid:
            assert status == 401, response.get_data(as_text=True)
        elif route == "redeem" and who == "read":
            assert status == 403
        if status >= 400 or method in ("GET", "HEAD"):
            assert fingerprint(world.db) == before
        if status < 300 and method != "OPTIONS":
            assert response.mimetype == "application/json" and response.headers["Cache-Control"] == "no-store"
        if status in (200, 201) and method == "POST":
            assert valid and who in ("redeem", "admin", "other shop")
        if status == 201:  # a new redemption: in the token's shop only
            mine = owner[str(who)]
            for domain, other_before in others.items():
                if domain != mine:
                    assert fingerprint(world.db, world.shop_ids[domain]) == other_before, f"{who} changed {domain}"
        assert world.violations() == []
        world.check_logs_and_network(f"{method} {path}")

    sweep()
