"""The `Deliveries` implementation for a database."""

from __future__ import annotations

from app.db import Database
from app.storage.deliveries import Deliveries
from app.storage.postgres import PostgresDeliveries
from app.storage.sqlite import SqliteDeliveries


def open_deliveries(db: Database) -> Deliveries:
    """SQLite's (the inbox, the writers' lock) or PostgreSQL's (the kept autocommit connection)."""
    return SqliteDeliveries(db) if db.is_sqlite else PostgresDeliveries(db)
