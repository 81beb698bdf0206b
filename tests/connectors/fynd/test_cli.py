"""`clawback shop add --platform fynd`: a sales channel registered by its company and application ids,
its extension's API secret kept encrypted, and the seed's defaults for a new shop."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlmodel import select

from app.crypto import Vault
from app.db import Database
from app.models import Shop
from app.shops import read_credentials
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.helpers import post_webhook
from tests.platforms.fynd import APPLICATION, COMPANY, CUSTOMER, SECRET, SHOP, compact, shipment_event, sign
from web.cli import cli

ADD = ("shop", "add", "--platform", "fynd", "--company-id", str(COMPANY), "--application-id", APPLICATION,
       "--api-secret", SECRET)  # fmt: skip


def ok(runner: FlaskCliRunner, *args: str) -> dict[str, object]:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.splitlines()[-1])


def test_add_a_fynd_sales_channel(runner: FlaskCliRunner, db: Database) -> None:
    assert ok(runner, *ADD, "--currency", "inr", "--name", "Kurta Co") == {
        "shop": SHOP, "platform": "fynd", "created": True
    }  # fmt: skip
    with db.session() as session:
        shop = session.exec(select(Shop)).one()
        assert (shop.platform, shop.domain, shop.currency, shop.name) == ("fynd", SHOP, "INR", "Kurta Co")
        assert SECRET not in (shop.credentials or "")
        assert read_credentials(Vault(TEST_ENCRYPTION_KEY), shop) == {"api_secret": SECRET}
    settings = ok(runner, "settings", "show", "--shop", SHOP)
    assert (settings["earn.trigger"], settings["revert.enabled"], settings["revert.keep_on_return"],
            settings["redeem.refund_statuses"]) == ("delivered", True, True, ["cancelled", "returned"])  # fmt: skip


def test_re_adding_updates_the_secret_and_keeps_the_merchants_settings(runner: FlaskCliRunner, db: Database) -> None:
    ok(runner, *ADD)
    ok(runner, "settings", "set", "--shop", SHOP, "earn.trigger=paid")
    again = [*ADD[:-1], "new-secret"]
    assert ok(runner, *again)["created"] is False
    assert ok(runner, "settings", "show", "--shop", SHOP)["earn.trigger"] == "paid"
    with db.session() as session:
        shop = session.exec(select(Shop)).one()
        assert read_credentials(Vault(TEST_ENCRYPTION_KEY), shop)["api_secret"] == "new-secret"


def test_ids_are_normalized(runner: FlaskCliRunner) -> None:
    added = ok(runner, "shop", "add", "--platform", "fynd", "--company-id", f" 00{COMPANY} ",
               "--application-id", APPLICATION.upper(), "--api-secret", SECRET)  # fmt: skip
    assert added["shop"] == SHOP


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (ADD[:-2], "--platform fynd takes --company-id, --application-id and --api-secret"),
        ((*ADD[:4], *ADD[6:]), "--platform fynd takes"),
        ((*ADD, "--domain", "x.myshopify.com"), "--platform fynd takes"),
        ((*ADD, "--webhook-secret", "s"), "--platform fynd takes"),
        (("shop", "add", "--platform", "fynd", "--company-id", "acme", "--application-id", APPLICATION,
          "--api-secret", SECRET), "not a Fynd company id"),
        (("shop", "add", "--platform", "fynd", "--company-id", "1", "--application-id", "a/b",
          "--api-secret", SECRET), "not a Fynd application"),
        (("shop", "add", "--platform", "shopify", "--domain", "x.myshopify.com", "--company-id", "1"),
         "--platform shopify takes"),
        (("shop", "add", "--platform", "woocommerce", "--url", "https://s.example", "--webhook-secret", "s",
          "--api-secret", "x"), "--platform woocommerce takes"),
    ],
    ids=["no secret", "no company", "with domain", "with webhook secret", "company not digits", "bad application",
         "shopify with fynd ids", "woo with fynd secret"],
)  # fmt: skip
def test_refused(runner: FlaskCliRunner, db: Database, args: tuple[str, ...], message: str) -> None:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 2
    assert message in result.output
    with db.session() as session:
        assert session.exec(select(Shop)).all() == []


def test_a_shop_added_by_the_cli_takes_signed_webhooks(runner: FlaskCliRunner, client: FlaskClient) -> None:
    ok(runner, *ADD, "--currency", "INR")
    raw = compact(shipment_event("delivery_done"))
    response = post_webhook(client, "fynd", raw, {"x-fp-signature": sign(raw)})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert ok(runner, "balance", "--shop", SHOP, "--customer", CUSTOMER)["available"] == 500
