"""The `clawback` command's contract (README), through the real click group and a real database.

Every invalid input must give a clear message, exit with status 2 and write nothing: each refused
case compares every table, row by row, and the CLI's own views of every shop before and after.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import inspect, text
from sqlmodel import select

from app.config import Settings
from app.db import Database
from app.models import Shop
from app.shops import read_credentials
from tests.factories import Books, snap
from tests.hostile.world import SHOP, World, fingerprint
from web import create_app
from web.cli import cli

SHOPIFY = "test.myshopify.com"  # the shop Books.open registers
WOO = "http://127.0.0.1:8080"
DEMO = "demo.clawback.test"
ON_SQLITE = not os.environ.get("CLAWBACK_TEST_DATABASE_URL")

CONTRACT_SETTINGS = (
    "earn.mode", "earn.rate", "earn.trigger", "earn.delay_days", "earn.min_order", "earn.exclude_tags",
    "revert.enabled", "revert.statuses", "revert.tags", "revert.partial", "revert.keep_on_return",
    "revert.shortfall", "revert.flag_tag", "redeem.refund_statuses", "redeem.coin_value",
)  # fmt: skip
LEDGER_KEYS = {"kind", "coins_delta", "order_id", "customer_id", "reason", "explanation", "created_at"}


# --- helpers ------------------------------------------------------------------------------------


def run(runner: FlaskCliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args))


def ok(runner: FlaskCliRunner, *args: str) -> Result:
    """Run a command that must succeed; show its output when it does not."""
    result = run(runner, *args)
    assert result.exit_code == 0, f"clawback {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def balance(runner: FlaskCliRunner, customer: str, shop: str = SHOPIFY) -> dict[str, int]:
    return as_json(ok(runner, "balance", "--shop", shop, "--customer", customer))


def ledger(runner: FlaskCliRunner, *filters: str, shop: str = SHOPIFY) -> list[dict[str, Any]]:
    return json_lines(ok(runner, "ledger", "--shop", shop, *filters))


def settings_of(runner: FlaskCliRunner, shop: str = SHOPIFY) -> dict[str, Any]:
    return as_json(ok(runner, "settings", "show", "--shop", shop))


def table_names(db: Database) -> list[str]:
    return sorted(inspect(db.engine).get_table_names())


def row_counts(db: Database) -> dict[str, int]:
    """How many rows every table holds."""
    with db.engine.connect() as conn:
        return {t: conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in table_names(db)}


def table_rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with db.engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY 1'))] for t in table_names(db)}


def cli_views(runner: FlaskCliRunner, db: Database) -> dict[str, tuple[str, str]]:
    """`settings show` and `ledger` of every shop, as printed."""
    with db.engine.connect() as conn:
        shops = [row[0] for row in conn.execute(text("SELECT domain FROM shops ORDER BY id"))]
    return {
        shop: (ok(runner, "settings", "show", "--shop", shop).stdout, ok(runner, "ledger", "--shop", shop).stdout)
        for shop in shops
    }


def state(runner: FlaskCliRunner, db: Database) -> dict[str, Any]:
    return {"counts": row_counts(db), "rows": table_rows(db), "views": cli_views(runner, db)}


def assert_unchanged(runner: FlaskCliRunner, db: Database, before: dict[str, Any]) -> None:
    after = state(runner, db)
    assert after["counts"] == before["counts"]
    assert after["rows"] == before["rows"]
    assert after["views"] == before["views"]


def assert_refused(result: Result, *fragments: str) -> None:
    """Exit 2, a message on stderr naming the problem, no output and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def corrupt_balance(db: Database, customer: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE customers SET available_coins = available_coins + 1 WHERE platform_customer_id = :c"),
            {"c": customer},
        )


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def store(books: Books, runner: FlaskCliRunner) -> Books:
    """A Shopify shop where c1 has 90 coins (100 earned, 10 spent as code TAKEN) and a WooCommerce
    shop registered through the CLI with a trailing slash."""
    shop = books.open()
    shop.apply(snap("1001", total="100.00"))
    shop.redeem("c1", 10, code="TAKEN")
    ok(runner, "shop", "add", "--platform", "woocommerce", "--url", f"{WOO}/", "--webhook-secret", "s3cret")
    return shop


@pytest.fixture
def empty_app(tmp_path: Path) -> Iterator[Flask]:
    """An app on a database that has never been migrated."""
    application = create_app(Settings(env="test", database_url=f"sqlite:///{tmp_path}/empty.db", encryption_key="k"))
    application.config["TESTING"] = True
    yield application
    application.extensions["clawback"].db.dispose()


# --- the contract: commands and names -----------------------------------------------------------


def test_help_lists_every_contract_command(runner: FlaskCliRunner) -> None:
    out = ok(runner, "--help").stdout
    for name in ("db", "shop", "settings", "balance", "ledger", "redeem", "release-due", "check", "demo"):
        assert f"  {name} " in out or f"  {name}\n" in out, name
    assert "upgrade" in ok(runner, "db", "--help").stdout
    assert "add" in ok(runner, "shop", "--help").stdout
    settings_help = ok(runner, "settings", "--help").stdout
    assert "show" in settings_help and "set" in settings_help


# --- invalid input: a clear message, exit 2, nothing written ------------------------------------


def _set(*pairs: str, shop: str = SHOPIFY) -> list[str]:
    return ["settings", "set", "--shop", shop, *pairs]


def _add(platform: str, *args: str) -> list[str]:
    return ["shop", "add", "--platform", platform, *args]


def _redeem(*args: str, customer: str = "c1", shop: str = SHOPIFY) -> list[str]:
    return ["redeem", "--shop", shop, "--customer", customer, *args]


LONG_TAG = "x" * 41

INVALID_SETTINGS = [
    pytest.param(_set("earn.bogus=1"), "unknown setting 'earn.bogus'", id="unknown-key"),
    pytest.param(_set("rate=1"), "unknown setting 'rate'", id="key-without-section"),
    pytest.param(_set("Earn.Rate=2"), "unknown setting 'Earn.Rate'", id="key-wrong-case"),
    pytest.param(_set("earn.rate"), "'earn.rate' is not KEY=VALUE", id="pair-without-equals"),
    pytest.param(_set("=5"), "'=5' is not KEY=VALUE", id="pair-without-key"),
    pytest.param(_set("earn.rate=2", "earn.mode"), "'earn.mode' is not KEY=VALUE", id="good-pair-then-no-equals"),
    pytest.param(_set("earn.mode=weekly"), "earn.mode", id="mode-unknown"),
    pytest.param(_set("earn.rate=abc"), "earn.rate must be a number, not 'abc'", id="rate-not-a-number"),
    pytest.param(_set("earn.rate="), "earn.rate must be a number", id="rate-empty"),
    pytest.param(_set("earn.rate=1,5"), "earn.rate must be a number", id="rate-decimal-comma"),
    pytest.param(_set("earn.rate=0"), "earn.rate", id="rate-zero"),
    pytest.param(_set("earn.rate=-1"), "earn.rate", id="rate-negative"),
    pytest.param(_set("earn.rate=NaN"), "earn.rate must be a finite number", id="rate-nan"),
    pytest.param(_set("earn.rate=Infinity"), "earn.rate must be a finite number", id="rate-infinite"),
    pytest.param(_set("earn.rate=2000000"), "earn.rate", id="rate-too-large"),
    pytest.param(_set("earn.mode=percent", "earn.rate=150"), "at most 100", id="percent-rate-over-100"),
    pytest.param(_set("earn.rate=100.5", "earn.mode=percent"), "at most 100", id="percent-rate-over-100-reordered"),
    pytest.param(_set("earn.mode=fixed", "earn.rate=2.5"), "whole coins", id="fixed-rate-fractional"),
    pytest.param(_set("earn.trigger=shipped"), "earn.trigger", id="trigger-unknown"),
    pytest.param(_set("earn.delay_days=-1"), "earn.delay_days", id="delay-negative"),
    pytest.param(_set("earn.delay_days=1.5"), "whole number of days", id="delay-fractional"),
    pytest.param(_set("earn.delay_days=366"), "earn.delay_days", id="delay-over-a-year"),
    pytest.param(_set("earn.delay_days=soon"), "earn.delay_days must be a number", id="delay-not-a-number"),
    pytest.param(_set("earn.min_order=-5"), "earn.min_order", id="min-order-negative"),
    pytest.param(_set("earn.min_order=lots"), "earn.min_order must be a number", id="min-order-not-a-number"),
    pytest.param(_set(f"earn.exclude_tags=vip,{LONG_TAG}"), "longer than 40", id="exclude-tag-too-long"),
    pytest.param(_set("revert.enabled=maybe"), "revert.enabled must be true or false", id="enabled-not-bool"),
    pytest.param(_set("revert.keep_on_return=2"), "revert.keep_on_return must be true or false", id="keep-not-bool"),
    pytest.param(_set("revert.statuses=refunded,shipped"), "revert.statuses", id="statuses-unknown"),
    pytest.param(_set("revert.statuses=paid"), "revert.statuses", id="statuses-paid"),
    pytest.param(_set(f"revert.tags={LONG_TAG}"), "longer than 40", id="revert-tag-too-long"),
    pytest.param(
        _set("revert.tags=" + ",".join(f"t{i}" for i in range(51))), "at most 50 tags", id="revert-too-many-tags"
    ),
    pytest.param(_set("revert.partial=half"), "revert.partial", id="partial-unknown"),
    pytest.param(_set("revert.shortfall=zero"), "revert.shortfall", id="shortfall-unknown"),
    pytest.param(_set("revert.flag_tag=fraud,abuse"), "cannot contain a comma", id="flag-tag-comma"),
    pytest.param(_set(f"revert.flag_tag={LONG_TAG}"), "longer than 40", id="flag-tag-too-long"),
    pytest.param(_set("revert.flag_tag=   "), "a tag cannot be empty", id="flag-tag-empty"),
    pytest.param(_set("redeem.refund_statuses=cancelled,paid"), "redeem.refund_statuses", id="refund-status-unknown"),
    pytest.param(_set("redeem.coin_value=0"), "redeem.coin_value", id="coin-value-zero"),
    pytest.param(_set("redeem.coin_value=ten"), "redeem.coin_value must be a number", id="coin-value-not-a-number"),
    pytest.param(_set("earn.rate=5", "revert.enabled=perhaps"), "revert.enabled", id="good-pair-and-bad-pair"),
    pytest.param(_set("earn.rate=2", shop="nope.myshopify.com"), "no shop 'nope.myshopify.com'", id="set-unknown-shop"),
    pytest.param(_set("earn.rate=2", shop="http://127.0.0.1:9999"), "no shop", id="set-unknown-url"),
    pytest.param(["settings", "set", "--shop", SHOPIFY], "Missing argument", id="set-no-pairs"),
    pytest.param(["settings", "set", "earn.rate=2"], "Missing option '--shop'", id="set-no-shop"),
    pytest.param(
        ["settings", "show", "--shop", "nope.myshopify.com"], "no shop 'nope.myshopify.com'", id="show-unknown"
    ),
    pytest.param(["settings", "show", "--shop", "ftp://store.example"], "not a store URL", id="show-bad-url"),
]

INVALID_SHOPS = [
    pytest.param(_add("shopify", "--domain", "evil.com"), "not a Shopify shop domain", id="shopify-evil-com"),
    pytest.param(_add("shopify", "--domain", "x.myshopify.com.evil.com"), "not a Shopify", id="shopify-suffix"),
    pytest.param(_add("shopify", "--domain", "x.myshopify.com/evil"), "not a Shopify", id="shopify-path"),
    pytest.param(_add("shopify", "--domain", "a.b.myshopify.com"), "not a Shopify", id="shopify-two-labels"),
    pytest.param(_add("shopify", "--domain", "-x.myshopify.com"), "not a Shopify", id="shopify-leading-dash"),
    pytest.param(_add("shopify", "--domain", "x.myshopify.com\nevil"), "not a Shopify", id="shopify-newline"),
    pytest.param(_add("shopify", "--domain", "https://x.myshopify.com"), "not a Shopify", id="shopify-as-url"),
    pytest.param(_add("shopify", "--domain", ".myshopify.com"), "not a Shopify", id="shopify-no-name"),
    pytest.param(_add("shopify"), "--platform shopify takes --domain", id="shopify-no-domain"),
    pytest.param(
        _add("shopify", "--domain", "x.myshopify.com", "--url", WOO), "--platform shopify takes", id="shopify-with-url"
    ),
    pytest.param(
        _add("shopify", "--domain", "x.myshopify.com", "--webhook-secret", "s"),
        "--platform shopify takes",
        id="shopify-with-webhook-secret",
    ),
    pytest.param(
        _add("shopify", "--domain", "x.myshopify.com", "--key", "k", "--secret", "s"),
        "--platform shopify takes",
        id="shopify-with-key",
    ),
    pytest.param(
        _add("shopify", "--domain", "x.myshopify.com", "--currency", "US"), "not an ISO 4217", id="currency-short"
    ),
    pytest.param(
        _add("shopify", "--domain", "x.myshopify.com", "--currency", "U$D"), "not an ISO 4217", id="currency-symbol"
    ),
    pytest.param(
        _add("woocommerce", "--url", "ftp://store.example", "--webhook-secret", "s"), "not a store URL", id="woo-ftp"
    ),
    pytest.param(
        _add("woocommerce", "--url", "https://store.example/?a=1", "--webhook-secret", "s"),
        "without credentials or query",
        id="woo-query",
    ),
    pytest.param(
        _add("woocommerce", "--url", "https://store.example/#top", "--webhook-secret", "s"),
        "without credentials or query",
        id="woo-fragment",
    ),
    pytest.param(
        _add("woocommerce", "--url", "https://user:pw@store.example", "--webhook-secret", "s"),
        "without credentials or query",
        id="woo-credentials-in-url",
    ),
    pytest.param(
        _add("woocommerce", "--url", "store.example", "--webhook-secret", "s"), "not a store URL", id="woo-no-scheme"
    ),
    pytest.param(
        _add("woocommerce", "--url", "https://", "--webhook-secret", "s"), "not a store URL", id="woo-no-host"
    ),
    pytest.param(
        _add("woocommerce", "--url", "http://store.example:99999", "--webhook-secret", "s"),
        "not a store URL",
        id="woo-bad-port",
    ),
    pytest.param(_add("woocommerce", "--url", "https://store.example"), "--webhook-secret", id="woo-no-secret"),
    pytest.param(
        _add("woocommerce", "--url", "https://store.example", "--webhook-secret", ""),
        "--webhook-secret",
        id="woo-empty-secret",
    ),
    pytest.param(_add("woocommerce", "--webhook-secret", "s"), "--platform woocommerce takes --url", id="woo-no-url"),
    pytest.param(
        _add("woocommerce", "--url", "https://store.example", "--webhook-secret", "s", "--domain", "x.myshopify.com"),
        "--platform woocommerce takes",
        id="woo-with-domain",
    ),
    pytest.param(
        _add("woocommerce", "--url", "https://store.example", "--webhook-secret", "s", "--token", "t"),
        "--platform woocommerce takes",
        id="woo-with-token",
    ),
    pytest.param(
        _add("woocommerce", "--url", "https://store.example", "--webhook-secret", "s", "--key", "ck"),
        "--key and --secret go together",
        id="woo-key-without-secret",
    ),
    pytest.param(
        _add("woocommerce", "--url", "https://store.example", "--webhook-secret", "s", "--secret", "cs"),
        "--key and --secret go together",
        id="woo-secret-without-key",
    ),
    pytest.param(_add("magento", "--url", "https://store.example"), "'--platform'", id="platform-unknown"),
    pytest.param(["shop", "add", "--domain", "x.myshopify.com"], "Missing option '--platform'", id="platform-missing"),
]

INVALID_READS = [
    pytest.param(["balance", "--shop", "nope.myshopify.com", "--customer", "c1"], "no shop", id="balance-unknown-shop"),
    pytest.param(["balance", "--shop", SHOPIFY, "--customer", "ghost"], "no customer 'ghost'", id="balance-unknown"),
    pytest.param(["balance", "--shop", WOO, "--customer", "c1"], "no customer 'c1'", id="balance-customer-elsewhere"),
    pytest.param(
        ["balance", "--shop", "ftp://127.0.0.1:8080", "--customer", "c1"], "not a store URL", id="balance-ftp"
    ),
    pytest.param(["balance", "--shop", SHOPIFY], "Missing option '--customer'", id="balance-no-customer"),
    pytest.param(["ledger", "--shop", "nope.myshopify.com"], "no shop 'nope.myshopify.com'", id="ledger-unknown-shop"),
    pytest.param(["ledger", "--shop", SHOPIFY, "--customer", "ghost"], "no customer 'ghost'", id="ledger-unknown"),
    pytest.param(["ledger"], "Missing option '--shop'", id="ledger-no-shop"),
]

INVALID_WRITES = [
    pytest.param(_redeem("--coins", "0"), "coins must be between 1 and", id="redeem-zero"),
    pytest.param(_redeem("--coins", "-5"), "coins must be between 1 and", id="redeem-negative"),
    pytest.param(_redeem("--coins=-5", "--order", "2001"), "coins must be between 1 and", id="redeem-negative-order"),
    pytest.param(_redeem("--coins", "91"), "has 90 coins available, not 91", id="redeem-more-than-available"),
    pytest.param(_redeem("--coins", str(10**13)), "coins must be between 1 and", id="redeem-over-max"),
    pytest.param(_redeem("--coins", "ten"), "'ten' is not a valid integer", id="redeem-not-a-number"),
    pytest.param(_redeem("--coins", "1.5"), "is not a valid integer", id="redeem-fractional"),
    pytest.param(_redeem(), "Missing option '--coins'", id="redeem-no-coins"),
    pytest.param(_redeem("--coins", "5", "--code", "TAKEN"), "code TAKEN is already in use", id="redeem-code-taken"),
    pytest.param(_redeem("--coins", "5", "--code", " taken "), "code TAKEN is already in use", id="redeem-code-case"),
    pytest.param(_redeem("--coins", "5", "--code", "ab"), "a code is 3-64", id="redeem-code-short"),
    pytest.param(_redeem("--coins", "5", "--code", "SAVE 5"), "a code is 3-64", id="redeem-code-space"),
    pytest.param(_redeem("--coins", "5", "--code", "C" * 65), "a code is 3-64", id="redeem-code-long"),
    pytest.param(_redeem("--coins", "5", "--order", ""), "an order id is 1 to 64", id="redeem-order-empty"),
    pytest.param(_redeem("--coins", "5", "--order", "  "), "an order id is 1 to 64", id="redeem-order-blank"),
    pytest.param(_redeem("--coins", "5", customer="ghost"), "no customer 'ghost'", id="redeem-unknown-customer"),
    pytest.param(_redeem("--coins", "5", shop="nope.myshopify.com"), "no shop", id="redeem-unknown-shop"),
    pytest.param(_redeem("--coins", "5", shop=WOO), "no customer 'c1'", id="redeem-customer-elsewhere"),
    pytest.param(
        ["adjust", "--shop", SHOPIFY, "--customer", "c1", "--coins", "0", "--reason", "typo"],
        "non-zero number of coins",
        id="adjust-zero",
    ),
    pytest.param(
        ["adjust", "--shop", SHOPIFY, "--customer", "c1", "--coins", "5", "--reason", " x "],
        "a reason of 3 to 500 characters",
        id="adjust-no-reason",
    ),
    pytest.param(
        ["adjust", "--shop", SHOPIFY, "--customer", "ghost", "--coins", "5", "--reason", "goodwill"],
        "no customer 'ghost'",
        id="adjust-unknown-customer",
    ),
    pytest.param(["release-due", "--now", "not-a-date"], "'not-a-date' is not an ISO 8601 time", id="now-not-a-date"),
    pytest.param(["release-due", "--now", "2026-13-01"], "is not an ISO 8601 time", id="now-month-13"),
    pytest.param(["release-due", "--now", ""], "is not an ISO 8601 time", id="now-empty"),
    pytest.param(["nonsense"], "No such command 'nonsense'", id="unknown-command"),
]


@pytest.mark.parametrize(("args", "message"), INVALID_SETTINGS + INVALID_SHOPS + INVALID_READS + INVALID_WRITES)
def test_invalid_input_is_refused_and_writes_nothing(
    store: Books, runner: FlaskCliRunner, db: Database, args: list[str], message: str
) -> None:
    before = state(runner, db)
    assert_refused(run(runner, *args), message)
    assert_unchanged(runner, db, before)


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param(("earn.rate=abc", "earn.rate=5"), id="bad-then-good"),
        pytest.param(("earn.mode=percent", "earn.rate=150", "earn.rate=10"), id="over-100-then-good"),
    ],
)
def test_settings_set_refuses_a_bad_pair_even_when_the_key_repeats(
    store: Books, runner: FlaskCliRunner, db: Database, pairs: tuple[str, ...]
) -> None:
    before = state(runner, db)
    assert_refused(run(runner, *_set(*pairs)))
    assert_unchanged(runner, db, before)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(_redeem("--coins", "5", "--order", "9" * 65), id="redeem-order-over-64"),
        pytest.param(_add("shopify", "--domain", "long.myshopify.com", "--name", "n" * 256), id="shop-name-over-255"),
        pytest.param(
            _add("woocommerce", "--url", "https://store.example/" + "p" * 256, "--webhook-secret", "s"),
            id="woo-url-over-255",
        ),
    ],
)
def test_values_longer_than_their_columns_are_refused(
    store: Books, runner: FlaskCliRunner, db: Database, args: list[str]
) -> None:
    before = state(runner, db)
    assert_refused(run(runner, *args))
    assert_unchanged(runner, db, before)


# --- shop add -----------------------------------------------------------------------------------


def test_shop_add_shopify_normalizes_the_domain_and_encrypts_the_token(
    runner: FlaskCliRunner, db: Database, app: Flask
) -> None:
    result = ok(
        runner, "shop", "add", "--platform", "shopify", "--domain", " My-Shop.MyShopify.com ", "--token", "tok-1"
    )
    assert as_json(result) == {"shop": "my-shop.myshopify.com", "platform": "shopify", "created": True}
    with db.session() as session:
        shop = session.exec(select(Shop).where(Shop.domain == "my-shop.myshopify.com")).one()
        assert shop.credentials is not None and "tok-1" not in shop.credentials
        assert read_credentials(app.extensions["clawback"].vault, shop) == {"access_token": "tok-1"}
        assert (shop.platform, shop.currency, shop.name) == ("shopify", "USD", "my-shop.myshopify.com")
    assert settings_of(runner, "MY-SHOP.myshopify.com")["earn.mode"] == "per_unit"


def test_shop_add_twice_updates_instead_of_duplicating(runner: FlaskCliRunner, db: Database, app: Flask) -> None:
    add = ("shop", "add", "--platform", "shopify", "--domain", "x.myshopify.com")
    assert as_json(ok(runner, *add, "--token", "old"))["created"] is True
    assert as_json(ok(runner, *add, "--token", "new"))["created"] is False
    assert row_counts(db)["shops"] == 1
    with db.session() as session:
        shop = session.exec(select(Shop)).one()
        assert read_credentials(app.extensions["clawback"].vault, shop) == {"access_token": "new"}


def test_shop_add_woocommerce_stores_every_credential(runner: FlaskCliRunner, db: Database, app: Flask) -> None:
    result = ok(runner, "shop", "add", "--platform", "woocommerce", "--url", "https://Store.Example:443/shop/",
                "--webhook-secret", "whs", "--key", "ck_1", "--secret", "cs_1", "--currency", "eur")  # fmt: skip
    assert as_json(result) == {"shop": "https://store.example/shop", "platform": "woocommerce", "created": True}
    with db.session() as session:
        shop = session.exec(select(Shop)).one()
        assert shop.currency == "EUR"
        assert shop.credentials is not None and "cs_1" not in shop.credentials
        creds = read_credentials(app.extensions["clawback"].vault, shop)
        assert creds == {"webhook_secret": "whs", "consumer_key": "ck_1", "consumer_secret": "cs_1"}


@pytest.mark.parametrize("added", [f"{WOO}/", WOO, "HTTP://127.0.0.1:8080//", f" {WOO}/ "])
@pytest.mark.parametrize("named", [WOO, f"{WOO}/", "http://127.0.0.1:8080///", f"  {WOO} "])
def test_woocommerce_urls_compare_normalized(
    books: Books, runner: FlaskCliRunner, db: Database, added: str, named: str
) -> None:
    result = ok(runner, "shop", "add", "--platform", "woocommerce", "--url", added, "--webhook-secret", "s")
    assert as_json(result)["shop"] == WOO
    woo = books.open(domain=WOO, platform="woocommerce")  # the same shop: register_shop finds it
    woo.apply(snap("7", total="12.00", shop=WOO))
    assert balance(runner, "c1", shop=named) == {"available": 12, "pending": 0, "shortfall": 0}
    assert settings_of(runner, named) == settings_of(runner, WOO)
    assert [e["coins_delta"] for e in ledger(runner, shop=named)] == [12]
    # Adding it again under another spelling finds the same shop.
    again = ok(runner, "shop", "add", "--platform", "woocommerce", "--url", named, "--webhook-secret", "s")
    assert as_json(again) == {"shop": WOO, "platform": "woocommerce", "created": False}
    assert row_counts(db)["shops"] == 1


def test_shopify_shop_is_found_case_insensitively(store: Books, runner: FlaskCliRunner) -> None:
    assert balance(runner, "c1", shop="Test.MyShopify.COM") == {"available": 90, "pending": 0, "shortfall": 0}


# --- settings -----------------------------------------------------------------------------------


def test_settings_show_prints_every_contract_key_as_json(store: Books, runner: FlaskCliRunner) -> None:
    shown = settings_of(runner)
    assert set(CONTRACT_SETTINGS) <= set(shown)
    assert shown["earn.mode"] == "per_unit"
    assert Decimal(shown["earn.rate"]) == 1
    assert shown["earn.delay_days"] == 0
    assert shown["revert.enabled"] is False
    assert shown["revert.statuses"] == ["refunded", "cancelled", "partially_refunded"]
    assert shown["redeem.refund_statuses"] == ["cancelled", "returned", "refunded"]
    assert settings_of(runner, WOO) == shown  # a new shop starts from the defaults


def test_settings_set_saves_every_pair_and_prints_the_result(store: Books, runner: FlaskCliRunner) -> None:
    result = ok(runner, *_set(
        "earn.mode=percent", "earn.rate=5", "earn.trigger=delivered", "earn.delay_days=14", "earn.min_order=20.50",
        "earn.exclude_tags=VIP, staff ,vip", "revert.enabled=yes", "revert.statuses=refunded,returned,refunded",
        "revert.tags=fraud-order,chargeback", "revert.partial=full", "revert.keep_on_return=on",
        "revert.shortfall=negative", f"revert.flag_tag={'x' * 40}", "redeem.refund_statuses=cancelled",
        "redeem.coin_value=0.10",
    ))  # fmt: skip
    saved = as_json(result)
    assert saved == settings_of(runner)
    assert saved["earn.mode"] == "percent" and Decimal(saved["earn.rate"]) == 5
    assert saved["earn.trigger"] == "delivered"
    assert saved["earn.delay_days"] == 14
    assert Decimal(saved["earn.min_order"]) == Decimal("20.50")
    assert saved["earn.exclude_tags"] == ["VIP", "staff"]
    assert saved["revert.enabled"] is True and saved["revert.keep_on_return"] is True
    assert saved["revert.statuses"] == ["refunded", "returned"]
    assert saved["revert.tags"] == ["fraud-order", "chargeback"]
    assert (saved["revert.partial"], saved["revert.shortfall"]) == ("full", "negative")
    assert saved["revert.flag_tag"] == "x" * 40
    assert saved["redeem.refund_statuses"] == ["cancelled"]
    assert Decimal(saved["redeem.coin_value"]) == Decimal("0.10")
    assert settings_of(runner, WOO)["earn.mode"] == "per_unit"  # other shops are untouched


@pytest.mark.parametrize(
    ("pair", "key", "expected"),
    [
        *[(f"earn.mode={m}", "earn.mode", m) for m in ("per_unit", "percent", "fixed")],
        *[(f"earn.trigger={t}", "earn.trigger", t) for t in ("paid", "fulfilled", "delivered")],
        *[(f"revert.partial={p}", "revert.partial", p) for p in ("proportional", "full")],
        *[(f"revert.shortfall={s}", "revert.shortfall", s) for s in ("negative", "floor_and_flag")],
        *[(f"revert.enabled={w}", "revert.enabled", True) for w in ("true", "TRUE", "yes", "on", "1")],
        *[(f"revert.enabled={w}", "revert.enabled", False) for w in ("false", "No", "off", "0")],
        ("earn.delay_days=365", "earn.delay_days", 365),
        ("earn.delay_days= 7 ", "earn.delay_days", 7),
        ("revert.statuses=", "revert.statuses", []),
        ("revert.statuses=partially_refunded", "revert.statuses", ["partially_refunded"]),
        (" revert.flag_tag = Needs  Review ", "revert.flag_tag", "Needs Review"),
    ],
)
def test_settings_set_accepts_each_documented_value(
    store: Books, runner: FlaskCliRunner, pair: str, key: str, expected: Any
) -> None:
    assert as_json(ok(runner, *_set(pair)))[key] == expected
    assert settings_of(runner)[key] == expected


def test_settings_set_percent_rate_of_100_is_allowed(store: Books, runner: FlaskCliRunner) -> None:
    saved = as_json(ok(runner, *_set("earn.mode=percent", "earn.rate=100")))
    assert (saved["earn.mode"], Decimal(saved["earn.rate"])) == ("percent", 100)


def test_settings_set_is_all_or_nothing(store: Books, runner: FlaskCliRunner, db: Database) -> None:
    before = settings_of(runner)
    counts = row_counts(db)
    assert_refused(run(runner, *_set("earn.rate=7", "earn.delay_days=-3")), "earn.delay_days")
    assert settings_of(runner) == before
    assert_refused(run(runner, *_set("earn.delay_days=3", "earn.nope=1", "earn.rate=7")), "unknown setting 'earn.nope'")
    assert settings_of(runner) == before
    assert row_counts(db) == counts
    # The good pairs on their own are fine.
    ok(runner, *_set("earn.rate=7", "earn.delay_days=3"))
    assert Decimal(settings_of(runner)["earn.rate"]) == 7


def test_settings_set_reaches_a_woocommerce_shop_by_either_spelling(store: Books, runner: FlaskCliRunner) -> None:
    ok(runner, *_set("earn.rate=3", shop=WOO))
    ok(runner, *_set("earn.delay_days=2", shop=f"{WOO}/"))
    shown = settings_of(runner, WOO)
    assert (Decimal(shown["earn.rate"]), shown["earn.delay_days"]) == (3, 2)
    assert Decimal(settings_of(runner)["earn.rate"]) == 1


def test_settings_take_effect_for_the_next_order(store: Books, runner: FlaskCliRunner) -> None:
    ok(runner, *_set("earn.mode=fixed", "earn.rate=25"))
    store.apply(snap("1002", total="999.00", at=5))
    assert balance(runner, "c1")["available"] == 90 + 25


# --- balance ------------------------------------------------------------------------------------


def test_balance_is_a_json_object_of_three_integers(books: Books, runner: FlaskCliRunner) -> None:
    shop = books.open(revert__enabled="true", revert__shortfall="floor_and_flag")
    shop.apply(snap("1001", total="100.00"))
    ok(runner, *_redeem("--coins", "80"))
    shop.set(earn__delay_days="3")
    shop.apply(snap("1002", total="40.00", at=1))
    shop.apply(snap("1001", total="100.00", at=2, statuses=("paid", "cancelled")))
    result = ok(runner, "balance", "--shop", SHOPIFY, "--customer", "c1")
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    data = as_json(result)
    assert data == {"available": 0, "pending": 40, "shortfall": 80}
    assert all(type(value) is int for value in data.values())
    assert data == shop.balance("c1")


def test_balance_of_a_customer_with_nothing_yet(books: Books, runner: FlaskCliRunner) -> None:
    shop = books.open()
    shop.apply(snap("1001", total="100.00", statuses=("pending",)))  # seen, nothing earned
    assert balance(runner, "c1") == {"available": 0, "pending": 0, "shortfall": 0}


# --- ledger -------------------------------------------------------------------------------------


@pytest.fixture
def history(books: Books, runner: FlaskCliRunner) -> Books:
    """c1 earns 100 on #1001 which is then cancelled; c2 earns 50 on #2001 and spends 20 on #2002."""
    shop = books.open(revert__enabled="true")
    shop.apply(snap("1001", total="100.00", customer="c1", at=0))
    shop.apply(snap("2001", total="50.00", customer="c2", at=1))
    shop.apply(snap("1001", total="100.00", customer="c1", at=2, statuses=("paid", "cancelled")))
    ok(runner, *_redeem("--coins", "20", "--order", "2002", customer="c2"))
    return shop


def _summary(lines: list[dict[str, Any]]) -> list[tuple[str, int, str | None, str]]:
    return [(e["kind"], e["coins_delta"], e["order_id"], e["customer_id"]) for e in lines]


def test_ledger_prints_json_lines_oldest_first(history: Books, runner: FlaskCliRunner) -> None:
    result = ok(runner, "ledger", "--shop", SHOPIFY)
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    entries = [json.loads(line) for line in lines]  # one JSON object per line
    assert _summary(entries) == [
        ("earn", 100, "1001", "c1"),
        ("earn", 50, "2001", "c2"),
        ("revert", -100, "1001", "c1"),
        ("redeem", -20, "2002", "c2"),
    ]
    for entry in entries:
        assert set(entry) >= LEDGER_KEYS
        assert type(entry["coins_delta"]) is int
        assert isinstance(entry["reason"], str) and entry["reason"]
        assert isinstance(entry["explanation"], str) and entry["explanation"]
        assert datetime.fromisoformat(entry["created_at"]).utcoffset() is not None
    stamps = [datetime.fromisoformat(e["created_at"]) for e in entries]
    assert stamps == sorted(stamps)
    assert entries[2]["reason"] == "order_cancelled"
    assert "Order #1001 was cancelled" in entries[2]["explanation"]
    assert entries[3]["explanation"] == "20 coins were spent on order #2002"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param(("--customer", "c1"), [("earn", 100, "1001", "c1"), ("revert", -100, "1001", "c1")], id="c1"),
        pytest.param(("--customer", "c2"), [("earn", 50, "2001", "c2"), ("redeem", -20, "2002", "c2")], id="c2"),
        pytest.param(("--order", "1001"), [("earn", 100, "1001", "c1"), ("revert", -100, "1001", "c1")], id="o1001"),
        pytest.param(("--order", "2002"), [("redeem", -20, "2002", "c2")], id="o2002"),
        pytest.param(("--customer", "c2", "--order", "2001"), [("earn", 50, "2001", "c2")], id="c2-o2001"),
        pytest.param(("--customer", "c1", "--order", "2001"), [], id="c1-o2001-none"),
        pytest.param(("--order", "9999"), [], id="unknown-order-none"),
    ],
)
def test_ledger_filters_by_customer_and_order(
    history: Books, runner: FlaskCliRunner, filters: tuple[str, ...], expected: list[tuple[str, int, str, str]]
) -> None:
    result = ok(runner, "ledger", "--shop", SHOPIFY, *filters)
    assert _summary(json_lines(result)) == expected
    if not expected:
        assert result.stdout == ""


def test_ledger_of_one_shop_leaves_out_the_others(history: Books, runner: FlaskCliRunner) -> None:
    ok(runner, "shop", "add", "--platform", "woocommerce", "--url", WOO, "--webhook-secret", "s")
    assert ledger(runner, shop=WOO) == []
    assert len(ledger(runner)) == 4


# --- redeem -------------------------------------------------------------------------------------


def test_redeem_spends_coins_and_prints_the_redemption(store: Books, runner: FlaskCliRunner) -> None:
    out = as_json(ok(runner, *_redeem("--coins", "40", "--order", "5001")))
    assert set(out) == {"redemption", "coins", "code", "order_id", "explanation"}
    assert (out["coins"], out["code"], out["order_id"]) == (40, None, "5001")
    assert isinstance(out["redemption"], int)
    assert out["explanation"] == "40 coins were spent on order #5001"
    assert balance(runner, "c1") == {"available": 50, "pending": 0, "shortfall": 0}
    assert _summary(ledger(runner, "--order", "5001")) == [("redeem", -40, "5001", "c1")]


def test_redeem_every_available_coin(store: Books, runner: FlaskCliRunner) -> None:
    ok(runner, *_redeem("--coins", "90"))
    assert balance(runner, "c1")["available"] == 0
    assert_refused(run(runner, *_redeem("--coins", "1")), "has 0 coins available, not 1")


def test_redeem_code_comes_back_when_the_order_carrying_it_is_cancelled(books: Books, runner: FlaskCliRunner) -> None:
    shop = books.open()
    shop.apply(snap("1001", total="100.00"))
    out = as_json(ok(runner, *_redeem("--coins", "30", "--code", "save-30")))
    assert (out["code"], out["order_id"]) == ("SAVE-30", None)
    assert out["explanation"] == "30 coins were spent on code SAVE-30"
    assert balance(runner, "c1")["available"] == 70
    shop.apply(snap("2001", total="30.00", at=10, statuses=("pending",), codes=("save-30",)))
    assert balance(runner, "c1")["available"] == 70  # linked to the order, not yet returned
    cancelled = snap("2001", total="30.00", at=20, statuses=("pending", "cancelled"), codes=("SAVE-30",))
    shop.apply(cancelled)
    shop.apply(cancelled)  # a redelivery returns nothing more
    assert balance(runner, "c1") == {"available": 100, "pending": 0, "shortfall": 0}
    returned = ledger(runner, "--order", "2001")
    assert _summary(returned) == [("redeem_refund", 30, "2001", "c1")]
    assert returned[0]["reason"] == "order_cancelled"
    assert "30 coins spent on it were returned" in returned[0]["explanation"]
    ok(runner, "check")
    # The code stays taken after it was used.
    assert_refused(run(runner, *_redeem("--coins", "5", "--code", "SAVE-30")), "already in use")


def test_redeem_on_an_order_already_cancelled_returns_at_once(books: Books, runner: FlaskCliRunner) -> None:
    shop = books.open()
    shop.apply(snap("1001", total="100.00"))
    shop.apply(snap("3001", total="25.00", at=5, statuses=("pending", "cancelled")))
    ok(runner, *_redeem("--coins", "25", "--order", "3001"))
    assert balance(runner, "c1")["available"] == 100
    assert _summary(ledger(runner, "--order", "3001")) == [
        ("redeem", -25, "3001", "c1"),
        ("redeem_refund", 25, "3001", "c1"),
    ]
    ok(runner, "check")


# --- release-due --------------------------------------------------------------------------------

HOLD_ENDS = "2026-11-04T12:00:00+00:00"  # T0 + 3 days


@pytest.fixture
def held(books: Books) -> Books:
    """c1 has 100 coins held for 3 days from T0."""
    shop = books.open(earn__delay_days="3")
    shop.apply(snap("1001", total="100.00"))
    return shop


def _release(runner: FlaskCliRunner, now: str) -> dict[str, int]:
    return as_json(ok(runner, "release-due", "--now", now))


def test_release_due_releases_held_coins_once_the_hold_ends(held: Books, runner: FlaskCliRunner) -> None:
    assert balance(runner, "c1") == {"available": 0, "pending": 100, "shortfall": 0}
    assert _release(runner, "2026-11-04T11:59:59+00:00") == {"released_awards": 0, "coins": 0}
    assert balance(runner, "c1") == {"available": 0, "pending": 100, "shortfall": 0}
    assert _release(runner, HOLD_ENDS) == {"released_awards": 1, "coins": 100}
    assert balance(runner, "c1") == {"available": 100, "pending": 0, "shortfall": 0}
    assert _release(runner, "2026-12-01T00:00:00+00:00") == {"released_awards": 0, "coins": 0}  # once only
    entries = ledger(runner, "--customer", "c1")
    assert [(e["kind"], e["coins_delta"], e["pending_delta"]) for e in entries] == [
        ("pending", 0, 100),
        ("release", 100, -100),
    ]
    assert entries[1]["explanation"] == "The hold on order #1001 ended; 100 coins were released"
    ok(runner, "check")


@pytest.mark.parametrize(
    ("now", "released"),
    [("2026-11-04T11:00:00", 0), ("2026-11-04T12:00:00", 1), ("2026-11-04T12:00:00Z", 1), ("2026-11-05", 1)],
)
def test_release_due_reads_times_without_an_offset_as_utc(
    held: Books, runner: FlaskCliRunner, now: str, released: int
) -> None:
    assert _release(runner, now)["released_awards"] == released


@pytest.mark.parametrize(
    ("now", "released"),
    [("2026-11-04T13:00:00+02:00", 0), ("2026-11-04T07:30:00-05:00", 1)],
)
def test_release_due_honours_the_offset_of_now(held: Books, runner: FlaskCliRunner, now: str, released: int) -> None:
    assert _release(runner, now)["released_awards"] == released


def test_release_due_without_now_uses_the_clock(held: Books, runner: FlaskCliRunner) -> None:
    hold_has_ended = datetime.fromisoformat(HOLD_ENDS) <= datetime.now(UTC)
    expected = {"released_awards": 1, "coins": 100} if hold_has_ended else {"released_awards": 0, "coins": 0}
    assert as_json(ok(runner, "release-due")) == expected


def test_release_due_with_nothing_held(store: Books, runner: FlaskCliRunner) -> None:
    assert _release(runner, HOLD_ENDS) == {"released_awards": 0, "coins": 0}


# --- check --------------------------------------------------------------------------------------


def test_check_passes_on_an_empty_database(runner: FlaskCliRunner) -> None:
    result = ok(runner, "check")
    assert result.stdout == "ok: the ledger balances (0 shops)\n"
    assert result.stderr == ""


def test_check_passes_on_clean_books(history: Books, runner: FlaskCliRunner) -> None:
    ok(runner, "shop", "add", "--platform", "woocommerce", "--url", WOO, "--webhook-secret", "s")
    result = ok(runner, "check")
    assert result.stdout == "ok: the ledger balances (2 shops)\n"
    assert result.stderr == ""


def test_check_exits_1_and_lists_a_corrupted_balance(store: Books, runner: FlaskCliRunner, db: Database) -> None:
    corrupt_balance(db, "c1")
    result = run(runner, "check")
    assert result.exit_code == 1
    assert "ok:" not in result.stdout
    problems = result.stderr.splitlines()
    assert len(problems) == 1
    assert "customer c1" in problems[0]
    assert "(91, 0, 0) != ledger (90, 0, 0)" in problems[0]
    # Reading the books changed nothing: the corruption is still there for a human to look at.
    assert run(runner, "check").stderr == result.stderr


def test_check_lists_every_violation(history: Books, runner: FlaskCliRunner, db: Database) -> None:
    corrupt_balance(db, "c1")
    corrupt_balance(db, "c2")
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE redemptions SET coins_returned = 1"))
    result = run(runner, "check")
    assert result.exit_code == 1
    assert result.stdout == ""
    problems = result.stderr.splitlines()
    assert len(problems) == 3
    assert "customer c1" in problems[0] and "customer c2" in problems[1]
    assert "returned 1 (ledger 0) of 20" in problems[2]


# --- demo ---------------------------------------------------------------------------------------


def test_demo_seeds_books_that_balance_and_explain_reverts(runner: FlaskCliRunner, db: Database) -> None:
    out = ok(runner, "demo").stdout
    assert f"Demo shop '{DEMO}' is ready" in out
    assert f"clawback ledger --shop {DEMO} --customer alice" in out
    ok(runner, "check")
    alice = ledger(runner, "--customer", "alice", shop=DEMO)
    reverts = [e for e in alice if e["kind"] == "revert"]
    assert reverts and all(e["coins_delta"] < 0 for e in reverts)
    assert all("reverted" in e["explanation"] for e in reverts)
    assert any(e["kind"] == "redeem_refund" for e in alice)
    assert {e["customer_id"] for e in alice} == {"alice"}
    # The story the demo tells, one balance per customer (see app/demo.py).
    assert balance(runner, "alice", shop=DEMO) == {"available": 300, "pending": 0, "shortfall": 0}
    assert balance(runner, "bob", shop=DEMO) == {"available": 80, "pending": 0, "shortfall": 0}
    assert balance(runner, "carol", shop=DEMO) == {"available": 0, "pending": 0, "shortfall": 0}
    assert balance(runner, "dave", shop=DEMO) == {"available": 0, "pending": 0, "shortfall": 200}
    assert balance(runner, "erin", shop=DEMO) == {"available": 80, "pending": 60, "shortfall": 0}


def test_demo_twice_resets_the_demo_shop(store: Books, runner: FlaskCliRunner, db: Database) -> None:
    ok(runner, "demo")
    first = row_counts(db)
    lines = [(e["kind"], e["coins_delta"]) for e in ledger(runner, shop=DEMO)]
    ok(runner, "demo")
    assert row_counts(db) == first
    assert [(e["kind"], e["coins_delta"]) for e in ledger(runner, shop=DEMO)] == lines
    assert balance(runner, "c1") == {"available": 90, "pending": 0, "shortfall": 0}  # other shops untouched
    ok(runner, "check")


# --- a database without schema ------------------------------------------------------------------

NEEDS_SCHEMA = [
    pytest.param(["settings", "show", "--shop", SHOPIFY], id="settings-show"),
    pytest.param(["settings", "set", "--shop", SHOPIFY, "earn.rate=2"], id="settings-set"),
    pytest.param(["shop", "add", "--platform", "shopify", "--domain", "x.myshopify.com"], id="shop-add-shopify"),
    pytest.param(_add("woocommerce", "--url", WOO, "--webhook-secret", "s"), id="shop-add-woo"),
    pytest.param(["balance", "--shop", SHOPIFY, "--customer", "c1"], id="balance"),
    pytest.param(["ledger", "--shop", SHOPIFY], id="ledger"),
    pytest.param(_redeem("--coins", "5"), id="redeem"),
    pytest.param(
        ["adjust", "--shop", SHOPIFY, "--customer", "c1", "--coins", "5", "--reason", "goodwill"], id="adjust"
    ),
    pytest.param(["release-due"], id="release-due"),
    pytest.param(["release-due", "--now", HOLD_ENDS], id="release-due-now"),
    pytest.param(["check"], id="check"),
]


@pytest.mark.parametrize("args", NEEDS_SCHEMA)
def test_commands_on_a_database_without_schema_say_to_upgrade(empty_app: Flask, args: list[str]) -> None:
    runner = empty_app.test_cli_runner()
    db: Database = empty_app.extensions["clawback"].db
    assert_refused(run(runner, *args), "no schema yet", "run `clawback db upgrade` first")
    assert table_names(db) == []


def test_db_upgrade_creates_the_schema_and_is_repeatable(empty_app: Flask) -> None:
    runner = empty_app.test_cli_runner()
    db: Database = empty_app.extensions["clawback"].db
    assert ok(runner, "db", "upgrade").stdout.startswith("database is at head: sqlite:///")
    assert {"alembic_version", "shops", "customers", "ledger_entries"} <= set(table_names(db))
    ok(runner, "db", "upgrade")
    assert ok(runner, "check").stdout == "ok: the ledger balances (0 shops)\n"
    assert_refused(run(runner, "balance", "--shop", SHOPIFY, "--customer", "c1"), f"no shop '{SHOPIFY}'")
    ok(runner, "shop", "add", "--platform", "shopify", "--domain", SHOPIFY)
    assert settings_of(runner)["earn.mode"] == "per_unit"


def test_demo_migrates_a_database_without_schema(empty_app: Flask) -> None:
    runner = empty_app.test_cli_runner()
    ok(runner, "demo")
    ok(runner, "check")
    assert any(e["kind"] == "revert" for e in ledger(runner, "--customer", "alice", shop=DEMO))


def test_db_upgrade_on_a_migrated_database_changes_nothing(store: Books, runner: FlaskCliRunner, db: Database) -> None:
    before = state(runner, db)
    ok(runner, "db", "upgrade")
    assert_unchanged(runner, db, before)


# --- what the hostile-input sweep found (tests/hostile) --------------------------------------------


def test_settings_set_refuses_a_long_undecodable_tag(installed: World) -> None:
    """Bug P of the hostile-input sweep (tests/hostile), through the CLI."""
    before = fingerprint(installed.db)
    args = ["settings", "set", "--shop", SHOP, "revert.flag_tag=" + "\udcff" * 41]
    result = installed.app.test_cli_runner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert "revert.flag_tag" in result.output
    assert fingerprint(installed.db) == before
