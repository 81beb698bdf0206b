"""Regression tests of the bugs the hostile-input sweep (tests/hostile) found, one per letter of its
report (a strict xfail while open: `tests.hostile.world.open_bug`). The `installed` fixture is the
sweep's harness with its two shops (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app import rules
from app.errors import InvalidInput
from app.models import WebhookDelivery
from app.shop_settings import ShopSettings, apply_changes
from tests.factories import snap
from tests.helpers import post_webhook
from tests.hostile.payloads import T, mutate, order_body, refund_body, to_json
from tests.hostile.strategies import as_header_value
from tests.hostile.world import BASE_URL, SHOP, STRANGER, World, csp_sources, fingerprint
from tests.platforms.shopify import HMAC_HEADER, claims_for, hs256, query_hmac
from web.cli import cli

# GET /app decodes session tokens signed with the short test secret.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
AMENDMENT_TOPICS = ("refunds/create", "fulfillment_events/create", "returns/close")
DEEP_BODY = b'{"id": 1, "note": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # bug F


def _settles(world: World, topic: str, body: bytes) -> WebhookDelivery:
    webhook_id = str(uuid.uuid4())
    response = world.deliver(topic, body, webhook_id=webhook_id)
    assert response.status_code == 200, response.get_data(as_text=True)
    row = world.delivery(world.shop_ids[SHOP], webhook_id)
    assert row is not None
    assert row.status in ("processed", "ignored", "failed"), f"left {row.status}: {row.last_error}"
    if row.status == "failed":
        assert row.last_error
    assert world.violations() == []
    return row


def _order_with(**changes: Any) -> bytes:
    body = order_body(4242, 601, at="2026-11-02T12:00:00+00:00")  # an order never seen before
    for dotted, value in changes.items():
        path = tuple(int(p) if p.isdigit() else p for p in dotted.split("__"))
        body = mutate(body, path, "set", value)
    return to_json(body).encode()


DATA_REQUEST_SURROGATE = to_json({"customer": {"id": "\ud800"}, "data_request": {"id": 1}}).encode()
REDACT_SURROGATE = to_json({"customer": {"id": "\ud800"}, "orders_to_redact": ["\udfff"]}).encode()


def amended(topic: str, order_id: str) -> bytes:
    """An amendment (refund, delivery, return) of order `order_id`, otherwise well formed."""
    body = {
        "refunds/create": refund_body(order_id),
        "fulfillment_events/create": {"status": "delivered", "order_id": order_id, "happened_at": T},
        "returns/close": {"status": "closed", "order": {"id": order_id}, "updated_at": T},
    }[topic]
    return to_json(body).encode()


REFUND_1E30 = refund_body() | {
    "refund_line_items": [],
    "transactions": [{"kind": "refund", "status": "success", "amount": "1e30", "currency": "USD"}],
}


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        pytest.param("orders/paid", _order_with(current_total_price_set=None, current_total_price="1" + "0" * 49),
                     id="50-digit total"),
        pytest.param("orders/paid", _order_with(current_total_price_set=None, current_total_price="1e400"),
                     id="total '1e400'"),
        pytest.param("orders/paid", _order_with(current_total_price_set=None, current_total_price=10**20),
                     id="total 10^20"),
        pytest.param("refunds/create", to_json(REFUND_1E30).encode(), id="refund 1e30"),
        pytest.param("orders/paid", _order_with(total_price_set__shop_money__amount="1e30",
                                                total_price_set__presentment_money__amount="1e-30"),
                     id="presentment rate 1e60"),
    ],
)  # fmt: skip
def test_bug_a_huge_amounts_fail_the_delivery(installed: World, topic: str, body: bytes) -> None:
    """A: amounts beyond Decimal's precision or BIGINT (in totals, refunds, or through a presentment
    rate) raised InvalidOperation/OverflowError while processing; the delivery stayed 'received' and
    was retried. It must end 'failed'."""
    installed.seed()
    _settles(installed, topic, body)


@pytest.mark.parametrize("email", [{"a": 1}, ["x@example.com"], 12345], ids=["object", "list", "number"])
def test_bug_b_non_string_customer_email(installed: World, email: Any) -> None:
    """B: an email that was an object or list reached the INSERT (sqlite3 cannot bind it; psycopg
    stored a list as '{x@example.com}')."""
    row = _settles(installed, "orders/paid", _order_with(customer__email=email, customer__id=777))
    with installed.db.session() as session:
        emails = session.exec(text("SELECT email FROM customers WHERE email IS NOT NULL")).all()  # type: ignore[call-overload]
    assert all(isinstance(e, str) and "@" in e and not e.startswith(("{", "[")) for (e,) in emails), (row, emails)


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        pytest.param("orders/paid", _order_with(id="\ud800"), id="order id"),
        pytest.param("orders/paid", _order_with(customer__id="\udfff"), id="customer id"),
        pytest.param("orders/paid", _order_with(name="#\ud800"), id="order name"),
        pytest.param("orders/paid", _order_with(customer__email="\ud800@example.com", customer__id=778), id="email"),
        pytest.param("customers/data_request", DATA_REQUEST_SURROGATE, id="data_request customer"),
        pytest.param("customers/redact", REDACT_SURROGATE, id="redact customer and order"),
    ],
)  # fmt: skip
def test_bug_c_lone_surrogates(installed: World, topic: str, body: bytes) -> None:
    """C: a lone surrogate escaped in JSON cannot be encoded for the database (UnicodeEncodeError)."""
    _settles(installed, topic, body)


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        pytest.param("orders/paid", _order_with(name="N" * 100), id="order name 100"),
        pytest.param("orders/paid", _order_with(customer__email="e" * 400 + "@example.com", customer__id=779),
                     id="email 400"),
        pytest.param("orders/paid", _order_with(id="1001\x00"), id="NUL in order id"),
        *[pytest.param(topic, amended(topic, order_id), id=f"{topic} order id {label}")
          for topic in AMENDMENT_TOPICS
          for order_id, label in (("x" * 100, "100 chars"), ("1001\x00", "NUL"), ("\ud800", "lone surrogate"))],
        pytest.param("customers/data_request",
                     to_json({"customer": {"id": "c" * 100}, "data_request": {"id": 1}}).encode(),
                     id="data_request customer 100"),
    ],
)  # fmt: skip
def test_bug_d_long_or_nul_strings(installed: World, topic: str, body: bytes) -> None:
    """D: NULs, lone surrogates and ids, names, emails longer than their VARCHAR columns reached the
    database (PostgreSQL refuses NUL and over-long values; neither driver can encode a lone surrogate)."""
    installed.seed()  # order 1001 exists, so amendments are looked up and applied
    _settles(installed, topic, body)


def test_bug_e_huge_delay_days_exponent_is_refused_at_once() -> None:
    """E: earn.delay_days='1e100000000' became an int of 10^8 digits before the range check (a hang)."""
    code = (
        "from app.shop_settings import ShopSettings, apply_changes\nfrom app.errors import InvalidInput\n"
        "try:\n    apply_changes(ShopSettings(), {'earn.delay_days': '1e100000000'})\nexcept InvalidInput:\n    pass\n"
    )
    try:
        subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], timeout=20, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("apply_changes did not answer within 20 s")


@pytest.mark.parametrize("signed", [False, True], ids=["forged", "signed"])
def test_bug_f_deeply_nested_json(installed: World, signed: bool) -> None:
    """F: shopifyapp json-parsed the body for its log before checking the HMAC; deep nesting raised
    RecursionError (a 500), signed or not. The HMAC is now checked on the bytes alone: a forged deep
    body is a 401 with nothing stored, a signed one is stored and fails as malformed (never a 500)."""
    before = fingerprint(installed.db)
    webhook_id = str(uuid.uuid4())
    response = installed.deliver("orders/paid", DEEP_BODY, signature=None if signed else "forged",
                                 webhook_id=webhook_id)  # fmt: skip
    installed.check_answer(response, "deep JSON")
    if not signed:
        assert response.status_code == 401
        assert fingerprint(installed.db) == before
        return
    assert response.status_code == 200
    row = installed.delivery(installed.shop_ids[SHOP], webhook_id)
    assert row is not None and row.status == "failed" and row.last_error


@pytest.mark.parametrize(
    "raw_shop",
    ["ab.myshopify.com%0A", "ab.myshopify.com%E2%80%A8", "ab.myshopify.com%0B", "ab", "AB.MYSHOPIFY.COM"],
    ids=["newline: was a 500", "U+2028: not latin-1", "vertical tab", "short name: was https://ab", "upper case"],
)
def test_bug_g_patch_id_token_frames_only_the_checked_shop(installed: World, raw_shop: str) -> None:
    """G: the page checked the sanitized ?shop= but shopifyapp copied the raw value into its CSP."""
    response = installed.get(f"/auth/shopify/patch-id-token?shop={raw_shop}&shopify-reload=/app")
    installed.check_answer(response, "patch-id-token")
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert csp_sources(response) == ["https://ab.myshopify.com", "https://admin.shopify.com"]


def test_bug_h_tiny_coin_value_is_refused() -> None:
    """H: redeem.coin_value='1e-999999999' was accepted (gt=0 only), then every refund of an order
    coins were spent on overflowed in rules.redeem_target."""
    with pytest.raises(InvalidInput):
        apply_changes(ShopSettings(), {"redeem.coin_value": "1e-999999999"})
    smallest = apply_changes(ShopSettings(), {"redeem.coin_value": "0.000001"})
    rules.redeem_target(snap(refunds={"r1": "1.00"}, statuses=("paid",)), 100, smallest.redeem)


@pytest.mark.parametrize(
    "claims", [{"dest": 123}, {"dest": None}, {"iss": ["x"]}, {"exp": "soon"}], ids=["dest 123", "dest null",
                                                                                      "iss list", "exp text"]
)  # fmt: skip
def test_bug_i_signed_session_token_with_non_string_claims(installed: World, claims: dict[str, Any]) -> None:
    """I (needs the app secret): non-string dest/iss made shopifyapp/PyJWT raise inside GET /app."""
    before = fingerprint(installed.db)
    response = installed.get("/app", {"id_token": hs256(claims_for(SHOP) | claims), "shop": SHOP})
    installed.check_answer(response, "/app with non-string claims")
    assert response.status_code in (302, 401)
    assert fingerprint(installed.db) == before


def test_bug_j_install_for_a_shop_label_over_63_characters(installed: World) -> None:
    """J (needs a genuine signature): shop_domain() accepted a 64-character label; the redirect to it
    could not be IDNA-encoded (UnicodeError, a 500)."""
    params = {"shop": "x" * 64 + ".myshopify.com", "timestamp": str(int(time.time()))}
    params["hmac"] = query_hmac(params)
    response = installed.get("/auth/shopify/install", params)
    installed.check_answer(response, "install, 64-character label")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("endpoint", "shop"),
    [("webhook", "["), ("webhook", "x.myshopify.com]")]  # a header: latin-1, so no NFKC look-alikes
    + [(e, shop) for e in ("install", "callback", "patch-id-token") for shop in ("[", "x.myshopify.com]", "a\uff0fb")],
)
def test_bug_k_shop_domain_with_brackets_and_look_alikes(installed: World, endpoint: str, shop: str) -> None:
    """K: shop_domain let urllib's ValueError out ('Invalid IPv6 URL', NFKC look-alikes): a 500 on
    the webhook before the signature was checked, and on install, callback and patch-id-token."""
    before = fingerprint(installed.db)
    if endpoint == "webhook":
        headers = {"X-Shopify-Shop-Domain": as_header_value(shop), HMAC_HEADER: "forged", "X-Shopify-Topic": "x"}
        response = post_webhook(installed.client, "shopify", b"{}", headers)
        expected = 401
    else:
        response = installed.get(f"/auth/shopify/{endpoint}", {"shop": shop, "hmac": "0", "timestamp": "1"})
        expected = 400
    installed.check_answer(response, endpoint)
    assert response.status_code == expected
    assert fingerprint(installed.db) == before


def test_bug_l_callback_with_a_non_ascii_state(installed: World) -> None:
    """L (needs a genuine signature): hmac.compare_digest on str raised TypeError for a non-ASCII state."""
    browser = installed.app.test_client()
    install = {"shop": STRANGER, "timestamp": str(int(time.time()))}
    install["hmac"] = query_hmac(install)
    assert installed.get("/auth/shopify/install", install, client=browser).status_code == 302
    params = {"code": "abc", "shop": STRANGER, "state": "é", "timestamp": str(int(time.time()))}
    params["hmac"] = query_hmac(params)
    response = installed.get("/auth/shopify/callback", params, client=browser)
    installed.check_answer(response, "callback, non-ASCII state")
    assert response.status_code == 403


def test_bug_n_nul_in_a_page_path(installed: World) -> None:
    """N (PostgreSQL): a NUL in /shops/<id>/customers/<id> reached the query (DataError, a 500)."""
    before = fingerprint(installed.db)
    response = installed.client.get(f"/shops/{installed.shop_ids[SHOP]}/customers/%00", base_url=BASE_URL)
    installed.check_answer(response, "customer page, NUL")
    assert response.status_code in (400, 404)
    assert fingerprint(installed.db) == before


def test_bug_o_shop_id_beyond_integer(installed: World) -> None:
    """O (PostgreSQL): Flask's <int:shop_id> accepts 999999999999999; the INTEGER column does not."""
    response = installed.client.get("/shops/999999999999999", base_url=BASE_URL)
    installed.check_answer(response, "shop page, huge id")
    assert response.status_code == 404


@pytest.mark.parametrize("key", ["earn.exclude_tags", "revert.tags", "revert.flag_tag"])
def test_bug_p_long_tag_with_undecodable_bytes(key: str) -> None:
    """P: `clawback settings set --shop S earn.exclude_tags=<41 bytes that are not UTF-8>` exited with a
    traceback (clean_tag echoed the surrogates into its message; pydantic-core could not encode it)."""
    with pytest.raises(InvalidInput):
        apply_changes(ShopSettings(), {key: "\udcff" * 41})


def test_bug_p_cli_refuses_a_long_undecodable_tag(installed: World) -> None:
    before = fingerprint(installed.db)
    args = ["settings", "set", "--shop", SHOP, "revert.flag_tag=" + "\udcff" * 41]
    result = installed.app.test_cli_runner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert "revert.flag_tag" in result.output
    assert fingerprint(installed.db) == before


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("fulfillment_events/create", {"order_id": 1001, "status": "in_\ud800transit\x00"}),
        ("returns/close", {"order": {"id": 1001}, "status": "open\ud800"}),
    ],
)
def test_bug_q_an_ignored_reason_quoting_a_lone_surrogate(installed: World, topic: str, payload: Any) -> None:
    """Q: an ignored delivery's reason quoted the payload's status, lone surrogate included, into
    last_error; the commit could not encode it and the delivery stayed 'received' (found once D was
    closed)."""
    installed.seed()
    row = _settles(installed, topic, to_json(payload).encode())
    assert row.status == "ignored" and row.last_error


@pytest.mark.parametrize(
    "code",
    [pytest.param("C<SCRIPT>\u202eEVIL\ufeff\x00", id="NUL"), pytest.param("SAVE\ud800", id="lone surrogate"),
     pytest.param("S" * 65, id="65 characters")],
)  # fmt: skip
def test_bug_s_a_discount_code_no_redemption_can_have(installed: World, code: str) -> None:
    """S: an order's discount codes went unchecked into the query that links redemptions by code:
    PostgreSQL refused the NUL, neither driver could encode the lone surrogate, and the delivery
    stayed 'received' (found by the sweep on PostgreSQL)."""
    installed.seed()
    row = _settles(installed, "orders/updated", _order_with(discount_codes=[{"code": code, "amount": "1.00"}]))
    assert row.status == "processed"


@pytest.mark.parametrize(
    "currency", [pytest.param("\ud800" * 40, id="lone surrogates"), pytest.param("US\x00D", id="NUL"),
                 pytest.param("U" * 300, id="300 characters")],
)  # fmt: skip
def test_bug_t_an_order_currency_no_database_can_store(installed: World, currency: str) -> None:
    """T: an order's currency was not checked; the earn rule quoted it into the ledger entry's
    explanation, whose INSERT could not encode it, and the delivery stayed 'received' (found by
    the sweep in CI, on SQLite)."""
    installed.seed()
    row = _settles(installed, "orders/paid", _order_with(currency=currency))
    assert row.status == "failed" and row.last_error and row.last_error.startswith("malformed:")


@pytest.mark.parametrize(("key", "value"), [("woocommerce.tag_meta_keys", "\ud800" * 41),
                                            ("woocommerce.status_map", "\udcff=paid")])  # fmt: skip
def test_bug_r_woocommerce_settings_with_undecodable_text(key: str, value: str) -> None:
    """R: a meta key or status slug of lone surrogates was echoed into the refusal, which pydantic
    could not encode (a traceback instead of InvalidInput)."""
    with pytest.raises(InvalidInput):
        apply_changes(ShopSettings(), {key: value})
