"""Prepared statements (app/prepared.py) write what SQLAlchemy's own execution would, on SQLite
and on PostgreSQL, inside the caller's transaction, and fail with SQLAlchemy's exceptions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from app.db import Database
from app.models import Customer, as_utc
from app.storage.prepared import Prepared
from tests.factories import Books

_TABLE = Customer.__table__  # type: ignore[attr-defined]
_COLUMNS = ("shop_id", "platform_customer_id", "email", "tags", "created_at", "flagged_at")
_INSERT = Prepared(insert(_TABLE).returning(_TABLE.c.id), column_keys=_COLUMNS)
_ADD = Prepared(
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("pk"))
    .values(available_coins=_TABLE.c.available_coins + bindparam("coins"), pending_coins=_TABLE.c.pending_coins + 7)
)
AT = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=UTC)


def _values(shop_id: int, ref: str, **kw: object) -> dict[str, object]:
    return {"shop_id": shop_id, "platform_customer_id": ref, "email": None, "tags": ["VIP", "é"],
            "created_at": AT, "flagged_at": None, **kw}  # fmt: skip


def test_an_insert_reads_back_as_the_orm_wrote_it(db: Database, books: Books) -> None:
    shop = books.open("prepared.myshopify.com")
    with db.session() as session:
        row = _INSERT.first(session.connection(), _values(shop.shop_id, "p-1"))
        orm = Customer(shop_id=shop.shop_id, platform_customer_id="p-2", tags=["VIP", "é"], created_at=AT)
        session.add(orm)
    assert row is not None
    with db.session() as session:
        ours, theirs = (session.exec(select(Customer).where(Customer.platform_customer_id == r)).one()
                        for r in ("p-1", "p-2"))  # fmt: skip
        assert ours.id == row[0]
        assert (ours.tags, as_utc(ours.created_at), ours.email, ours.flagged_at) == (["VIP", "é"], AT, None, None)
        assert (ours.tags, ours.created_at) == (theirs.tags, theirs.created_at)
        raw = (
            session.connection()
            .exec_driver_sql(
                f"SELECT tags, created_at FROM customers WHERE id IN ({ours.id:d}, {theirs.id:d}) ORDER BY id"
            )
            .all()
        )
        assert raw[0] == raw[1]  # the very same stored text, not merely equal after decoding


def test_the_statements_own_values_and_many_rows(db: Database, books: Books) -> None:
    shop = books.open("prepared-many.myshopify.com")
    with db.session() as session:
        conn = session.connection()
        ids = [_INSERT.first(conn, _values(shop.shop_id, f"m-{n}")) for n in range(3)]
        _ADD.run_many(conn, [{"pk": r[0], "coins": n * 10} for n, r in enumerate(ids) if r])
        _ADD.run(conn, {"pk": ids[0][0] if ids[0] else 0, "coins": 1})
    with db.session() as session:
        rows = session.exec(select(Customer).where(Customer.shop_id == shop.shop_id).order_by(Customer.id)).all()
        assert [(c.available_coins, c.pending_coins) for c in rows] == [(1, 14), (10, 7), (20, 7)]


def test_a_driver_error_is_sqlalchemys_and_rolls_back_with_the_savepoint(db: Database, books: Books) -> None:
    shop = books.open("prepared-err.myshopify.com")
    with db.session() as session:
        conn = session.connection()
        _INSERT.first(conn, _values(shop.shop_id, "dup"))
        with pytest.raises(IntegrityError), session.begin_nested():
            inner = session.connection()  # the savepoint is begun as the block asks for its connection
            _INSERT.first(inner, _values(shop.shop_id, "inside"))
            _INSERT.first(inner, _values(shop.shop_id, "dup"))  # UNIQUE (shop_id, platform_customer_id)
        _INSERT.first(session.connection(), _values(shop.shop_id, "after"))
    with db.session() as session:
        refs = session.exec(select(Customer.platform_customer_id).where(Customer.shop_id == shop.shop_id)).all()
        assert sorted(refs) == ["after", "dup"]
