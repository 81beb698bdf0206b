"""The schema: Alembic migrates it up and down cleanly, it matches the models exactly, and the
database itself refuses what the rules say can never happen (constraints and the ledger trigger).

Runs on SQLite by default and on PostgreSQL when CLAWBACK_TEST_DATABASE_URL is set (see conftest).
The invariant tests write rows straight through SQLModel sessions, below the service layer.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Column, Integer, MetaData, UniqueConstraint, create_engine, func, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, SQLModel, select, update

from app import migrate
from app.crypto import Vault
from app.db import Database, make_engine, normalize_url
from app.demo import seed
from app.models import (
    ApiKey,
    ApiRequest,
    Award,
    Customer,
    DataExport,
    LedgerEntry,
    Order,
    Redemption,
    Shop,
    WebhookDelivery,
    Writeback,
    utcnow,
)

PG_URL = os.environ.get("CLAWBACK_TEST_DATABASE_URL", "")
APP_TABLES = set(SQLModel.metadata.tables)
_serial = itertools.count(1)


# --- schema state -------------------------------------------------------------------------------


def head_revision() -> str:
    heads = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"the migrations have several heads: {heads}"
    return heads[0]


def schema(url: str) -> dict[str, Any]:
    """What is in the database: its Alembic revision, app tables, triggers and (PostgreSQL) functions."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                triggers = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
                functions = "SELECT proname FROM pg_proc WHERE proname = 'ledger_entries_immutable'"
            else:
                triggers = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                functions = "SELECT 1 WHERE 0"
            return {
                "revision": MigrationContext.configure(conn).get_current_revision(),
                "tables": set(inspect(conn).get_table_names()) & APP_TABLES,
                "triggers": {r[0] for r in conn.execute(text(triggers))},
                "functions": {r[0] for r in conn.execute(text(functions))},
            }
    finally:
        engine.dispose()


def at_head(url: str) -> dict[str, Any]:
    functions = {"ledger_entries_immutable"} if url.startswith("postgres") else set()
    return {"revision": head_revision(), "tables": APP_TABLES, "triggers": {"ledger_entries_no_update"},
            "functions": functions}  # fmt: skip


EMPTY = {"revision": None, "tables": set(), "triggers": set(), "functions": set()}


@pytest.fixture
def blank_url(tmp_path: Path, worker_id: str) -> Iterator[str]:
    """A database nothing has touched: a new SQLite file, or a new PostgreSQL database."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    server = make_url(normalize_url(PG_URL))
    name = f"{server.database or 'clawback'}_blank_{worker_id}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- (a) the migration runs clean -----------------------------------------------------------------


def test_upgrade_downgrade_upgrade_on_a_blank_database(blank_url: str) -> None:
    assert schema(blank_url) == EMPTY
    migrate.upgrade(blank_url)
    assert schema(blank_url) == at_head(blank_url)
    migrate.downgrade(blank_url, "base")
    assert schema(blank_url) == EMPTY
    migrate.upgrade(blank_url)
    assert schema(blank_url) == at_head(blank_url)


def test_postgresql_compresses_bodies_and_snapshots_with_lz4(blank_url: str) -> None:
    """0004: on PostgreSQL the delivery's body and the order's snapshot use lz4 (Debian's server
    has it); down to 0003 they are back at the server's default. SQLite has no such setting."""
    if not blank_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL column setting")

    def methods() -> dict[str, str]:
        engine = create_engine(normalize_url(blank_url))
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT attrelid::regclass::text || '.' || attname, attcompression FROM pg_attribute WHERE "
                    "(attrelid::regclass::text, attname) IN (('webhook_deliveries', 'body'), ('orders', 'snapshot'))"
                )
            ).all()
        engine.dispose()
        return {name: str(method) for name, method in found}

    migrate.upgrade(blank_url)
    assert methods() == {"webhook_deliveries.body": "l", "orders.snapshot": "l"}
    migrate.downgrade(blank_url, "0003")
    assert methods() == {"webhook_deliveries.body": "", "orders.snapshot": ""}


def test_downgrade_drops_a_database_full_of_rows_and_upgrade_rebuilds_it(database_url: str) -> None:
    # On PostgreSQL this is the worker's shared database: whatever happens, leave it at head.
    try:
        db = Database(database_url)
        with db.session() as session:
            seed(session, Vault("test-key"))
        db.dispose()
        migrate.downgrade(database_url, "base")
        assert schema(database_url) == EMPTY
        migrate.upgrade(database_url)
        assert schema(database_url) == at_head(database_url)
    finally:
        migrate.upgrade(database_url)


# --- (b) the models and the migration agree -------------------------------------------------------


def differences(url: str, metadata: MetaData) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # The job queue keeps its own tables (huey_*) beside the data on PostgreSQL; they are
            # Huey's schema, created by Huey, not the app's.
            opts = {
                "compare_type": True,
                "compare_server_default": True,
                "include_name": lambda name, kind, _parents: not (kind == "table" and str(name).startswith("huey_")),
            }
            context = MigrationContext.configure(conn, opts=opts)
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_the_migrated_schema_is_exactly_the_models(database_url: str) -> None:
    # Tables, columns, types (compare_type), nullability, server defaults, indexes, unique
    # constraints and foreign keys with their ON DELETE; no type differences needed ignoring.
    assert differences(database_url, SQLModel.metadata) == []


def test_the_comparison_would_notice_a_difference(database_url: str) -> None:
    """Guard against a vacuous pass: one extra model column must show up as one difference."""
    changed = MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["shops"].append_column(Column("loyalty_tier", Integer, nullable=True))
    found = differences(database_url, changed)
    assert [(d[0], d[2], d[3].name) for d in found] == [("add_column", "shops", "loyalty_tier")]


def test_check_constraints_have_the_models_names(database_url: str) -> None:
    # compare_metadata ignores CHECK constraints; their behaviour is tested below, their names here.
    engine = make_engine(database_url)
    inspector = inspect(engine)
    found = {(t, c["name"]) for t in APP_TABLES for c in inspector.get_check_constraints(t)}
    engine.dispose()
    declared = {
        (t.name, c.name)
        for t in SQLModel.metadata.tables.values()
        for c in t.constraints
        if isinstance(c, CheckConstraint)
    }
    assert found == declared


# --- (c) what the database itself refuses -------------------------------------------------------


@dataclass(frozen=True)
class Parents:
    shop_id: int
    customer_id: int


def add(session: Session, row: SQLModel) -> Any:
    session.add(row)
    session.flush()
    return row


def make_shop(session: Session, _p: Parents | None = None, **kw: Any) -> Shop:
    return add(session, Shop(**{"platform": "shopify", "domain": f"s{next(_serial)}.myshopify.com", **kw}))


def make_customer(session: Session, p: Parents, **kw: Any) -> Customer:
    return add(session, Customer(**{"shop_id": p.shop_id, "platform_customer_id": f"c{next(_serial)}", **kw}))


def make_order(session: Session, p: Parents, **kw: Any) -> Order:
    fields = {"shop_id": p.shop_id, "platform_order_id": f"o{next(_serial)}", "customer_id": p.customer_id}
    return add(session, Order(**{**fields, "snapshot_updated_at": utcnow(), **kw}))


def make_award(session: Session, p: Parents, **kw: Any) -> Award:
    order_id = kw.pop("order_id", None) or make_order(session, p).id
    fields = {"shop_id": p.shop_id, "customer_id": p.customer_id, "order_id": order_id, "rule": {"rate": "1"}}
    return add(session, Award(**{**fields, "coins_earned": 10, **kw}))


def make_redemption(session: Session, p: Parents, **kw: Any) -> Redemption:
    return add(session, Redemption(**{"shop_id": p.shop_id, "customer_id": p.customer_id, "coins_redeemed": 5, **kw}))


def make_entry(session: Session, p: Parents, **kw: Any) -> LedgerEntry:
    fields = {"shop_id": p.shop_id, "customer_id": p.customer_id, "kind": "adjust", "coins_delta": 5}
    texts = {"reason": "test", "explanation": "a test entry", "source": "test", "idempotency_key": f"k{next(_serial)}"}
    return add(session, LedgerEntry(**{**fields, **texts, **kw}))


def make_delivery(session: Session, p: Parents, **kw: Any) -> WebhookDelivery:
    fields = {"shop_id": p.shop_id, "platform": "shopify", "topic": "orders/updated", "body": b"{}"}
    return add(session, WebhookDelivery(**{**fields, "delivery_id": f"d{next(_serial)}", **kw}))


def make_writeback(session: Session, p: Parents, **kw: Any) -> Writeback:
    fields = {"shop_id": p.shop_id, "kind": "tag_customer", "idempotency_key": f"w{next(_serial)}"}
    return add(session, Writeback(**{**fields, **kw}))


def make_export(session: Session, p: Parents, **kw: Any) -> DataExport:
    return add(session, DataExport(**{"shop_id": p.shop_id, "customer_ref": "c", "request_id": "r", **kw}))


def make_api_key(session: Session, p: Parents, **kw: Any) -> ApiKey:
    fields = {"shop_id": p.shop_id, "prefix": "cbk_test", "key_hash": f"h{next(_serial)}", "scope": "read"}
    return add(session, ApiKey(**{**fields, **kw}))


def make_api_request(session: Session, p: Parents, **kw: Any) -> ApiRequest:
    fields = {"shop_id": p.shop_id, "idempotency_key": f"i{next(_serial)}", "request_hash": "0" * 64}
    return add(session, ApiRequest(**{**fields, **kw}))


def make_parents(db: Database) -> Parents:
    with db.session() as session:
        shop = make_shop(session)
        customer = add(session, Customer(shop_id=shop.id, platform_customer_id=f"c{next(_serial)}"))
    return Parents(shop.id, customer.id)


@pytest.fixture
def parents(db: Database) -> Parents:
    return make_parents(db)


def refused(db: Database, build: Callable[[Session], Any], match: str, error: type[Exception] = IntegrityError) -> None:
    """`build` must fail inside the database with an error matching `match` (the session rolls back)."""
    with pytest.raises(error, match=match), db.session() as session:
        build(session)
        session.flush()


def unique_violation(name: str) -> str:
    """PostgreSQL names the constraint; SQLite names its columns ('UNIQUE constraint failed: t.a, t.b')."""
    for table in SQLModel.metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint) and constraint.name == name:
                columns = ", ".join(f"{table.name}.{c.name}" for c in constraint.columns)
                return f"{re.escape(name)}|{re.escape(columns)}"
    raise LookupError(name)


def count(db: Database, model: type[SQLModel], *where: Any) -> int:
    with db.session() as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def test_ledger_entries_cannot_be_updated(db: Database, parents: Parents) -> None:
    with db.session() as session:
        entry = make_entry(session, parents)

    def stored() -> dict[str, Any]:
        with db.session() as session:
            return session.get(LedgerEntry, entry.id).model_dump()

    before = stored()

    def through_sql(session: Session) -> None:
        session.exec(update(LedgerEntry).where(LedgerEntry.id == entry.id).values(coins_delta=1_000))

    def through_the_orm(session: Session) -> None:
        row = session.get(LedgerEntry, entry.id)
        assert row is not None
        row.explanation = "rewritten history"
        session.add(row)

    for change in (through_sql, through_the_orm):
        refused(db, change, "ledger entries are immutable", error=DBAPIError)
    assert stored() == before


def test_deleting_a_shop_cascades_through_all_its_rows(db: Database, parents: Parents) -> None:
    other = make_parents(db)
    for p in (parents, other):
        with db.session() as session:
            award = make_award(session, p)
            redemption = make_redemption(session, p, code=f"CODE-{p.shop_id}")
            make_entry(session, p, award_id=award.id, order_ref="o1")
            make_entry(session, p, redemption_id=redemption.id, kind="redeem", coins_delta=-5)
            make_delivery(session, p)
            make_writeback(session, p)
            make_export(session, p)
            make_api_key(session, p)
            make_api_request(session, p, redemption_id=redemption.id)
    with db.session() as session:
        session.delete(session.get(Shop, parents.shop_id))

    children = (Customer, Order, Award, Redemption, LedgerEntry, WebhookDelivery, Writeback, DataExport, ApiKey,
                ApiRequest)  # fmt: skip
    assert {m.__tablename__ for m in children} == {
        t.name for t in SQLModel.metadata.tables.values() if "shop_id" in t.c
    }
    assert count(db, Shop, Shop.id == parents.shop_id) == 0
    assert {m.__name__: count(db, m, m.shop_id == parents.shop_id) for m in children} == dict.fromkeys(
        (m.__name__ for m in children), 0
    )
    assert all(count(db, m, m.shop_id == other.shop_id) for m in children), "another shop's rows went too"


CHECKS = [
    pytest.param(make_entry, {"coins_delta": 0}, "ck_ledger_moves_something", id="ledger-entry-moves-nothing"),
    pytest.param(make_entry, {"kind": "gift"}, "ck_ledger_kind", id="unknown-ledger-kind"),
    pytest.param(make_entry, {"shortfall_delta": -1}, "ck_ledger_shortfall_nonneg", id="negative-shortfall-delta"),
    pytest.param(make_shop, {"platform": "magento"}, "ck_shops_platform", id="unknown-shop-platform"),
    pytest.param(make_customer, {"pending_coins": -1}, "ck_customers_pending_nonneg", id="negative-pending"),
    pytest.param(make_customer, {"shortfall_coins": -1}, "ck_customers_shortfall_nonneg", id="negative-shortfall"),
    pytest.param(make_award, {"coins_reverted": 11}, "ck_awards_reverted_le_earned", id="reverted-above-earned"),
    pytest.param(make_award, {"coins_earned": -1}, "ck_awards_nonneg", id="negative-award"),
    pytest.param(make_award, {"state": "frozen"}, "ck_awards_state", id="unknown-award-state"),
    pytest.param(make_redemption, {"coins_returned": 6}, "ck_redemptions_returned", id="returned-above-redeemed"),
    pytest.param(make_redemption, {"coins_redeemed": 0}, "ck_redemptions_positive", id="redeemed-nothing"),
    pytest.param(make_delivery, {"status": "lost"}, "ck_deliveries_status", id="unknown-delivery-status"),
    pytest.param(make_api_key, {"scope": "admin"}, "ck_api_keys_scope", id="unknown-api-key-scope"),
]


@pytest.mark.parametrize(("make", "bad", "constraint"), CHECKS)
def test_check_constraints_refuse_impossible_rows(
    db: Database, parents: Parents, make: Callable[..., Any], bad: dict[str, Any], constraint: str
) -> None:
    with db.session() as session:
        make(session, parents)  # the same row without the bad value is fine
    refused(db, lambda session: make(session, parents, **bad), re.escape(constraint))


UNIQUES = [
    pytest.param(make_entry, lambda p: {"idempotency_key": "k"}, "uq_ledger_shop_idempotency", id="ledger-key"),
    pytest.param(make_award, lambda p: {"order_id": p.order_id}, "uq_awards_order", id="second-award-for-an-order"),
    pytest.param(make_delivery, lambda p: {"delivery_id": "d"}, "uq_deliveries_shop_delivery", id="delivery"),
    pytest.param(make_writeback, lambda p: {"idempotency_key": "w"}, "uq_writebacks_shop_idempotency", id="writeback"),
    pytest.param(make_redemption, lambda p: {"code": "C"}, "uq_redemptions_shop_code", id="redemption-code"),
    pytest.param(make_order, lambda p: {"platform_order_id": "1"}, "uq_orders_shop_platform_id", id="order"),
    pytest.param(make_api_key, lambda p: {"key_hash": "h"}, "uq_api_keys_hash", id="api-key-hash"),
    pytest.param(make_api_request, lambda p: {"idempotency_key": "i"}, "uq_api_requests_shop_key", id="api-request"),
    pytest.param(
        make_customer, lambda p: {"platform_customer_id": "c"}, "uq_customers_shop_platform_id", id="customer"
    ),
]


@dataclass(frozen=True)
class WithOrder(Parents):
    order_id: int


@pytest.mark.parametrize(("make", "same", "constraint"), UNIQUES)
def test_unique_constraints_refuse_duplicates(
    db: Database,
    parents: Parents,
    make: Callable[..., Any],
    same: Callable[[WithOrder], dict[str, Any]],
    constraint: str,
) -> None:
    with db.session() as session:
        p = WithOrder(parents.shop_id, parents.customer_id, make_order(session, parents).id)
        make(session, p, **same(p))
    refused(db, lambda session: make(session, p, **same(p)), unique_violation(constraint))


def test_idempotency_keys_and_delivery_ids_are_per_shop(db: Database, parents: Parents) -> None:
    other = make_parents(db)
    for p in (parents, other):
        with db.session() as session:
            make_entry(session, p, idempotency_key="same-key")
            make_delivery(session, p, delivery_id="same-delivery")
    assert count(db, LedgerEntry, LedgerEntry.idempotency_key == "same-key") == 2
    assert count(db, WebhookDelivery, WebhookDelivery.delivery_id == "same-delivery") == 2
