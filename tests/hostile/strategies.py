"""What the hostile-input sweep generates: hostile text, numbers, timestamps, shop names and
bodies (hypothesis strategies), forged signatures, header values as a WSGI server passes them on,
hostile queries, and the hypothesis settings every sweep runs under."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.conftest import SHOPIFY_API_SECRET
from tests.hostile.payloads import (
    BASES,
    CANNED_ORDER,
    CUSTOMER_POOL,
    FOCUS,
    ORDER_POOL,
    Raw,
    has_path,
    mutate,
    order_body,
    paths_of,
    to_json,
)
from tests.hostile.world import OTHER, SHOP
from tests.platforms.shopify import sign

SCALE = float(os.environ.get("CLAWBACK_HOSTILE_SCALE", "1"))  # more (or fewer) examples per sweep


def sweep_settings(examples: int) -> settings:
    """Hypothesis settings for a sweep that reuses one app and database (function-scoped fixtures)."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# --- generated hostility -----------------------------------------------------------------------

# fmt: off
SPECIAL_CHARS = ["\x00", "\u200f", "\u202e", "\u2066", "\u2028", "\ufeff", "\ud800", "\udfff", "\udc80", "\uffff",
                 "\x85", "é", "𝔘", "\t", "\n", '"', "\\", "'", "\u0301"]
FRAGMENTS = ["<script>alert(1)</script>", "%00", "../", "${jndi:x}", "{{7*7}}", "ΩΩΩ", "\u202eevil", "' OR 1=1 --"]
CHARS = st.characters(exclude_categories=()) | st.sampled_from(SPECIAL_CHARS)  # surrogates included
TEXT = st.text(CHARS, max_size=30) | st.lists(CHARS | st.sampled_from(FRAGMENTS), max_size=8).map("".join)
LONG_TEXT = st.builds(lambda unit, n: unit * n, st.sampled_from(["x", "é", "\u202e", "\x00", "9", "\ud800", "🙂"]),
                      st.integers(65, 20_000))
NUMERIC_STRINGS = st.one_of(
    st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "-0",
                     "0", "-1", "-0.01", "-99999999.99", "0.001", "1" + "0" * 49, "9" * 50, "0." + "0" * 48 + "1",
                     "1,000.00", "١٢٣", "0x10", "1_000", " 12 ", "", "12abc", "1e18", "9223372036854775808", "1E+4000",
                     "1e-4000", "10.00 USD", "+5", ".5", "5.", "1e", "--1",
                     # str.isdigit() is true for these, and int() refuses them (issue #18)
                     "²", "¹²³", "①", "⁴²", "1²"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**60), 10**60).map(str),
)
RAW_NUMBERS = st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "-0", "1" + "0" * 49,
                               "-" + "9" * 50, "1.5e308", "123456789012345678901234567890.123", "9223372036854775808",
                               "0.0000000000000000000000001", "1" * 4400]).map(Raw)
TIMESTAMPS = st.sampled_from(["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2026-02-30T00:00:00Z", "", "Z",
                              "2026-11-01T12:00:00.000000000Z", "2026-11-01", "yesterday", "2026-11-01T25:00:00Z",
                              "+275760-09-13T00:00:00Z", "2026-11-01T12:00:00\u202eZ", "2026-W44-7", "1762000000",
                              "2026-11-01T12:00:00+99:00", "2026-11-01 12:00:00"])
HOSTILE_SHOPS = st.sampled_from([
    "[", "x.myshopify.com]", "a\uff0fb", "evil\uff03.myshopify.com", "evil.com", "../", "../../etc/passwd",
    "x.myshopify.com@evil.com", "javascript:alert(1)", "x.myshopify.com.evil.com", "https://x.myshopify.com",
    "X.MYSHOPIFY.COM", "ab", "", " ", "x.myshopify.com/", "x.myshopify.com:443", "x.myshopify.com#evil.com",
    "evil.com?.myshopify.com", "evil.com\\.myshopify.com", "-x.myshopify.com", "x..myshopify.com",
    "\u202ex.myshopify.com", "x" * 300 + ".myshopify.com", "xn--80ak6aa92e.myshopify.com",
    "x.myshopify.com\x00.evil.com", "myshopify.com", ".myshopify.com", "x.myshopify.co", "x.myshopify.com.",
    "data:text/html,<script>alert(1)</script>", "x.myshopify.com evil.com", "*.myshopify.com", SHOP, OTHER,
])
TAGS = st.builds(lambda tag, n: ", ".join(f"{tag}{i}" for i in range(n)), st.text(CHARS, max_size=40),
                 st.integers(0, 3000))  # thousands of tags, long tags
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**40), 10**40), st.floats(), RAW_NUMBERS,
                 NUMERIC_STRINGS, TEXT, LONG_TEXT, TIMESTAMPS, HOSTILE_SHOPS,
                 st.sampled_from(CUSTOMER_POOL + ORDER_POOL), TAGS)
VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                     max_leaves=8)
RAW_BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"null", b"[]", b"[1,2,3]", b"42", b'"order"', b"true", b"{", b'{"id": 1', b'{"id": 1}}',
                     b'{"id":1,"id":null}', b"\xef\xbb\xbf{}", b'{"id": 1}\x00', b"{'id': 1}", b'{"id": NaN}',
                     b'{"id": 1e400}', b"\xff\xfe{\x00}\x00", b'{"customer": {"id": "\\ud800"}}', b"\x00" * 64,
                     b'{"a":"\xed\xa0\x80"}', b'{"id": 1, "customer": {"id": 1}, "\\u0000": 1}']),
    st.integers(10, 400).map(lambda n: b"[" * n + b"]" * n),  # deep, within the parser's recursion limit
    st.integers(2_000, 100_000).map(lambda n: b"[" * n + b"]" * n),  # beyond it: RecursionError (issue #18)
    VALUE.map(lambda v: to_json(v).encode()),
)
IDS = st.one_of(st.sampled_from(ORDER_POOL + CUSTOMER_POOL), st.integers(-(10**30), 10**30), TEXT, LONG_TEXT,
                RAW_NUMBERS, st.sampled_from(["", " ", "0", "-1", "null", "1e400", "../1001", "1001\x00", "\ud800"]))
AMOUNTS = st.one_of(NUMERIC_STRINGS, RAW_NUMBERS, st.integers(-(10**30), 10**30), st.floats())
# fmt: on


def value_for(path: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """Hostile values, weighted towards what the field at `path` is read as."""
    name = str(path[-1]) if path else ""
    if name in ("id", "order_id") or name.endswith("_id"):
        return IDS | VALUE
    if "amount" in name or "price" in name:
        return AMOUNTS | VALUE
    if name.endswith("_at"):
        return TIMESTAMPS | VALUE
    if "tags" in name:
        return TAGS | VALUE
    if name in ("email", "name", "code", "currency", "status", "financial_status", "shipment_status"):
        return TEXT | LONG_TEXT | VALUE
    return VALUE


@st.composite
def signed_body(draw: st.DrawFn, topic: str) -> bytes:
    """A body for `topic`: a realistic payload with 1-4 hostile mutations, or raw garbage."""
    if draw(st.integers(0, 9)) == 0:
        return draw(RAW_BODIES)
    order, customer = draw(st.sampled_from(ORDER_POOL)), draw(st.sampled_from(CUSTOMER_POOL))
    if topic.startswith("orders/") and topic != "orders/edited":
        if draw(st.integers(0, 3)):  # mostly the compact order; sometimes Shopify's full canned one
            status = draw(st.sampled_from(["paid", "pending", "refunded", "voided", "partially_refunded", "weird"]))
            body: Any = order_body(order, customer, status)
        else:
            body = copy.deepcopy(CANNED_ORDER) | {"id": order, "financial_status": "paid", "cancelled_at": None}
        focus = FOCUS["order"]
    else:
        body = BASES.get(topic, lambda o, c: order_body(o, c))(order, customer)
        focus = FOCUS.get(topic, [])
    return mutated(draw, body, focus)


def mutated(draw: st.DrawFn, body: Any, focus: Sequence[tuple[Any, ...]] = ()) -> bytes:
    """`body` with 1-4 hostile mutations (at a `focus` path three times in four, where one is
    present), as JSON bytes."""
    for _ in range(draw(st.integers(1, 4))):
        present = [p for p in focus if has_path(body, p)]
        if present and draw(st.integers(0, 3)):
            path = draw(st.sampled_from(present))
        else:
            path = draw(st.sampled_from(list(paths_of(body))))
        op = draw(st.sampled_from(["set", "set", "set", "set", "delete", "wrap"]))
        if op == "delete" and not path:
            op = "wrap"
        body = mutate(body, path, op, draw(value_for(path)) if op == "set" else None)
        if not isinstance(body, dict | list):
            break
    return to_json(body, ascii_only=draw(st.booleans())).encode("utf-8")


ANY_BODY = st.one_of(signed_body("orders/paid"), RAW_BODIES)


def as_header_value(value: str) -> str:
    """`value` as a WSGI server would pass it on: UTF-8 bytes read as latin-1, control characters gone."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", "", value.encode("utf-8", "replace").decode("latin-1"))


def latin1_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """A header value as a WSGI server hands it over: latin-1, no control characters (gunicorn
    refuses NUL, CR, LF and the other C0 controls in header values)."""
    alphabet = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    return st.text(alphabet, max_size=max_size)


def forged_signatures(body: bytes) -> st.SearchStrategy[str]:
    """Signatures that are not the body's: random base64 and hex, empty, the right HMAC in hex or
    truncated, HMACs of a different body or under another secret, two values joined, non-ASCII."""
    real = sign(body)
    digest = hmac.new(SHOPIFY_API_SECRET.encode(), body, hashlib.sha256)
    flipped = real[:-3] + ("A" if real[-3] != "A" else "B") + real[-2:]
    # fmt: off
    fixed = ["", " ", "=", digest.hexdigest(), digest.hexdigest().upper(), flipped, sign(body + b"\n"),
             sign(b" " + body), sign(body, "not-the-app-secret"), sign(body, ""), sign(body, SHOPIFY_API_SECRET + " "),
             sign(b""), base64.b64encode(digest.digest()[:16]).decode(), real + "A", real[:-1], f"sha256={real}",
             f"{flipped}, {real}", f"{flipped},{real}", "é" * 44, "\xa0" + flipped, real.swapcase(),
             base64.b64encode(hmac.new(SHOPIFY_API_SECRET.encode(), body, hashlib.sha1).digest()).decode()]
    # fmt: on
    return st.one_of(
        st.sampled_from([value for value in fixed if value != real]),
        st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode()),
        st.binary(min_size=0, max_size=64).map(lambda b: b.hex()),
        latin1_text(),
    ).filter(lambda value: value.strip() != real)


# --- queries ------------------------------------------------------------------------------------


def first_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """What `request.args.to_dict()` sees: the first value of each key."""
    seen: dict[str, str] = {}
    for key, value in pairs:
        seen.setdefault(key, value)
    return seen


QUERY_VALUES = st.one_of(
    TEXT.filter(lambda s: not re.search(r"[\ud800-\udfff]", s)),
    LONG_TEXT.map(lambda s: s[:2000]).filter(lambda s: "\ud800" not in s),
    NUMERIC_STRINGS,
    HOSTILE_SHOPS,
    st.sampled_from(["1", "0", "-1", "1e400", "٣", "²", "¹²³", "①"]),
)
# fmt: off
QUERY_KEYS = st.sampled_from(["shop", "hmac", "timestamp", "host", "state", "code", "embedded", "session", "locale",
                              "redirect_uri", "hmac[]", "shop[]", "id_token", "shopify-reload", "Shop", "shop "])
# fmt: on
