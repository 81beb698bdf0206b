"""Small helpers the test modules share (one place, not one copy per file)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, text

from app.db import Database


def table_names(db: Database) -> list[str]:
    return sorted(inspect(db.engine).get_table_names())


def row_counts(db: Database, *tables: str) -> dict[str, int]:
    """How many rows each of `tables` holds (every table when none is named)."""
    names = tables or tuple(table_names(db))
    with db.engine.connect() as conn:
        return {t: int(conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()) for t in names}


def work(app) -> int:  # type: ignore[no-untyped-def]
    """What a `clawback worker` does, run once here and now: take the stored deliveries until none
    waits (the worker's own poll, batches and all), then run every queue task that is due
    (retries, write-backs). Returns how many deliveries it applied. Tests call it after a webhook
    instead of running a worker process beside them."""
    jobs = app.extensions["clawback"].jobs
    applied = 0
    while done := jobs.poll_deliveries():
        applied += done
    huey = jobs.huey
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    return applied


def store_delivery(session, **row: Any) -> int | None:  # type: ignore[no-untyped-def]
    """Write a delivery's row in `session`, as a webhook's INSERT does where there is no inbox:
    for tests that arrange stored deliveries without the web. Its id, or None for a duplicate."""
    from app.storage.deliveries import insert_statement, values

    found = session.execute(insert_statement(session.get_bind().dialect.name), values(**row)).first()
    return None if found is None else int(found[0])
