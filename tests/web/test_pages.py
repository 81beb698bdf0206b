"""The pages: /healthz for load balancers, and the read-only overview of the books (not in production)."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import col, select

from app.config import Settings
from app.db import Database
from app.demo import DEMO_DOMAIN, seed
from app.models import Customer, Shop
from tests.factories import Books
from tests.hostile.world import BASE_URL, SHOP, World, fingerprint

DEMO_STORY = {  # what each demo customer's page must explain (app/demo.py)
    "alice": ["Order #1001 was cancelled; 200 coins earned on it were reverted",
              "Order #1005 was cancelled; 120 coins spent on it were returned"],
    "bob": ["Order #1002 was refunded 20.00 of 100.00 USD; 20 coins earned on it were reverted"],
    "carol": ["Order #1003 was tagged 'fraud-order'; 150 coins earned on it were reverted"],
    "dave": ["200 coins were spent on code DAVE-200", "a shortfall of 200 was recorded"],
    "erin": ["The hold on order #1007 ended; 80 coins were released", "Order #1008 was paid; 60 coins are held until"],
}  # fmt: skip


def page(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, f"GET {path} -> {response.status_code}"
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def demo(app: Flask, db: Database) -> tuple[int, dict[str, Customer]]:
    """The demo shop seeded into the app's database: its id, and its customers by platform id."""
    with db.session() as session:
        seed(session, app.extensions["clawback"].vault)
    with db.session() as session:
        shop = session.exec(select(Shop).where(Shop.domain == DEMO_DOMAIN)).one()
        customers = session.exec(select(Customer).where(Customer.shop_id == shop.id).order_by(col(Customer.id))).all()
    assert shop.id is not None
    return shop.id, {c.platform_customer_id: c for c in customers}


# --- /healthz -------------------------------------------------------------------------------------


def test_healthz_says_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_sqlite_database_cannot_be_opened(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    application = make_app(database_url=f"sqlite:///{folder / 'clawback.db'}")
    assert application.test_client().get("/healthz").status_code == 200
    application.extensions["clawback"].db.dispose()  # no pooled connection left open
    shutil.rmtree(folder)
    folder.write_text("a file where the database's folder was")
    response = application.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "OperationalError"}


def test_healthz_is_503_when_postgresql_does_not_answer(make_app: Callable[..., Flask]) -> None:
    response = make_app(database_url="postgresql://u:p@127.0.0.1:1/x").test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "OperationalError"}


# --- the overview -------------------------------------------------------------------------------


def test_index_without_shops_points_at_the_demo(client: FlaskClient) -> None:
    assert "No shops yet. Run clawback demo" in re.sub(r"</?code>", "", page(client, "/"))


def test_index_lists_the_demo_shop(client: FlaskClient, demo: tuple[int, dict[str, Customer]]) -> None:
    text = page(client, "/")
    shop_id, _ = demo
    assert "Clawback Demo Store" in text
    assert DEMO_DOMAIN in text
    assert f'href="/shops/{shop_id}"' in text


def numbers_in_row(text: str, customer: str) -> list[int]:
    """The numeric cells of the customers-table row whose link text is `customer`."""
    row = next(r for r in text.split("<tr>") if f">{customer}</a>" in r)
    return [int(n) for n in re.findall(r'<td class="num">(-?\d+)</td>', row)]


def test_shop_page_shows_balances_and_why(client: FlaskClient, demo: tuple[int, dict[str, Customer]]) -> None:
    shop_id, customers = demo
    text = page(client, f"/shops/{shop_id}")
    assert "Clawback Demo Store" in text
    assert set(customers) == set(DEMO_STORY)
    for name, row in customers.items():
        assert numbers_in_row(text, name) == [row.available_coins, row.pending_coins, row.shortfall_coins]
        for explanation in DEMO_STORY[name]:
            assert explanation in text
    assert "was cancelled" in text
    assert text.index("Order #1008 was paid") < text.index("Order #1001 was paid"), "activity is newest first"
    assert "earn.rate" in text, "the shop's settings are shown"


@pytest.mark.parametrize("name", sorted(DEMO_STORY))
def test_customer_page_shows_balance_and_history(
    client: FlaskClient, demo: tuple[int, dict[str, Customer]], name: str
) -> None:
    shop_id, customers = demo
    row = customers[name]
    text = page(client, f"/shops/{shop_id}/customers/{name}")
    assert f"Customer {name}" in text
    balances = f"Available {row.available_coins} · held {row.pending_coins} · shortfall {row.shortfall_coins}"
    assert balances in re.sub(r"</?strong>", "", text)
    for explanation in DEMO_STORY[name]:
        assert explanation in text
    for other in set(DEMO_STORY) - {name}:
        assert not any(e in text for e in DEMO_STORY[other]), f"{other}'s history is on {name}'s page"


def test_alice_sees_her_cancelled_orders(client: FlaskClient, demo: tuple[int, dict[str, Customer]]) -> None:
    shop_id, customers = demo
    assert (customers["alice"].available_coins, customers["alice"].pending_coins) == (300, 0)
    text = page(client, f"/shops/{shop_id}/customers/alice")
    assert text.count("was cancelled") == 3  # #1001 reverted; #1005 reverted and its redemption returned


def test_unknown_shops_and_customers_are_404(
    client: FlaskClient, books: Books, demo: tuple[int, dict[str, Customer]]
) -> None:
    shop_id, _ = demo
    other = books.open()  # a second shop, without alice
    for path in (
        "/shops/999999",
        "/shops/not-a-number",
        "/shops/999999/customers/alice",
        f"/shops/{shop_id}/customers/nobody",
        f"/shops/{other.shop_id}/customers/alice",
    ):
        page(client, path, status=404)


def test_production_has_no_overview(make_app: Callable[..., Flask], database_url: str) -> None:
    settings = {"secret_key": "s" * 40, "encryption_key": Fernet.generate_key().decode()}
    production = Settings(env="production", database_url=database_url, app_url="https://loyalty.example.com",
                          **settings).check()  # fmt: skip
    application = make_app(**production.model_dump())
    assert "overview" not in application.blueprints
    client = application.test_client()
    for path in ("/", "/shops/1", "/shops/1/customers/alice"):
        page(client, path, status=404)
    assert client.get("/healthz").status_code == 200


# --- what the hostile-input sweep found (tests/hostile) --------------------------------------------


def test_a_nul_in_a_page_path_is_refused(installed: World) -> None:
    """Bug N of the hostile-input sweep (tests/hostile).

    PostgreSQL: a NUL in /shops/<id>/customers/<id> reached the query (DataError, a 500)."""
    before = fingerprint(installed.db)
    response = installed.client.get(f"/shops/{installed.shop_ids[SHOP]}/customers/%00", base_url=BASE_URL)
    installed.check_answer(response, "customer page, NUL")
    assert response.status_code in (400, 404)
    assert fingerprint(installed.db) == before


def test_a_shop_id_beyond_integer_is_not_found(installed: World) -> None:
    """Bug O of the hostile-input sweep (tests/hostile).

    PostgreSQL: Flask's <int:shop_id> accepts 999999999999999; the INTEGER column does not."""
    response = installed.client.get("/shops/999999999999999", base_url=BASE_URL)
    installed.check_answer(response, "shop page, huge id")
    assert response.status_code == 404
