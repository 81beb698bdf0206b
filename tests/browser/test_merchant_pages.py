"""The merchant's pages in a real browser (Debian's chromium, headless, through Playwright), on the
app served over HTTP: the issue's scenario step by step, a screenshot of each step.

Features → Orders → Revert Earned Coins: turn it on, choose statuses, add two tags, save, reload
and see them kept; a signed Shopify webhook cancels a rewarded order and the reversal shows in
Activity with its explanation; an invalid tag is refused with its message beside the field and
nothing saved. Then the pages with JavaScript turned off (every form posts as plain HTML), and a
cross-site form without the token refused (the token is the CSRF token).
"""

from __future__ import annotations

import re
import urllib.request
from typing import Any
from urllib.error import HTTPError

import pytest
from flask import Flask
from sqlmodel import select

from app.db import Database
from app.demo import DEMO_DOMAIN, seed
from app.domain.shop_settings import ShopSettings
from app.models import Shop
from tests.browser.conftest import Screens, Tab
from tests.conftest import SHOPIFY_API_SECRET
from tests.factories import Books
from tests.helpers import work
from tests.platforms.shopify import CUSTOMER, SHOP, compact, headers, order_payload
from web.session import mint

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips these tests (or fails them under CLAWBACK_REQUIRE_SERVICES=1)
    expect = None

pytestmark = pytest.mark.browser
EXPLANATION = "Order #1001 was cancelled; 200 coins earned on it were reverted"


def send_webhook(app: Flask, live: str, topic: str, payload: dict[str, Any]) -> int:
    """POST a delivery signed as Shopify signs it, over HTTP, to the running server; then run the
    worker once (`work`), as `deliver` does for the test client."""
    body = compact(payload)
    request = urllib.request.Request(f"{live}/webhooks/shopify", data=body, method="POST",
                                     headers=headers(body, topic, secret=SHOPIFY_API_SECRET, shop=SHOP))  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # our own server, on 127.0.0.1
            status = int(response.status)
    except HTTPError as exc:
        status = exc.code
    work(app)
    return status


def revert_settings(db: Database, shop_id: int) -> Any:
    with db.session() as session:
        row = session.get(Shop, shop_id)
        assert row is not None
        return ShopSettings.from_stored(row.settings).revert


def token_for(app: Flask, shop_id: int) -> str:
    with app.app_context():
        return mint(shop_id, "shopify")


def test_revert_earned_coins_end_to_end(
    app: Flask, db: Database, books: Books, live: str, tab: Tab, screens: Screens
) -> None:
    shop = books.open(SHOP)
    page = tab.page
    assert send_webhook(app, live, "orders/paid", order_payload(at=10)) == 200
    assert shop.balance(CUSTOMER)["available"] == 200

    # Features: the Orders section and its cards
    page.goto(f"{live}/admin/features?t={token_for(app, shop.shop_id)}")
    expect(page.get_by_role("heading", name="Features")).to_be_visible()
    orders = page.locator(".card", has=page.get_by_role("heading", name="Orders"))
    card = orders.locator("a.feature", has_text="Revert Earned Coins")
    expect(card.locator(".badge")).to_have_text("Off")
    screens.shot(page, "features")

    # Orders → Revert Earned Coins, and the toggle
    card.click()
    expect(page.get_by_role("heading", name="Revert Earned Coins")).to_be_visible()
    expect(page.locator("#status")).to_have_text("Off")
    screens.shot(page, "revert-earned-off")
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#status")).to_have_text("On")
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    screens.shot(page, "turned-on")

    # choose statuses, add two tags, save
    page.get_by_label("Partially Refunded", exact=True).uncheck()
    page.get_by_label("Returned", exact=True).check()
    expect(page.get_by_label("Cancelled", exact=True)).to_be_checked()
    page.get_by_label("Add tags (comma-separated)").fill("Chargeback, Fraud Order")
    screens.shot(page, "filled-in")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved. The change is in effect for the next order update.")
    screens.shot(page, "saved")

    # reload: what was saved is what the page shows
    page.reload()
    for label, checked in (("Refunded", True), ("Cancelled", True), ("Partially Refunded", False), ("Returned", True)):
        expect(page.get_by_label(label, exact=True)).to_be_checked(checked=checked)
    expect(page.locator("label.tag")).to_have_text(["Chargeback", "Fraud Order"])
    screens.shot(page, "reloaded")
    stored = revert_settings(db, shop.shop_id)
    assert stored.enabled and stored.statuses == ["refunded", "cancelled", "returned"]
    assert stored.tags == ["Chargeback", "Fraud Order"]
    # and from Features again, the card sums it up
    page.get_by_role("link", name="← Features").click()
    card = page.locator("a.feature", has_text="Revert Earned Coins")
    expect(card.locator(".badge")).to_have_text("On")
    expect(card).to_contain_text("Reverts on Refunded, Cancelled, Returned; tags Chargeback, Fraud Order")
    screens.shot(page, "features-after")

    # an invalid tag: refused beside its field, nothing saved, the input kept to correct
    card.click()
    too_long = "x" * 41
    page.get_by_label("Add tags (comma-separated)").fill(f"Refund Abuse, {too_long}")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#error-revert-tags")).to_contain_text("longer than 40 characters")
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    expect(page.get_by_label("Add tags (comma-separated)")).to_have_value(f"Refund Abuse, {too_long}")
    field = page.locator(".field", has=page.locator("#add_tags"))
    expect(field.locator(".error")).to_have_count(1)  # the message sits in the tag field itself
    screens.shot(page, "invalid-tag")
    assert revert_settings(db, shop.shop_id) == stored

    # a signed webhook cancels the rewarded order: Activity explains the reversal
    cancelled = order_payload(at=20, financial_status="voided", cancelled=True)
    assert send_webhook(app, live, "orders/cancelled", cancelled) == 200
    page.get_by_role("link", name="Activity").click()
    expect(page.get_by_role("heading", name="Activity")).to_be_visible()
    row = page.locator("tbody tr", has_text=EXPLANATION)
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("Reverted")
    expect(row.locator("td.num").first).to_have_text("-200")
    expect(row).to_contain_text("#1001")
    screens.shot(page, "activity")

    # the customer's page tells the same story
    row.get_by_role("link", name=CUSTOMER).click()
    expect(page.locator("#balance")).to_have_text("0")
    expect(page.locator("tbody")).to_contain_text(EXPLANATION)
    screens.shot(page, "customer")
    assert shop.balance(CUSTOMER)["available"] == 0
    assert tab.errors == []
    assert all(url.startswith("https://cdn.shopify.com/") for url in tab.blocked), tab.blocked


def test_the_pages_work_without_javascript(
    app: Flask, db: Database, live: str, tab_without_js: Tab, screens: Screens
) -> None:
    """Every step is a link or a plain HTML form: the development login, a setting saved, an
    Activity filter, a manual adjustment, all with JavaScript off."""
    with db.session() as session:
        seed(session, app.extensions["clawback"].vault)
    page = tab_without_js.page
    page.goto(f"{live}/dev/login")
    expect(page.get_by_role("heading", name="Features")).to_be_visible()
    expect(page.locator("script")).to_have_count(0)  # the demo shop is not a Shopify shop: no App Bridge
    screens.shot(page, "features")

    page.get_by_role("link", name="Delayed Rewards").first.click()
    page.get_by_label(re.compile("days", re.I)).fill("14")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    screens.shot(page, "delayed-saved")

    page.get_by_role("link", name="Activity").click()
    page.get_by_label("Reverted").uncheck()
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"kind="))
    expect(page.locator("tbody")).not_to_contain_text("Reverted")
    expect(page.locator("tbody")).to_contain_text("Order #1005 was cancelled; 120 coins spent on it were returned")
    screens.shot(page, "activity-filtered")

    page.get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="alice", exact=True).click()
    expect(page.locator("#balance")).to_have_text("300")
    page.get_by_label("Coins (negative to remove)").fill("5")
    page.get_by_label(re.compile("Reason")).fill("goodwill for a late parcel")
    page.get_by_role("button", name="Adjust").click()
    expect(page.get_by_role("status")).to_contain_text("Adjustment saved.")
    expect(page.locator("#balance")).to_have_text("305")
    expect(page.locator("tbody")).to_contain_text("5 coins added by hand: goodwill for a late parcel")
    screens.shot(page, "adjusted")
    with db.session() as session:
        demo = session.exec(select(Shop).where(Shop.domain == DEMO_DOMAIN)).one()
    assert ShopSettings.from_stored(demo.settings).earn.delay_days == 14
    assert tab_without_js.errors == [] and tab_without_js.blocked == []


def test_a_cross_site_form_without_the_token_is_refused(
    app: Flask, db: Database, books: Books, live: str, tab: Tab, screens: Screens
) -> None:
    """The pages use no cookie: a form another site posts at ours carries no token and is refused."""
    shop = books.open(SHOP)
    page = tab.page
    page.set_content(f"""<!doctype html><title>elsewhere</title>
        <form method="post" action="{live}/admin/features/revert-earned/status">
          <input type="hidden" name="enabled" value="true"><button>Win a prize</button></form>""")
    screens.shot(page, "elsewhere")
    with page.expect_navigation():
        page.get_by_role("button", name="Win a prize").click()
    expect(page.locator("body")).to_contain_text("Your session has expired or is not valid")
    screens.shot(page, "refused")
    assert revert_settings(db, shop.shop_id).enabled is False
