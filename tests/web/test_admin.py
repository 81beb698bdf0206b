"""The merchant's pages (web/admin/), driven like a browser without JavaScript: follow the links
and submit the forms the pages render, carrying the token they hold.

Features and each feature's settings (PRG, errors beside their field, nothing saved on a refusal),
Activity (explanations, filters, keyset pages, CSV), a customer's page and adjustments, the token
(401 without, forged, expired; it is the CSRF token), one shop never seeing another, CSP on every
response, GET /app opening Features, and the development login.
"""

from __future__ import annotations

import csv
import html
import io
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlmodel import select
from werkzeug.test import TestResponse

from app.config import Settings
from app.db import Database
from app.demo import DEMO_DOMAIN, seed
from app.domain.shop_settings import ShopSettings
from app.errors import ConfigError
from app.models import Customer, LedgerEntry, Shop, utcnow
from tests.factories import Books, snap
from web import create_app
from web.admin import activity as admin_activity
from web.session import mint

SHOP = "test.myshopify.com"
CSP = f"frame-ancestors https://{SHOP} https://admin.shopify.com"
# GET /app's test signs Shopify session tokens with the short test secret.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


# --- a browser without JavaScript ----------------------------------------------------------------


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []
        self._textarea: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"), "inputs": []})
        elif tag in ("input", "textarea") and self.forms:
            field = {"type": a.get("type", "text" if tag == "input" else "textarea"), "name": a.get("name", ""),
                     "value": a.get("value", ""), "checked": "checked" in a}  # fmt: skip
            self.forms[-1]["inputs"].append(field)
            if tag == "textarea":
                self._textarea = field

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea["value"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None


def parse(page: str) -> _Forms:
    parser = _Forms()
    parser.feed(page)
    return parser


def text(response: TestResponse) -> str:
    return html.unescape(response.get_data(as_text=True))


def link_to(page: str, path: str) -> str:
    """The href on `page` that leads to `path` (with its query)."""
    for href in parse(page).links:
        if urlsplit(href).path == path:
            return href
    raise AssertionError(f"no link to {path}")


def submit(client: FlaskClient, page: str, action: str, changes: dict[str, Any] | None = None,
           drop: tuple[str, ...] = ()) -> TestResponse:  # fmt: skip
    """Submit the form posting to `action` as a browser would: hidden and text fields with their
    values, checked boxes and radios; `changes` replaces fields (a list for several values)."""
    forms = [f for f in parse(page).forms if f["action"] == action]
    assert forms, f"no form posting to {action}"
    data: dict[str, list[str]] = {}
    for field in forms[0]["inputs"]:
        if field["type"] in ("checkbox", "radio") and not field["checked"]:
            continue
        if field["type"] == "submit" or not field["name"]:
            continue
        data.setdefault(field["name"], []).append(field["value"])
    for name, value in (changes or {}).items():
        data[name] = value if isinstance(value, list) else [value]
    for name in drop:
        data.pop(name, None)
    return client.post(action, data=data)


def follow(client: FlaskClient, response: TestResponse) -> TestResponse:
    assert response.status_code == 302, text(response)[:500]
    return client.get(response.headers["Location"])


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def shop(books: Books) -> Books:
    return books.open(SHOP)


@pytest.fixture
def sign(app: Flask) -> Callable[..., str]:
    def make(shop_id: int, via: str = "shopify") -> str:
        with app.app_context():
            return mint(shop_id, via)

    return make


@pytest.fixture
def demo(app: Flask, db: Database) -> int:
    with db.session() as session:
        seed(session, app.extensions["clawback"].vault)
    with db.session() as session:
        found = session.exec(select(Shop).where(Shop.domain == DEMO_DOMAIN)).one()
    assert found.id is not None
    return found.id


def settings_of(db: Database, shop_id: int) -> ShopSettings:
    with db.session() as session:
        row = session.get(Shop, shop_id)
        assert row is not None
        return ShopSettings.from_stored(row.settings)


def features(client: FlaskClient, token: str) -> str:
    response = client.get("/admin/features", query_string={"t": token})
    assert response.status_code == 200
    return text(response)


def open_revert_earned(client: FlaskClient, token: str) -> str:
    response = client.get(link_to(features(client, token), "/admin/features/revert-earned"))
    assert response.status_code == 200
    return text(response)


# --- Features ------------------------------------------------------------------------------------


def test_features_lists_the_orders_cards_with_whether_each_is_on(client: FlaskClient, shop: Books, sign: Any) -> None:
    page = features(client, sign(shop.shop_id))
    orders = page[page.index("<h2>Orders</h2>") :]
    for title in ("Revert Earned Coins", "Revert Spent Coins", "Earn on Orders", "Delayed Rewards"):
        assert title in orders
    badges = re.findall(r"<strong>([^<]+)</strong><span class=\"badge \w+\">(On|Off)</span>", page)
    assert dict(badges) == {"Revert Earned Coins": "Off", "Revert Spent Coins": "On", "Earn on Orders": "On",
                            "Delayed Rewards": "Off"}  # fmt: skip
    # the side bar
    for path in ("/admin/features", "/admin/activity", "/admin/customers"):
        assert parse(page).links and link_to(page, path)


def test_every_link_carries_the_token_and_app_bridge_params(client: FlaskClient, shop: Books, sign: Any) -> None:
    token = sign(shop.shop_id)
    response = client.get("/admin/features", query_string={"t": token, "host": "aG9zdA", "shop": SHOP})
    page = text(response)
    for href in parse(page).links:
        query = parse_qs(urlsplit(href).query)
        assert query["t"] and query["host"] == ["aG9zdA"] and query["shop"] == [SHOP], href
    for form in parse(page).forms:
        names = {f["name"] for f in form["inputs"] if f["type"] == "hidden"}
        assert {"t", "host", "shop"} <= names


def test_a_shopify_shop_gets_app_bridge_and_others_do_not(
    client: FlaskClient, shop: Books, demo: int, sign: Any
) -> None:
    page = features(client, sign(shop.shop_id))
    assert '<meta name="shopify-api-key" content="test-api-key">' in page
    assert '<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js"></script>' in page
    other = features(client, sign(demo, "dev"))
    assert "app-bridge" not in other and "shopify-api-key" not in other


# --- Revert Earned Coins -------------------------------------------------------------------------


def test_turn_on_choose_statuses_add_tags_save_and_reload(
    client: FlaskClient, db: Database, shop: Books, sign: Any
) -> None:
    page = open_revert_earned(client, sign(shop.shop_id))
    assert "Revert Settings" not in page  # shown once enabled
    page = text(follow(client, submit(client, page, "/admin/features/revert-earned/status")))
    assert 'id="status">On<' in page and "Revert Settings" in page
    assert "Order status on which to revert the coins" in page and "Order tags on which to revert the coins" in page

    saved = submit(client, page, "/admin/features/revert-earned", {
        "statuses": ["cancelled", "returned"], "add_tags": "chargeback, Fraud Order", "partial": "full",
        "keep_on_return": "true", "shortfall": "floor_and_flag", "flag_tag": "Owes coins",
    })  # fmt: skip
    assert saved.status_code == 302
    location = urlsplit(saved.headers["Location"])
    assert location.path == "/admin/features/revert-earned"
    assert parse_qs(location.query)["saved"] == ["1"] and parse_qs(location.query)["t"]
    page = text(client.get(saved.headers["Location"]))
    assert "Saved. The change is in effect for the next order update." in page

    stored = settings_of(db, shop.shop_id).revert
    assert stored.enabled and stored.statuses == ["cancelled", "returned"]
    assert stored.tags == ["chargeback", "Fraud Order"]
    assert (stored.partial, stored.keep_on_return, stored.flag_tag) == ("full", True, "Owes coins")

    reloaded = text(client.get(link_to(page, "/admin/features/revert-earned")))
    form = next(f for f in parse(reloaded).forms if f["action"] == "/admin/features/revert-earned")
    checked = {(f["name"], f["value"]) for f in form["inputs"] if f["checked"]}
    assert {("statuses", "cancelled"), ("statuses", "returned"), ("partial", "full"), ("keep_on_return", "true"),
            ("shortfall", "floor_and_flag")} == checked  # fmt: skip
    assert [f["value"] for f in form["inputs"] if f["name"] == "remove_tags"] == ["chargeback", "Fraud Order"]
    assert "Saved." not in reloaded


def test_ticked_tags_are_removed_and_others_kept(client: FlaskClient, db: Database, books: Books, sign: Any) -> None:
    shop = books.open(SHOP, revert__enabled="true", revert__tags="a, b, c")
    page = open_revert_earned(client, sign(shop.shop_id))
    follow(client, submit(client, page, "/admin/features/revert-earned", {"remove_tags": ["b"], "add_tags": "d"}))
    assert settings_of(db, shop.shop_id).revert.tags == ["a", "c", "d"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"add_tags": "ok, " + "x" * 41}, "revert-tags", "longer than 40 characters"),
        ({"flag_tag": "Fraud, Chargeback"}, "revert-flag_tag", "cannot contain a comma"),
        ({"statuses": ["cancelled", "exploded"]}, "revert-statuses", "Input should be"),
        ({"partial": "half"}, "revert-partial", "Input should be"),
    ],
    ids=["long tag", "comma in flag tag", "unknown status", "unknown partial"],
)
def test_invalid_input_is_refused_beside_its_field_and_nothing_is_saved(
    client: FlaskClient, db: Database, books: Books, sign: Any, changes: dict[str, Any], field: str, message: str
) -> None:
    shop = books.open(SHOP, revert__enabled="true", revert__tags="keep-me")
    before = settings_of(db, shop.shop_id)
    page = open_revert_earned(client, sign(shop.shop_id))
    response = submit(client, page, "/admin/features/revert-earned", {"shortfall": "negative", **changes})
    assert response.status_code == 400
    refused = text(response)
    error = re.search(rf'<p class="error" id="error-{field}">([^<]*)</p>', refused)
    assert error and message in error.group(1), refused
    assert "Nothing was saved" in refused
    assert settings_of(db, shop.shop_id) == before
    # what the merchant typed is still there to correct
    if "add_tags" in changes:
        assert f'value="{changes["add_tags"]}"' in refused
    assert 'value="negative" checked' in refused


def test_disabling_stops_reversals_and_keeps_the_settings(
    client: FlaskClient, db: Database, books: Books, sign: Any
) -> None:
    shop = books.open(SHOP, revert__enabled="true", revert__statuses="cancelled", revert__tags="chargeback",
                      revert__shortfall="negative")  # fmt: skip
    before = settings_of(db, shop.shop_id)
    page = open_revert_earned(client, sign(shop.shop_id))
    page = text(follow(client, submit(client, page, "/admin/features/revert-earned/status")))
    assert 'id="status">Off<' in page and "Your settings are kept" in page
    after = settings_of(db, shop.shop_id)
    assert not after.revert.enabled
    assert after.revert.model_copy(update={"enabled": True}) == before.revert
    shop.apply(snap("1001", total="100.00"))
    shop.apply(snap("1001", total="100.00", at=5, statuses=("paid", "cancelled")))
    assert shop.balance("c1")["available"] == 100
    assert "Off" in re.findall(r"Revert Earned Coins</strong><span class=\"badge \w+\">(\w+)<", features(
        client, sign(shop.shop_id)))  # fmt: skip


def test_an_order_update_after_saving_follows_the_new_settings(client: FlaskClient, books: Books, sign: Any) -> None:
    shop = books.open(SHOP)
    shop.apply(snap("1001", total="100.00"))
    shop.apply(snap("1002", total="50.00", customer="c2"))
    page = open_revert_earned(client, sign(shop.shop_id))
    page = text(follow(client, submit(client, page, "/admin/features/revert-earned/status")))
    follow(client, submit(client, page, "/admin/features/revert-earned",
                          {"statuses": ["cancelled"], "add_tags": "chargeback"}))  # fmt: skip
    shop.apply(snap("1001", total="100.00", at=5, tags=("Chargeback",)))
    shop.apply(snap("1002", total="50.00", customer="c2", at=5, statuses=("paid", "refunded"),
                    refunds={"r1": "50.00"}))  # fmt: skip
    assert shop.balance("c1")["available"] == 0  # the tag now reverts
    assert shop.balance("c2")["available"] == 50  # refunded is no longer a revert status
    (revert,) = [e for e in shop.entries() if e.kind == "revert"]
    assert revert.explanation.startswith("Order #1001 was tagged 'chargeback'; 100 coins earned on it were reverted")


# --- the other feature cards ---------------------------------------------------------------------


def test_earn_rule_and_trigger_are_saved(client: FlaskClient, db: Database, shop: Books, sign: Any) -> None:
    page = text(client.get(link_to(features(client, sign(shop.shop_id)), "/admin/features/earn")))
    follow(client, submit(client, page, "/admin/features/earn",
                          {"mode": "percent", "rate": "5", "trigger": "fulfilled", "add_tags": "staff"}))  # fmt: skip
    earn = settings_of(db, shop.shop_id).earn
    assert (earn.mode, str(earn.rate), earn.trigger, earn.exclude_tags) == ("percent", "5", "fulfilled", ["staff"])
    refused = submit(client, text(client.get(link_to(page, "/admin/features/earn"))), "/admin/features/earn",
                     {"mode": "percent", "rate": "150"})  # fmt: skip
    assert refused.status_code == 400
    assert "at most 100" in text(refused)
    assert settings_of(db, shop.shop_id).earn == earn


def test_hold_days_turn_delayed_rewards_on(client: FlaskClient, db: Database, shop: Books, sign: Any) -> None:
    page = text(client.get(link_to(features(client, sign(shop.shop_id)), "/admin/features/delayed")))
    assert 'id="status">Off<' in page
    page = text(follow(client, submit(client, page, "/admin/features/delayed", {"delay_days": "14"})))
    assert 'id="status">On<' in page and settings_of(db, shop.shop_id).earn.delay_days == 14
    refused = submit(client, page, "/admin/features/delayed", {"delay_days": "2.5"})
    assert refused.status_code == 400
    assert re.search(r'id="error-earn-delay_days">Must be a whole number of days<', text(refused))
    assert settings_of(db, shop.shop_id).earn.delay_days == 14


def test_redeemed_coin_statuses_are_saved(client: FlaskClient, db: Database, shop: Books, sign: Any) -> None:
    page = text(client.get(link_to(features(client, sign(shop.shop_id)), "/admin/features/revert-spent")))
    follow(client, submit(client, page, "/admin/features/revert-spent", {"refund_statuses": ["cancelled"]}))
    assert settings_of(db, shop.shop_id).redeem.refund_statuses == ["cancelled"]
    page = text(client.get(link_to(page, "/admin/features/revert-spent")))
    follow(client, submit(client, page, "/admin/features/revert-spent", drop=("refund_statuses",)))
    assert settings_of(db, shop.shop_id).redeem.refund_statuses == []
    assert 'id="status">Off<' in text(client.get(link_to(page, "/admin/features/revert-spent")))


# --- Activity ------------------------------------------------------------------------------------


def activity(client: FlaskClient, token: str, **query: Any) -> TestResponse:
    return client.get("/admin/activity", query_string={"t": token, **query})


def test_activity_lists_reversals_with_their_explanation(client: FlaskClient, demo: int, sign: Any) -> None:
    response = activity(client, sign(demo, "dev"))
    assert response.status_code == 200
    page = text(response)
    assert "Order #1001 was cancelled; 200 coins earned on it were reverted" in page
    assert "Order #1005 was cancelled; 120 coins spent on it were returned" in page
    assert "was paid" not in page  # earnings are not activity by default
    row = next(r for r in page.split("<tr>") if "Order #1001 was cancelled" in r)
    assert "#1001" in row and ">alice</a>" in row and "-200" in row


def test_activity_filters_by_kind_and_date(client: FlaskClient, db: Database, demo: int, sign: Any) -> None:
    token = sign(demo, "dev")
    page = text(activity(client, token, kind="redeem_refund"))
    assert "120 coins spent on it were returned" in page and "earned on it were reverted" not in page
    page = text(activity(client, token, kind=["revert", "earn"]))
    assert "earned on it were reverted" in page and "was paid" in page and "spent on it were returned" not in page

    with db.session() as session:  # an older reversal, written as it would have been then
        alice = session.exec(
            select(Customer).where(Customer.shop_id == demo, Customer.platform_customer_id == "alice")
        ).one()
        assert alice.id is not None
        session.add(LedgerEntry(shop_id=demo, customer_id=alice.id, kind="revert", coins_delta=-7,
                                reason="order_cancelled", source="test", idempotency_key="old", order_ref="900",
                                explanation="Order #900 was cancelled; 7 coins earned on it were reverted",
                                created_at=datetime(2025, 1, 10, 12, tzinfo=UTC)))  # fmt: skip
    today = utcnow().date()
    page = text(activity(client, token, **{"from": "2025-01-01", "to": "2025-01-10"}))
    assert "Order #900" in page and "Order #1001" not in page
    page = text(activity(client, token, **{"from": today.isoformat()}))
    assert "Order #900" not in page and "Order #1001" in page
    page = text(activity(client, token, **{"from": (today + timedelta(days=1)).isoformat()}))
    assert "Nothing here yet." in page
    for bad in (
        {"from": "yesterday"},
        {"kind": "nonsense"},
        {"before": "-1"},
        {"from": "2025-02-01", "to": "2025-01-01"},
    ):
        assert activity(client, token, **bad).status_code == 400


def test_activity_pages_with_before_newest_first(
    client: FlaskClient, demo: int, sign: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_activity, "PAGE", 2)
    token = sign(demo, "dev")
    seen: list[str] = []
    response = activity(client, token)
    pages = 0
    while True:
        page = text(response)
        assert "OFFSET" not in page
        rows = re.findall(r"<td>([^<]*)\.</td>\s*</tr>", page)
        assert len(rows) <= 2
        seen += rows
        pages += 1
        older = [h for h in parse(page).links if "before=" in h]
        if not older:
            break
        assert parse_qs(urlsplit(older[-1]).query)["t"]
        response = client.get(older[-1])
    all_at_once = re.findall(r"<td>([^<]*)\.</td>\s*</tr>", text(activity(client, token)))
    assert pages >= 2 and len(seen) == len(set(seen)) >= 4
    assert seen[:2] == all_at_once


def test_activity_keyset_query_walks_the_kind_index(db: Database, demo: int) -> None:
    """Pages never OFFSET: each kind is a backward range scan of ix_ledger_shop_kind_id from `before`."""
    filters = admin_activity.Filters(admin_activity.ACTIVITY_KINDS, None, None, None)
    with db.session() as session:
        everything = admin_activity.activity_entries(session, demo, filters, 1000)
        ids = [e.id or 0 for e in everything]
        assert ids == sorted(ids, reverse=True) and {e.kind for e in everything} <= set(admin_activity.ACTIVITY_KINDS)
        second = admin_activity.activity_entries(
            session, demo, admin_activity.Filters(admin_activity.ACTIVITY_KINDS, None, None, ids[1]), 2
        )
        assert [e.id for e in second] == ids[2:4]
        if db.engine.dialect.name == "sqlite":
            plan = " ".join(str(r) for r in session.connection().exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM ledger_entries WHERE shop_id = ? AND kind = ? AND id < ? "
                "ORDER BY id DESC LIMIT 51", (demo, "revert", 10**9)))  # fmt: skip
            assert "ix_ledger_shop_kind_id" in plan and "TEMP B-TREE" not in plan


def test_activity_csv_has_a_header_and_the_rows(client: FlaskClient, demo: int, sign: Any) -> None:
    token = sign(demo, "dev")
    page = text(activity(client, token, kind="revert"))
    response = client.get(link_to(page, "/admin/activity.csv"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == list(admin_activity.CSV_HEADER)
    assert len(rows) > 1 and {r[2] for r in rows[1:]} == {"revert"}
    cancelled = next(r for r in rows[1:] if r[4] == "1001")
    assert (cancelled[3], cancelled[5], cancelled[6]) == ("#1001", "alice", "-200")
    assert cancelled[10].startswith("Order #1001 was cancelled; 200 coins earned on it were reverted")


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    assert admin_activity._cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert admin_activity._cell("@x") == "'@x" and admin_activity._cell("Order #1") == "Order #1"


# --- Customers -----------------------------------------------------------------------------------


def customer_page(client: FlaskClient, token: str, customer: str) -> TestResponse:
    return client.get(f"/admin/customers/{customer}", query_string={"t": token})


def test_customer_page_shows_balances_and_explained_history(client: FlaskClient, demo: int, sign: Any) -> None:
    token = sign(demo, "dev")
    listing = text(client.get("/admin/customers", query_string={"t": token}))
    page = text(client.get(link_to(listing, "/admin/customers/dave")))
    assert re.search(r'id="balance">0<', page) and re.search(r'id="shortfall" class="neg">200<', page)
    assert "200 coins were spent on code DAVE-200" in page and "a shortfall of 200 was recorded" in page
    erin = text(customer_page(client, token, "erin"))
    assert re.search(r'id="pending">60<', erin) and "Order #1008 was paid; 60 coins are held until" in erin
    assert customer_page(client, token, "nobody").status_code == 404


def test_a_manual_adjustment_needs_a_reason(client: FlaskClient, demo: int, books: Books, sign: Any) -> None:
    token = sign(demo, "dev")
    demo_books = Books(books.db, books.vault, DEMO_DOMAIN, demo)
    before = demo_books.balance("bob")
    page = text(customer_page(client, token, "bob"))
    refused = submit(client, page, "/admin/customers/bob/adjust", {"coins": "50", "reason": "  "})
    assert refused.status_code == 400
    assert re.search(r'id="error-reason">A reason of 3 to 500 characters is required<', text(refused))
    refused = submit(client, page, "/admin/customers/bob/adjust", {"coins": "lots", "reason": "goodwill"})
    assert refused.status_code == 400 and 'id="error-coins"' in text(refused)
    assert 'value="lots"' in text(refused) and ">goodwill</textarea>" in text(refused)
    assert demo_books.balance("bob") == before

    done = follow(client, submit(client, page, "/admin/customers/bob/adjust",
                                 {"coins": "50", "reason": "Goodwill for a late parcel"}))  # fmt: skip
    shown = text(done)
    assert "Adjustment saved." in shown
    assert "50 coins added by hand: Goodwill for a late parcel" in shown
    assert demo_books.balance("bob")["available"] == before["available"] + 50
    (entry,) = [e for e in demo_books.entries() if e.kind == "adjust"]
    assert entry.source == "admin:dev" and entry.idempotency_key.startswith("adjust:")


# --- who may ask ---------------------------------------------------------------------------------


def test_no_token_a_forged_or_an_expired_one_is_401(
    client: FlaskClient, app: Flask, shop: Books, sign: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = sign(shop.shop_id)
    forged = URLSafeTimedSerializer("another-secret", salt="clawback-admin").dumps(
        {"shop_id": shop.shop_id, "via": "dev"}
    )
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: 1_000_000_000.0)
        expired = sign(shop.shop_id)
    for token in (None, "", "garbage", forged, expired, good[:-2] + "xx"):
        query = {"t": token} if token is not None else {}
        for path in ("/admin/features", "/admin/activity", "/admin/activity.csv", "/admin/customers/c1"):
            response = client.get(path, query_string=query)
            assert response.status_code == 401, (path, token)
            assert "open Clawback from your store admin again" in text(response)
    assert client.get("/admin/features", query_string={"t": good}).status_code == 200


def test_a_post_without_a_valid_token_saves_nothing(client: FlaskClient, db: Database, shop: Books, sign: Any) -> None:
    shop.apply(snap("1001"))
    before = settings_of(db, shop.shop_id)
    page = open_revert_earned(client, sign(shop.shop_id))
    forged = URLSafeTimedSerializer("x", salt="clawback-admin").dumps({"shop_id": shop.shop_id, "via": "dev"})
    for token in (None, forged):
        changes = {"t": token} if token else {}
        drop = () if token else ("t",)
        assert submit(client, page, "/admin/features/revert-earned/status", changes, drop).status_code == 401
        customer = submit(client, text(customer_page(client, sign(shop.shop_id), "c1")), "/admin/customers/c1/adjust",
                          {"coins": "5", "reason": "cross-site", **changes}, drop)  # fmt: skip
        assert customer.status_code == 401
    assert settings_of(db, shop.shop_id) == before
    assert shop.balance("c1")["available"] == 100


def test_an_uninstalled_shops_token_is_refused(client: FlaskClient, db: Database, shop: Books, sign: Any) -> None:
    token = sign(shop.shop_id)
    with db.session() as session:
        row = session.get(Shop, shop.shop_id)
        assert row is not None
        row.uninstalled_at = utcnow()
        session.add(row)
    assert client.get("/admin/features", query_string={"t": token}).status_code == 401


def test_one_shop_never_sees_or_changes_another(client: FlaskClient, books: Books, sign: Any) -> None:
    a = books.open(SHOP)
    b = books.open("other.myshopify.com", revert__enabled="true")
    b.apply(snap("2001", total="70.00", customer="bee", shop="other.myshopify.com"))
    b.apply(snap("2001", total="70.00", customer="bee", shop="other.myshopify.com", at=5,
                 statuses=("paid", "cancelled")))  # fmt: skip
    token = sign(a.shop_id)
    seen = customer_page(client, token, "bee")
    assert seen.status_code == 404
    page = text(seen).replace(token, "")  # the page token in its links may hold any two digits
    assert "#2001" not in page and "70" not in page and "other.myshopify.com" not in page
    assert "#2001" not in text(client.get("/admin/activity", query_string={"t": token}))
    assert "No customer matches." in text(client.get("/admin/customers", query_string={"t": token, "q": "bee"}))
    assert "bee" not in text(client.get("/admin/customers", query_string={"t": token}))
    csv_text = text(client.get("/admin/activity.csv", query_string={"t": token}))
    assert "2001" not in csv_text and "bee" not in csv_text
    # the App Bridge `shop` parameter chooses nothing
    assert customer_page(client, token, "bee").status_code == 404
    assert (
        client.get("/admin/customers/bee", query_string={"t": token, "shop": "other.myshopify.com"}).status_code == 404
    )
    response = client.post("/admin/customers/bee/adjust", data={"t": token, "coins": "500", "reason": "mine now"})
    assert response.status_code == 404
    assert b.balance("bee") == {"available": 0, "pending": 0, "shortfall": 0}
    assert [e.kind for e in b.entries()] == ["earn", "revert"]
    # and B's own token does see it
    assert "#2001" in text(customer_page(client, sign(b.shop_id), "bee"))


def test_every_admin_response_may_be_framed_by_its_shop_only(client: FlaskClient, books: Books, sign: Any) -> None:
    shop = books.open(SHOP, revert__enabled="true")
    shop.apply(snap("1001"))
    token = sign(shop.shop_id)
    responses = [client.get(path, query_string={"t": token}) for path in (
        "/admin/features", "/admin/features/revert-earned", "/admin/features/revert-spent", "/admin/features/earn",
        "/admin/features/delayed", "/admin/activity", "/admin/activity.csv", "/admin/customers",
        "/admin/customers/c1", "/admin/customers/nobody",
    )] + [
        client.get("/admin/activity", query_string={"t": token, "from": "nope"}),
        client.post("/admin/features/revert-earned", data={"t": token, "partial": "nope"}),
        client.post("/admin/features/revert-earned/status", data={"t": token, "enabled": "false"}),
        client.post("/admin/customers/c1/adjust", data={"t": token, "coins": "1", "reason": "thanks"}),
    ]  # fmt: skip
    assert {r.status_code for r in responses} == {200, 302, 400, 404}
    for response in responses:
        assert response.headers["Content-Security-Policy"] == CSP, response.request.path
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    other = books.open("elsewhere.myshopify.com")
    elsewhere = client.get("/admin/features", query_string={"t": sign(other.shop_id)})
    assert elsewhere.headers["Content-Security-Policy"] == (
        "frame-ancestors https://elsewhere.myshopify.com https://admin.shopify.com"
    )


# --- GET /app opens on Features ------------------------------------------------------------------


def test_app_opens_on_features_with_a_token_for_the_verified_shop(client: FlaskClient, db: Database) -> None:
    from tests.connectors.shopify import test_session_tokens as st

    server = st.TokenServer()
    with pytest.MonkeyPatch.context() as m:
        from shopify_app.utils import http_client

        original = http_client.HTTPClientContext.__init__
        mock = server.client()

        def init(self: Any, injected_client: Any = None, timeout: float = 30.0) -> None:
            original(self, injected_client or mock, timeout)

        m.setattr(http_client.HTTPClientContext, "__init__", init)
        response = st.load(client, st.session_token())
        mock.close()
    assert response.status_code == 200
    page = text(response)
    assert "<h1>Features</h1>" in page and "Revert Earned Coins" in page
    assert '<meta name="shopify-api-key" content="test-api-key">' in page
    href = link_to(page, "/admin/features/revert-earned")
    query = parse_qs(urlsplit(href).query)
    assert query["host"] == [st.HOST] and query["shop"] == [st.SHOP]
    opened = client.get(href)
    assert opened.status_code == 200 and "Revert Earned Coins" in text(opened)
    with db.session() as session:
        (row,) = session.exec(select(Shop)).all()
    assert row.domain == st.SHOP
    assert opened.headers["Content-Security-Policy"] == f"frame-ancestors https://{st.SHOP} https://admin.shopify.com"


# --- the development login -----------------------------------------------------------------------


def test_dev_login_is_404_unless_enabled(client: FlaskClient, demo: int) -> None:
    assert client.get("/dev/login").status_code == 404


def test_dev_login_opens_the_demo_shops_features(make_app: Callable[..., Flask], demo: int) -> None:
    dev = make_app(dev_login=True).test_client()
    response = dev.get("/dev/login")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/admin/features" and parse_qs(location.query)["t"]
    page = text(dev.get(response.headers["Location"]))
    assert "Clawback is installed on demo.clawback.test" in page


def test_the_index_leads_to_the_merchant_pages_only_when_dev_login_is_on(
    client: FlaskClient, make_app: Callable[..., Flask], demo: int
) -> None:
    assert "/dev/login" not in text(client.get("/"))
    dev = make_app(dev_login=True).test_client()
    index = text(dev.get("/"))
    assert "Open the demo shop's admin pages" in index
    assert dev.get(link_to(index, "/dev/login")).status_code == 302


def test_dev_login_without_a_demo_shop_is_404(make_app: Callable[..., Flask]) -> None:
    assert make_app(dev_login=True).test_client().get("/dev/login").status_code == 404


def test_dev_login_is_refused_in_production(make_app: Callable[..., Flask], settings: Settings, demo: int) -> None:
    production = settings.model_copy(update={
        "env": "production", "dev_login": True, "secret_key": "s" * 40, "encryption_key": "k" * 44,
        "app_url": "https://clawback.example",
    })  # fmt: skip
    with pytest.raises(ConfigError, match="CLAWBACK_DEV_LOGIN"):
        production.check()
    with pytest.raises(ConfigError):
        create_app(production)
    # and were the settings to change under a running app, the route still refuses
    dev = make_app(dev_login=True)
    dev.extensions["clawback"].settings = dev.extensions["clawback"].settings.model_copy(update={"env": "production"})
    assert dev.test_client().get("/dev/login").status_code == 404


@pytest.mark.parametrize("digits", ["²", "¹²³", "١٢", "1_0", "9" * 19])
@pytest.mark.parametrize("path", ["/admin/activity", "/admin/activity.csv", "/admin/customers"])
def test_a_before_that_is_not_ascii_digits_is_400(
    client: FlaskClient, shop: Books, sign: Any, path: str, digits: str
) -> None:
    """Issue #18, class 1: `str.isdigit()` is true for '²', then `int()` raised: `?before=²` was a 500
    on Activity, its CSV and Customers."""
    response = client.get(path, query_string={"t": sign(shop.shop_id), "before": digits})
    assert response.status_code == 400


@pytest.mark.parametrize("coins", ["²", "١٢", "1_000", "--5", "5-"])
def test_an_adjustment_in_digits_that_are_not_ascii_is_refused(
    client: FlaskClient, demo: int, books: Books, sign: Any, coins: str
) -> None:
    token = sign(demo, "dev")
    demo_books = Books(books.db, books.vault, DEMO_DOMAIN, demo)
    before = demo_books.balance("bob")
    page = text(customer_page(client, token, "bob"))
    refused = submit(client, page, "/admin/customers/bob/adjust", {"coins": coins, "reason": "goodwill"})
    assert refused.status_code == 400 and 'id="error-coins"' in text(refused)
    assert demo_books.balance("bob") == before
