"""The webhook path's database access outside a pooled transaction: SQLite's kept reading
connection, PostgreSQL's kept autocommit connection, which must survive a server-side disconnect."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select, text

from app.config import Settings
from app.db import Database, normalize_url
from app.storage.open import open_deliveries
from app.storage.postgres import PostgresDeliveries
from app.storage.prepared import Prepared
from app.storage.sqlite import SqliteDeliveries
from tests.factories import Books

BACKEND = Prepared(select(func.pg_backend_pid()))


def test_the_kept_connection_is_replaced_when_the_server_drops_it(settings: Settings, books: Books) -> None:
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite has no server to drop a connection")
    db = Database(settings.database_url)
    store = open_deliveries(db)
    assert isinstance(store, PostgresDeliveries)
    shop = books.open("kept-conn.myshopify.com")
    assert store.find_shop("shopify", "kept-conn.myshopify.com") is not None
    (backend,) = store.first(BACKEND, {}) or (None,)
    other = create_engine(normalize_url(settings.database_url))
    with other.connect() as conn:  # what a server restart or an idle timeout does to it
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar_one()
    other.dispose()
    found = store.find_shop("shopify", "kept-conn.myshopify.com")  # a new connection, the same answer
    assert found is not None and found.id == shop.shop_id
    stored = store.accept(shop_id=shop.shop_id, platform="shopify", topic="orders/paid", delivery_id="k-1",
                          body=b"{}", headers={})  # fmt: skip
    again = store.accept(shop_id=shop.shop_id, platform="shopify", topic="orders/paid", delivery_id="k-1",
                         body=b"{}", headers={})  # fmt: skip
    assert (stored.duplicate, again.duplicate, again.id) == (False, True, stored.id)
    (now_backend,) = store.first(BACKEND, {}) or (None,)
    assert now_backend != backend
    store.close()
    db.dispose()


def test_each_thread_and_process_keeps_its_own_reading_connection(settings: Settings, books: Books) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the kept reading connection is SQLite's")
    db = Database(settings.database_url)
    store = SqliteDeliveries(db)
    books.open("reader.myshopify.com")
    with store.reading() as first:
        pass
    with store.reading() as again:
        assert again.connection is first.connection
    store._reader._local.pid = -1  # as a forked child sees it
    with store.reading() as child:
        assert child.connection is not first.connection
    assert store.find_shop("shopify", "reader.myshopify.com") is not None
    store.close()
    db.dispose()


def test_a_shop_is_read_again_as_soon_as_anything_was_committed(settings: Settings, books: Books) -> None:
    """The webhook's shop lookup keeps what its connection read until the database changes (any
    commit by any other connection): never a stale shop, and no SELECT while nothing changed."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("PRAGMA data_version is SQLite's")
    db = Database(settings.database_url)
    store = SqliteDeliveries(db)
    books.open("seen.myshopify.com")
    selects: list[str] = []
    with store.reading() as cursor:
        cursor.connection.set_trace_callback(lambda sql: selects.append(sql) if "FROM shops" in sql else None)
    first = store.find_shop("shopify", "seen.myshopify.com")
    assert first is not None and store.find_shop("shopify", "seen.myshopify.com") is first
    assert store.find_shop("shopify", "later.myshopify.com") is None
    assert store.find_shop("shopify", "later.myshopify.com") is None
    assert len(selects) == 2  # one per domain
    with db.engine.begin() as conn:  # the merchant changes something, in another process say
        conn.execute(text("UPDATE shops SET currency = 'EUR' WHERE domain = 'seen.myshopify.com'"))
    changed = store.find_shop("shopify", "seen.myshopify.com")
    assert changed is not None and changed is not first and changed.currency == "EUR"
    books.open("later.myshopify.com")  # installed meanwhile
    assert store.find_shop("shopify", "later.myshopify.com") is not None
    with db.engine.begin() as conn:  # uninstalled and erased
        conn.execute(text("DELETE FROM shops WHERE domain = 'later.myshopify.com'"))
    assert store.find_shop("shopify", "later.myshopify.com") is None
    assert len(selects) == 5
    store.close()
    db.dispose()
