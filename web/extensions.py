"""What the app holds for its lifetime (settings, database, vault) and the session per request."""

from __future__ import annotations

from functools import cached_property
from typing import cast

from flask import Flask, current_app, g
from sqlmodel import Session

from app.config import Settings
from app.crypto import Vault
from app.db import Database
from app.jobs import Jobs, make_huey
from app.storage.deliveries import Deliveries
from app.storage.open import open_deliveries


class Services:
    """Settings, database, key ring, and the job queue (connected on first use, not at start)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.vault = Vault(settings.encryption_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(settings)

    @cached_property
    def deliveries(self) -> Deliveries:
        """Where webhooks wait between their 200 and the worker (app/storage/deliveries.py)."""
        return open_deliveries(self.db)

    @cached_property
    def jobs(self) -> Jobs:
        import connectors  # the web layer is where the domain meets the platforms

        return Jobs(
            make_huey(self.settings.queue_url, self.db.url),
            self.db,
            self.deliveries,
            parser_for=lambda platform: connectors.get(platform)().parse,
            executor=connectors.writeback_executor(self.settings, self.vault),
            orders_since=lambda shop, since: connectors.get(shop.platform)().orders_since(
                self.settings, self.vault, self.db, shop, since
            ),
        )


def services() -> Services:
    return cast(Services, current_app.extensions["clawback"])


def get_session() -> Session:
    """The request's session, opened on first use and closed when the request ends (flaskr)."""
    if "db_session" not in g:
        g.db_session = Session(services().db.engine, expire_on_commit=False)
    return cast(Session, g.db_session)


def _close_session(exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return
    try:
        if exc is None:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def init_db(app: Flask) -> None:
    app.teardown_appcontext(_close_session)
